"""`job ...`: start (on any training provider), pause, check, cancel, list, events, and the providers' own job lists.

What a provider can do (run here, take a job option, list its remote jobs, keep checkpoints) is asked of the
provider registry; nothing here names a provider."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from model_customization.cli import common
from model_customization.cli.common import Output, command, console, err_console, more, pairs, table, usd
from model_customization.errors import NotFoundError, UserError
from model_customization.jobs import orchestrator
from model_customization.operations.jobs import CancelJobRequest, ListJobEventsRequest, ListJobsRequest, PauseJobRequest, StartJobRequest
from model_customization.providers.registry import describe_choices, find_provider, get_provider, is_paid, provider_names, providers, runs_locally
from model_customization.workspace import Workspace

job_app = typer.Typer(help="Start, check, pause, cancel and list fine-tuning jobs (local, OpenAI, Bedrock).", no_args_is_help=True)

LOCAL_ONLY_OPTIONS = {
    "epochs": "--epochs", "learning_rate": "--learning-rate", "lr_scheduler": "--lr-scheduler", "warmup_fraction": "--warmup-fraction",
    "batch_size": "--batch-size", "gradient_accumulation_steps": "--gradient-accumulation-steps", "lora_rank": "--lora-rank",
    "lora_alpha": "--lora-alpha", "lora_dropout": "--lora-dropout", "target_modules": "--target-modules", "max_seq_length": "--max-seq-length",
    "eval_interval_steps": "--eval-interval-steps", "early_stopping_patience": "--early-stopping-patience",
    "checkpoint_interval_steps": "--checkpoint-interval-steps", "device": "--device", "quantization": "--quantization",
    "gradient_checkpointing": "--gradient-checkpointing",
}
# The command-line form of each cloud job option (CloudOptions' field names, which providers list in job_options).
JOB_OPTION_FLAGS = {"suffix": "--suffix", "seed": "--seed", "metadata": "--metadata", "integrations": "--integration", "use_validation": "--no-validation"}


def _apply(flags: list[str]) -> str:
    return "applies" if len(flags) == 1 else "apply"


def _job_arguments(
    provider: str, supplied: dict[str, Any], seed: Optional[int], hp: Optional[list[str]], suffix: Optional[str],
    metadata: Optional[list[str]], integration: Optional[list[str]], no_validation: bool,
) -> tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    """(hyperparameters, options) for start_job from the command line; options apply to cloud jobs only."""
    trainer = find_provider(provider)
    if trainer is None or not trainer.can("train"):
        raise UserError(f"Unknown --provider {provider!r}: use {describe_choices('train')}.")
    extra = pairs(hp, "--hp", parse_json=True)
    named = {k: v for k, v in supplied.items() if v is not None}
    if trainer.runs_locally:
        if seed is not None:
            named["seed"] = seed
        both = sorted(set(named) & set(extra))
        if both:
            raise UserError(f"{', '.join(both)} given both as an option and with --hp; give each once.")
        hyperparameters = {**named, **extra}
        local_options = [flag for flag, given in (("--suffix", suffix is not None), ("--metadata", bool(metadata)), ("--integration", bool(integration)), ("--no-validation", no_validation)) if given]
        if local_options:
            cloud = " or ".join(p.name for p in providers("train") if not p.runs_locally)
            raise UserError(f"{', '.join(local_options)} {_apply(local_options)} to cloud jobs (--provider {cloud}); a local job has no such option. Leave them out.")
        return hyperparameters or None, None
    # A cloud provider whose hyperparameters include the local trainer's (it runs that trainer remotely) takes the
    # same flags; any other takes its own with --hp.
    takes_named = set(getattr(trainer.hyperparameters_model, "model_fields", None) or ())
    if named and set(named) <= takes_named:
        both = sorted(set(named) & set(extra))
        if both:
            raise UserError(f"{', '.join(both)} given both as an option and with --hp; give each once.")
        extra, named = {**named, **extra}, {}
    if named:
        flags = ", ".join(LOCAL_ONLY_OPTIONS[k] for k in named)
        example = trainer.hyperparameters_example or "--hp KEY=VALUE"
        raise UserError(f"{flags} {'sets' if len(named) == 1 else 'set'} local LoRA training; a {provider} job takes its provider's own hyperparameters with --hp, e.g. {example}.")
    given = {"suffix": suffix is not None, "seed": seed is not None, "metadata": bool(metadata), "integrations": bool(integration), "use_validation": no_validation}
    unsupported = [JOB_OPTION_FLAGS[option] for option, present in given.items() if present and option not in trainer.job_options]
    if unsupported:
        refused = {option for option, present in given.items() if present and option not in trainer.job_options}
        takers = " or ".join(p.title for p in providers("train") if refused & p.job_options) or "other providers'"
        takes = ", ".join(JOB_OPTION_FLAGS[o] for o in JOB_OPTION_FLAGS if o in trainer.job_options) or "none of them"
        raise UserError(
            f"{', '.join(unsupported)} {_apply(unsupported)} to {takers} jobs; a {trainer.title} job takes {takes}"
            f"{trainer.job_options_note}. Leave them out."
        )
    options: dict[str, Any] = {}
    if suffix is not None:
        options["suffix"] = suffix
    if seed is not None:
        options["seed"] = seed
    if metadata:
        options["metadata"] = pairs(metadata, "--metadata", parse_json=False)
    integrations = []
    for raw in integration or []:
        try:
            integrations.append(json.loads(raw))
        except ValueError:
            raise UserError(f"--integration takes one JSON object, e.g. '{{\"type\": \"wandb\", \"wandb\": {{\"project\": \"my-project\"}}}}'; got {raw!r}.") from None
    if integrations:
        options["integrations"] = integrations
    if no_validation:
        options["use_validation"] = False
    return extra or None, options or None


def _start_confirmed(ws: Workspace, dataset_id: Optional[str], arguments: dict[str, Any], *, may_ask: bool) -> dict[str, Any]:
    """start_job; a cost over budget is put to the person at the terminal, or refused (scripts, --yes)."""
    return common.with_terminal_consent(
        lambda human_usd: orchestrator.start_job(ws, dataset_id, **arguments, **({"human_usd": human_usd, "human_via": "terminal"} if human_usd is not None else {})),
        may_ask=may_ask,
        refused="Not started",
    )


def show_job(summary: dict[str, Any]) -> None:
    loss = f"train loss {summary['train_loss']:.4f}" if summary["train_loss"] is not None else "no loss yet"
    if summary["validation_loss"] is not None:
        loss += f", validation loss {summary['validation_loss']:.4f}"
    provider = summary.get("provider")
    where = "" if runs_locally(provider) else f" ({provider})"
    console.print(f"job [bold]{summary['job_id']}[/bold]{where} {summary['status']}: step {summary['step']}/{summary['total_steps'] or '?'}, {loss}")
    if summary.get("remote_id"):
        console.print(f"{provider} job: {summary['remote_id']} ({summary.get('remote_status')})", markup=False)
    spend = summary.get("spend")
    if spend:
        billed = f", billed {usd(spend['actual_usd'])}" if spend.get("actual_usd") is not None else ""
        console.print(f"cost: quoted {usd(spend['quoted_usd'])}, committed {usd(spend['committed_usd'])} (approved by {spend['approved_by']}){billed}", markup=False)
    if summary["model_id"]:
        console.print(f"model: [bold green]{escape(summary['model_id'])}[/bold green]")
    if summary["error"]:
        console.print(f"[red]error:[/red] {escape(summary['error'])}")
    for event in summary["events"]:
        console.print(f"  {event['at']} {event['level']}: {event['message']}", markup=False)


def _show_dry_run(summary: dict[str, Any]) -> None:
    quote = summary["quote"] or {}
    console.print(f"dry run: {summary['provider']} {summary['method']} job on {summary['dataset_id']} with {summary['base_model']}; nothing was started or spent", markup=False)
    shown = Table("quote", "value")
    for key, value in quote.items():
        if key == "estimated_cost_usd":
            value = usd(value)
        shown.add_row(key, escape(json.dumps(value) if isinstance(value, (dict, list)) else str(value)))
    console.print(shown)
    console.print(f"hyperparameters: {json.dumps(summary['hyperparameters'])}", markup=False)
    if is_paid(summary["provider"]):
        console.print(f"estimated cost: {usd(quote.get('estimated_cost_usd'))}; start it without --dry-run (over budget it asks, or takes --confirm-cost-usd)", markup=False)


def _show_started(summary: dict[str, Any]) -> None:
    (_show_dry_run if summary["status"] == "dry_run" else show_job)(summary)


def follow_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    with common.progress() as progress:
        task = progress.add_task(f"training {job_id}", total=None, note="starting worker")

        def update(summary: dict[str, Any]) -> None:
            note = summary["events"][-1]["message"] if summary["events"] else ""
            if summary["train_loss"] is not None:
                note = f"loss {summary['train_loss']:.3f}" + (f", ETA {summary['eta_seconds']:.0f}s" if summary["eta_seconds"] else "")
            progress.update(task, completed=summary["step"], total=summary["total_steps"], note=note)

        return orchestrator.wait_for_job(ws, job_id, timeout=7 * 24 * 3600, poll=1.0, on_poll=update)


def _ended_badly(summary: dict[str, Any]) -> bool:
    return summary["status"] in ("failed", "cancelled")


@command(job_app, "start", builds=StartJobRequest, render=_show_started, failed=_ended_badly)
def job_start(
    ws: Workspace,
    dataset_id: Optional[str] = typer.Argument(None, help="The dataset to train on (not needed with --resume)."),
    provider: str = typer.Option("local", help=f"One of {describe_choices('train')}."),
    base_model: Optional[str] = typer.Option(None, help="Default per provider: " + "; ".join(f"{p.name} {p.base_model_help}" for p in providers("train")) + "."),
    method: str = typer.Option("sft", help="sft (supervised), dpo (preference pairs) or grpo (rewards from a suite: --suite or --agent)."),
    suite: Optional[str] = typer.Option(None, help="grpo: a .jsonl or .yaml suite file whose cases are the prompts and whose checks are the reward."),
    agent: Optional[str] = typer.Option(None, help="grpo: the agent whose suite (agent suite) gives the prompts and reward."),
    resume: Optional[str] = typer.Option(None, help="A failed or cancelled local job, or a paused cloud job: continue it."),
    continue_from: Optional[str] = typer.Option(None, help="A tuned local model id whose adapter the new job starts from."),
    hp: Optional[list[str]] = typer.Option(
        None, "--hp", help="A hyperparameter as KEY=VALUE, repeatable; the value is read as JSON when it parses (3, 0.5), else as text (auto). "
        "The provider's own names: " + "; ".join(f"{p.name} {', '.join(p.hyperparameters_model.model_fields)}" for p in providers("train") if not p.runs_locally)
        + "; local jobs the names of the options below.",
    ),
    epochs: Optional[int] = typer.Option(None, help="Local jobs."),
    learning_rate: Optional[float] = typer.Option(None, help="Local jobs."),
    lr_scheduler: Optional[str] = typer.Option(None, help="Local jobs: linear, cosine or constant."),
    warmup_fraction: Optional[float] = typer.Option(None, help="Local jobs."),
    batch_size: Optional[int] = typer.Option(None, help="Local jobs (cloud: --hp batch_size=N)."),
    gradient_accumulation_steps: Optional[int] = typer.Option(None, help="Local jobs."),
    lora_rank: Optional[int] = typer.Option(None, help="Local jobs."),
    lora_alpha: Optional[float] = typer.Option(None, help="Local jobs."),
    lora_dropout: Optional[float] = typer.Option(None, help="Local jobs."),
    target_modules: Optional[str] = typer.Option(None, help="Local jobs: comma-separated linear layer names, e.g. q_proj,v_proj."),
    max_seq_length: Optional[int] = typer.Option(None, help="Local jobs."),
    seed: Optional[int] = typer.Option(None, help="Training seed: a local job's seed, or OpenAI's seed option (0-2147483647). Bedrock takes none."),
    eval_interval_steps: Optional[int] = typer.Option(None, help="Local jobs."),
    early_stopping_patience: Optional[int] = typer.Option(None, help="Local jobs."),
    checkpoint_interval_steps: Optional[int] = typer.Option(None, help="Local jobs."),
    device: Optional[str] = typer.Option(None, help="Local jobs: auto, cpu or cuda."),
    quantization: Optional[str] = typer.Option(None, help="Local jobs: none or 4bit (QLoRA, CUDA only)."),
    gradient_checkpointing: Optional[bool] = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Local jobs."),
    suffix: Optional[str] = typer.Option(None, help="Cloud jobs: up to 64 characters added to the tuned model's name."),
    metadata: Optional[list[str]] = typer.Option(None, "--metadata", help="OpenAI jobs: KEY=VALUE stored with the job, repeatable."),
    integration: Optional[list[str]] = typer.Option(
        None, "--integration", help='OpenAI jobs: one integration as JSON, repeatable, e.g. \'{"type": "wandb", "wandb": {"project": "my-project"}}\'.'
    ),
    no_validation: bool = typer.Option(False, "--no-validation", help="OpenAI jobs: do not upload the validation split."),
    idempotency_key: Optional[str] = typer.Option(
        None, help="Cloud jobs: starting again with the same key returns the job already created (default: a hash of dataset, model, method, hyperparameters)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the quote; nothing is uploaded, started or spent."),
    confirm_cost_usd: Optional[float] = typer.Option(
        None, help="Cloud jobs over budget: the cost you accept, at least the quote (see --dry-run). Without it you are asked on a terminal."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Never ask (for scripts). A paid job's cost is not assumed: over budget it is refused unless --confirm-cost-usd covers the quote."
    ),
    wait: bool = typer.Option(False, help="Follow the job with a progress bar until it ends."),
) -> dict[str, Any]:
    """Start a fine-tuning job: local LoRA (free) or OpenAI / Bedrock (paid), or resume one. Returns at once unless --wait.

    A paid job starts only within the budgets (MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD / _PER_DAY_USD, 0 by default)
    or with the cost confirmed: asked on a terminal, or given with --confirm-cost-usd.
    """
    supplied = dict(
        epochs=epochs, learning_rate=learning_rate, lr_scheduler=lr_scheduler, warmup_fraction=warmup_fraction, batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps, lora_rank=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
        target_modules=target_modules.split(",") if target_modules else None, max_seq_length=max_seq_length,
        eval_interval_steps=eval_interval_steps, early_stopping_patience=early_stopping_patience,
        checkpoint_interval_steps=checkpoint_interval_steps, device=device, quantization=quantization, gradient_checkpointing=gradient_checkpointing,
    )
    hyperparameters, options = _job_arguments(provider, supplied, seed, hp, suffix, metadata, integration, no_validation)
    # The flags above are the command line's form of start_job's one input model, which checks them as the tool does.
    given = dict(
        dataset_id=dataset_id, provider=provider, base_model=base_model, method=method, hyperparameters=hyperparameters, resume=resume,
        continue_from=continue_from, idempotency_key=idempotency_key, options=options, dry_run=dry_run, confirm_cost_usd=confirm_cost_usd,
        suite=suite, agent=agent,
    )
    try:
        request = StartJobRequest.model_validate(given)
    except ValidationError as error:
        problems = [f"--{str(issue['loc'][0]).replace('_', '-') if issue['loc'] else 'arguments'}: {issue['msg']}" for issue in error.errors()]
        raise typer.BadParameter("; ".join(problems)) from None  # a usage error: exit code 2, as for every command made from a model
    summary = _start_confirmed(ws, request.dataset_id, request.domain_arguments(), may_ask=not yes and common.interactive())
    if summary["status"] != "dry_run" and wait:
        summary = follow_job(ws, summary["job_id"])
    return summary


@command(job_app, "pause", request=PauseJobRequest, positional=("job_id",), render=show_job)
def job_pause(ws: Workspace, request: PauseJobRequest) -> dict[str, Any]:
    """Pause a running OpenAI job (it keeps its progress); `job start --resume JOB_ID` continues it."""
    return orchestrator.pause_job(ws, request.job_id)


@command(job_app, "check", render=show_job)
def job_check(
    ws: Workspace,
    job_id: str,
    events: int = typer.Option(5, min=0, max=200, help="How many recent events to show (job events pages through all)."),
    wait: bool = typer.Option(False, help="Follow until it ends."),
    loss_png: Optional[Path] = typer.Option(None, "--loss-png", help="Also write the loss curve to this PNG file."),
) -> dict[str, Any]:
    """Show a job's status, progress, losses and recent events."""
    summary = orchestrator.check_job(ws, follow_job(ws, job_id)["job_id"], events) if wait else orchestrator.check_job(ws, job_id, events)
    if loss_png is None:
        return summary

    def write_curve() -> None:
        from model_customization.jobs.plots import loss_curve_png  # matplotlib: loaded only when a curve is asked for

        try:
            loss_png.write_bytes(loss_curve_png(ws, job_id))
        except OSError as error:
            raise UserError(f"Could not write {loss_png}: {error}. Choose a writable path for --loss-png.") from None
        # stderr, so --json output on stdout stays one JSON document
        err_console.print(f"loss curve written to {loss_png}")

    return Output(summary, lambda: show_job(summary), then=write_curve)


