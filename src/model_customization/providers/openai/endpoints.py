"""OpenAI-compatible endpoints: one provider class, many services that speak OpenAI's files and fine-tuning API.

An endpoint says where the API is (base URL), how it takes its key (`Authorization: Bearer`, an `api-key` header, or
none) and from which environment variable, the dates that matter (when it stops taking new jobs, per base model or
as a whole; when models stop answering), its prices (training per million tokens or per hour; chat input/output per
million tokens), which base models it fine-tunes (a list, or None: ask the service), and how its API differs from
OpenAI's (Azure's files need an expiry; Azure cannot filter jobs by metadata).

Built in: `openai` (api.openai.com, or OPENAI_BASE_URL) and `azure-openai` (Azure OpenAI v1). Others come from the
config file's [openai_compatible.<name>] tables (config.py reads them; `configured` below turns them into
Endpoints); a table named after a built-in changes that built-in's fields. No SDK import here: the registry and the
tools read endpoints at start-up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from model_customization.errors import UserError

AUTH_KINDS = ("bearer", "api-key", "none")


@dataclass(frozen=True)
class TrainingPrice:
    """How a service bills training: per million trained tokens, or per hour of training (open models on Foundry)."""

    usd_per_million_tokens: float | None = None
    usd_per_hour: float | None = None


@dataclass(frozen=True)
class Endpoint:
    name: str  # the provider name: start_job(provider=name), "name:model" in prompts
    title: str
    base_url: str | None  # None: the SDK's default (api.openai.com)
    auth: str = "bearer"  # bearer | api-key | none
    key_env: str | None = "OPENAI_API_KEY"
    base_url_envs: tuple[str, ...] = ()  # variables that override base_url, first set wins
    closes_on: date | None = None  # no new jobs from this day on
    closing_source: str = ""
    training_ends: dict[str, date] = field(default_factory=dict)  # model family -> first day it takes no new jobs
    model_shutdowns: dict[str, date] = field(default_factory=dict)  # model family -> day it and its fine-tunes stop
    shutdown_source: str = ""
    training_prices: dict[str, TrainingPrice] = field(default_factory=dict)  # model family -> price
    chat_prices: dict[str, tuple[float, float]] = field(default_factory=dict)  # model -> (input, output) USD per 1M
    prices_source: str = ""
    base_models: tuple[str, ...] | None = None  # the fine-tunable base models; None: ask the service
    default_base_model: str | None = None
    methods: tuple[str, ...] = ("sft", "dpo")
    openai_platform: bool = False  # OpenAI's own access rules (history check, its closing timeline) apply
    file_expiry_seconds: int | None = None  # Azure: files must say when they expire (expires_after)
    metadata_filter: bool = True  # GET /fine_tuning/jobs takes metadata[...] (OpenAI); else the list is scanned
    example_token_limit: int | None = None  # most tokens in one training example, when known
    deployments: dict[str, str] = field(default_factory=dict)  # tuned or base model -> the name chat sends (Azure)
    uses_deployments: bool = False  # chat names a deployment the user created, not the model (Azure)
    max_completion_tokens: bool = False  # chat caps answers with max_completion_tokens (OpenAI, Azure), else max_tokens
    key_hint: str = ""  # where to get a key, for the missing-key message
    source: str = "built in"  # "built in", or the config file and line that defines it
    api_key_value: str | None = field(default=None, repr=False)  # a key written in the config file; never shown

    # --- where and how -----------------------------------------------------------------------------------------------
    def resolved_base_url(self) -> str | None:
        for name in self.base_url_envs:
            value = os.environ.get(name, "").strip()
            if value:
                return self._normalise(value)
        return self._normalise(self.base_url) if self.base_url else None

    def _normalise(self, url: str) -> str:
        return url.rstrip("/")

    def api_key(self) -> str:
        """The key to send (a placeholder when the endpoint takes none); UserError naming the variable when unset."""
        if self.auth == "none":
            return "unused"
        if self.api_key_value:
            return self.api_key_value
        key = os.environ.get(self.key_env or "", "").strip() if self.key_env else ""
        if not key:
            where = f"Set {self.key_env}" if self.key_env else f"Give key_env in [openai_compatible.{self.name}] of the config file"
            raise UserError(
                f"{self.key_env or 'The API key'} is not set for provider {self.name!r} ({self.title}). {where} in the environment of the "
                f"server or CLI{self.key_hint}, or use provider 'local' to train on this machine."
            )
        return key

    def scrub(self, text: str) -> str:
        """`text` with this endpoint's key masked (defence in depth: a server might echo it)."""
        secret = self.api_key_value or (os.environ.get(self.key_env, "").strip() if self.key_env else "")
        label = f"[{self.key_env}]" if self.key_env else "[api key]"
        return text.replace(secret, label) if secret and len(secret) >= 8 else text

    # --- what it trains, and until when ----------------------------------------------------------------------------------
    def training_end(self, model: str, today: date) -> tuple[date, str] | None:
        """The first day no new job is taken for this base model (the endpoint's closing or the model's), if any."""
        ends: list[tuple[date, str]] = []
        if self.closes_on:
            ends.append((self.closes_on, f"{self.title} stops taking new fine-tuning jobs"))
        family = match_family(model, self.training_ends)
        if family:
            ends.append((self.training_ends[family], f"{self.title} stops fine-tuning the {family} family"))
        return min(ends) if ends else None

    def shutdown(self, model: str) -> tuple[str, date] | None:
        """(family, day) when this model, a snapshot or a fine-tune of it stops answering, if scheduled."""
        family = match_family(underlying_base(model), self.model_shutdowns)
        return (family, self.model_shutdowns[family]) if family else None

    def training_price(self, model: str) -> TrainingPrice | None:
        family = match_family(underlying_base(model), self.training_prices)
        return self.training_prices[family] if family else None

    def chat_price(self, model: str) -> tuple[float, float] | None:
        # A tuned model is billed at its own rates, so only its own name (or a deployment's) is looked up.
        family = match_family(model, self.chat_prices) or match_family(self.chat_model(model), self.chat_prices)
        return self.chat_prices[family] if family else None

    def chat_model(self, model: str) -> str:
        """The name chat sends for a model: its deployment where one is configured (Azure), else the model itself."""
        return self.deployments.get(model, model)

    def describe(self) -> dict[str, Any]:
        """The endpoint as the docs and the tools show it: no key, ever."""
        return {
            "name": self.name,
            "title": self.title,
            "base_url": self.resolved_base_url() or "https://api.openai.com/v1",
            "auth": self.auth,
            "key_env": self.key_env,
            "closes_on": self.closes_on.isoformat() if self.closes_on else None,
            "training_ends": {k: v.isoformat() for k, v in self.training_ends.items()},
            "model_shutdowns": {k: v.isoformat() for k, v in self.model_shutdowns.items()},
            "base_models": list(self.base_models) if self.base_models is not None else "ask the service",
            "source": self.source,
        }


