"""The OpenAI provider: fine-tuning (sft, dpo) through the fine-tuning API, training files, pause and resume,
checkpoints, and chat completions for prompts and judges. Paid; needs OPENAI_API_KEY.

A light class: the job life cycle is training.OpenAIJobs and chat is chat.py, both imported on first use (they
bring in the `openai` SDK and the dataset machinery, which a starting server need not load).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from model_customization.providers.base import DatasetMeasure, HostedTrainingProvider
from model_customization.providers.openai.hyperparameters import OpenAIHyperparameters
from model_customization.workspace import Workspace

DEFAULT_BASE_MODEL = "gpt-4.1-mini"
_OPENAI_NAME = re.compile(r"^(?:gpt-|chatgpt-|o[134](?:$|-))")


class OpenAIProvider(HostedTrainingProvider):
    jobs_class = "model_customization.providers.openai.training:OpenAIJobs"
    name = "openai"
    title = "OpenAI"
    capabilities = frozenset({"train", "chat", "files", "pause", "checkpoints", "remote_jobs"})
    methods = ("sft", "dpo")
    paid = True
    hyperparameters_model = OpenAIHyperparameters
    job_options = frozenset({"suffix", "seed", "metadata", "integrations", "use_validation"})
    hyperparameters_example = "--hp n_epochs=3 --hp learning_rate_multiplier=0.5"
    chat_module = "model_customization.providers.openai.chat"
    sdk_packages = ("openai",)
    STATUS_MAP = {
        "validating_files": "validating",
        "queued": "queued",
        "running": "running",
        "succeeded": "succeeded",
        "failed": "failed",
        "cancelled": "cancelled",
        "paused": "paused",
    }
    training_summary = "OpenAI fine-tuning, paid"
    base_model_help = f"e.g. '{DEFAULT_BASE_MODEL}' (default)"
    default_inspect_model = DEFAULT_BASE_MODEL

    # --- training: the job calls go to the job machinery in training.py (HostedTrainingProvider) ------------------------
    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        from model_customization.providers.openai.hyperparameters import parse_openai_hyperparameters

        return parse_openai_hyperparameters(method, raw)

    def pause(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().pause(ws, job)

    def resume(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().resume(ws, job)

    def list_remote_jobs(self, ws: Workspace, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        from model_customization.providers.openai.training import list_remote_jobs

        return list_remote_jobs(ws, limit=limit, after=after)

    def claims_remote_job(self, job_id: str) -> bool:
        return job_id.startswith("ftjob-")

    def job_checkpoints(self, ws: Workspace, job_id: str) -> dict[str, Any]:
        from model_customization.providers.openai.training import remote_checkpoints

        return remote_checkpoints(ws, job_id)

    # --- inspect_dataset: OpenAI's chat format, exact token counts, the per-example limit ------------------------------
    def check_inspect_model(self, model: str) -> None:
        from model_customization.datasets.quote import openai_terms

        openai_terms(model)  # an unknown model is refused before anything is read

    def measure_dataset(self, ws: Workspace, rows: Iterator[tuple[str, int, Any]], *, model: str, max_seq_length: int) -> DatasetMeasure:
        from model_customization.datasets.quote import openai_terms
        from model_customization.datasets.tokens import encoding_name_for, measure_chat_rows
        from model_customization.datasets.validate import Finding

        terms = openai_terms(model)
        encoding = encoding_name_for(terms.snapshot)

        def too_long(split: str, line: int, row: Any, n: int) -> list[Finding]:
            if n > terms.example_token_limit:
                return [Finding(split, line, "error", "example_too_long", f"{n} tokens; {terms.snapshot} takes at most {terms.example_token_limit} per example")]
            return []

        findings, counts, tokens = measure_chat_rows(rows, encoding, too_long)
        return DatasetMeasure(findings, counts, tokens, {"tokenizer": encoding})

    def quote_tokens(self, ws: Workspace, model: str, train_tokens: list[int], *, epochs: int | None, max_seq_length: int) -> dict[str, Any]:
        from model_customization.datasets.quote import quote_openai

        return quote_openai(model, train_tokens, epochs)

    def render_example(self, example: dict[str, Any]) -> dict[str, Any]:
        from model_customization.datasets.render import render_openai

        return render_openai(example)

    # --- chat ----------------------------------------------------------------------------------------------------------
    def claims_model(self, name: str) -> bool:
        """Its fine-tuned ids (ft:…) and its model families (gpt-…, chatgpt-…, o1, o3…, o4…)."""
        return name.startswith("ft:") or bool(_OPENAI_NAME.match(name))
