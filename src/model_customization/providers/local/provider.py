"""The local provider: LoRA training (SFT, DPO or KTO) on this machine in detached worker processes, and chat with the
embedded model, a tuned adapter or a Hugging Face model folder. Free.

Its jobs are trained by the orchestrator's queue (jobs/orchestrator.py dispatches a worker for each, because this
provider `runs_locally`); this class declares it, checks and quotes a job, measures a dataset with the base model's
own tokenizer and answers prompts. torch and transformers load inside the methods that need them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.base import DatasetMeasure, Provider
from model_customization.providers.local.hyperparameters import LocalHyperparameters, for_method, parse_hyperparameters
from model_customization.providers.local.models import EMBEDDED_MODEL, check_base_model, check_chat_template, is_embedded
from model_customization.workspace import Workspace


class LocalProvider(Provider):
    name = "local"
    title = "Local"
    capabilities = frozenset({"train", "chat", "checkpoints", "export"})
    methods = ("sft", "dpo", "kto", "grpo")
    paid = False
    runs_locally = True
    chat_tools = True  # the model's chat template shows them (chat.render_prompt)
    answers_unclaimed_names = True
    hyperparameters_model = LocalHyperparameters
    training_summary = "LoRA training on this machine, free"
    base_model_help = f"'{EMBEDDED_MODEL}' (default) or a Hugging Face model folder"
    default_inspect_model = EMBEDDED_MODEL

    # --- training --------------------------------------------------------------------------------------------------
    def check_available(self, ws: Workspace, base_model: str | None, method: str) -> str:
        return check_base_model(base_model or EMBEDDED_MODEL)

    def means_default_base(self, base_model: str) -> bool:
        return is_embedded(base_model)

    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        return parse_hyperparameters(for_method(method, raw)).model_dump()

    def check_training(self, ws: Workspace, base_model: str, hyperparameters: dict[str, Any], continue_from: str | None) -> None:
        """What only a local job needs: a chat template, and an adapter to continue that fits this base and rank."""
        check_chat_template(base_model, hyperparameters.get("chat_template"))
        if continue_from:
            _check_continue_from(ws, continue_from, base_model, hyperparameters)

    def quote(self, ws: Workspace, dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        if method == "grpo":
            from model_customization.providers.local.grpo import quote_grpo

            return quote_grpo(ws, dataset_id, hyperparameters)
        from model_customization.datasets.inspect import inspect_dataset  # inspect asks the registry: a cycle at the top

        report = inspect_dataset(
            ws, dataset_id=dataset_id, provider=self.name, model=base_model, epochs=hyperparameters["epochs"], max_seq_length=hyperparameters["max_seq_length"]
        )
        return report["quote"]

    def job_checkpoints(self, ws: Workspace, job_id: str) -> dict[str, Any]:
        """The <job_id>@step-N folders on disk, in the shape OpenAI's checkpoints are shown."""
        from model_customization.providers.local.checkpoints import list_checkpoints

        found = list_checkpoints(ws, job_id)
        return {"job_id": job_id, "checkpoints": [
            {**c, "fine_tuned_model_checkpoint": c["model"], "metrics": {k: c[k] for k in ("train_loss", "validation_loss") if c[k] is not None}}
            for c in found
        ]}  # fmt: skip

    # --- inspect_dataset ---------------------------------------------------------------------------------------------
    def measure_dataset(self, ws: Workspace, rows: Iterator[tuple[str, int, Any]], *, model: str, max_seq_length: int) -> DatasetMeasure:
        """Validated like every stored example, then counted with the base model's own tokenizer and chat template;
        an example longer than max_seq_length is reported as truncated (an error when no assistant token is left)."""
        from transformers import AutoTokenizer

        from model_customization.datasets.examples import example_tools, to_plain_chat
        from model_customization.datasets.render import is_preference
        from model_customization.datasets.validate import Finding, validate_rows
        from model_customization.providers.local.chat import tokenize_chat
        from model_customization.providers.local.models import ensure_base_model

        kept: list[tuple[str, int, Any]] = list(rows)
        findings, counts = validate_rows(kept)
        bad = {(f.split, f.line) for f in findings if f.severity == "error"}
        usable = [(split, line, row) for split, line, row in kept if (split, line) not in bad]
        tokenizer = AutoTokenizer.from_pretrained(ensure_base_model(ws.settings, model))
        tokens: dict[str, list[int]] = {}
        truncated = 0
        for split, line, row in usable:
            if is_preference(row):
                findings.append(Finding(split, line, "error", "unsupported_method", "preference examples need a DPO job; local jobs take supervised examples"))
                continue
            tokenized = tokenize_chat(tokenizer, to_plain_chat(row["messages"]), 10**9, example_tools(row))
            tokens.setdefault(split, []).append(len(tokenized.input_ids))
            if len(tokenized.input_ids) > max_seq_length:
                truncated += 1
                clipped = tokenize_chat(tokenizer, to_plain_chat(row["messages"]), max_seq_length, example_tools(row))
                severity = "error" if clipped.trained_tokens == 0 else "warning"
                findings.append(Finding(split, line, severity, "truncated", f"{len(tokenized.input_ids)} tokens, cut to max_seq_length={max_seq_length}" + (" leaving no assistant token to learn" if severity == "error" else "")))
        extra = {"tokenizer": f"{model} (its own tokenizer and chat template)", "truncated_examples": truncated, "max_seq_length": max_seq_length}
        return DatasetMeasure(findings, counts, tokens, extra)

    def quote_tokens(self, ws: Workspace, model: str, train_tokens: list[int], *, epochs: int | None, max_seq_length: int) -> dict[str, Any]:
        from model_customization.datasets.quote import quote_local

        return quote_local(model, train_tokens, max_seq_length, epochs or 3, ws.store.jobs.speed_history(self.name, check_base_model(model)))

    # --- chat ----------------------------------------------------------------------------------------------------------
    def check_chat_model(self, ws: Workspace, name: str) -> str:
        from model_customization.providers.local.inference import resolve_model

        return resolve_model(ws, name).model_id

    def evaluation_key(self, ws: Workspace, typed: str, name: str) -> str:
        """Canonical: the ft-… id or the absolute path, however it was typed."""
        return self.check_chat_model(ws, name)

    def chat_engine(self, ws: Workspace, model: str) -> tuple[Any, str]:
        """(the batching engine that answers this model's concurrent requests together, the model's canonical id):
        the OpenAI-compatible endpoint's path to a local model."""
        from model_customization.providers.local.batching import engine_for

        return engine_for(ws, model)

    def chat(
        self, ws: Workspace, model: str, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float, seed: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        from model_customization.providers.local.inference import generate

        result = generate(ws, model, messages, max_tokens=max_tokens, temperature=temperature, seed=seed, tools=tools)
        # generate stops at the end-of-turn token; using every token allowed means the answer was cut.
        stop_reason = "length" if result["completion_tokens"] >= max_tokens else "stop"
        return {**result, "stop_reason": result.get("stop_reason", stop_reason)}


def _check_continue_from(ws: Workspace, model_id: str, base_model: str, hyperparameters: dict[str, Any]) -> None:
    row = ws.store.models.get(model_id)
    if not row or row["kind"] != "tuned":
        raise NotFoundError(f"continue_from={model_id!r} is not a tuned model. check_job shows the model_id of a finished job.")
    if row["base_model"] != base_model:
        raise UserError(
            f"The adapter of {model_id} was trained on {row['base_model']}, not on {base_model}; an adapter only fits its own "
            f"base. Start the job with base_model={row['base_model']!r}, or without continue_from."
        )
    config_path = Path(row["path"]) / "adapter_config.json"
    if not config_path.is_file():
        raise UserError(f"The adapter of {model_id} is missing from {row['path']}; it cannot be continued.")
    config = json.loads(config_path.read_text())
    if config.get("r") != hyperparameters["lora_rank"] or sorted(config.get("target_modules") or []) != sorted(hyperparameters["target_modules"]):
        raise UserError(
            f"The adapter of {model_id} has lora_rank {config.get('r')} on {sorted(config.get('target_modules') or [])}; "
            "continuing it needs the same lora_rank and target_modules in hyperparameters."
        )
