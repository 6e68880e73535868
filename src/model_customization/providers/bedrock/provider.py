"""The Bedrock provider: Claude fine-tuning (sft) on Amazon Bedrock, provisioned throughput for the tuned model, and
chat with Bedrock models. Paid; needs AWS credentials and the operator's Bedrock settings (clients.py).

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
# Claude's tokenizer is not available offline: Bedrock counts use o200k and are marked approximate.
TOKEN_ENCODING = "o200k_base"


class BedrockProvider(HostedTrainingProvider):
    jobs_class = "model_customization.providers.bedrock.training:BedrockJobs"
    name = "bedrock"
    title = "Bedrock"
    capabilities = frozenset({"train", "chat", "provision", "remote_jobs"})
    methods = ("sft",)
    paid = True
    hyperparameters_model = BedrockHyperparameters
    job_options = frozenset({"suffix"})
    job_options_note = " (and uses the validation split whenever it has examples)"
    hyperparameters_example = "--hp epoch_count=2 --hp learning_rate_multiplier=0.5"
    chat_module = "model_customization.providers.bedrock.chat"
    sdk_packages = ("boto3", "botocore")
    STATUS_MAP = {
        "InProgress": "running",
        "Completed": "succeeded",
        "Failed": "failed",
        "Stopping": "running",
        "Stopped": "cancelled",
    }
    training_summary = "Claude fine-tuning on Amazon Bedrock, paid"
    base_model_help = "omit to use the Claude model Bedrock offers for fine-tuning"
    default_inspect_model = "anthropic.claude (discovered at job time)"

    # --- training: the job calls go to the job machinery in training.py (HostedTrainingProvider) ------------------------
    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        from model_customization.providers.bedrock.hyperparameters import parse_bedrock_hyperparameters

        return parse_bedrock_hyperparameters(raw).model_dump()

    def list_remote_jobs(self, ws: Workspace, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        from model_customization.providers.bedrock.training import list_remote_jobs

        return list_remote_jobs(ws, limit=limit, next_token=after)

    # --- inspect_dataset: the stored format, approximate counts, Claude's alternating turns ----------------------------
    def measure_dataset(self, ws: Workspace, rows: Iterator[tuple[str, int, Any]], *, model: str, max_seq_length: int) -> DatasetMeasure:
        from model_customization.datasets.render import render_bedrock_claude
        from model_customization.datasets.tokens import measure_chat_rows
        from model_customization.datasets.validate import Finding

        def unrenderable(split: str, line: int, row: Any, n: int) -> list[Finding]:
            if len(render_bedrock_claude(row)["messages"]) < 2:
                return [Finding(split, line, "error", "bedrock_unrenderable", "no user turn followed by an assistant turn after folding into Claude's alternating format")]
            return []

        findings, counts, tokens = measure_chat_rows(rows, TOKEN_ENCODING, unrenderable)
        return DatasetMeasure(findings, counts, tokens, {"tokenizer": TOKEN_ENCODING + " (approximate for Claude)"})

    def quote_tokens(self, ws: Workspace, model: str, train_tokens: list[int], *, epochs: int | None, max_seq_length: int) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": model,
            "epochs": epochs or 2,
            "note": "Bedrock prices Claude customization per token trained plus provisioned throughput for inference; "
            "its prices are not in this product's table yet, so no dollar figure is given.",
            "trained_tokens": sum(train_tokens) * (epochs or 2),
        }

    def render_example(self, example: dict[str, Any]) -> dict[str, Any]:
        from model_customization.datasets.render import render_bedrock_claude

        return render_bedrock_claude(example)

    # --- chat ----------------------------------------------------------------------------------------------------------
    def claims_model(self, name: str) -> bool:
        """Model ARNs and Bedrock model ids such as anthropic.claude-3-haiku-20240307-v1:0 or us.amazon.nova-lite-v1:0."""
        return name.startswith("arn:aws:bedrock:") or bool(_BEDROCK_NAME.match(name))
