"""The one interface every provider implements, local included, and the ledger helpers the cloud ones share.

A provider is one small class (in the manner of simonw/llm's models): it declares what it can do (`capabilities`,
training `methods`, whether it is `paid` and whether it `runs_locally`), its hyperparameter model, the words the
tool schemas and prompts use for it, which model names it claims for chat, and it implements what it declares.
providers/registry.py finds the classes by name (built-ins and the `model_customization.providers` entry-point
group); nothing outside a provider's own package asks which provider it is talking to, only what it can do.

The class is imported when the server registers its tools, so it must stay light: SDKs and the provider's job
machinery (providers/<name>/training.py) are imported inside the methods that use them.

Order of calls for a new cloud job (jobs/orchestrator.py), and what each may do:
  check_available   no spending, no upload: refuse early (missing key, closed organisation, retired base model)
  parse_hyperparameters / quote
                    pure, or read-only calls
  find_existing     a job already created under this idempotency key (a retried start_job after a lost reply)
  submit            uploads and creates the remote job; returns its id and details
  refresh           brings status, metrics, events and the tuned model into the ledger
  cancel / pause / resume
A provider that `runs_locally` is trained by the orchestrator's own queue of worker processes instead of submit.
"""

from __future__ import annotations

import importlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from model_customization.errors import UserError
from model_customization.workspace import Workspace

if TYPE_CHECKING:
    from model_customization.datasets.validate import Finding

# Our status words. A provider status outside its STATUS_MAP is stored verbatim as the job's status (never a crash).
OUR_STATUSES = ("validating", "queued", "running", "paused", "succeeded", "failed", "cancelled")
# What a provider may declare it can do; a third-party provider may add words of its own.
CAPABILITIES = ("train", "chat", "files", "pause", "checkpoints", "export", "provision")