@command(job_app, "cancel", request=CancelJobRequest, positional=("job_id",), render=show_job)
def job_cancel(ws: Workspace, request: CancelJobRequest) -> dict[str, Any]:
    """Cancel a running job (its worker process is stopped)."""
    return orchestrator.cancel_job(ws, request.job_id)


def _show_jobs(page: dict[str, Any]) -> None:
    shown = table("job_id", "provider", "status", "base_model", "dataset_id", "step", "model_id", whole=("job_id",))
    for r in page["jobs"]:
        shown.add_row(r["job_id"], r["provider"], r["status"], escape(r["base_model"]), r["dataset_id"], f"{r['step']}/{r['total_steps'] or '?'}", escape(r["model_id"] or ""))
    console.print(shown)
    more(page["next_cursor"])


@command(job_app, "list", request=ListJobsRequest, render=_show_jobs)
def job_list(ws: Workspace, request: ListJobsRequest) -> dict[str, Any]:
    """List jobs, newest first (same as the list_jobs tool)."""
    return orchestrator.list_jobs_page(ws, request.status, request.limit, request.cursor)


def _show_events(page: dict[str, Any]) -> None:
    for event in page["events"]:
        console.print(f"{event['at']} {event['level']}: {event['message']}", markup=False, soft_wrap=True)
    more(page["next_cursor"])


