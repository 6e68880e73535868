"""Input model of start_job, the one operation whose argument types come from the provider registry.

`StartJobRequest` declares every argument once. Two of its fields depend on which providers are installed: `provider`
(the training providers' names) and `hyperparameters` (the union of their hyperparameter models). `start_job_request()`
returns the subclass with those two typed from the registry, for the MCP tool's schema; the CLI and the domain use
`StartJobRequest` itself, where `hyperparameters` is the plain dict each provider then validates with its own rules
(and its own messages).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from model_customization.deferred_model import DeferredModel
from model_customization.operations.bounds import BoundedRequest
from model_customization.providers.registry import fingerprint, providers


class CloudOptions(BoundedRequest):
    """Options of a cloud job (ignored by none: a local job refuses them)."""

    model_config = ConfigDict(extra="forbid")
    suffix: str | None = Field(None, max_length=64, description="OpenAI: up to 64 characters added to the tuned model's name.")
    seed: int | None = Field(None, ge=0, description="OpenAI: the job's seed, for repeatable runs.")
    metadata: dict[str, str] | None = Field(None, description="OpenAI: up to 16 key/value labels stored with the job (mc_ keys are ours).")
    integrations: list[dict[str, Any]] | None = Field(None, description='OpenAI: e.g. [{"type": "wandb", "wandb": {"project": "my-project"}}].')
    use_validation: bool = Field(True, description="Upload the dataset's validation split for validation loss (when it has examples).")


class StartJobRequest(BoundedRequest):
    dataset_id: Annotated[str | None, Field(description="From build_dataset_from_memory or list_datasets. Not needed with resume.")] = None
    provider: Annotated[str, Field(description="A training provider's name (the provider registry lists them).")] = "local"
    base_model: Annotated[str | None, Field(description="The model to tune; a default per provider when omitted.")] = None
    method: Annotated[
        Literal["sft", "dpo", "kto", "grpo"],
        Field(
            description="'sft': supervised, loss on the assistant turns; 'dpo': preference pairs (a dataset built with method='dpo'); "
            "'kto': sessions labelled desirable or undesirable (a dataset built with method='kto'); "
            "'grpo': reinforcement learning whose reward is a suite's checks (give suite or agent)."
        ),
    ] = "sft"
    hyperparameters: Annotated[dict[str, Any] | None, Field(description="The provider's own hyperparameters; omit for sensible defaults.")] = None
    suite: Annotated[
        str | None,
        Field(description="method='grpo': a .jsonl or .yaml suite file (as evaluate takes it) whose cases are the prompts and whose checks are the reward; a share is held out for evaluate."),
    ] = None
    agent: Annotated[str | None, Field(description="method='grpo': instead of suite, the agent whose suite (set_agent_suite) gives the prompts and reward.")] = None
    resume: Annotated[str | None, Field(description="A failed or cancelled local job_id (continues from its last checkpoint), or a paused cloud job.")] = None
    continue_from: Annotated[
        str | None, Field(description="A tuned local model_id (ft-...) whose adapter this job starts from (same base, rank and target modules).")
    ] = None
    options: Annotated[CloudOptions | None, Field(description="Cloud jobs: suffix, seed, metadata, integrations, validation split.")] = None
    idempotency_key: Annotated[
        str | None,
        Field(max_length=64, description="Cloud jobs: a retried start_job with the same key returns the job already created. Default: a hash of dataset, model, method and hyperparameters."),
    ] = None
    dry_run: Annotated[bool, Field(description="Validate and quote only: nothing is uploaded, started or spent.")] = False
    confirm_cost_usd: Annotated[
        float | None,
        Field(ge=0, description="Paid jobs over budget: the cost you (the user) accept, at least the quote. Clients with elicitation are asked instead."),
    ] = None

    def domain_arguments(self) -> dict[str, Any]:
        """The keyword arguments of jobs.orchestrator.start_job (after the dataset id): hyperparameters as the caller
        set them (a provider's defaults stay its own), options without the unset ones."""
        hyperparameters = self.hyperparameters
        if isinstance(hyperparameters, BaseModel):  # typed by start_job_request(): the provider's own model
            hyperparameters = hyperparameters.model_dump(exclude_unset=True)
        return {
            "provider": self.provider,
            "base_model": self.base_model,
            "method": self.method,
            "hyperparameters": hyperparameters,
            "resume": self.resume,
            "continue_from": self.continue_from,
            "idempotency_key": self.idempotency_key,
            "options": self.options.model_dump(exclude_none=True) if self.options else None,
            "dry_run": self.dry_run,
            "confirm_cost_usd": self.confirm_cost_usd,
            "suite": self.suite,
            "agent": self.agent,
        }


_typed: dict[str, type[StartJobRequest]] = {}


def start_job_request() -> type[StartJobRequest]:
    """StartJobRequest with `provider` a choice of the training providers (described one by one, the default the
    first that trains free on this machine), `base_model` described per provider and `hyperparameters` the union of
    their models: built from the registry when the tools are registered, once per set of installed providers."""
    key = fingerprint()
    if key not in _typed:
        trainers = providers("train")
        names = tuple(p.name for p in trainers)
        described = " ".join(f"'{p.name}': {_sentence_case(p.training_summary)}." for p in trainers)
        models = tuple(dict.fromkeys(p.hyperparameters_model for p in trainers if p.hyperparameters_model is not None))
        hyperparameters = Union[models] if len(models) > 1 else (models[0] if models else dict[str, Any])  # noqa: UP007 - built from a tuple
        default = next((p.name for p in trainers if p.runs_locally and not p.paid), names[0])
        base_help = " ".join(f"{p.name}: {p.base_model_help}." for p in trainers if p.base_model_help)
        hyperparameters_help = StartJobRequest.model_fields["hyperparameters"].description
        _typed[key] = create_model(
            "StartJobRequest",
            __base__=StartJobRequest,
            provider=(Annotated[Literal[names], Field(description=described)], default),
            base_model=(Annotated[str | None, Field(description=base_help)], None),
            hyperparameters=(Annotated[hyperparameters | None, Field(description=hyperparameters_help)], None),
        )
    return _typed[key]


def _sentence_case(summary: str) -> str:
    """"LoRA training on this machine, free" -> "LoRA training on this machine (free)": the schema's wording."""
    head, comma, tail = summary.rpartition(", ")
    return f"{head} ({tail})" if comma else summary



JobId = Annotated[str, Field(description="A job_id from start_job or list_jobs.")]
JobStatusWord = Literal["validating", "queued", "running", "paused", "succeeded", "failed", "cancelled"]


class PauseJobRequest(BoundedRequest):
    job_id: JobId


class CancelJobRequest(BoundedRequest):
    job_id: JobId


class ListJobsRequest(BoundedRequest):
    status: Annotated[JobStatusWord | None, Field(description="Only jobs in this status.")] = None
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many jobs, newest first.")] = 50
    cursor: Annotated[str | None, Field(description="The next_cursor of the previous page; omit for the first page.")] = None


class ListJobEventsRequest(BoundedRequest):
    job_id: Annotated[str, Field(description="The job (list_jobs shows them).")]
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many events, oldest first.")] = 50
    cursor: Annotated[str | None, Field(description="The next_cursor of the previous page; omit to start from the job's first event.")] = None


# --- what the job operations return: one shape each, built by the orchestrator and published by the tools ----------
class JobEvent(DeferredModel):
    at: str | None
    level: str
    message: str


class JobStatus(DeferredModel):
    job_id: str | None = Field(description="None only for a dry run, which starts nothing.")
    status: str = Field(
        description="validating, queued, running, paused, succeeded, failed or cancelled; dry_run for a dry run. "
        "A cloud status this version does not know is shown verbatim (remote_status always is)."
    )
    provider: str
    base_model: str
    dataset_id: str
    method: str
    step: int
    total_steps: int | None
    epoch: float | None
    train_loss: float | None
    validation_loss: float | None
    eta_seconds: float | None = Field(description="Estimated seconds left while running.")
    error: str | None
    model_id: str | None = Field(description="The tuned model's id once the job succeeded: pass it to prompt_model or evaluate.")
    created_at: str | None
    finished_at: str | None
    hyperparameters: dict[str, Any]
    queue_position: int | None = Field(None, description="While queued: 1 = next to start.")
    remote_id: str | None = Field(None, description="The cloud provider's own job id.")
    remote_status: str | None = Field(None, description="The cloud provider's status word, verbatim.")
    quote: dict[str, Any] | None = Field(None, description="Cloud jobs and dry runs: tokens, epochs, estimated_cost_usd and where the prices come from.")
    spend: dict[str, Any] | None = Field(None, description="Cloud jobs: quoted, committed and (once known) actual USD, and how the cost was approved.")
    checkpoints: list[dict[str, Any]] | None = Field(None, description="OpenAI: the job's checkpoints (step, metrics, model name).")
    events: list[JobEvent] = Field(description="The latest events, oldest first.")
    resource_uri: str | None
    notice: str | None = Field(None, description="A warning from the provider about the job's base or tuned model, e.g. the date it shuts down.")
    rewards: dict[str, float | None] | None = Field(
        None, description="GRPO jobs: the latest step's mean reward of the sampled answers (0-1), their spread (reward_std) and the KL to the reference; with validation cases, the latest and best validation_reward (greedy answers; the best step's adapter is kept)."
    )


class JobSummary(DeferredModel):
    job_id: str
    status: str
    provider: str
    base_model: str
    dataset_id: str
    step: int
    total_steps: int | None
    model_id: str | None
    created_at: str | None


class JobList(DeferredModel):
    jobs: list[JobSummary]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page; null on the last page.")


class JobEventPage(DeferredModel):
    job_id: str
    events: list[JobEvent] = Field(description="Oldest first.")
    next_cursor: str | None = Field(description="Pass as cursor for the next (newer) events; null when there are no more yet.")
