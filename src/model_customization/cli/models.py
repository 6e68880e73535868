"""`model ...`: prompt, list, lineage, export; provisioned throughput for tuned Bedrock models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from model_customization import deployments, registry
from model_customization.cli import common
from model_customization.cli.common import Output, command, console, err_console, more, progress_bar, table
from model_customization.errors import ConfirmationNeeded, UserError
from model_customization.operations.cloud import ReleaseThroughputRequest, ThroughputStatusRequest
from model_customization.operations.models import ListModelsRequest, PromptModelRequest
from model_customization.providers import chat
from model_customization.reading_limits import read_regular_bytes
from model_customization.workspace import Workspace
from model_customization.timestamps import iso_or_none

model_app = typer.Typer(help="Prompt and export models; provision throughput for tuned Bedrock models.", no_args_is_help=True)


def _conversation(raw: str) -> list[dict[str, str]]:
    """--messages: JSON text, or a file holding it; a list of {role, content} with roles system/user/assistant."""
    text = raw
    if not raw.lstrip().startswith("["):
        try:
            text = read_regular_bytes(raw, what="--messages file").decode("utf-8")  # a regular file within the limit
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"--messages takes a JSON list of messages or a file holding one; {raw[:80]!r} is neither ({error}).") from None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UserError(f"--messages is not valid JSON ({error}); give e.g. '[{{\"role\": \"user\", \"content\": \"hi\"}}]'.") from None
    if not isinstance(value, list) or not value or not all(
        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str) for m in value
    ):
        raise UserError("--messages must be a non-empty JSON list of {\"role\": system|user|assistant, \"content\": text} objects.")
    return [{"role": m["role"], "content": m["content"]} for m in value]


@command(model_app, "prompt", request=PromptModelRequest, positional=("model", "prompt"), converters={"messages": _conversation})
def model_prompt(ws: Workspace, request: PromptModelRequest) -> Output:
    """Prompt any model: local (base, tuned ft-..., a folder) or cloud (gpt-..., ft:..., claude-..., Bedrock ids, openai:/anthropic:/bedrock: prefixes).

    Cloud models need their provider's key and bill the call (same as the prompt_model tool).
    """
    if request.agent is not None and request.prompt is None and request.messages is None:
        request = request.model_copy(update={"model": None, "prompt": request.model})  # `model prompt --agent NAME "question"`
    if request.agent is not None and request.model is not None:
        raise UserError("Give MODEL or --agent, not both: --agent uses the model deployed to it (agent show NAME).")
    if request.task is not None and request.agent is None:
        raise UserError("--task picks one of an agent's deployed models: give --agent too, or name the model instead.")
    if (request.prompt is None) == (request.messages is None):
        raise UserError("Give exactly one of PROMPT (a single user message) or --messages (a conversation as JSON).")
    if request.agent is None and request.model is None:
        raise UserError("Name the MODEL to prompt (model list shows them), or give --agent.")
    model = deployments.deployed_model(ws, request.agent, request.task) if request.agent is not None else request.model
    result = chat.chat(ws, model, request.conversation(), max_tokens=request.max_tokens, temperature=request.temperature, seed=request.seed)

    def show() -> None:
        console.print(result["text"], markup=False, highlight=False)
        if result.get("stop_reason") == "length":
            err_console.print(f"(cut at --max-tokens {request.max_tokens})", markup=False)

    return Output(result, show)


def _show_models(page: dict[str, Any]) -> None:
    shown = table("model_id", "kind", "provider", "job_id", "dataset_id", "created_at", "serves", whole=("model_id",))
    for m in page["models"]:
        shown.add_row(escape(m["model_id"]), m["kind"], m["provider"], m["job_id"] or "", m["dataset_id"] or "", m["created_at"] or "", escape(", ".join(m["live_deployments"])))
    console.print(shown)
    more(page["next_cursor"])


@command(model_app, "list", request=ListModelsRequest, render=_show_models)
def model_list(ws: Workspace, request: ListModelsRequest) -> dict[str, Any]:
    """The embedded base model, then every tuned model newest first with its job, dataset and deployments (same as the list_models tool)."""
    return registry.list_models_page(ws, request.limit, request.cursor)


def _show_lineage(lineage: dict[str, Any]) -> None:
    model, job, dataset = lineage["model"], lineage["job"], lineage["dataset"]
    console.print(f"[bold]{escape(model['id'])}[/bold]: {model['kind']} model on {escape(str(model['provider']))}, base {escape(str(model['base_model']))}", soft_wrap=True)
    for source in lineage["sources"]:
        console.print(f"  source  {escape(str(source['path']))}  sha256 {source['sha256']}", soft_wrap=True)
    if dataset:
        console.print(f"  dataset {dataset['id']} ({escape(str(dataset['name']))}): {dataset['counts']}, content sha256 {dataset['content_sha256']}", soft_wrap=True)
    if job:
        console.print(f"  job     {job['id']} ({job['provider']}, {job['method']}, {job['status']})", soft_wrap=True)
    if lineage["evaluations"]:
        shown = table("evaluation", "on", "primary metric", "score", "verdicts", whole=("evaluation",), title="evaluations")
        for entry in lineage["evaluations"]:
            score = "" if entry["score"] is None else f"{entry['score']:.4g}"
            verdicts = "; ".join(c["verdict"] or "" for c in entry["comparisons"]) or entry.get("report", "")
            shown.add_row(entry["eval_id"], escape(entry["dataset_id"] or entry["suite"] or ""), str(entry["primary_metric"] or ""), score, escape(verdicts))
        console.print(shown)
    else:
        console.print("  not evaluated yet", markup=False)
    if lineage["deployments"]:
        shown = table("agent", "task", "action", "at", "live", title="deployments")
        for entry in lineage["deployments"]:
            at = iso_or_none(entry["at"]) or ""
            shown.add_row(escape(entry["agent"]), escape(entry["task"] or "(default)"), entry["action"], at, "yes" if entry["live"] else "no")
        console.print(shown)
    else:
        console.print("  not deployed", markup=False)
    for note in lineage["notes"]:
        console.print(f"note: {note}", markup=False, soft_wrap=True)


@command(model_app, "lineage", render=_show_lineage)
def model_lineage_command(
    ws: Workspace,
    model_id: str = typer.Argument(..., help="A model id (ft-..., a cloud tuned model), a base model name, or <job_id>@step-N."),
) -> dict[str, Any]:
    """Where a model comes from and where it went: memory files -> dataset -> job -> model -> evaluations, deployments."""
    return registry.model_lineage(ws, model_id)


def _show_export(result: dict[str, Any]) -> None:
    shown = Table("file", "format", "size", "purpose", title=f"{result['model_id']} -> {result['output_dir']} ({result['seconds']} s)")
    for file in result["files"]:
        size = f"{file['bytes'] / 1e6:.1f} MB" if file["bytes"] >= 100_000 else f"{file['bytes'] / 1e3:.1f} kB"
        shown.add_row(file["path"], file["format"], size, file["purpose"])
    console.print(shown)
    for note in result["notes"]:
        console.print(f"note: {note}")
    if result["ollama_command"]:
        console.print(f"create the Ollama model with: [bold]{result['ollama_command']}[/bold]")


@command(model_app, "export", render=_show_export)
def model_export(
    ws: Workspace,
    model_id: str = typer.Argument(..., help="A tuned model id (ft-...)."),
    formats: list[str] = typer.Option(["ollama"], "--format", "--formats", "-f", help="adapter, merged, gguf-adapter, gguf-merged or ollama; repeatable."),
    output: Optional[Path] = typer.Option(None, "--output", "--output-dir", "-o", help="Folder to write (default: <home>/exports/<model_id>)."),
    gguf_type: str = typer.Option("f32", help="f32 (exact) or f16 (half the size) for GGUF files."),
) -> dict[str, Any]:
    """Export a tuned model for Ollama, llama.cpp, LM Studio or transformers (same as the export_model tool)."""
    from model_customization.providers.local.export import export_model

    with progress_bar(f"exporting {model_id}") as report:
        if report is None:  # --json: stdout carries the JSON alone
            return export_model(ws, model_id, formats, output, gguf_type=gguf_type)
        return export_model(ws, model_id, formats, output, gguf_type=gguf_type, progress=report)


@command(model_app, "provision")
def model_provision(
    ws: Workspace,
    model_id: str = typer.Argument(..., help="A tuned Bedrock model id (from a finished bedrock job)."),
    model_units: int = typer.Option(1, help="Model units to buy (each billed by the hour)."),
    commitment: Optional[str] = typer.Option(None, help="Omit for no commitment (hourly), or OneMonth / SixMonths (billed for the whole term)."),
    name: Optional[str] = typer.Option(None, help="The provisioned model's name (default: pt-<model id>)."),
    yes: bool = typer.Option(False, "--yes", "--confirm", "-y", help="Accept the hourly billing without being asked."),
) -> dict[str, Any]:
    """Buy provisioned throughput for a tuned Bedrock model (the only way to run one). Billed hourly until `model release`."""
    from model_customization.providers.bedrock.training import provision_throughput

    try:
        return provision_throughput(ws, model_id, model_units=model_units, commitment=commitment, name=name, confirm=yes)
    except ConfirmationNeeded as refused:
        # Only the billing question is put to the person; any other refusal simply fails, which never buys anything.
        if yes:
            raise
        if not common.interactive():
            raise ConfirmationNeeded(f"{refused} On the command line: add --yes.", quote_usd=refused.quote_usd, question=refused.question) from refused
        err_console.print(str(refused).replace("call provision_throughput again with confirm=true", "answer below"), markup=False, soft_wrap=True)
        if not typer.confirm(f"Buy {model_units} model unit(s) of provisioned throughput for {model_id} now?", default=False, err=True):
            raise UserError("Not provisioned: you did not confirm the hourly billing. Nothing was bought.") from refused
        return provision_throughput(ws, model_id, model_units=model_units, commitment=commitment, name=name, confirm=True)


@command(model_app, "throughput", request=ThroughputStatusRequest, positional=("model_id",))
def model_throughput(ws: Workspace, request: ThroughputStatusRequest) -> dict[str, Any]:
    """Show a tuned Bedrock model's provisioned throughput (status InService means it can be prompted)."""
    from model_customization.providers.bedrock.training import throughput_status

    return throughput_status(ws, request.model_id)


@command(model_app, "release", request=ReleaseThroughputRequest, positional=("model_id",))
def model_release(ws: Workspace, request: ReleaseThroughputRequest) -> dict[str, Any]:
    """Delete a tuned Bedrock model's provisioned throughput: its hourly billing stops."""
    from model_customization.providers.bedrock.training import release_throughput

    return release_throughput(ws, request.model_id)
