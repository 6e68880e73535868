"""The human CLI: the same domain functions the MCP tools call, with rich output and progress bars.

`model-customization demo` runs the whole loop on the shipped demo memory; `model-customization serve` starts the
MCP server (stdio by default). Exit codes: 0 success, 1 a user error (message printed), 2 usage error (typer).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from model_customization.errors import UserError

app = typer.Typer(help="Turn agent memory into fine-tuned models: datasets, LoRA jobs, evaluation, prompting, MCP server.", no_args_is_help=True)
dataset_app = typer.Typer(help="Build and list datasets.", no_args_is_help=True)
job_app = typer.Typer(help="Start, check, cancel and list fine-tuning jobs.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models against each other.", no_args_is_help=True)
model_app = typer.Typer(help="Prompt models.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(job_app, name="job")
app.add_typer(eval_app, name="eval")
app.add_typer(model_app, name="model")

console = Console()
err_console = Console(stderr=True)

HomeOption = typer.Option(None, "--home", envvar="MODEL_CUSTOMIZATION_HOME", help="Data home (ledger, datasets, adapters).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _workspace(home: Optional[Path]):
    from model_customization.workspace import Workspace

    return Workspace.open(home)


def _fail(error: Exception) -> None:
    err_console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(1)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=console
    )


# --- server ----------------------------------------------------------------------------------------------------
@app.command()
def serve(
    transport: str = typer.Option("stdio", help="stdio (for Claude Code/Desktop, Inspector) or streamable-http."),
    host: str = typer.Option("127.0.0.1", help="Address for streamable-http."),
    port: int = typer.Option(8000, help="Port for streamable-http."),
    home: Optional[Path] = HomeOption,
) -> None:
    """Run the MCP server."""
    from model_customization.server.app import build_server

    if transport not in ("stdio", "streamable-http"):
        _fail(UserError(f"Unknown transport {transport!r}: use stdio or streamable-http."))
    server = build_server(home=home)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)


# --- datasets --------------------------------------------------------------------------------------------------
@dataset_app.command("build")
def dataset_build(
    paths: list[Path] = typer.Argument(..., help="Memory files or folders (OpenAI chat JSONL, Claude Code transcripts)."),
    name: Optional[str] = typer.Option(None, help="A readable name."),
    seed: int = typer.Option(0, help="Split seed."),
    validation_fraction: float = typer.Option(0.1),
    test_fraction: float = typer.Option(0.1),
    method: str = typer.Option("sft", help="sft (conversations) or dpo (preference pairs)."),
    example_mode: str = typer.Option("conversation", help="conversation or turns (one example per assistant turn)."),
    outcome: str = typer.Option("any", help="any, successful or failed."),
    min_turns: Optional[int] = typer.Option(None),
    max_turns: Optional[int] = typer.Option(None),
    since: Optional[datetime] = typer.Option(None, help="Sessions started at or after (ISO 8601)."),
    until: Optional[datetime] = typer.Option(None, help="Sessions started at or before (ISO 8601)."),
    tool_calls: str = typer.Option("any", help="any, with or without."),
    source: Optional[list[str]] = typer.Option(None, help="Glob on source path, file name or format name; repeatable."),
    redact: bool = typer.Option(True, "--redact/--no-redact", help="Replace secrets and personal data before storing."),
    near_duplicate_threshold: Optional[float] = typer.Option(0.85, help="MinHash threshold; 0 keeps near-duplicates."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Build a dataset from memory (same as the build_dataset_from_memory tool)."""
    from model_customization.datasets.build import build_dataset
    from model_customization.datasets.filters import ConversationFilter

    try:
        filters = ConversationFilter(outcome=outcome, min_turns=min_turns, max_turns=max_turns, since=since, until=until, tool_calls=tool_calls, sources=source or None)
    except ValueError as error:
        _fail(UserError(f"Invalid filter: {error}."))
    try:
        result = build_dataset(
            _workspace(home), paths, name=name, seed=seed, validation_fraction=validation_fraction, test_fraction=test_fraction,
            method=method, example_mode=example_mode, filters=filters, redact=redact, near_duplicate_threshold=near_duplicate_threshold or None,
        )
    except UserError as error:
        _fail(error)
    payload = {
        "dataset_id": result.dataset_id,
        "counts": result.counts,
        "dropped": result.dropped,
        "problem_count": result.problem_count,
        "problems": result.problems,
        "already_existed": result.already_existed,
        "redactions": result.card.get("redactions", {}),
    }
    if as_json:
        _print_json(payload)
        return
    console.print(f"dataset [bold]{result.dataset_id}[/bold]: {result.counts}" + (" (already existed)" if result.already_existed else ""))
    if result.dropped:
        console.print(f"dropped: {result.dropped}")
    for problem in result.problems:
        console.print(f"[yellow]problem:[/yellow] {problem}")