@command(job_app, "events", request=ListJobEventsRequest, positional=("job_id",), render=_show_events)
def job_events(ws: Workspace, request: ListJobEventsRequest) -> dict[str, Any]:
    """Every event of a job, oldest first, one page at a time (same as the list_job_events tool)."""
    return orchestrator.list_job_events(ws, request.job_id, request.limit, request.cursor)


@command(job_app, "remote-list")
def job_remote_list(
    ws: Workspace,
    provider: str = typer.Option(..., help=f"A provider with jobs of its own: {' or '.join(provider_names('remote_jobs'))}."),
    limit: int = typer.Option(20, help="Jobs per page (openai 1-100, bedrock 1-1000)."),
    after: Optional[str] = typer.Option(None, help="The next page: the 'next' value the previous page printed."),
) -> Output:
    """List the fine-tuning jobs the provider holds for these credentials, including jobs started elsewhere."""
    page = get_provider(provider).list_remote_jobs(ws, limit=limit, after=after)

    def show() -> None:
        columns = list(page["jobs"][0]) if page["jobs"] else ["jobs"]
        shown = table(*columns, whole=(columns[0],))
        for job in page["jobs"]:
            shown.add_row(*(escape(str(job[k] or "")) for k in columns))
        console.print(shown)
        following = page.get("next_after") or page.get("next_token")
        if following:
            console.print(f"more: --after {following}", markup=False)

    return Output(page, show)


