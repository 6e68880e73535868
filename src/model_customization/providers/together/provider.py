"""The Together AI provider: LoRA (default) or full fine-tuning of open models, SFT and DPO, checkpoints, the
adapter brought home when its base runs here, and chat completions for prompts and judges. Paid; needs
TOGETHER_API_KEY and the `together` extra.

A light class: the job life cycle is training.TogetherJobs and chat is chat.py, both imported on first use (they bring
in the `together` SDK and the dataset machinery, which a starting server need not load).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from model_customization.providers.base import DatasetMeasure, HostedTrainingProvider
from model_customization.providers.together.hyperparameters import TogetherHyperparameters
from model_customization.workspace import Workspace

DEFAULT_BASE_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
# Together's models have no tokenizer here (no downloads at run time): counts use o200k and are marked approximate.
TOKEN_ENCODING = "o200k_base"
# The organisations whose "org/model" names a bare model name may mean on Together. Other "a/b" names stay with the
# local provider (a relative model folder); "together:<name>" always reaches Together.
CATALOGUE_ORGS = frozenset({
    "meta-llama", "qwen", "mistralai", "google", "deepseek-ai", "moonshotai", "zai-org", "togethercomputer",
    "nousresearch", "nvidia", "arcee-ai", "lgai", "marin-community", "servicenow-ai", "openai",
})


class TogetherProvider(HostedTrainingProvider):
    jobs_class = "model_customization.providers.together.training:TogetherJobs"
    name = "together"
    title = "Together AI"
    capabilities = frozenset({"train", "chat", "checkpoints"})
    methods = ("sft", "dpo")
    paid = True
    hyperparameters_model = TogetherHyperparameters
    job_options = frozenset({"suffix", "seed", "use_validation"})
    job_options_note = " (seed is Together's random_seed; the suffix gets a tag of ours appended)"
    hyperparameters_example = "--hp n_epochs=3 --hp learning_rate=0.00001 --hp lora_r=16"
    chat_module = "model_customization.providers.together.chat"
    chat_tools = True  # chat completions' `tools` (OpenAI-compatible)
    sdk_packages = ("together",)
    STATUS_MAP = {
        "pending": "queued",
        "queued": "queued",
        "running": "running",
        "compressing": "running",
        "uploading": "running",
        "cancel_requested": "running",
        "cancelled": "cancelled",
        "error": "failed",
        "completed": "succeeded",
    }
    training_summary = "Together AI fine-tuning of open models (LoRA or full), paid"
    base_model_help = f"a model Together fine-tunes, e.g. '{DEFAULT_BASE_MODEL}' (default)"
    default_inspect_model = DEFAULT_BASE_MODEL

    # --- training: the job calls go to the job machinery in training.py (HostedTrainingProvider) ------------------------
    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        from model_customization.providers.together.hyperparameters import parse_together_hyperparameters

        return parse_together_hyperparameters(method, raw)

    def claims_remote_job(self, job_id: str) -> bool:
        return job_id.startswith("ft-") and len(job_id) > 20  # Together's ids: "ft-" and a UUID; ours are "ft-" + 12 hex

    def job_checkpoints(self, ws: Workspace, job_id: str) -> dict[str, Any]:
        from model_customization.providers.together.adapters import remote_checkpoints

        return remote_checkpoints(ws, job_id)

    # --- inspect_dataset: Together's formats, approximate counts, its price table ---------------------------------------
    def measure_dataset(self, ws: Workspace, rows: Iterator[tuple[str, int, Any]], *, model: str, max_seq_length: int) -> DatasetMeasure:
        from model_customization.datasets.render import is_preference
        from model_customization.datasets.tokens import measure_chat_rows
        from model_customization.datasets.validate import Finding
        from model_customization.providers.together.files import render_together, together_problems

        def together_rules(split: str, line: int, row: Any, n: int) -> list[Finding]:
            problems = together_problems(render_together(row), "dpo" if is_preference(row) else "sft")
            return [Finding(split, line, "error", "together_format", problem) for problem in problems]

        findings, counts, tokens = measure_chat_rows(rows, TOKEN_ENCODING, together_rules)
        return DatasetMeasure(findings, counts, tokens, {"tokenizer": TOKEN_ENCODING + " (approximate for Together's models)"})

    def quote_tokens(self, ws: Workspace, model: str, train_tokens: list[int], *, epochs: int | None, max_seq_length: int) -> dict[str, Any]:
        from model_customization.providers.together.pricing import PRICES_READ_ON, PRICES_SOURCE, usd_per_million_tokens

        chosen = epochs or 1
        billed = sum(train_tokens) * chosen
        rate = usd_per_million_tokens(model, "sft", True)
        return {
            "provider": self.name,
            "model": model,
            "epochs": chosen,
            "epochs_rule": "given" if epochs else "Together's default (1)",
            "training_type": "LoRA, SFT (start_job quotes DPO and full fine-tuning at their own rates)",
            "billed_tokens": billed,
            "usd_per_million_tokens": rate,
            "estimated_cost_usd": round(billed * rate / 1_000_000, 4) if rate is not None else None,
            "prices_read_on": PRICES_READ_ON,
            "prices_source": PRICES_SOURCE,
        }

    def render_example(self, example: dict[str, Any]) -> dict[str, Any]:
        from model_customization.providers.together.files import render_together

        return render_together(example)

    # --- chat ----------------------------------------------------------------------------------------------------------
    def claims_model(self, name: str) -> bool:
        """'org/model' names of the organisations Together serves (meta-llama/…, Qwen/…, mistralai/…, deepseek-ai/…);
        tuned Together models are found through the registry, and 'together:<name>' reaches Together for any name."""
        org, slash, rest = name.partition("/")
        return bool(slash and rest) and "/" not in rest and org.lower() in CATALOGUE_ORGS

    def check_chat_model(self, ws: Workspace, name: str) -> str:
        from model_customization.providers.together.client import require_key

        require_key()  # a missing key is refused before anything is generated or paid for
        return name