@dataset_app.command("inspect")
def dataset_inspect(
    dataset_id: Optional[str] = typer.Argument(None, help="A stored dataset id."),
    path: Optional[Path] = typer.Option(None, "--path", help="Or a JSONL file to check as it is."),
    provider: str = typer.Option("openai", help="openai, bedrock or local."),
    model: Optional[str] = typer.Option(None, help="Model whose limits and prices apply."),
    epochs: Optional[int] = typer.Option(None),
    max_seq_length: int = typer.Option(512),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Validate a dataset or file for a provider and quote a job on it (same as the inspect_dataset tool)."""
    from model_customization.datasets.inspect import inspect_dataset

    try:
        report = inspect_dataset(
            _workspace(home), dataset_id=dataset_id, path=str(path) if path else None, provider=provider, model=model, epochs=epochs, max_seq_length=max_seq_length
        )
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(report)
    else:
        verdict = "[green]valid[/green]" if report["valid"] else "[red]invalid[/red]"
        console.print(f"{report['source']} for {report['provider']} {report['model']}: {verdict}, {report['errors']} errors, {report['warnings']} warnings")
        for finding in report["findings"]:
            console.print(f"  {finding['split']}:{finding['line']} {finding['severity']} {finding['code']}: {finding['message']}")
        for split, stats in report["token_stats"].items():
            console.print(f"  {split}: {stats['examples']} examples, {stats['total']} tokens (mean {stats['mean']}, max {stats['max']})")
        console.print(f"  quote: {json.dumps(report['quote'])}")
    if not report["valid"]:
        raise typer.Exit(1)


@dataset_app.command("list")
def dataset_list(home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """List datasets."""
    rows = _workspace(home).ledger.list_datasets()
    if as_json:
        _print_json([{"dataset_id": r["id"], "name": r["name"], "counts": r["counts"]} for r in rows])
        return
    table = Table("dataset_id", "name", "train", "validation", "test")
    for r in rows:
        table.add_row(r["id"], r["name"], *(str(r["counts"][s]) for s in ("train", "validation", "test")))
    console.print(table)


# --- jobs ------------------------------------------------------------------------------------------------------
@job_app.command("start")
def job_start(
    dataset_id: Optional[str] = typer.Argument(None, help="The dataset to train on (not needed with --resume)."),
    base_model: str = typer.Option("SmolLM2-135M-Instruct", help="Embedded model name or a Hugging Face model folder."),
    method: str = typer.Option("sft", help="sft (supervised) or dpo (preference pairs)."),
    resume: Optional[str] = typer.Option(None, help="A failed or cancelled job id: continue it from its last checkpoint."),
    continue_from: Optional[str] = typer.Option(None, help="A tuned model id whose adapter the new job starts from."),
    epochs: Optional[int] = typer.Option(None),
    learning_rate: Optional[float] = typer.Option(None),
    lr_scheduler: Optional[str] = typer.Option(None, help="linear, cosine or constant."),
    warmup_fraction: Optional[float] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    gradient_accumulation_steps: Optional[int] = typer.Option(None),
    lora_rank: Optional[int] = typer.Option(None),
    lora_alpha: Optional[float] = typer.Option(None),
    lora_dropout: Optional[float] = typer.Option(None),
    target_modules: Optional[str] = typer.Option(None, help="Comma-separated linear layer names, e.g. q_proj,v_proj."),
    max_seq_length: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    eval_interval_steps: Optional[int] = typer.Option(None),
    early_stopping_patience: Optional[int] = typer.Option(None),
    checkpoint_interval_steps: Optional[int] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    quantization: Optional[str] = typer.Option(None, help="none or 4bit (QLoRA, CUDA only)."),
    gradient_checkpointing: Optional[bool] = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing"),
    wait: bool = typer.Option(False, help="Follow the job with a progress bar until it ends."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Start a local LoRA fine-tuning job, or resume one (returns at once unless --wait)."""
    from model_customization.jobs.orchestrator import start_job

    supplied = dict(
        epochs=epochs, learning_rate=learning_rate, lr_scheduler=lr_scheduler, warmup_fraction=warmup_fraction, batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps, lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        target_modules=target_modules.split(",") if target_modules else None, max_seq_length=max_seq_length, seed=seed,
        eval_interval_steps=eval_interval_steps, early_stopping_patience=early_stopping_patience,
        checkpoint_interval_steps=checkpoint_interval_steps, device=device, quantization=quantization, gradient_checkpointing=gradient_checkpointing,
    )
    hyperparameters = {k: v for k, v in supplied.items() if v is not None}
    ws = _workspace(home)
    try:
        summary = start_job(
            ws, dataset_id, base_model=base_model, method=method, hyperparameters=hyperparameters, resume=resume, continue_from=continue_from
        )
    except UserError as error:
        _fail(error)
    if wait:
        summary = _follow_job(ws, summary["job_id"])
    _show_job(summary, as_json)
    if summary["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


@job_app.command("check")
def job_check(
    job_id: str,
    wait: bool = typer.Option(False, help="Follow until it ends."),
    loss_png: Optional[Path] = typer.Option(None, "--loss-png", help="Also write the loss curve to this PNG file."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a job's status, progress, losses and recent events."""
    from model_customization.jobs.orchestrator import check_job

    ws = _workspace(home)
    try:
        summary = _follow_job(ws, job_id) if wait else check_job(ws, job_id)
    except UserError as error:
        _fail(error)
    _show_job(summary, as_json)
    if loss_png is not None:
        from model_customization.jobs.plots import loss_curve_png

        try:
            loss_png.write_bytes(loss_curve_png(ws, job_id))
        except UserError as error:
            _fail(error)
        except OSError as error:
            _fail(UserError(f"Could not write {loss_png}: {error}. Choose a writable path for --loss-png."))
        # stderr, so --json output on stdout stays one JSON document
        err_console.print(f"loss curve written to {loss_png}")


@job_app.command("cancel")
def job_cancel(job_id: str, home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Cancel a running job (its worker process is stopped)."""
    from model_customization.jobs.orchestrator import cancel_job

    try:
        summary = cancel_job(_workspace(home), job_id)
    except UserError as error:
        _fail(error)
    _show_job(summary, as_json)


@job_app.command("list")
def job_list(status: Optional[str] = typer.Option(None), home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """List jobs, newest first."""
    from model_customization.jobs.orchestrator import list_jobs

    rows = list_jobs(_workspace(home), status)
    if as_json:
        _print_json(rows)
        return
    table = Table("job_id", "status", "base_model", "dataset_id", "step", "model_id")
    for r in rows:
        table.add_row(r["job_id"], r["status"], r["base_model"], r["dataset_id"], f"{r['step']}/{r['total_steps'] or '?'}", r["model_id"] or "")
    console.print(table)


def _show_job(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    loss = f"train loss {summary['train_loss']:.4f}" if summary["train_loss"] is not None else "no loss yet"
    if summary["validation_loss"] is not None:
        loss += f", validation loss {summary['validation_loss']:.4f}"
    console.print(f"job [bold]{summary['job_id']}[/bold] {summary['status']}: step {summary['step']}/{summary['total_steps'] or '?'}, {loss}")
    if summary["model_id"]:
        console.print(f"model: [bold green]{summary['model_id']}[/bold green]")
    if summary["error"]:
        console.print(f"[red]error:[/red] {summary['error']}")
    for event in summary["events"]:
        console.print(f"  {event['at']} {event['level']}: {event['message']}")


def _follow_job(ws, job_id: str) -> dict[str, Any]:
    from model_customization.jobs.orchestrator import wait_for_job

    with _progress() as progress:
        task = progress.add_task(f"training {job_id}", total=None, note="starting worker")

        def update(summary: dict[str, Any]) -> None:
            note = summary["events"][-1]["message"] if summary["events"] else ""
            if summary["train_loss"] is not None:
                note = f"loss {summary['train_loss']:.3f}" + (f", ETA {summary['eta_seconds']:.0f}s" if summary["eta_seconds"] else "")
            progress.update(task, completed=summary["step"], total=summary["total_steps"], note=note)

        return wait_for_job(ws, job_id, timeout=7 * 24 * 3600, poll=1.0, on_poll=update)


# --- evaluation and prompting ----------------------------------------------------------------------------------
@eval_app.command("run")
def eval_run(
    dataset_id: str,
    models: list[str] = typer.Argument(..., help="Two or more models: base name/path or tuned ft-... ids."),
    split: str = typer.Option("test"),
    max_tokens: int = typer.Option(64),
    limit: Optional[int] = typer.Option(None),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate models on a dataset's held-out split (exact match, token F1)."""
    try:
        result = _run_evaluation(_workspace(home), dataset_id, models, split=split, max_tokens=max_tokens, limit=limit)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
    else:
        _show_scores(result)


@eval_app.command("show")
def eval_show(eval_id: str, cases: int = typer.Option(5, help="Per-case outputs to show."), home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Show a stored evaluation with some per-case outputs."""
    from model_customization.evaluation.runner import get_evaluation

    try:
        report = get_evaluation(_workspace(home), eval_id, cases)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(report)
        return
    _show_scores(report)
    for case in report["per_case"]:
        console.print(f"[bold]reference:[/bold] {case['reference']}")
        for model, output in case["outputs"].items():
            console.print(f"  {model}: {output['text']!r}")


def _run_evaluation(ws, dataset_id: str, models: list[str], **options: Any) -> dict[str, Any]:
    from model_customization.evaluation.runner import evaluate

    with _progress() as progress:
        task = progress.add_task("evaluating", total=None, note="loading models")
        return evaluate(ws, dataset_id, models, progress=lambda done, total, note: progress.update(task, completed=done, total=total, note=note), **options)


def _show_scores(result: dict[str, Any]) -> None:
    table = Table("model", "exact match", "normalised exact match", "token F1", title=f"{result['id']} on {result['dataset_id']} ({result['split']}, {result['cases']} cases)")
    for model, scores in result["summary"].items():
        table.add_row(model, f"{scores['exact_match']:.3f}", f"{scores['normalized_exact_match']:.3f}", f"{scores['token_f1']:.3f}")
    console.print(table)


@model_app.command("prompt")
def model_prompt(
    model: str,
    prompt: str,
    system: Optional[str] = typer.Option(None, help="System message."),
    max_tokens: int = typer.Option(256),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    seed: int = typer.Option(0),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Prompt a base or tuned model."""
    from model_customization.providers.local.inference import generate

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    try:
        result = generate(_workspace(home), model, messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
    else:
        console.print(result["text"])


@model_app.command("export")
def model_export(
    model_id: str = typer.Argument(..., help="A tuned model id (ft-...)."),
    formats: list[str] = typer.Option(["ollama"], "--format", "-f", help="adapter, merged, gguf-adapter, gguf-merged or ollama; repeatable."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder to write (default: <home>/exports/<model_id>)."),
    gguf_type: str = typer.Option("f32", help="f32 (exact) or f16 (half the size) for GGUF files."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Export a tuned model for Ollama, llama.cpp, LM Studio or transformers (same as the export_model tool)."""
    from model_customization.providers.local.export import export_model

    ws = _workspace(home)
    try:
        if as_json:  # stdout carries the JSON alone
            result = export_model(ws, model_id, formats, output, gguf_type=gguf_type)
        else:
            with _progress() as progress:
                task = progress.add_task(f"exporting {model_id}", total=None, note="")
                result = export_model(
                    ws, model_id, formats, output, gguf_type=gguf_type,
                    progress=lambda done, total, note: progress.update(task, completed=done, total=total, note=note),
                )
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
        return
    table = Table("file", "format", "size", "purpose", title=f"{result['model_id']} -> {result['output_dir']} ({result['seconds']} s)")
    for file in result["files"]:
        size = f"{file['bytes'] / 1e6:.1f} MB" if file["bytes"] >= 100_000 else f"{file['bytes'] / 1e3:.1f} kB"
        table.add_row(file["path"], file["format"], size, file["purpose"])
    console.print(table)
    for note in result["notes"]:
        console.print(f"note: {note}")
    if result["ollama_command"]:
        console.print(f"create the Ollama model with: [bold]{result['ollama_command']}[/bold]")


# --- the demo --------------------------------------------------------------------------------------------------
@app.command()
def demo(
    home: Optional[Path] = HomeOption,
    epochs: int = typer.Option(2, help="Training epochs."),
    as_json: bool = JsonOption,
) -> None:
    """Run the whole loop on the shipped demo memory: build -> train -> evaluate base vs tuned -> prompt."""
    from model_customization.datasets.build import build_dataset
    from model_customization.demo_data import demo_memory_paths
    from model_customization.jobs.orchestrator import start_job
    from model_customization.providers.local.inference import generate
    from model_customization.providers.local.models import EMBEDDED_MODEL

    global console
    if as_json:  # keep stdout for the JSON summary alone
        console = err_console
    started = time.monotonic()
    ws = _workspace(home)
    console.print(f"[bold]1/4 build[/bold] dataset from the demo memory in {', '.join(str(p) for p in demo_memory_paths())}")
    built = build_dataset(ws, demo_memory_paths(), name="demo: ops log triage", seed=0, validation_fraction=0.1, test_fraction=0.15)
    console.print(f"     {built.dataset_id}: {built.counts}")
    console.print(f"[bold]2/4 train[/bold] a LoRA adapter on {EMBEDDED_MODEL} (CPU, float32)")
    job = start_job(ws, built.dataset_id, hyperparameters={"epochs": epochs, "batch_size": 8, "learning_rate": 1e-3})
    job = _follow_job(ws, job["job_id"])
    if job["status"] != "succeeded":
        _show_job(job, False)
        raise typer.Exit(1)
    console.print(f"     {job['model_id']}: train loss {job['train_loss']:.3f}, validation loss {job['validation_loss']:.3f}")
    console.print("[bold]3/4 evaluate[/bold] base vs tuned on the held-out test split")
    result = _run_evaluation(ws, built.dataset_id, [EMBEDDED_MODEL, job["model_id"]], max_tokens=32)
    _show_scores(result)
    console.print("[bold]4/4 prompt[/bold] both models with a new log line")
    question = [{"role": "system", "content": "You are OpsBot, the on-call triage assistant."}, {"role": "user", "content": "Triage this log line: 2026-11-22T04:01:09Z [search-indexer] ERROR shard 3 unreachable after 5 retries"}]
    answers = {m: generate(ws, m, question, max_tokens=32)["text"] for m in (EMBEDDED_MODEL, job["model_id"])}
    for model, text in answers.items():
        console.print(f"     {model}: {text!r}")
    base, tuned = (result["summary"][m] for m in (EMBEDDED_MODEL, job["model_id"]))
    elapsed = time.monotonic() - started
    console.print(
        f"[bold]done in {elapsed:.0f} s[/bold]: token F1 {base['token_f1']:.2f} -> {tuned['token_f1']:.2f}, "
        f"exact match {base['exact_match']:.2f} -> {tuned['exact_match']:.2f}. "
        f"Data home: {ws.settings.home} (serve it with: model-customization serve)"
    )
    if as_json:
        _print_json({"dataset_id": built.dataset_id, "job_id": job["job_id"], "model_id": job["model_id"], "eval_id": result["id"], "scores": result["summary"], "answers": answers, "seconds": round(elapsed, 1)})


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app()


if __name__ == "__main__":
    main()