def idempotency_key(dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> str:
    """The default key: the same dataset, model, method and hyperparameters mean the same job."""
    canonical = json.dumps([dataset_id, base_model, method, hyperparameters], sort_keys=True, separators=(",", ":"))
    return "mc-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass
class DatasetMeasure:
    """What a provider found in a dataset's rows for inspect_dataset: findings, counts per split, the tokens of each
    usable example per split, and extra report fields (the tokenizer used, truncation ...)."""

    findings: list[Finding]
    counts: dict[str, int]
    tokens: dict[str, list[int]]
    extra: dict[str, Any] = field(default_factory=dict)


class Provider:
    """One provider. Subclasses set the class attributes and override what their capabilities promise; the rest
    refuses with a UserError naming the provider, so a missing capability is an answer, never a crash."""

    name: ClassVar[str]
    title: ClassVar[str]  # how people write it: "OpenAI"
    capabilities: ClassVar[frozenset[str]] = frozenset()
    methods: ClassVar[tuple[str, ...]] = ()  # training methods, e.g. ("sft", "dpo")
    paid: ClassVar[bool] = True
    # Runs in this process or on this machine: trained by the local worker queue, prompted one model at a time by
    # the evaluation, able to score reference likelihoods; its models are folders on this disk.
    runs_locally: ClassVar[bool] = False
    # Names no provider claims are this provider's (the local one: a folder, the embedded model, an ft-… id).
    answers_unclaimed_names: ClassVar[bool] = False
    hyperparameters_model: ClassVar[type[BaseModel] | None] = None
    # The start_job options (tools/jobs.py CloudOptions fields) a job of this provider takes; others are refused.
    job_options: ClassVar[frozenset[str]] = frozenset()
    job_options_note: ClassVar[str] = ""  # how it treats what job_options leaves out, e.g. " (and uses the validation split ...)"
    hyperparameters_example: ClassVar[str] = ""  # the CLI's --hp form, e.g. "--hp n_epochs=3 --hp learning_rate_multiplier=0.5"
    chat_module: ClassVar[str] = ""  # the module whose chat() answers prompts, when the provider chats remotely
    # Its chat() takes `tools` (OpenAI function tools) and shows them to the model natively (an API's `tools`, a chat
    # template); when False, the chat router describes the tools in the system message instead.
    chat_tools: ClassVar[bool] = False
    sdk_packages: ClassVar[tuple[str, ...]] = ()  # what `pip install` adds when chat finds them missing
    STATUS_MAP: ClassVar[dict[str, str]] = {}  # the provider's status word -> ours
    # Texts the start_job schema, the prompts and docs/reference.md use.
    training_summary: ClassVar[str] = ""  # "OpenAI fine-tuning (paid)"
    base_model_help: ClassVar[str] = ""  # "e.g. 'gpt-4.1-mini' (default)"
    default_inspect_model: ClassVar[str | None] = None  # the model inspect_dataset measures for when none is given

    # --- what it is --------------------------------------------------------------------------------------------------
    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def describe(self) -> dict[str, Any]:
        """The declaration, as the reference and the tools show it."""
        return {
            "name": self.name,
            "title": self.title,
            "capabilities": sorted(self.capabilities),
            "methods": list(self.methods),
            "paid": self.paid,
            "runs_locally": self.runs_locally,
            "training": self.training_summary or None,
        }

    def _unsupported(self, what: str) -> UserError:
        return UserError(f"The {self.title} provider ({self.name}) cannot {what}.")

    # --- training: before any spending -------------------------------------------------------------------------------
    def check_available(self, ws: Workspace, base_model: str | None, method: str) -> str:
        """Raise UserError (saying what to do) when a job cannot be created; return the canonical base model.

        Must not upload or create anything. base_model None means the provider's default (or discovered) base.
        """
        raise self._unsupported("train models")

    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        """Validate and normalise; UserError naming the bad field and its allowed range."""
        raise self._unsupported("train models")

    def means_default_base(self, base_model: str) -> bool:
        """True for a name that only repeats the default base (a resumed job then keeps its own base)."""
        return False

    def check_training(self, ws: Workspace, base_model: str, hyperparameters: dict[str, Any], continue_from: str | None) -> None:
        """Checks of the job as a whole once the base and hyperparameters are known (the default has none)."""

    def quote(self, ws: Workspace, dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """What the job will cost: a dict with at least estimated_cost_usd (float, or None when the price is unknown)."""
        raise self._unsupported("quote a training job")

    # --- training: the remote job --------------------------------------------------------------------------------------
    def find_existing(self, ws: Workspace, key: str) -> dict[str, Any] | None:
        """A remote job created with this idempotency key, as submit's return value, or None."""
        return None

    def submit(self, ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
        """Upload what is needed and create the remote job; returns {"remote_id", "remote_status", "details"}.

        `job` is the ledger row (id, dataset_id, base_model, method, hyperparameters, idempotency_key, details with
        the caller's provider options such as suffix, seed, metadata). Events may be added with ws.store.jobs.add_event.
        """
        raise self._unsupported("train models")

    def refresh(self, ws: Workspace, job: dict[str, Any]) -> None:
        """Poll the provider and write status, progress, metrics, events and, on success, the tuned model."""

    def cancel(self, ws: Workspace, job: dict[str, Any]) -> None:
        """Ask the provider to stop the job; the caller refreshes afterwards."""
        raise self._unsupported("cancel jobs")

    def pause(self, ws: Workspace, job: dict[str, Any]) -> None:
        raise UserError(f"{self.name} jobs cannot be paused; cancel_job stops one.")

    def resume(self, ws: Workspace, job: dict[str, Any]) -> None:
        raise UserError(f"{self.name} jobs cannot be resumed after a pause.")

    def list_remote_jobs(self, ws: Workspace, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        """The jobs the provider holds for these credentials, including ones started elsewhere, newest first:
        {"jobs": [...], "next_after": cursor or None, ...}."""
        raise self._unsupported("list jobs of its own (its jobs are in list_jobs; on the command line, job list)")

    def claims_remote_job(self, job_id: str) -> bool:
        """Whether a job id not in our ledger is one of this provider's own (OpenAI's "ftjob-..."), for the commands
        that also take the provider's ids."""
        return False

    def job_checkpoints(self, ws: Workspace, job_id: str) -> dict[str, Any]:
        """{"job_id", "checkpoints": [{step, fine_tuned_model_checkpoint (a model to prompt), metrics, ...}]}."""
        raise self._unsupported("keep checkpoints")

    # --- inspect_dataset: its own rules for a stored dataset or a file ---------------------------------------------------
    def check_inspect_model(self, model: str) -> None:
        """Refuse a model that cannot be measured for, before any row is read (the default accepts any)."""

    def measure_dataset(self, ws: Workspace, rows: Iterator[tuple[str, int, Any]], *, model: str, max_seq_length: int) -> DatasetMeasure:
        """Validate (split, line, row) triples in the provider's format and count each usable example's tokens."""
        raise self._unsupported("validate training data")

    def quote_tokens(self, ws: Workspace, model: str, train_tokens: list[int], *, epochs: int | None, max_seq_length: int) -> dict[str, Any]:
        """inspect_dataset's quote from the training split's token counts."""
        raise self._unsupported("quote a training job")

    def render_example(self, example: dict[str, Any]) -> dict[str, Any]:
        """One stored example in the provider's training format."""
        raise self._unsupported("render training examples")

    # --- chat --------------------------------------------------------------------------------------------------------
    def claims_model(self, name: str) -> bool:
        """True when a bare model name (no "provider:" prefix, not in the registry) is this provider's."""
        return False

    def check_chat_model(self, ws: Workspace, name: str) -> str:
        """Refuse, before anything is generated or paid for, a model that certainly cannot answer; returns the
        name to use (canonical for local models). The default checks nothing."""
        return name

    def model_notice(self, model: str) -> str | None:
        """A warning about a model the user relies on (e.g. the date its provider shuts it down), for check_job,
        list_models and prompt_model to show; None when there is nothing to say (the default)."""
        return None

    def evaluation_key(self, ws: Workspace, typed: str, name: str) -> str:
        """How evaluations and deployments name the model: as typed for cloud models."""
        return typed.strip()

    def chat(
        self, ws: Workspace, model: str, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float, seed: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """One answer: {model, text, prompt_tokens, completion_tokens, seconds, stop_reason, tool_calls?}; cloud calls
        cost money. `tools` come only to a provider that declares chat_tools.

        The default hands the call to `chat_module`'s chat(), imported here so that its SDK loads on the first prompt."""
        if not self.chat_module:
            raise UserError(f"Prompting {self.name} models is not available in this installation (the {self.title} provider cannot chat).")
        answering = importlib.import_module(self.chat_module)
        return answering.chat(ws, model, messages, max_tokens=max_tokens, temperature=temperature, seed=seed, **({"tools": tools} if tools else {}))


class HostedTrainingProvider(Provider):
    """A provider whose jobs run at a cloud service: the job calls go to its job machinery (`jobs_class`, "module:Class"),
    which is imported on the first job call, so the SDK it needs never loads at server start-up."""

    jobs_class: ClassVar[str] = ""

    def _jobs(self) -> Any:
        module_name, _, class_name = self.jobs_class.partition(":")
        return getattr(importlib.import_module(module_name), class_name)()

    def check_available(self, ws: Workspace, base_model: str | None, method: str) -> str:
        return self._jobs().check_available(ws, base_model, method)

    def quote(self, ws: Workspace, dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        return self._jobs().quote(ws, dataset_id, base_model, method, hyperparameters)

    def find_existing(self, ws: Workspace, key: str) -> dict[str, Any] | None:
        return self._jobs().find_existing(ws, key)

    def submit(self, ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
        return self._jobs().submit(ws, job)

    def refresh(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().refresh(ws, job)

    def cancel(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().cancel(ws, job)


# --- helpers every provider uses to write into the ledger --------------------------------------------------------
def apply_remote_status(ws: Workspace, job: dict[str, Any], provider: Any, remote_status: str, *, error: str | None = None, **values: Any) -> str:
    """Record the provider's status (verbatim) and ours; a terminal status is written once. Returns our status."""
    from model_customization.store.status import TERMINAL_STATUSES  # SQLAlchemy: not at server start-up

    ours = provider.STATUS_MAP.get(remote_status, remote_status)
    if remote_status not in provider.STATUS_MAP and remote_status != job.get("remote_status"):
        ws.store.jobs.add_event(job["id"], f"{provider.name} reported status {remote_status!r}, which this version does not know; kept as is", "warning")
    if ours in TERMINAL_STATUSES:
        if ws.store.jobs.finish(job["id"], ours, remote_status=remote_status, error=error, **values):
            ws.store.jobs.add_event(job["id"], f"{provider.name} job {ours}" + (f": {error}" if error else ""), "error" if ours == "failed" else "info")
    elif job["status"] not in TERMINAL_STATUSES:
        if ours != job["status"]:
            ws.store.jobs.add_event(job["id"], f"status {ours} ({provider.name}: {remote_status})")
        started = {"started_at": time.time()} if ours == "running" and not job.get("started_at") else {}
        ws.store.jobs.update(job["id"], status=ours, remote_status=remote_status, error=error, **started, **values)
    return ours


def register_tuned_model(ws: Workspace, job: dict[str, Any], provider: str, model_id: str, details: dict[str, Any] | None = None) -> None:
    """Put a provider's tuned model in the registry with its lineage (job, dataset, base), once."""
    if not ws.store.models.get(model_id):
        ws.store.models.add(
            {
                "id": model_id,
                "provider": provider,
                "kind": "tuned",
                "base_model": job["base_model"],
                "path": None,
                "job_id": job["id"],
                "dataset_id": job["dataset_id"],
                "details": details,
            }
        )
    ws.store.jobs.update(job["id"], model_id=model_id)


def merge_details(ws: Workspace, job_id: str, **values: Any) -> dict[str, Any]:
    """Update some keys of a job's provider details (sync cursors, file ids) and return the whole."""
    current = dict((ws.store.jobs.get(job_id) or {}).get("details") or {})
    current.update(values)
    ws.store.jobs.update(job_id, details=current)
    return current


def record_metrics(ws: Workspace, job_id: str, rows: list[dict[str, Any]]) -> int:
    """Add metric rows (step, epoch, train_loss, validation_loss) for steps not recorded yet; returns how many."""
    seen = {m["step"] for m in ws.store.jobs.metrics(job_id)}
    added = 0
    for row in sorted(rows, key=lambda r: r["step"]):
        if row["step"] in seen:
            continue
        seen.add(row["step"])
        ws.store.jobs.add_metric(
            job_id,
            step=int(row["step"]),
            epoch=float(row.get("epoch") or 0.0),
            train_loss=row.get("train_loss"),
            validation_loss=row.get("validation_loss"),
            learning_rate=row.get("learning_rate"),
        )
        added += 1
    if rows:
        last = max(rows, key=lambda r: r["step"])
        progress = {"step": int(last["step"])}
        if last.get("train_loss") is not None:
            progress["train_loss"] = last["train_loss"]
        if last.get("validation_loss") is not None:
            progress["validation_loss"] = last["validation_loss"]
        if last.get("epoch") is not None:
            progress["epoch"] = float(last["epoch"])
        ws.store.jobs.update(job_id, **progress)
    return added
