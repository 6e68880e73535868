"""The human CLI: the same domain functions the MCP tools call, with rich output and progress bars.

`model-customization demo` runs the whole loop on the shipped demo memory; `model-customization serve` starts the
MCP server (stdio by default). Every command takes --json (stdout is then exactly one JSON document; progress and
messages go to stderr). Exit codes: 0 success; 1 the operation failed or was refused as asked (message printed);
2 usage error (typer); 3 not found (an unknown id or path); 4 needs a confirmation (a cost over budget: confirm it).
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
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from model_customization.errors import UserError

app = typer.Typer(help="Turn agent memory into fine-tuned models: datasets, LoRA jobs, evaluation, prompting, MCP server.", no_args_is_help=True)
dataset_app = typer.Typer(help="Build and list datasets.", no_args_is_help=True)
job_app = typer.Typer(help="Start, check, pause, cancel and list fine-tuning jobs (local, OpenAI, Bedrock).", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models against each other.", no_args_is_help=True)
model_app = typer.Typer(help="Prompt and export models; provision throughput for tuned Bedrock models.", no_args_is_help=True)
files_app = typer.Typer(help="Training files on OpenAI: upload a dataset split, list, delete.", no_args_is_help=True)
agent_app = typer.Typer(help="Which model each agent uses: deploy behind the evaluation gate, roll back, show.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")
app.add_typer(job_app, name="job")
app.add_typer(eval_app, name="eval")
app.add_typer(model_app, name="model")
app.add_typer(files_app, name="files")
app.add_typer(agent_app, name="agent")

console = Console()
err_console = Console(stderr=True)

HomeOption = typer.Option(None, "--home", envvar="MODEL_CUSTOMIZATION_HOME", help="Data home (ledger, datasets, adapters).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _workspace(home: Optional[Path]):
    from model_customization.config import ConfigError
    from model_customization.workspace import Workspace

    try:
        return Workspace.open(home)  # applies the config file (config.py)
    except ConfigError as error:
        _fail(error)


EXIT_FAILED = 1  # the operation failed, or a user error: the message says what to change
EXIT_NOT_FOUND = 3  # an id or path that does not exist
EXIT_CONFIRM = 4  # refused until someone confirms (a paid job over budget, provisioned throughput's billing)


def _exit_code(error: Exception) -> int:
    from model_customization.errors import NotFoundError
    from model_customization.jobs.spending import ConfirmationNeeded

    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, ConfirmationNeeded):
        return EXIT_CONFIRM
    return EXIT_FAILED


def _fail(error: Exception) -> None:
    # escaped: messages quote lists and JSON ("[...]") that rich would read as markup; unwrapped so they copy whole
    err_console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
    raise typer.Exit(_exit_code(error))


def _more(next_cursor: Optional[str]) -> None:
    """The next page's cursor, on stderr (stdout holds the table) so that it never mixes with the listed rows."""
    if next_cursor:
        err_console.print(f"more: --cursor {next_cursor}", markup=False, soft_wrap=True)


def _table(*columns: str, whole: tuple[str, ...] = (), title: Optional[str] = None) -> Table:
    """A table whose `whole` columns (ids to copy) are never cut; the others fold to fit the terminal."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column in whole, overflow="fold")
    return table


def _interactive() -> bool:
    """Whether a person can answer a question on this terminal (tests patch this)."""
    return sys.stdin.isatty()


def _usd(amount: Optional[float]) -> str:
    return "unknown" if amount is None else f"${amount:,.2f}"


def _json_or_text(raw: str) -> Any:
    """A command-line value as JSON when it parses (3, 0.5, true, "x"), else the text itself (auto)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _pairs(values: Optional[list[str]], option: str, *, parse_json: bool) -> dict[str, Any]:
    """KEY=VALUE options (repeatable) as a dict; a repeated key or a missing '=' is refused."""
    pairs: dict[str, Any] = {}
    for item in values or []:
        key, separator, value = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise UserError(f"{option} takes KEY=VALUE (e.g. {option} n_epochs=3); got {item!r}.")
        if key in pairs:
            raise UserError(f"{option} {key} is given twice; give each key once.")
        pairs[key] = _json_or_text(value) if parse_json else value
    return pairs


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=err_console
    )


# --- server ----------------------------------------------------------------------------------------------------
@app.command()
def serve(
    transport: str = typer.Option("stdio", help="stdio (for Claude Code/Desktop, Inspector) or streamable-http."),
    host: str = typer.Option("127.0.0.1", help="Address for streamable-http."),
    port: int = typer.Option(8000, help="Port for streamable-http."),
    allowed_host: Optional[list[str]] = typer.Option(
        None, "--allowed-host", help="Another Host header to accept over streamable-http (a reverse proxy's name, NAME or NAME:PORT); repeatable."
    ),
    home: Optional[Path] = HomeOption,
) -> None:
    """Run the MCP server. Over streamable-http, any address but loopback needs MODEL_CUSTOMIZATION_HTTP_TOKENS.

    `model-customization-server` (python -m model_customization.server) starts the same server faster, without the CLI."""
    from model_customization.server.__main__ import run_server

    try:
        run_server(transport, host=host, port=port, allowed_hosts=allowed_host or (), home=str(home) if home else None)
    except UserError as error:
        _fail(error)


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
    source: Optional[list[str]] = typer.Option(None, "--source", "--sources", help="Glob on source path, file name or format name; repeatable."),
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


LimitOption = typer.Option(50, min=1, max=500, help="Rows per page.")
CursorOption = typer.Option(None, help="The next page: the cursor the previous page printed (next_cursor with --json).")