def underlying_base(model: str) -> str:
    """The base model of a tuned name: 'ft:BASE:org:suffix:id' (OpenAI) and 'BASE.ft-<id>' (Azure) give BASE."""
    parts = model.split(":")
    if parts[0] == "ft" and len(parts) > 1 and parts[1]:
        return parts[1]
    match = re.match(r"^(?P<base>.+?)\.ft-[0-9A-Za-z]+", model)
    return match["base"] if match else model


def match_family(model: str, table: dict[str, Any]) -> str | None:
    """The table's key naming this model: the name itself, or the longest family whose dated snapshot it is
    (gpt-4o-mini-2024-07-18 is gpt-4o-mini, not gpt-4o)."""
    if model in table:
        return model
    for family in sorted(table, key=len, reverse=True):
        if re.fullmatch(re.escape(family) + r"-\d{4}-\d{2}-\d{2}", model):
            return family
    return None


# --- the built-in endpoints ------------------------------------------------------------------------------------------
OPENAI_DEPRECATIONS = (
    "OpenAI API deprecations page (developers.openai.com/api/docs/deprecations): self-serve fine-tuning closes "
    "2027-01-06 (notice of 2026-05-07); gpt-4o, gpt-4o-mini, gpt-4.1 and gpt-4.1-mini snapshots and their fine-tunes "
    "shut down 2027-01-14 (notice of 2026-10-14); read 2026-11-22"
)
OPENAI_SHUTDOWN_ON = date(2027, 1, 14)
OPENAI_CHAT_PRICES: dict[str, tuple[float, float]] = {
    # The same table evaluation/pricing.py holds (openai.com/api/pricing, read 2025-11-01), per million tokens.
    "gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60), "gpt-4.1": (2.00, 8.00), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40),
}
OPENAI_TRAINING_PRICES = {
    # datasets/quote.py OPENAI_MODELS (openai.com/api/pricing, read 2025-06-01), per million trained tokens.
    "gpt-4.1": TrainingPrice(25.00), "gpt-4.1-mini": TrainingPrice(5.00), "gpt-4.1-nano": TrainingPrice(1.50),
    "gpt-4o": TrainingPrice(25.00), "gpt-4o-mini": TrainingPrice(3.00), "gpt-3.5-turbo": TrainingPrice(8.00),
}

