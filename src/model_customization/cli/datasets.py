"""`dataset ...`: build from memory, inspect, list, delete, constitutional data (the dataset tools' operations)."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape

from model_customization.cli import common
from model_customization.cli.common import command, console, more, progress_bar, table
from model_customization.datasets import build, constitutional
from model_customization.datasets import inspect as inspection
from model_customization.operations.datasets import (
    BuildDatasetRequest,
    ConstitutionalDatasetRequest,
    DeleteDatasetRequest,
    InspectDatasetRequest,
    ListDatasetsRequest,
)
from model_customization.workspace import Workspace

dataset_app = typer.Typer(help="Build and list datasets.", no_args_is_help=True)


def _show_built(result: dict[str, Any]) -> None:
    console.print(f"dataset [bold]{result['dataset_id']}[/bold]: {result['counts']}" + (" (already existed)" if result["already_existed"] else ""))
    if result["dropped"]:
        console.print(f"dropped: {result['dropped']}")
    for problem in result["problems"]:
        console.print(f"[yellow]problem:[/yellow] {problem}")
    for skipped in result.get("skipped", []):
        console.print(f"[dim]skipped:[/dim] {skipped}")
    if result.get("skipped_count", 0) > len(result.get("skipped", [])):
        console.print(f"[dim]... {result['skipped_count'] - len(result['skipped'])} more skipped[/dim]")


@command(dataset_app, "build", request=BuildDatasetRequest, positional=("paths",), flags={"sources": ("--source", "--sources")}, render=_show_built)
def dataset_build(ws: Workspace, request: BuildDatasetRequest) -> dict[str, Any]:
    """Build a dataset from memory (same as the build_dataset_from_memory tool)."""
    result = build.build_dataset_from_request(ws, request)
    return {
        "dataset_id": result.dataset_id,
        "counts": result.counts,
        "dropped": result.dropped,
        "problem_count": result.problem_count,
        "problems": result.problems,
        "skipped_count": result.skipped_count,
        "skipped": result.skipped,
        "already_existed": result.already_existed,
        "redactions": result.card.get("redactions", {}),
    }


def _show_inspection(report: dict[str, Any]) -> None:
    verdict = "[green]valid[/green]" if report["valid"] else "[red]invalid[/red]"
    console.print(f"{report['source']} for {report['provider']} {report['model']}: {verdict}, {report['errors']} errors, {report['warnings']} warnings")
    for finding in report["findings"]:
        console.print(f"  {finding['split']}:{finding['line']} {finding['severity']} {finding['code']}: {finding['message']}")
    for split, stats in report["token_stats"].items():
        console.print(f"  {split}: {stats['examples']} examples, {stats['total']} tokens (mean {stats['mean']}, max {stats['max']})")
    console.print(f"  quote: {json.dumps(report['quote'])}")


@command(dataset_app, "inspect", request=InspectDatasetRequest, positional=("dataset_id",), render=_show_inspection, failed=lambda report: not report["valid"])
def dataset_inspect(ws: Workspace, request: InspectDatasetRequest) -> dict[str, Any]:
    """Validate a dataset or file for a provider and quote a job on it (same as the inspect_dataset tool)."""
    return inspection.inspect_dataset(ws, **request.model_dump())


def _show_datasets(page: dict[str, Any]) -> None:
    shown = table("dataset_id", "name", "train", "validation", "test", whole=("dataset_id",))
    for r in page["datasets"]:
        shown.add_row(r["dataset_id"], escape(r["name"]), *(str(r["counts"][s]) for s in ("train", "validation", "test")))
    console.print(shown)
    more(page["next_cursor"])


@command(dataset_app, "list", request=ListDatasetsRequest, render=_show_datasets)
def dataset_list(ws: Workspace, request: ListDatasetsRequest) -> dict[str, Any]:
    """List datasets, newest first (same as the list_datasets tool)."""
    page = build.list_datasets_page(ws, request.limit, request.cursor)
    rows = [{"dataset_id": r["id"], "name": r["name"], "counts": r["counts"], "resource_uri": f"datasets://{r['id']}"} for r in page["datasets"]]
    return {"datasets": rows, "total": page["total"], "next_cursor": page["next_cursor"]}


def _show_deleted(result: dict[str, Any]) -> None:
    console.print(f"deleted {result['dataset_id']} ({result['name']}): {result['bytes_freed']:,} bytes freed", markup=False, soft_wrap=True)
    for note in result["notes"]:
        console.print(f"note: {note}", markup=False, soft_wrap=True)


@command(dataset_app, "delete", request=DeleteDatasetRequest, positional=("dataset_id",), render=_show_deleted)
def dataset_delete(ws: Workspace, request: DeleteDatasetRequest) -> dict[str, Any]:
    """Delete a stored dataset (files and ledger entry); refused while a job trained on it (same as the delete_dataset tool)."""
    return build.delete_dataset(ws, request.dataset_id, request.force)


def _show_constitutional(result: dict[str, Any]) -> None:
    counts = result["counts"]
    console.print(f"SFT dataset [bold]{result['sft_dataset_id']}[/bold]: {counts['sft']}" + (" (already existed)" if result["already_existed"]["sft"] else ""))
    if result["dpo_dataset_id"]:
        console.print(f"DPO dataset [bold]{result['dpo_dataset_id']}[/bold]: {counts['dpo']}" + (" (already existed)" if result["already_existed"]["dpo"] else ""))
    console.print(
        f"{result['succeeded']} of {result['prompts_read']} prompts revised, {result['failed']} failed, "
        f"{result['revisions_unchanged']} unchanged; {result['model_calls']} model calls, usage {result['usage']}",
        markup=False,
    )
    for failed in result["failed_prompts"][:5]:
        console.print(f"[yellow]failed:[/yellow] prompt {failed['prompt_index']} at {failed['stage']}: {escape(failed['reason'])} ({escape(failed['detail'])})")
    if result["dropped"]:
        console.print(f"left out: {result['dropped']}", markup=False)
    if result["note"]:
        console.print(f"note: {result['note']}", markup=False)


@command(
    dataset_app,
    "constitutional",
    request=ConstitutionalDatasetRequest,
    flags={"principles": ("--principle",), "prompts": ("--prompt",), "dataset_id": ("--from-dataset",)},
    render=_show_constitutional,
)
def dataset_constitutional(ws: Workspace, request: ConstitutionalDatasetRequest) -> dict[str, Any]:
    """Make principle-driven training data: the model answers each prompt, critiques its answer against each principle
    and revises it. Stores an SFT dataset (final revisions) and a DPO one (revision preferred over the first answer).

    Each prompt costs 1 + 2 x (number of principles) model calls, billed when the model is a cloud one: try --limit first.
    """
    from model_customization.jobs.spending import Consent

    def generate(human_usd: float | None) -> dict[str, Any]:
        with progress_bar("constitutional data") as report:
            return constitutional.generate_constitutional_dataset(ws, request, progress=report, consent=Consent(human_usd=human_usd, human_via="terminal"))

    # A cloud model's calls are quoted as a whole first; over the budgets the person at the terminal is asked.
    return common.with_terminal_consent(generate, may_ask=common.interactive(), refused="Nothing generated")
