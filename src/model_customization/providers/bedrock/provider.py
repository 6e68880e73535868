"""The Bedrock provider: fine-tuning (sft) of the foundation models Bedrock lets this account customise (Amazon Nova,
Meta Llama, Amazon Titan Text, Cohere Command; Claude 3 Haiku only while Bedrock still offers it), provisioned
throughput for the tuned model, and chat with Bedrock models. Paid; needs AWS credentials and the operator's Bedrock settings (clients.py).

A light class: the job life cycle is training.BedrockJobs and chat is chat.py, imported on first use (boto3 loads
only there).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from model_customization.providers.base import DatasetMeasure, HostedTrainingProvider
from model_customization.providers.bedrock.hyperparameters import BedrockHyperparameters
from model_customization.workspace import Workspace

# Bedrock foundation-model and inference-profile ids: an optional geography, a vendor, a dot, the model.
_BEDROCK_NAME = re.compile(
    r"^(?:(?:us|eu|apac|us-gov|jp|au|ca|global)\.)?(?:anthropic|amazon|meta|mistral|cohere|ai21|deepseek|qwen|openai|writer)\.[a-z0-9][\w.:-]*$"
)
# The Bedrock models' tokenizers are not available offline: Bedrock counts use o200k and are marked approximate.
TOKEN_ENCODING = "o200k_base"
# The model inspect_dataset measures for when none is given: the first of the default preference (families.py).
DEFAULT_INSPECT_MODEL = "amazon.nova-lite-v1:0:300k"


class BedrockProvider(HostedTrainingProvider):
    jobs_class = "model_customization.providers.bedrock.training:BedrockJobs"
    name = "bedrock"
    title = "Bedrock"
    capabilities = frozenset({"train", "chat", "provision", "remote_jobs"})
    methods = ("sft",)
    paid = True
    hyperparameters_model = BedrockHyperparameters
    job_options = frozenset({"suffix"})
    job_options_note = " (and uploads the validation split whenever it has examples and the model family takes one)"
    hyperparameters_example = "--hp epoch_count=2 --hp learning_rate=0.00001"
    chat_module = "model_customization.providers.bedrock.chat"
    sdk_packages = ("boto3", "botocore")
    STATUS_MAP = {
        "InProgress": "running",
        "Completed": "succeeded",
        "Failed": "failed",
        "Stopping": "running",
        "Stopped": "cancelled",
    }
    training_summary = "fine-tuning of Nova, Llama and the other models Amazon Bedrock offers this account, paid"
    base_model_help = (
        "a model id Bedrock offers this account for fine-tuning, e.g. 'amazon.nova-lite-v1:0:300k' or "
        "'meta.llama3-1-8b-instruct-v1:0:128k'; omit for the first one offered in the order Nova Lite, Nova Micro, Nova 2 Lite, "
        "Nova Pro, Llama 3.2, Llama 3.1, Titan Text, Cohere, Claude 3 Haiku"
    )
    default_inspect_model = DEFAULT_INSPECT_MODEL

    # --- training: the job calls go to the job machinery in training.py (HostedTrainingProvider) ------------------------
    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        from model_customization.providers.bedrock.hyperparameters import parse_bedrock_hyperparameters

        return parse_bedrock_hyperparameters(raw)

    def list_remote_jobs(self, ws: Workspace, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        from model_customization.providers.bedrock.training import list_remote_jobs

        return list_remote_jobs(ws, limit=limit, next_token=after)

    # --- inspect_dataset: the model family's format, rules and limits, approximate counts -------------------------------
    def check_inspect_model(self, model: str) -> None:
        from model_customization.errors import UserError
        from model_customization.providers.bedrock.families import FAMILIES, family_for

        if family_for(model) is None:
            known = "; ".join(f"{f.title}: {', '.join(p + '...' for p in f.prefixes)}" for f in FAMILIES)
            raise UserError(f"No Bedrock training format is known for {model!r}. Give a model id of one of these families: {known}.")

    def measure_dataset(self, ws: Workspace, rows: Iterator[tuple[str, int, Any]], *, model: str, max_seq_length: int) -> DatasetMeasure:
        from model_customization.datasets.tokens import measure_chat_rows
        from model_customization.datasets.validate import Finding
        from model_customization.providers.bedrock import formats
        from model_customization.providers.bedrock.families import family_for

        family = family_for(model)
        assert family is not None  # check_inspect_model refused the others

        def family_rules(split: str, line: int, row: Any, n: int) -> list[Finding]:
            rendered = formats.render(family, row)
            why = formats.problem(family, rendered, formats.row_tokens(family, rendered, TOKEN_ENCODING), model)
            return [Finding(split, line, "error", "bedrock_unrenderable", why)] if why else []

        findings, counts, tokens = measure_chat_rows(rows, TOKEN_ENCODING, family_rules)
        usable = {split: len(values) for split, values in tokens.items()}
        for split, low, high in (("train", family.min_train, family.max_train), ("validation", 0, family.max_validation)):
            have = usable.get(split, 0)
            if have < low or (high is not None and have > high):
                bounds = f"{low:,} to {high:,}" if high is not None else f"at least {low:,}"
                findings.append(Finding(split, 0, "error", "bedrock_split_size", f"{have:,} {split} examples; {family.title} takes {bounds}"))
        extra = {"tokenizer": TOKEN_ENCODING + " (approximate for Bedrock's models)", "family": family.name, "data_format": family.data_format}
        if not family.validation:
            extra["validation_used"] = False
        return DatasetMeasure(findings, counts, tokens, extra)

    def quote_tokens(self, ws: Workspace, model: str, train_tokens: list[int], *, epochs: int | None, max_seq_length: int) -> dict[str, Any]:
        from model_customization.providers.bedrock.families import family_for
        from model_customization.providers.bedrock.training import price_per_million_tokens

        family = family_for(model)
        chosen = epochs or int(family.hyperparameters["epoch_count"].default) if family else (epochs or 1)
        trained = sum(train_tokens) * chosen
        price = price_per_million_tokens(model)
        return {
            "provider": self.name,
            "model": model,
            "epochs": chosen,
            "trained_tokens": trained,
            "usd_per_million_tokens": price,
            "estimated_cost_usd": round(trained * price / 1_000_000, 4) if price is not None else None,
            "note": "Bedrock bills customization per token trained, plus monthly storage and inference of the custom model; "
            "without an operator price for this model no dollar figure is given.",
        }

    def render_example(self, example: dict[str, Any], model: str = DEFAULT_INSPECT_MODEL) -> dict[str, Any]:
        from model_customization.providers.bedrock import formats
        from model_customization.providers.bedrock.families import family_for

        family = family_for(model)
        if family is None:
            self.check_inspect_model(model)
        return formats.render(family, example)

    # --- chat ----------------------------------------------------------------------------------------------------------
    def claims_model(self, name: str) -> bool:
        """Model ARNs and Bedrock model ids such as anthropic.claude-3-haiku-20240307-v1:0 or us.amazon.nova-lite-v1:0."""
        return name.startswith("arn:aws:bedrock:") or bool(_BEDROCK_NAME.match(name))