def _show_remote_events(page: dict[str, Any]) -> None:
    for event in page["events"]:
        console.print(f"{event['created_at']} {event['level']}: {event['message']}", markup=False)
    if page["next_after"]:
        console.print(f"more: --after {page['next_after']}", markup=False)


@command(job_app, "remote-events", render=_show_remote_events)
def job_remote_events(
    ws: Workspace,
    job_id: str = typer.Argument(..., help="One of our job ids (job list) or OpenAI's ftjob-... id."),
    limit: int = typer.Option(20, help="Events per page, 1-100."),
    after: Optional[str] = typer.Option(None, help="The next (older) page: the 'next' value the previous page printed."),
) -> dict[str, Any]:
    """An OpenAI job's events as OpenAI reports them, newest first."""
    from model_customization.providers.openai.training import remote_events

    return remote_events(ws, job_id, limit=limit, after=after)


def _show_checkpoints(result: dict[str, Any]) -> None:
    if not result["checkpoints"]:
        console.print(f"{result['job_id']} has no checkpoints yet.", markup=False)
        return
    shown = table("step", "model (prompt it with model prompt)", "metrics", title=f"checkpoints of {escape(result['job_id'])}")
    for checkpoint in result["checkpoints"]:
        metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in (checkpoint.get("metrics") or {}).items())
        shown.add_row(str(checkpoint["step"]), escape(checkpoint["fine_tuned_model_checkpoint"] or ""), escape(metrics))
    console.print(shown)


@command(job_app, "checkpoints", render=_show_checkpoints)
def job_checkpoints(
    ws: Workspace,
    job_id: str = typer.Argument(..., help="One of our job ids (job list) or OpenAI's ftjob-... id."),
) -> dict[str, Any]:
    """The checkpoints a job has (OpenAI's, or a local job's <job_id>@step-N folders); each can be prompted (model prompt)."""
    ours = ws.store.jobs.get(job_id)
    if ours:
        return get_provider(ours["provider"], "checkpoints").job_checkpoints(ws, job_id)
    keeper = next((p for p in providers("checkpoints") if p.claims_remote_job(job_id)), None)
    if keeper is None:
        raise NotFoundError(f"No job {job_id!r}: give one of ours (job list) or a provider's own job id (job remote-list).")
    return keeper.job_checkpoints(ws, job_id)