OPENAI = Endpoint(
    name="openai",
    title="OpenAI",
    base_url=None,
    auth="bearer",
    key_env="OPENAI_API_KEY",
    base_url_envs=("MODEL_CUSTOMIZATION_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
    closes_on=date(2027, 1, 6),
    closing_source=OPENAI_DEPRECATIONS,
    model_shutdowns={family: OPENAI_SHUTDOWN_ON for family in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini")},
    shutdown_source=OPENAI_DEPRECATIONS,
    training_prices=OPENAI_TRAINING_PRICES,
    chat_prices=OPENAI_CHAT_PRICES,
    prices_source="openai.com/api/pricing",
    default_base_model="gpt-4.1-mini",
    openai_platform=True,
    example_token_limit=65_536,
    key_hint=" (an OpenAI-compatible server that needs no key accepts any value)",
)

class AzureEndpoint(Endpoint):
    """Azure's base URL is the resource's, with or without /openai/v1 (the SDK's Azure client takes the bare one)."""

    def _normalise(self, url: str) -> str:
        url = url.rstrip("/")
        if not url.endswith("/openai/v1"):
            url = url.removesuffix("/openai") + "/openai/v1"
        return url

    def resolved_base_url(self) -> str | None:
        url = super().resolved_base_url()
        if url is None:
            raise UserError(
                "AZURE_OPENAI_ENDPOINT is not set. Set it to your resource's endpoint, https://<resource>.openai.azure.com "
                "(with or without /openai/v1), and AZURE_OPENAI_API_KEY to its key."
            )
        return url


AZURE_DATES_SOURCE = (
    "Azure OpenAI fine-tuning availability for existing customers (issue 18 of this project, from Microsoft's "
    "model retirement notices): gpt-4o family until 2027-04-01, gpt-4.1 family until 2027-04-14"
)
AZURE_OPENAI = AzureEndpoint(
    name="azure-openai",
    title="Azure OpenAI",
    base_url=None,  # from AZURE_OPENAI_ENDPOINT: https://<resource>.openai.azure.com/openai/v1
    auth="api-key",
    key_env="AZURE_OPENAI_API_KEY",
    base_url_envs=("AZURE_OPENAI_ENDPOINT",),
    training_ends={
        "gpt-4o": date(2027, 4, 1), "gpt-4o-mini": date(2027, 4, 1),
        "gpt-4.1": date(2027, 4, 14), "gpt-4.1-mini": date(2027, 4, 14), "gpt-4.1-nano": date(2027, 4, 14),
    },
    closing_source=AZURE_DATES_SOURCE,
    # Assumption, stated in the README: Azure's Global training prices per million tokens follow OpenAI's; the open
    # models on Foundry are billed per hour of training, whose price depends on the resource, so they are unpriced
    # (a person confirms each job) unless the config file gives a price.
    training_prices={k: v for k, v in OPENAI_TRAINING_PRICES.items() if k != "gpt-3.5-turbo"},
    chat_prices=dict(OPENAI_CHAT_PRICES),
    prices_source="azure.microsoft.com/pricing/details/cognitive-services/openai-service (assumed equal to OpenAI's)",
    base_models=(
        "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14",
        "Llama-3.3-70B-Instruct", "Qwen3-32B", "gpt-oss-20b",
    ),
    default_base_model="gpt-4.1-mini-2025-04-14",
    file_expiry_seconds=30 * 24 * 3600,  # the longest Azure keeps a training file; a re-run re-uploads after that
    metadata_filter=False,  # the v1 spec's GET /fine_tuning/jobs takes only after and limit
    uses_deployments=True,
    max_completion_tokens=True,
    example_token_limit=65_536,
    key_hint=" (the resource's key, Azure portal > Keys and Endpoint) and AZURE_OPENAI_ENDPOINT to https://<resource>.openai.azure.com",
)


BUILTIN_ENDPOINTS: dict[str, Endpoint] = {"openai": OPENAI, "azure-openai": AZURE_OPENAI}


# --- endpoints from the config file ----------------------------------------------------------------------------------
def configured_tables() -> dict[str, dict[str, Any]]:
    """The config file's [openai_compatible.<name>] tables, as config.py checked them (name -> fields)."""
    from model_customization.config import openai_compatible_tables

    return openai_compatible_tables()


def endpoint(name: str) -> Endpoint:
    """The endpoint of a provider name: a built-in (with the config file's changes) or one the config file defines."""
    tables = configured_tables()
    if name in BUILTIN_ENDPOINTS:
        base = BUILTIN_ENDPOINTS[name]
        return replace(base, **tables[name]) if name in tables else base
    if name in tables:
        return Endpoint(name=name, **tables[name])
    raise UserError(f"No OpenAI-compatible endpoint named {name!r}; add [openai_compatible.{name}] to the config file.")


def configured_names() -> list[str]:
    """Endpoints the config file adds (not the built-ins it changes), in the file's order."""
    return [name for name in configured_tables() if name not in BUILTIN_ENDPOINTS]