@dataset_app.command("list")
def dataset_list(limit: int = LimitOption, cursor: Optional[str] = CursorOption, home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """List datasets, newest first (same as the list_datasets tool)."""
    from model_customization.datasets.build import list_datasets_page

    try:
        page = list_datasets_page(_workspace(home), limit, cursor)
    except UserError as error:
        _fail(error)
    rows = [{"dataset_id": r["id"], "name": r["name"], "counts": r["counts"], "resource_uri": f"datasets://{r['id']}"} for r in page["datasets"]]
    if as_json:
        _print_json({"datasets": rows, "total": page["total"], "next_cursor": page["next_cursor"]})
        return
    table = _table("dataset_id", "name", "train", "validation", "test", whole=("dataset_id",))
    for r in rows:
        table.add_row(r["dataset_id"], escape(r["name"]), *(str(r["counts"][s]) for s in ("train", "validation", "test")))
    console.print(table)
    _more(page["next_cursor"])


@dataset_app.command("delete")
def dataset_delete(
    dataset_id: str = typer.Argument(..., help="The dataset to delete."),
    force: bool = typer.Option(False, "--force", help="Delete it even though evaluations or agent suites name it."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete a stored dataset (files and ledger entry); refused while a job trained on it (same as the delete_dataset tool)."""
    from model_customization.datasets.build import delete_dataset

    try:
        result = delete_dataset(_workspace(home), dataset_id, force)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
        return
    console.print(f"deleted {result['dataset_id']} ({result['name']}): {result['bytes_freed']:,} bytes freed", markup=False, soft_wrap=True)
    for note in result["notes"]:
        console.print(f"note: {note}", markup=False, soft_wrap=True)


@dataset_app.command("constitutional")
def dataset_constitutional(
    principle: list[str] = typer.Option(..., "--principle", help="A principle every answer should satisfy, one sentence; repeatable."),
    model: str = typer.Option(..., help="The model that answers, critiques and revises (local name, ft-... id, folder, or e.g. openai:gpt-4.1-mini)."),
    prompt: Optional[list[str]] = typer.Option(None, "--prompt", help="A user message to answer; repeatable. Give this or --from-dataset."),
    from_dataset: Optional[str] = typer.Option(None, "--from-dataset", help="Or a stored dataset: each conversation before its last assistant turn is a prompt."),
    split: str = typer.Option("train", help="Which split of --from-dataset to read."),
    limit: Optional[int] = typer.Option(None, help="Use at most this many distinct prompts (bounds the cost)."),
    name: Optional[str] = typer.Option(None, help="A readable name; the datasets are named <name>-sft and <name>-dpo."),
    max_tokens: int = typer.Option(256, help="Longest reply per model call."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    seed: int = typer.Option(0, help="Seed of sampling and of the train/validation/test split."),
    validation_fraction: float = typer.Option(0.1, min=0, max=1, help="Share of prompts held out for validation loss."),
    test_fraction: float = typer.Option(0.1, min=0, max=1, help="Share of prompts held out for evaluate (the test split)."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Make principle-driven training data: the model answers each prompt, critiques its answer against each principle
    and revises it. Stores an SFT dataset (final revisions) and a DPO one (revision preferred over the first answer).

    Each prompt costs 1 + 2 x (number of principles) model calls, billed when the model is a cloud one: try --limit first.
    """
    from model_customization.datasets.constitutional import generate_constitutional_data

    ws = _workspace(home)
    arguments = dict(
        principles=principle, model=model, prompts=prompt or None, dataset_id=from_dataset, split=split, limit=limit, name=name,
        max_tokens=max_tokens, temperature=temperature, seed=seed,
        validation_fraction=validation_fraction, test_fraction=test_fraction,
    )
    try:
        if as_json:  # stdout carries the JSON alone
            result = generate_constitutional_data(ws, **arguments)
        else:
            with _progress() as progress:
                task = progress.add_task("constitutional data", total=None, note="")
                result = generate_constitutional_data(
                    ws, **arguments, progress=lambda done, total, note: progress.update(task, completed=done, total=total, note=note)
                )
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
        return
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


# --- jobs ------------------------------------------------------------------------------------------------------
LOCAL_ONLY_OPTIONS = {
    "epochs": "--epochs", "learning_rate": "--learning-rate", "lr_scheduler": "--lr-scheduler", "warmup_fraction": "--warmup-fraction",
    "batch_size": "--batch-size", "gradient_accumulation_steps": "--gradient-accumulation-steps", "lora_rank": "--lora-rank",
    "lora_alpha": "--lora-alpha", "lora_dropout": "--lora-dropout", "target_modules": "--target-modules", "max_seq_length": "--max-seq-length",
    "eval_interval_steps": "--eval-interval-steps", "early_stopping_patience": "--early-stopping-patience",
    "checkpoint_interval_steps": "--checkpoint-interval-steps", "device": "--device", "quantization": "--quantization",
    "gradient_checkpointing": "--gradient-checkpointing",
}
CLOUD_HP_EXAMPLE = {"openai": "--hp n_epochs=3 --hp learning_rate_multiplier=0.5", "bedrock": "--hp epoch_count=2 --hp learning_rate_multiplier=0.5"}


def _apply(flags: list[str]) -> str:
    return "applies" if len(flags) == 1 else "apply"


def _job_arguments(
    provider: str, supplied: dict[str, Any], seed: Optional[int], hp: Optional[list[str]], suffix: Optional[str],
    metadata: Optional[list[str]], integration: Optional[list[str]], no_validation: bool,
) -> tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]]:
    """(hyperparameters, options) for start_job from the command line; options apply to cloud jobs only."""
    from model_customization.jobs.orchestrator import PROVIDERS

    if provider not in PROVIDERS:
        raise UserError(f"Unknown --provider {provider!r}: use local (LoRA training on this machine, free), openai or bedrock.")
    extra = _pairs(hp, "--hp", parse_json=True)
    named = {k: v for k, v in supplied.items() if v is not None}
    if provider == "local":
        if seed is not None:
            named["seed"] = seed
        both = sorted(set(named) & set(extra))
        if both:
            raise UserError(f"{', '.join(both)} given both as an option and with --hp; give each once.")
        hyperparameters = {**named, **extra}
        local_options = [flag for flag, given in (("--suffix", suffix is not None), ("--metadata", bool(metadata)), ("--integration", bool(integration)), ("--no-validation", no_validation)) if given]
        if local_options:
            raise UserError(f"{', '.join(local_options)} {_apply(local_options)} to cloud jobs (--provider openai or bedrock); a local job has no such option. Leave them out.")
        return hyperparameters or None, None
    if named:
        flags = ", ".join(LOCAL_ONLY_OPTIONS[k] for k in named)
        example = CLOUD_HP_EXAMPLE.get(provider, "--hp KEY=VALUE")
        raise UserError(f"{flags} {'sets' if len(named) == 1 else 'set'} local LoRA training; a {provider} job takes its provider's own hyperparameters with --hp, e.g. {example}.")
    options: dict[str, Any] = {}
    if suffix is not None:
        options["suffix"] = suffix
    if provider == "bedrock":
        unsupported = [flag for flag, given in (("--seed", seed is not None), ("--metadata", bool(metadata)), ("--integration", bool(integration)), ("--no-validation", no_validation)) if given]
        if unsupported:
            raise UserError(f"{', '.join(unsupported)} {_apply(unsupported)} to OpenAI jobs; a Bedrock job takes --suffix (and uses the validation split whenever it has examples). Leave them out.")
    else:
        if seed is not None:
            options["seed"] = seed
        if metadata:
            options["metadata"] = _pairs(metadata, "--metadata", parse_json=False)
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


def _start_confirmed(ws, dataset_id: Optional[str], arguments: dict[str, Any], *, may_ask: bool) -> dict[str, Any]:
    """start_job; a cost over budget is put to the person at the terminal, or refused (scripts, --yes)."""
    from model_customization.jobs.orchestrator import start_job
    from model_customization.jobs.spending import ConfirmationNeeded

    try:
        return start_job(ws, dataset_id, **arguments)
    except ConfirmationNeeded as needed:
        if not may_ask:
            how = f"--confirm-cost-usd {needed.quote_usd}" if needed.quote_usd is not None else "--confirm-cost-usd <the most you accept to pay>"
            message = f"{needed} On the command line: add {how}, or run the command in a terminal without --yes to be asked."
            raise ConfirmationNeeded(message, quote_usd=needed.quote_usd, question=needed.question) from needed
        if needed.quote_usd is None:
            # An unknown price: the person names the most they accept, which is what the job may commit.
            ceiling = typer.prompt(f"{needed.question}\nThe most you accept to pay, in USD (0 to stop)", type=float, default=0.0, err=True)
            if not ceiling or ceiling <= 0:
                raise UserError("Not started: no cost was accepted. Nothing was uploaded or spent.") from needed
            return start_job(ws, dataset_id, **{**arguments, "confirm_cost_usd": ceiling})
        if not typer.confirm(needed.question, default=False, err=True):
            raise UserError("Not started: you did not confirm the cost. Nothing was uploaded or spent.") from needed
        # elicited: approved by the person asked, and refused should the quote rise before the job is recorded
        return start_job(ws, dataset_id, **{**arguments, "elicited": True, "elicited_quote_usd": needed.quote_usd})


@job_app.command("start")
def job_start(
    dataset_id: Optional[str] = typer.Argument(None, help="The dataset to train on (not needed with --resume)."),
    provider: str = typer.Option("local", help="local (LoRA on this machine, free), openai or bedrock (paid cloud fine-tuning)."),
    base_model: Optional[str] = typer.Option(
        None, help="Default per provider: local SmolLM2-135M-Instruct (or a Hugging Face model folder), openai gpt-4.1-mini, bedrock the Claude model Bedrock offers."
    ),
    method: str = typer.Option("sft", help="sft (supervised) or dpo (preference pairs)."),
    resume: Optional[str] = typer.Option(None, help="A failed or cancelled local job, or a paused cloud job: continue it."),
    continue_from: Optional[str] = typer.Option(None, help="A tuned local model id whose adapter the new job starts from."),
    hp: Optional[list[str]] = typer.Option(
        None, "--hp", help="A hyperparameter as KEY=VALUE, repeatable; the value is read as JSON when it parses (3, 0.5), else as text (auto). "
        "The provider's own names: openai n_epochs, batch_size, learning_rate_multiplier, beta; bedrock epoch_count, batch_size, learning_rate_multiplier, "
        "early_stopping_threshold, early_stopping_patience; local the names of the options below.",
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
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
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
    ws = _workspace(home)
    try:
        hyperparameters, options = _job_arguments(provider, supplied, seed, hp, suffix, metadata, integration, no_validation)
        arguments = dict(
            provider=provider, base_model=base_model, method=method, hyperparameters=hyperparameters, resume=resume, continue_from=continue_from,
            idempotency_key=idempotency_key, options=options, dry_run=dry_run, confirm_cost_usd=confirm_cost_usd,
        )
        summary = _start_confirmed(ws, dataset_id, arguments, may_ask=not yes and _interactive())
    except UserError as error:
        _fail(error)
    if summary["status"] == "dry_run":
        _show_dry_run(summary, as_json)
        return
    if wait:
        summary = _follow_job(ws, summary["job_id"])
    _show_job(summary, as_json)
    if summary["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


def _show_dry_run(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    quote = summary["quote"] or {}
    console.print(f"dry run: {summary['provider']} {summary['method']} job on {summary['dataset_id']} with {summary['base_model']}; nothing was started or spent", markup=False)
    table = Table("quote", "value")
    for key, value in quote.items():
        if key == "estimated_cost_usd":
            value = _usd(value)
        table.add_row(key, escape(json.dumps(value) if isinstance(value, (dict, list)) else str(value)))
    console.print(table)
    console.print(f"hyperparameters: {json.dumps(summary['hyperparameters'])}", markup=False)
    if summary["provider"] != "local":
        console.print(f"estimated cost: {_usd(quote.get('estimated_cost_usd'))}; start it without --dry-run (over budget it asks, or takes --confirm-cost-usd)", markup=False)


@job_app.command("pause")
def job_pause(job_id: str, home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Pause a running OpenAI job (it keeps its progress); `job start --resume JOB_ID` continues it."""
    from model_customization.jobs.orchestrator import pause_job

    try:
        summary = pause_job(_workspace(home), job_id)
    except UserError as error:
        _fail(error)
    _show_job(summary, as_json)


@job_app.command("check")
def job_check(
    job_id: str,
    events: int = typer.Option(5, min=0, max=200, help="How many recent events to show (job events pages through all)."),
    wait: bool = typer.Option(False, help="Follow until it ends."),
    loss_png: Optional[Path] = typer.Option(None, "--loss-png", help="Also write the loss curve to this PNG file."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a job's status, progress, losses and recent events."""
    from model_customization.jobs.orchestrator import check_job

    ws = _workspace(home)
    try:
        summary = check_job(ws, _follow_job(ws, job_id)["job_id"], events) if wait else check_job(ws, job_id, events)
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
def job_list(
    status: Optional[str] = typer.Option(None, help="Only jobs in this status (validating, queued, running, paused, succeeded, failed, cancelled)."),
    limit: int = LimitOption,
    cursor: Optional[str] = CursorOption,
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List jobs, newest first (same as the list_jobs tool)."""
    from model_customization.jobs.orchestrator import list_jobs_page

    try:
        page = list_jobs_page(_workspace(home), status, limit, cursor)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(page)
        return
    table = _table("job_id", "provider", "status", "base_model", "dataset_id", "step", "model_id", whole=("job_id",))
    for r in page["jobs"]:
        table.add_row(r["job_id"], r["provider"], r["status"], escape(r["base_model"]), r["dataset_id"], f"{r['step']}/{r['total_steps'] or '?'}", escape(r["model_id"] or ""))
    console.print(table)
    _more(page["next_cursor"])


@job_app.command("events")
def job_events(
    job_id: str = typer.Argument(..., help="The job (job list shows them)."),
    limit: int = LimitOption,
    cursor: Optional[str] = CursorOption,
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Every event of a job, oldest first, one page at a time (same as the list_job_events tool)."""
    from model_customization.jobs.orchestrator import list_job_events

    try:
        page = list_job_events(_workspace(home), job_id, limit, cursor)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(page)
        return
    for event in page["events"]:
        console.print(f"{event['at']} {event['level']}: {event['message']}", markup=False, soft_wrap=True)
    _more(page["next_cursor"])


@job_app.command("remote-list")
def job_remote_list(
    provider: str = typer.Option(..., help="openai or bedrock."),
    limit: int = typer.Option(20, help="Jobs per page (openai 1-100, bedrock 1-1000)."),
    after: Optional[str] = typer.Option(None, help="The next page: the 'next' value the previous page printed."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List the fine-tuning jobs the provider holds for these credentials, including jobs started elsewhere."""
    ws = _workspace(home)
    try:
        if provider == "openai":
            from model_customization.providers.openai.training import list_remote_jobs

            page = list_remote_jobs(ws, limit=limit, after=after)
        elif provider == "bedrock":
            from model_customization.providers.bedrock.training import list_remote_jobs as list_bedrock_jobs

            page = list_bedrock_jobs(ws, limit=limit, next_token=after)
        else:
            raise UserError(f"Unknown provider {provider!r} for remote-list: use openai or bedrock (local jobs: job list).")
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(page)
        return
    if provider == "openai":
        table = _table("id", "status", "model", "fine_tuned_model", "created_at", "job_id (ours)", whole=("id",))
        for job in page["jobs"]:
            table.add_row(*(escape(str(job[k] or "")) for k in ("id", "status", "model", "fine_tuned_model", "created_at", "ledger_job_id")))
        following = page["next_after"]
    else:
        table = _table("job_name", "status", "custom_model_name", "created_at", "job_id (ours)", whole=("job_name",))
        for job in page["jobs"]:
            table.add_row(*(escape(str(job[k] or "")) for k in ("job_name", "status", "custom_model_name", "created_at", "job_id")))
        following = page["next_token"]
    console.print(table)
    if following:
        console.print(f"more: --after {following}", markup=False)


@job_app.command("remote-events")
def job_remote_events(
    job_id: str = typer.Argument(..., help="One of our job ids (job list) or OpenAI's ftjob-... id."),
    limit: int = typer.Option(20, help="Events per page, 1-100."),
    after: Optional[str] = typer.Option(None, help="The next (older) page: the 'next' value the previous page printed."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """An OpenAI job's events as OpenAI reports them, newest first."""
    from model_customization.providers.openai.training import remote_events

    try:
        page = remote_events(_workspace(home), job_id, limit=limit, after=after)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(page)
        return
    for event in page["events"]:
        console.print(f"{event['created_at']} {event['level']}: {event['message']}", markup=False)
    if page["next_after"]:
        console.print(f"more: --after {page['next_after']}", markup=False)


@job_app.command("checkpoints")
def job_checkpoints(
    job_id: str = typer.Argument(..., help="One of our job ids (job list) or OpenAI's ftjob-... id."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """The checkpoints a job has (OpenAI's, or a local job's <job_id>@step-N folders); each can be prompted (model prompt)."""
    from model_customization.providers.openai.training import remote_checkpoints

    ws = _workspace(home)
    try:
        local_job = ws.ledger.get_job(job_id)
        if local_job and local_job["provider"] == "local":
            from model_customization.providers.local.checkpoints import list_checkpoints

            found = list_checkpoints(ws, job_id)
            result = {"job_id": job_id, "checkpoints": [
                {**c, "fine_tuned_model_checkpoint": c["model"], "metrics": {k: c[k] for k in ("train_loss", "validation_loss") if c[k] is not None}}
                for c in found
            ]}  # fmt: skip
        else:
            result = remote_checkpoints(ws, job_id)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
        return
    if not result["checkpoints"]:
        console.print(f"{result['job_id']} has no checkpoints yet.", markup=False)
        return
    table = _table("step", "model (prompt it with model prompt)", "metrics", title=f"checkpoints of {escape(result['job_id'])}")
    for checkpoint in result["checkpoints"]:
        metrics = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in (checkpoint.get("metrics") or {}).items())
        table.add_row(str(checkpoint["step"]), escape(checkpoint["fine_tuned_model_checkpoint"] or ""), escape(metrics))
    console.print(table)


def _show_job(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
        return
    loss = f"train loss {summary['train_loss']:.4f}" if summary["train_loss"] is not None else "no loss yet"
    if summary["validation_loss"] is not None:
        loss += f", validation loss {summary['validation_loss']:.4f}"
    provider = summary.get("provider") or "local"
    where = "" if provider == "local" else f" ({provider})"
    console.print(f"job [bold]{summary['job_id']}[/bold]{where} {summary['status']}: step {summary['step']}/{summary['total_steps'] or '?'}, {loss}")
    if summary.get("remote_id"):
        console.print(f"{provider} job: {summary['remote_id']} ({summary.get('remote_status')})", markup=False)
    spend = summary.get("spend")
    if spend:
        billed = f", billed {_usd(spend['actual_usd'])}" if spend.get("actual_usd") is not None else ""
        console.print(f"cost: quoted {_usd(spend['quoted_usd'])}, committed {_usd(spend['committed_usd'])} (approved by {spend['approved_by']}){billed}", markup=False)
    if summary["model_id"]:
        console.print(f"model: [bold green]{escape(summary['model_id'])}[/bold green]")
    if summary["error"]:
        console.print(f"[red]error:[/red] {escape(summary['error'])}")
    for event in summary["events"]:
        console.print(f"  {event['at']} {event['level']}: {event['message']}", markup=False)


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
    arguments: list[str] = typer.Argument(
        None, help="DATASET_ID MODEL MODEL... (or only the models with --suite or --resume): base names/paths, tuned ft-... ids, cloud models, JOB_ID@step-N checkpoints."
    ),
    suite: Optional[Path] = typer.Option(None, help="Evaluate on this .jsonl/.yaml file of cases instead of a dataset."),
    split: str = typer.Option("test"),
    max_tokens: int = typer.Option(64),
    limit: Optional[int] = typer.Option(None),
    judge: Optional[str] = typer.Option(None, help="A model that rates every answer from 1 to 10 (judge_score)."),
    pairwise_judge: Optional[str] = typer.Option(None, help="A model that compares each model with the first, in both answer orders."),
    primary_metric: Optional[str] = typer.Option(None, help="The metric the verdicts are on (default token_f1 when there is one)."),
    concurrency: int = typer.Option(8, help="Cloud calls in flight at once."),
    resume: Optional[str] = typer.Option(None, help="Continue the interrupted evaluation EVAL_ID with its own settings."),
    chart: Optional[Path] = typer.Option(None, help="Also write the chart of scores with 95% intervals to this PNG file."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Evaluate models on a dataset's held-out split or a suite: scores with 95% intervals and a paired verdict."""
    arguments = list(arguments or [])
    dataset_id = None
    if suite is None and resume is None:
        if len(arguments) < 3:
            _fail(UserError("Give DATASET_ID and at least two models (or --suite FILE and two models, or --resume EVAL_ID)."))
        dataset_id, arguments = arguments[0], arguments[1:]
    ws = _workspace(home)
    try:
        result = _run_evaluation(
            ws, dataset_id, arguments or None, split=split, max_tokens=max_tokens, limit=limit, judge=judge, pairwise_judge=pairwise_judge,
            primary_metric=primary_metric, suite=str(suite) if suite else None, concurrency=concurrency, resume=resume,
        )
        if chart is not None:
            _write_chart(ws, result["id"], chart)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
    else:
        _show_scores(result)
        console.print(f"Report: evals://{result['id']}/report.md" + (f"; chart written to {chart}" if chart else ""), markup=False, soft_wrap=True)


def _write_chart(ws, eval_id: str, target: Path) -> None:
    from model_customization.evaluation.report import stored_report_chart

    target.write_bytes(stored_report_chart(Path(ws.ledger.get_evaluation(eval_id)["path"])))


@eval_app.command("show")
def eval_show(
    eval_id: str,
    cases: int = typer.Option(5, help="Per-case outputs to show."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown report (scores, intervals, verdicts, the cases where the models differ most)."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a stored evaluation with some per-case outputs."""
    from model_customization.evaluation.runner import get_evaluation

    ws = _workspace(home)
    try:
        report = get_evaluation(ws, eval_id, cases)
        if markdown and report.get("status") == "succeeded":
            from model_customization.evaluation.report import stored_report_markdown

            print(stored_report_markdown(Path(ws.ledger.get_evaluation(eval_id)["path"])))
            return
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(report)
        return
    if report.get("status") != "succeeded":
        console.print(f"{eval_id}: {report['status']}. {report.get('error') or ''} {report['pieces_stored']} pieces stored; {report['next_step']}.", markup=False, soft_wrap=True)
        return
    _show_scores(report)
    for case in report["per_case"]:
        console.print(f"[bold]case {case['case']}[/bold] reference: {escape(str(case.get('reference')))}")
        for model, output in case["outputs"].items():
            console.print(f"  {model}: {output['text']!r}", markup=False, soft_wrap=True)


@eval_app.command("list")
def eval_list(home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Every stored evaluation, newest first, with its status (interrupted ones can be resumed)."""
    rows = [
        {"eval_id": r["id"], "status": r["status"], "source": r["dataset_id"], "models": r["models"], "error": r.get("error")}
        for r in _workspace(home).ledger.list_evaluations()
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("eval", "status", "on", "models")
    for row in rows:
        table.add_row(row["eval_id"], row["status"], row["source"], ", ".join(row["models"]))
    console.print(table)


def _run_evaluation(ws, dataset_id: str | None, models: list[str] | None, **options: Any) -> dict[str, Any]:
    from model_customization.evaluation.runner import evaluate

    with _progress() as progress:
        task = progress.add_task("evaluating", total=None, note="loading models")
        return evaluate(ws, dataset_id, models, progress=lambda done, total, note: progress.update(task, completed=done, total=total, note=note), **options)


# Summary entries that are counts or measurements, not 0-1 scores, even when they happen to lie in 0..1.
NOT_SCORES = frozenset({"answer_chars", "answer_tokens", "judged_cases", "judge_errors", "prompt_tokens", "completion_tokens", "perplexity"})


def _show_scores(result: dict[str, Any]) -> None:
    """The primary metric and the other 0-1 metrics per model, then latency and cost, then the verdicts."""
    summaries = result["summary"]
    primary = result.get("primary_metric")
    metrics = [m for m in dict.fromkeys([primary, *next(iter(summaries.values())).keys()]) if m]
    shown = [m for m in metrics if all(isinstance(s.get(m), (int, float)) and 0 <= s[m] <= 1 for s in summaries.values()) and m not in NOT_SCORES and not m.startswith(("latency", "cost"))]
    where = f"{result['dataset_id']} ({result['split']})" if result.get("dataset_id") else Path(result.get("suite") or "suite").name
    shown = shown[:4]  # the primary metric and three more fit a terminal; --json and eval show --markdown have all
    table = Table("model", *shown, "latency s", "cost USD", title=f"{result['id']} on {where}, {result['cases']} cases")
    for model, scores in summaries.items():
        cost = scores.get("cost_usd")
        latency = scores.get("latency_seconds")
        table.add_row(
            model,
            *[f"{scores[m]:.3f}" for m in shown],
            f"{latency:.2f}" if latency is not None else "—",
            f"{cost:.4f}" if cost is not None else "unknown",
        )
    console.print(table)
    for comparison in result.get("comparisons") or []:  # the paired verdict an agent or a person acts on
        console.print(f"{comparison['metric']}: {comparison['verdict']}", markup=False, soft_wrap=True)
    for comparison in (result.get("pairwise") or {}).get("comparisons", []):
        console.print(f"pairwise judge: {comparison['verdict']} ({comparison['wins']} wins, {comparison['losses']} losses, {comparison['ties']} ties)", markup=False, soft_wrap=True)


@model_app.command("prompt")
def model_prompt(
    model: Optional[str] = typer.Argument(None, help="The model (leave out with --agent)."),
    prompt: Optional[str] = typer.Argument(None, help="A single user message (or give --messages)."),
    messages: Optional[str] = typer.Option(None, help='A whole conversation as JSON, e.g. \'[{"role": "user", "content": "hi"}]\', or a path to a JSON file holding it.'),
    system: Optional[str] = typer.Option(None, help="System message."),
    max_tokens: int = typer.Option(256),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    seed: int = typer.Option(0),
    agent: Optional[str] = typer.Option(None, help="Answer with the model deployed to this agent (then give only PROMPT)."),
    task: Optional[str] = typer.Option(None, help="With --agent: the task tag whose model answers."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Prompt any model: local (base, tuned ft-..., a folder) or cloud (gpt-..., ft:..., claude-..., Bedrock ids, openai:/anthropic:/bedrock: prefixes).

    Cloud models need their provider's key and bill the call (same as the prompt_model tool).
    """
    from model_customization.providers.chat import chat

    ws = _workspace(home)
    try:
        if agent is not None and prompt is None and messages is None:
            model, prompt = None, model  # `model prompt --agent NAME "question"`: the one argument is the prompt
        if agent is not None and model is not None:
            raise UserError("Give MODEL or --agent, not both: --agent uses the model deployed to it (agent show NAME).")
        if task is not None and agent is None:
            raise UserError("--task picks one of an agent's deployed models: give --agent too, or name the model instead.")
        if (prompt is None) == (messages is None):
            raise UserError("Give exactly one of PROMPT (a single user message) or --messages (a conversation as JSON).")
        if agent is None and model is None:
            raise UserError("Name the MODEL to prompt (model list shows them), or give --agent.")
        if agent is not None:
            from model_customization.deployments import deployed_model

            model = deployed_model(ws, agent, task)
        conversation = [{"role": "system", "content": system}] if system else []
        conversation += [{"role": "user", "content": prompt}] if prompt is not None else _conversation(messages or "")
        result = chat(ws, model, conversation, max_tokens=max_tokens, temperature=temperature, seed=seed)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
    else:
        console.print(result["text"], markup=False, highlight=False)
        if result.get("stop_reason") == "length":
            err_console.print(f"(cut at --max-tokens {max_tokens})", markup=False)


def _conversation(raw: str) -> list[dict[str, str]]:
    """--messages: JSON text, or a file holding it; a list of {role, content} with roles system/user/assistant."""
    text = raw
    if not raw.lstrip().startswith("["):
        try:
            text = Path(raw).read_text(encoding="utf-8")
        except OSError as error:
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


@model_app.command("list")
def model_list(limit: int = LimitOption, cursor: Optional[str] = CursorOption, home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """The embedded base model, then every tuned model newest first with its job, dataset and deployments (same as the list_models tool)."""
    from model_customization.registry import list_models_page

    try:
        page = list_models_page(_workspace(home), limit, cursor)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(page)
        return
    table = _table("model_id", "kind", "provider", "job_id", "dataset_id", "created_at", "serves", whole=("model_id",))
    for m in page["models"]:
        table.add_row(escape(m["model_id"]), m["kind"], m["provider"], m["job_id"] or "", m["dataset_id"] or "", m["created_at"] or "", escape(", ".join(m["live_deployments"])))
    console.print(table)
    _more(page["next_cursor"])


@model_app.command("lineage")
def model_lineage_command(
    model_id: str = typer.Argument(..., help="A model id (ft-..., a cloud tuned model), a base model name, or <job_id>@step-N."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Where a model comes from and where it went: memory files -> dataset -> job -> model -> evaluations, deployments."""
    from model_customization.registry import model_lineage

    try:
        lineage = model_lineage(_workspace(home), model_id)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(lineage)
        return
    model, job, dataset = lineage["model"], lineage["job"], lineage["dataset"]
    console.print(f"[bold]{escape(model['id'])}[/bold]: {model['kind']} model on {escape(str(model['provider']))}, base {escape(str(model['base_model']))}", soft_wrap=True)
    for source in lineage["sources"]:
        console.print(f"  source  {escape(str(source['path']))}  sha256 {source['sha256']}", soft_wrap=True)
    if dataset:
        console.print(f"  dataset {dataset['id']} ({escape(str(dataset['name']))}): {dataset['counts']}, content sha256 {dataset['content_sha256']}", soft_wrap=True)
    if job:
        console.print(f"  job     {job['id']} ({job['provider']}, {job['method']}, {job['status']})", soft_wrap=True)
    if lineage["evaluations"]:
        table = _table("evaluation", "on", "primary metric", "score", "verdicts", whole=("evaluation",), title="evaluations")
        for entry in lineage["evaluations"]:
            score = "" if entry["score"] is None else f"{entry['score']:.4g}"
            verdicts = "; ".join(c["verdict"] or "" for c in entry["comparisons"]) or entry.get("report", "")
            table.add_row(entry["eval_id"], escape(entry["dataset_id"] or entry["suite"] or ""), str(entry["primary_metric"] or ""), score, escape(verdicts))
        console.print(table)
    else:
        console.print("  not evaluated yet", markup=False)
    if lineage["deployments"]:
        table = _table("agent", "task", "action", "at", "live", title="deployments")
        for entry in lineage["deployments"]:
            at = datetime.fromtimestamp(entry["at"]).isoformat(timespec="seconds") if entry["at"] else ""
            table.add_row(escape(entry["agent"]), escape(entry["task"] or "(default)"), entry["action"], at, "yes" if entry["live"] else "no")
        console.print(table)
    else:
        console.print("  not deployed", markup=False)
    for note in lineage["notes"]:
        console.print(f"note: {note}", markup=False, soft_wrap=True)


@model_app.command("export")
def model_export(
    model_id: str = typer.Argument(..., help="A tuned model id (ft-...)."),
    formats: list[str] = typer.Option(["ollama"], "--format", "--formats", "-f", help="adapter, merged, gguf-adapter, gguf-merged or ollama; repeatable."),
    output: Optional[Path] = typer.Option(None, "--output", "--output-dir", "-o", help="Folder to write (default: <home>/exports/<model_id>)."),
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


@model_app.command("provision")
def model_provision(
    model_id: str = typer.Argument(..., help="A tuned Bedrock model id (from a finished bedrock job)."),
    model_units: int = typer.Option(1, help="Model units to buy (each billed by the hour)."),
    commitment: Optional[str] = typer.Option(None, help="Omit for no commitment (hourly), or OneMonth / SixMonths (billed for the whole term)."),
    name: Optional[str] = typer.Option(None, help="The provisioned model's name (default: pt-<model id>)."),
    yes: bool = typer.Option(False, "--yes", "--confirm", "-y", help="Accept the hourly billing without being asked."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Buy provisioned throughput for a tuned Bedrock model (the only way to run one). Billed hourly until `model release`."""
    from model_customization.jobs.spending import ConfirmationNeeded
    from model_customization.providers.bedrock.training import provision_throughput

    ws = _workspace(home)
    try:
        try:
            result = provision_throughput(ws, model_id, model_units=model_units, commitment=commitment, name=name, confirm=yes)
        except ConfirmationNeeded as refused:
            # Only the billing question is put to the person; any other refusal simply fails, which never buys anything.
            if yes:
                raise
            if not _interactive():
                raise ConfirmationNeeded(f"{refused} On the command line: add --yes.", quote_usd=refused.quote_usd, question=refused.question) from refused
            err_console.print(str(refused).replace("call provision_throughput again with confirm=true", "answer below"), markup=False, soft_wrap=True)
            if not typer.confirm(f"Buy {model_units} model unit(s) of provisioned throughput for {model_id} now?", default=False, err=True):
                raise UserError("Not provisioned: you did not confirm the hourly billing. Nothing was bought.") from refused
            result = provision_throughput(ws, model_id, model_units=model_units, commitment=commitment, name=name, confirm=True)
    except UserError as error:
        _fail(error)
    _show_fields(result, as_json)


@model_app.command("throughput")
def model_throughput(model_id: str, home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Show a tuned Bedrock model's provisioned throughput (status InService means it can be prompted)."""
    from model_customization.providers.bedrock.training import throughput_status

    try:
        result = throughput_status(_workspace(home), model_id)
    except UserError as error:
        _fail(error)
    _show_fields(result, as_json)


@model_app.command("release")
def model_release(model_id: str, home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Delete a tuned Bedrock model's provisioned throughput: its hourly billing stops."""
    from model_customization.providers.bedrock.training import release_throughput

    try:
        result = release_throughput(_workspace(home), model_id)
    except UserError as error:
        _fail(error)
    _show_fields(result, as_json)


# --- agents -----------------------------------------------------------------------------------------------------
@agent_app.command("deploy")
def agent_deploy(
    agent: str,
    model: str,
    task: Optional[str] = typer.Option(None, help="Deploy for this task tag only (default: the agent's default model)."),
    eval_id: Optional[str] = typer.Option(None, help="The evaluation that justifies it (default: the newest one holding both models)."),
    force: bool = typer.Option(False, help="Skip the gate (recorded with --reason)."),
    reason: Optional[str] = typer.Option(None, help="Why the gate is skipped (needed with --force)."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Assign MODEL to AGENT; replacing a model needs an evaluation showing the new one is not significantly worse."""
    from model_customization.deployments import deploy_model

    try:
        result = deploy_model(_workspace(home), agent, model, task, eval_id=eval_id, force=force, reason=reason)
    except UserError as error:
        _fail(error)
    _show_fields(result, as_json)


# `model deploy AGENT MODEL` is the deploy_model tool's name for the same command; `agent deploy` stays as it was.
model_app.command("deploy", help="Assign MODEL to AGENT behind the evaluation gate (same as the deploy_model tool and agent deploy).")(agent_deploy)


@agent_app.command("suite")
def agent_suite_command(
    agent: str,
    suite: Optional[Path] = typer.Option(None, help="A .jsonl/.yaml suite file of the agent's cases."),
    dataset_id: Optional[str] = typer.Option(None, "--dataset", "--dataset-id", help="Or a dataset whose split holds the agent's cases."),
    split: str = typer.Option("test"),
    task: Optional[str] = typer.Option(None, help="Only for this task tag."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Name the cases AGENT is judged on: deploying a new model then needs an evaluation of exactly these cases."""
    from model_customization.deployments import set_agent_suite

    try:
        result = set_agent_suite(_workspace(home), agent, task, suite=str(suite) if suite else None, dataset_id=dataset_id, split=split)
    except UserError as error:
        _fail(error)
    _show_fields(result, as_json)


@agent_app.command("rollback")
def agent_rollback(agent: str, task: Optional[str] = typer.Option(None), home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Go back to the model AGENT used before the last deployment (for TASK, or its default)."""
    from model_customization.deployments import rollback

    try:
        result = rollback(_workspace(home), agent, task)
    except UserError as error:
        _fail(error)
    _show_fields(result, as_json)


@agent_app.command("show")
def agent_show(agent: str, home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """The models AGENT uses per task, the evaluations behind them and the history (JSON, as agents://{name}; --json is the same)."""
    from model_customization.deployments import agent_assignments

    try:
        result = agent_assignments(_workspace(home), agent)
    except UserError as error:
        _fail(error)
    _print_json(result)


def _show_fields(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(result)
        return
    for key, value in result.items():
        if value is not None:
            console.print(f"{key}: {value}", markup=False, soft_wrap=True)  # ARNs stay on one line to copy


# --- OpenAI files ----------------------------------------------------------------------------------------------
@files_app.command("upload")
def files_upload(
    dataset_id: str,
    split: str = typer.Option("train", help="train, validation or test."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Upload a dataset split to OpenAI for fine-tuning, rendered as OpenAI chat JSONL (the same content is sent once)."""
    from model_customization.providers.openai.files import upload_dataset_file

    try:
        result = upload_dataset_file(_workspace(home), dataset_id, split)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
        return
    how = {"uploaded": "uploaded", "reused": "already uploaded from this data home", "found": "already on OpenAI (found in its file list)"}.get(result["how"], result["how"])
    console.print(f"{result['file_id']}: {result['split']} split of {result['dataset_id']}, {result['examples']} examples, {result['bytes']:,} bytes ({how})", markup=False, soft_wrap=True)


@files_app.command("list")
def files_list(
    limit: int = typer.Option(20, help="Files per page, 1-100."),
    after: Optional[str] = typer.Option(None, help="The next page: the 'next' value the previous page printed."),
    home: Optional[Path] = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List the fine-tune files on OpenAI for this key, newest first."""
    from model_customization.providers.openai.files import list_files

    try:
        page = list_files(_workspace(home), limit=limit, after=after)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(page)
        return
    table = _table("id", "filename", "bytes", "created_at", "status", "from this data home", whole=("id",))
    for file in page["files"]:
        table.add_row(escape(file["id"]), escape(file["filename"] or ""), f"{file['bytes']:,}", file["created_at"] or "", str(file["status"] or ""), "yes" if file["uploaded_from_this_data_home"] else "")
    console.print(table)
    if page["next_after"]:
        console.print(f"more: --after {page['next_after']}", markup=False)


@files_app.command("delete")
def files_delete(file_id: str, home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Delete a file on OpenAI (a later upload of the same content sends it again)."""
    from model_customization.providers.openai.files import delete_file

    try:
        result = delete_file(_workspace(home), file_id)
    except UserError as error:
        _fail(error)
    if as_json:
        _print_json(result)
    else:
        console.print(f"{result['id']}: {'deleted' if result['deleted'] else 'not deleted'}", markup=False)


# --- the demo --------------------------------------------------------------------------------------------------
@app.command()
def doctor(home: Optional[Path] = HomeOption, as_json: bool = JsonOption) -> None:
    """Check the data home: the ledger database, every dataset's files and hash, jobs' models, evaluations' reports.
    Exit code 1 when a problem is found (it is only reported; nothing is changed)."""
    from model_customization.jobs.integrity import doctor_report

    report = doctor_report(_workspace(home))
    if as_json:
        _print_json(report)
    else:
        for problem in report["problems"]:
            console.print(f"[red]problem:[/red] {escape(problem)}", soft_wrap=True)
        for leftover in report["leftovers"]:
            console.print(f"[yellow]leftover:[/yellow] {escape(leftover)}", soft_wrap=True)
        console.print("[green]ledger and files are consistent[/green]" if report["ok"] else f"{len(report['problems'])} problem(s) found")
    if not report["ok"]:
        raise typer.Exit(1)


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
