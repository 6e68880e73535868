"""`serve`, `doctor` and `demo`: the MCP server, the data home's health check, the whole loop on the demo memory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from model_customization.cli.common import HomeOption, command, console, text_console
from model_customization.cli.evaluation import run_evaluation, show_scores
from model_customization.cli.jobs import follow_job, show_job
from model_customization.datasets.build import build_dataset
from model_customization.demo_data import demo_memory_paths
from model_customization.jobs.integrity import doctor_report
from model_customization.jobs.orchestrator import start_job
from model_customization.providers.local.models import EMBEDDED_MODEL
from model_customization.workspace import Workspace


def register(app: typer.Typer) -> None:
    @command(app, "serve", workspace=False, takes_json=False)
    def serve(
        transport: str = typer.Option("stdio", help="stdio (for Claude Code/Desktop, Inspector) or streamable-http."),
        host: str = typer.Option(
            "127.0.0.1", help="Address (or name) for streamable-http; judged by the addresses it binds: only loopback ones serve without tokens."
        ),
        port: int = typer.Option(8000, help="Port for streamable-http."),
        allowed_host: Optional[list[str]] = typer.Option(
            None, "--allowed-host", help="Another Host header to accept over streamable-http (a reverse proxy's name, NAME or NAME:PORT); repeatable."
        ),
        home: Optional[Path] = HomeOption,
    ) -> None:
        """Run the MCP server. Over streamable-http, any address but loopback needs MODEL_CUSTOMIZATION_HTTP_TOKENS, and
        a request must arrive whole within MODEL_CUSTOMIZATION_HTTP_READ_TIMEOUT seconds (30 by default).

        `model-customization-server` (python -m model_customization.server) starts the same server faster, without the CLI."""
        from model_customization.server.__main__ import run_server  # the server's own entry point: it sets up logging and transports

        run_server(transport, host=host, port=port, allowed_hosts=allowed_host or (), home=str(home) if home else None)

    @command(app, "doctor", render=_show_doctor, failed=lambda report: not report["ok"])
    def doctor(ws: Workspace) -> dict[str, Any]:
        """Check the data home: the ledger database, every dataset's files and hash, jobs' models, evaluations' reports.
        Exit code 1 when a problem is found (it is only reported; nothing is changed)."""
        return doctor_report(ws)

    @command(app, "demo", render=lambda summary: None)  # the text was printed step by step
    def demo(ws: Workspace, epochs: int = typer.Option(2, help="Training epochs.")) -> dict[str, Any]:
        """Run the whole loop on the shipped demo memory: build -> train -> evaluate base vs tuned -> prompt."""
        from model_customization.providers.local.inference import generate  # torch: loaded only when the demo runs

        out = text_console()  # stderr with --json: stdout keeps the JSON summary alone
        started = time.monotonic()
        out.print(f"[bold]1/4 build[/bold] dataset from the demo memory in {', '.join(str(p) for p in demo_memory_paths())}")
        built = build_dataset(ws, demo_memory_paths(), name="demo: ops log triage", seed=0, validation_fraction=0.1, test_fraction=0.15)
        out.print(f"     {built.dataset_id}: {built.counts}")
        out.print(f"[bold]2/4 train[/bold] a LoRA adapter on {EMBEDDED_MODEL} (CPU, float32)")
        job = start_job(ws, built.dataset_id, hyperparameters={"epochs": epochs, "batch_size": 8, "learning_rate": 1e-3})
        job = follow_job(ws, job["job_id"])
        if job["status"] != "succeeded":
            show_job(job)
            raise typer.Exit(1)
        out.print(f"     {job['model_id']}: train loss {job['train_loss']:.3f}, validation loss {job['validation_loss']:.3f}")
        out.print("[bold]3/4 evaluate[/bold] base vs tuned on the held-out test split")
        result = run_evaluation(ws, built.dataset_id, [EMBEDDED_MODEL, job["model_id"]], max_tokens=32)
        show_scores(result)
        out.print("[bold]4/4 prompt[/bold] both models with a new log line")
        question = [{"role": "system", "content": "You are OpsBot, the on-call triage assistant."}, {"role": "user", "content": "Triage this log line: 2026-11-22T04:01:09Z [search-indexer] ERROR shard 3 unreachable after 5 retries"}]
        answers = {m: generate(ws, m, question, max_tokens=32)["text"] for m in (EMBEDDED_MODEL, job["model_id"])}
        for model, text in answers.items():
            out.print(f"     {model}: {text!r}")
        base, tuned = (result["summary"][m] for m in (EMBEDDED_MODEL, job["model_id"]))
        elapsed = time.monotonic() - started
        out.print(
            f"[bold]done in {elapsed:.0f} s[/bold]: token F1 {base['token_f1']:.2f} -> {tuned['token_f1']:.2f}, "
            f"exact match {base['exact_match']:.2f} -> {tuned['exact_match']:.2f}. "
            f"Data home: {ws.settings.home} (serve it with: model-customization serve)"
        )
        return {"dataset_id": built.dataset_id, "job_id": job["job_id"], "model_id": job["model_id"], "eval_id": result["id"], "scores": result["summary"], "answers": answers, "seconds": round(elapsed, 1)}


def _show_doctor(report: dict[str, Any]) -> None:
    for problem in report["problems"]:
        console.print(f"[red]problem:[/red] {escape(problem)}", soft_wrap=True)
    for leftover in report["leftovers"]:
        console.print(f"[yellow]leftover:[/yellow] {escape(leftover)}", soft_wrap=True)
    console.print("[green]ledger and files are consistent[/green]" if report["ok"] else f"{len(report['problems'])} problem(s) found")
