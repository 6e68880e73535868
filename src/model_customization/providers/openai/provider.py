"""OpenAI-compatible providers: one class, configured by an endpoint (endpoints.py), of which api.openai.com is one
instance (`openai`), Azure OpenAI v1 another (`azure-openai`), and each [openai_compatible.<name>] table of the config
file one more. Fine-tuning (sft, dpo) through the fine-tuning API, training files, pause and resume, checkpoints, and
chat completions for prompts and judges. Paid.

A light class: the job life cycle is training.OpenAIJobs and chat is chat.py, both imported on first use (they
bring in the `openai` SDK and the dataset machinery, which a starting server need not load).

Azure's tuned models answer through a deployment: Azure names the tuned model (e.g.
gpt-4.1-mini-2025-04-14.ft-abc123) but chat requests name a deployment, which the user creates (portal or
`az cognitiveservices account deployment create`). prompt_model reaches it as "azure-openai:<deployment>", or by the
tuned model's id once the config file maps it ([openai_compatible.azure-openai.deployments] "<model id>" = "<deployment>").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any, ClassVar

from model_customization.errors import UserError
from model_customization.providers.base import DatasetMeasure, HostedTrainingProvider
from model_customization.providers.openai.hyperparameters import OpenAIHyperparameters
from model_customization.workspace import Workspace

DEFAULT_BASE_MODEL = "gpt-4.1-mini"
_OPENAI_NAME = re.compile(r"^(?:gpt-|chatgpt-|o[134](?:$|-))")
GENERIC_ENCODING = "o200k_base"  # for models whose own tokenizer is not at hand here: an estimate


def _today() -> date:
    return datetime.now(timezone.utc).date()


class OpenAICompatibleProvider(HostedTrainingProvider):
    """A provider for one OpenAI-compatible endpoint; subclasses name it (endpoint_name = name)."""

    jobs_class = "model_customization.providers.openai.training:OpenAIJobs"
    capabilities = frozenset({"train", "chat", "files", "pause", "checkpoints", "remote_jobs"})
    methods = ("sft", "dpo")
    paid = True
    hyperparameters_model = OpenAIHyperparameters
    job_options = frozenset({"suffix", "seed", "metadata", "integrations", "use_validation"})
    hyperparameters_example = "--hp n_epochs=3 --hp learning_rate_multiplier=0.5"
    chat_module = "model_customization.providers.openai.chat"
    chat_tools = True  # chat completions' `tools`
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
    endpoint_name: ClassVar[str] = ""

    def endpoint(self) -> Any:
        """This provider's Endpoint, with the config file's changes (read again when the file changes)."""
        from model_customization.providers.openai.endpoints import endpoint

        return endpoint(self.endpoint_name or self.name)

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        try:
            described["endpoint"] = self.endpoint().describe()
        except UserError:
            pass  # e.g. Azure without AZURE_OPENAI_ENDPOINT: the provider still lists
        return described

    # --- training: the job calls go to the job machinery in training.py ------------------------------------------------
    def _jobs(self) -> Any:
        from model_customization.providers.openai.training import OpenAIJobs

        return OpenAIJobs(self.endpoint())

    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        from model_customization.providers.openai.hyperparameters import parse_openai_hyperparameters

        return parse_openai_hyperparameters(method, raw)

    def pause(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().pause(ws, job)

    def resume(self, ws: Workspace, job: dict[str, Any]) -> None:
        self._jobs().resume(ws, job)

    def list_remote_jobs(self, ws: Workspace, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        from model_customization.providers.openai.training import list_remote_jobs

        return list_remote_jobs(ws, limit=limit, after=after, endpoint=self.endpoint())

    def job_checkpoints(self, ws: Workspace, job_id: str) -> dict[str, Any]:
        from model_customization.providers.openai.training import remote_checkpoints

        return remote_checkpoints(ws, job_id, self.endpoint())

    # --- inspect_dataset: the chat format, token counts, the endpoint's per-example limit -------------------------------
    def _encoding(self, model: str) -> str:
        from model_customization.datasets.tokens import encoding_name_for

        try:
            return encoding_name_for(model)
        except UserError:
            return GENERIC_ENCODING

    def measure_dataset(self, ws: Workspace, rows: Iterator[tuple[str, int, Any]], *, model: str, max_seq_length: int) -> DatasetMeasure:
        from model_customization.datasets.tokens import measure_chat_rows
        from model_customization.datasets.validate import Finding

        own = self.endpoint()
        encoding = self._encoding(model)
        limit = own.example_token_limit

        def too_long(split: str, line: int, row: Any, n: int) -> list[Finding]:
            if limit and n > limit:
                return [Finding(split, line, "error", "example_too_long", f"{n} tokens; {own.title} takes at most {limit} per example")]
            return []

        findings, counts, tokens = measure_chat_rows(rows, encoding, too_long)
        extra: dict[str, Any] = {"tokenizer": encoding}
        if encoding == GENERIC_ENCODING and not model.startswith(("gpt-", "o1", "o3", "o4")):
            extra["tokenizer_note"] = f"{model!r} is counted with {GENERIC_ENCODING}, an estimate: its own tokenizer is not available here."
        return DatasetMeasure(findings, counts, tokens, extra)

    def quote_tokens(self, ws: Workspace, model: str, train_tokens: list[int], *, epochs: int | None, max_seq_length: int) -> dict[str, Any]:
        from model_customization.datasets.quote import default_epochs

        own = self.endpoint()
        chosen = epochs or default_epochs(len(train_tokens))
        limit = own.example_token_limit
        per_epoch = sum(min(limit, n) if limit else n for n in train_tokens)
        billed = per_epoch * chosen
        price = own.training_price(model)
        quote: dict[str, Any] = {
            "provider": own.name,
            "model": model,
            "epochs": chosen,
            "epochs_rule": "given" if epochs else "OpenAI's default rule (3, kept within 100-25,000 examples seen)",
            "tokens_per_epoch": per_epoch,
            "billed_tokens": billed,
            "usd_per_million_tokens": None,
            "estimated_cost_usd": None,
            "prices_source": own.prices_source or own.source,
        }
        if price and price.usd_per_million_tokens is not None:
            quote["usd_per_million_tokens"] = price.usd_per_million_tokens
            quote["estimated_cost_usd"] = round(billed * price.usd_per_million_tokens / 1_000_000, 4)
        elif price and price.usd_per_hour is not None:
            quote["usd_per_hour"] = price.usd_per_hour
            quote["note"] = (
                f"{own.title} bills {model!r} by the hour of training (${price.usd_per_hour}/h) and the hours are not known "
                "before the job runs, so the cost is unknown: a person confirms it."
            )
        else:
            quote["note"] = f"No training price is known for {model!r} at {own.title}; give one in [openai_compatible.{own.name}.training_prices] of the config file."
        return quote

    def render_example(self, example: dict[str, Any]) -> dict[str, Any]:
        from model_customization.datasets.render import render_openai

        return render_openai(example)

    # --- chat ----------------------------------------------------------------------------------------------------------
    def model_notice(self, model: str) -> str | None:
        """A warning for a model this endpoint will shut down (with its date), or None."""
        try:
            own = self.endpoint()
        except UserError:
            return None
        scheduled = self._shutdown(own, model)
        if not scheduled:
            return None
        family, day = scheduled
        when = "shut down on" if chat_today() >= day else "shuts down on"
        return f"{model} ({family} family, fine-tunes included) {when} {day.isoformat()} at {own.title}; move to another model before then."

    def check_chat_model(self, ws: Workspace, name: str) -> str:
        """After its shutdown date a model is refused before anything is sent, naming what still answers."""
        from model_customization.providers.openai.availability import live_alternatives

        own = self.endpoint()
        scheduled = self._shutdown(own, name)
        today = chat_today()
        if scheduled and today >= scheduled[1]:
            source = f" (source: {own.shutdown_source})" if own.shutdown_source else ""
            raise UserError(
                f"{name} no longer answers: {own.title} shut down the {scheduled[0]} family and its fine-tunes on {scheduled[1].isoformat()}{source}. "
                f"Prompt a model that still answers (list_models; a local model such as SmolLM2-135M-Instruct), or train a replacement. "
                f"{live_alternatives(own.name, today)}"
            )
        return name

    @staticmethod
    def _shutdown(own: Any, model: str) -> tuple[str, date] | None:
        """The endpoint's shutdown of this model; OpenAI's dates apply on its platform only, not to a compatible
        server reached through OPENAI_BASE_URL."""
        from model_customization.providers.openai.client import is_openai_platform

        if own.openai_platform and not is_openai_platform(own):
            return None
        return own.shutdown(model)

    def chat(
        self, ws: Workspace, model: str, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float, seed: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        from model_customization.providers.openai.chat import chat

        self.check_chat_model(ws, model)  # a model past its shutdown date is refused before anything is sent
        return chat(ws, model, messages, max_tokens=max_tokens, temperature=temperature, seed=seed, endpoint=self.endpoint(), **({"tools": tools} if tools else {}))

    def chat_price(self, model: str) -> tuple[float, float] | None:
        """(input, output) USD per million tokens from the endpoint's own table, or None."""
        return self.endpoint().chat_price(model)


