"""The hf-jobs provider: this package's own LoRA trainer (providers/local/train.py) run on Hugging Face Jobs hardware,
billed by the minute. For a user who outgrows one machine without changing anything else: the same stored dataset,
the same hyperparameters, checkpoints and resume, and the adapter comes back as a tuned local model.

A light class: the job life cycle is training.HfJobsJobs, imported on first use (it brings in huggingface_hub, the
`hf-jobs` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from model_customization.providers.base import DatasetMeasure, HostedTrainingProvider
from model_customization.providers.hf_jobs.hyperparameters import HfJobsHyperparameters
from model_customization.providers.local.models import EMBEDDED_MODEL
from model_customization.workspace import Workspace


class HfJobsProvider(HostedTrainingProvider):
    jobs_class = "model_customization.providers.hf_jobs.training:HfJobsJobs"
    name = "hf-jobs"
    title = "Hugging Face Jobs"
    # "pause" stops the remote job and keeps its checkpoints in the repository; resume starts a new remote job from
    # the newest one. Its tuned models are local adapters (prompted and exported by the local provider).
    capabilities = frozenset({"train", "pause", "checkpoints"})
    methods = ("sft", "dpo", "kto", "grpo")  # the remote worker is ours: KTO and GRPO run there as they do here
    paid = True
    hyperparameters_model = HfJobsHyperparameters
    job_options_note = " (its hyperparameters say where it runs: flavor and repository; the validation split always gives validation loss)"
    hyperparameters_example = "--hp flavor=a10g-small --hp repository=me/training-runs --hp epochs=3"
    sdk_packages = ("huggingface_hub",)
    # Hugging Face's JobStage values. COMPLETED is mapped only once the adapter is here (training.py); any other
    # stage is kept verbatim.
    STATUS_MAP = {
        "SCHEDULING": "queued",
        "RUNNING": "running",
        "COMPLETED": "succeeded",
        "ERROR": "failed",
        "CANCELED": "cancelled",
        "DELETED": "failed",
    }
    training_summary = "this package's LoRA trainer on Hugging Face Jobs hardware, paid by the minute"
    base_model_help = f"'{EMBEDDED_MODEL}' (default) or a Hugging Face model folder (shipped to the job)"
    default_inspect_model = EMBEDDED_MODEL

    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        from model_customization.providers.hf_jobs.hyperparameters import parse_hf_jobs_hyperparameters
        from model_customization.providers.local.hyperparameters import for_method

        return parse_hf_jobs_hyperparameters(for_method(method, raw)).model_dump()

    def means_default_base(self, base_model: str) -> bool:
        from model_customization.providers.local.models import is_embedded

        return is_embedded(base_model)

    def pause(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().pause(ws, job)

    def resume(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().resume(ws, job)

    def job_checkpoints(self, ws: Workspace, job_id: str) -> dict[str, Any]:
        """The checkpoints the job saved to its repository (brought back here as adapter weights and position, in
        the job's checkpoint folder), by step."""
        from model_customization.errors import NotFoundError

        job = ws.store.jobs.get(job_id)
        if job is None or job["provider"] != self.name:
            raise NotFoundError(f"No hf-jobs job {job_id!r}; list_jobs lists the jobs.")
        details = job.get("details") or {}
        repository = details.get("repository")
        return {"job_id": job_id, "checkpoints": [
            {**c, "repository": repository, "metrics": {}} for c in sorted(details.get("checkpoints") or [], key=lambda c: c["step"])
        ]}  # fmt: skip

    # --- inspect_dataset: the local trainer's rules (it is the same trainer), priced at the default flavour ------------
    def measure_dataset(self, ws: Workspace, rows: Iterator[tuple[str, int, Any]], *, model: str, max_seq_length: int) -> DatasetMeasure:
        from model_customization.providers.local.provider import LocalProvider

        return LocalProvider().measure_dataset(ws, rows, model=model, max_seq_length=max_seq_length)

    def quote_tokens(self, ws: Workspace, model: str, train_tokens: list[int], *, epochs: int | None, max_seq_length: int) -> dict[str, Any]:
        """The local quote (tokens, and seconds at the local speed measured here) with what the default flavour would
        cost by the dated table; start_job's dry run quotes the flavour a job names, at the Hub's current price."""
        import math

        from model_customization.providers.hf_jobs import flavours
        from model_customization.providers.local.provider import LocalProvider

        local = LocalProvider().quote_tokens(ws, model, train_tokens, epochs=epochs, max_seq_length=max_seq_length)
        flavour = flavours.FLAVOURS[flavours.DEFAULT_FLAVOR]
        minutes = math.ceil(flavours.SETUP_MINUTES + local["estimated_seconds"] / flavour.speed_factor / 60.0)
        per_minute = (flavour.usd_per_hour or 0.0) / 60.0
        return {
            **local,
            "provider": self.name,
            "flavor": flavour.name,
            "estimated_minutes": minutes,
            "estimated_seconds": minutes * 60.0,
            "usd_per_minute": round(per_minute, 6),
            "estimated_cost_usd": round(minutes * per_minute, 4),
            "prices_source": f"table read on {flavours.PRICES_READ_ON} from {flavours.PRICES_SOURCE}",
            "assumption": f"{flavour.name} trains {flavour.speed_factor:g}x the local speed, plus {flavours.SETUP_MINUTES:g} minutes of setup; billed per minute",
        }
