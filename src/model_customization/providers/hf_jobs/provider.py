"""The hf-jobs provider: this package's own LoRA trainer (providers/local/train.py) run on Hugging Face Jobs hardware,
billed by the minute. For a user who outgrows one machine without changing anything else: the same stored dataset,
the same hyperparameters, checkpoints and resume, and the adapter comes back as a tuned local model.

A light class: the job life cycle is training.HfJobsJobs, imported on first use (it brings in huggingface_hub, the
`hf-jobs` extra).
"""

from __future__ import annotations

from typing import Any

from model_customization.providers.base import HostedTrainingProvider
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
    methods = ("sft", "dpo")
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

        return parse_hf_jobs_hyperparameters(raw).model_dump()

    def means_default_base(self, base_model: str) -> bool:
        from model_customization.providers.local.models import is_embedded

        return is_embedded(base_model)

    def pause(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().pause(ws, job)

    def resume(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().resume(ws, job)

    def job_checkpoints(self, ws: Workspace, job_id: str) -> dict[str, Any]:
        """The checkpoints brought back from the repository: each a local model named <job_id>@step-N."""
        from model_customization.providers.local.provider import LocalProvider

        return LocalProvider().job_checkpoints(ws, job_id)