def chat_today() -> date:
    """Today for the shutdown checks (a seam for tests, as training._today is for jobs)."""
    return _today()


class OpenAIProvider(OpenAICompatibleProvider):
    name = "openai"
    title = "OpenAI"
    training_summary = "OpenAI fine-tuning, paid; closes 2027-01-06"
    base_model_help = f"e.g. '{DEFAULT_BASE_MODEL}' (default)"
    default_inspect_model = DEFAULT_BASE_MODEL

    def claims_remote_job(self, job_id: str) -> bool:
        return job_id.startswith("ftjob-")

    def chat_price(self, model: str) -> tuple[float, float] | None:
        return None  # evaluation/pricing.py's table already holds OpenAI's, fine-tuned rates included

    # OpenAI's own published limits and prices, as before endpoints (datasets/quote.py)
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

    def claims_model(self, name: str) -> bool:
        """Its fine-tuned ids (ft:…) and its model families (gpt-…, chatgpt-…, o1, o3…, o4…)."""
        return name.startswith("ft:") or bool(_OPENAI_NAME.match(name))


class AzureOpenAIProvider(OpenAICompatibleProvider):
    name = "azure-openai"
    title = "Azure OpenAI"
    training_summary = "Azure OpenAI v1 fine-tuning, paid; gpt-4o family until 2027-04-01, gpt-4.1 until 2027-04-14, open models on Foundry"
    base_model_help = "e.g. 'gpt-4.1-mini-2025-04-14' (default), 'gpt-4o-2024-08-06', or on Foundry resources 'Llama-3.3-70B-Instruct', 'Qwen3-32B', 'gpt-oss-20b'"
    default_inspect_model = "gpt-4.1-mini-2025-04-14"


def configured_provider_class(name: str) -> type[OpenAICompatibleProvider]:
    """The provider class of an endpoint the config file defines (built once per name and kept)."""
    if name not in _configured_classes:
        from model_customization.providers.openai.endpoints import endpoint

        own = endpoint(name)
        class_name = "ConfiguredEndpoint_" + re.sub(r"\W", "_", name)
        _configured_classes[name] = type(
            class_name,
            (OpenAICompatibleProvider,),
            {
                "name": name,
                "endpoint_name": name,
                "title": own.title,
                "methods": own.methods,
                "training_summary": f"{own.title} (OpenAI-compatible, {own.source}), paid",
                "base_model_help": f"e.g. '{own.default_base_model}' (default)" if own.default_base_model else "a model the endpoint fine-tunes",
                "default_inspect_model": own.default_base_model,
                "__module__": __name__,
            },
        )
    return _configured_classes[name]


_configured_classes: dict[str, type[OpenAICompatibleProvider]] = {}
