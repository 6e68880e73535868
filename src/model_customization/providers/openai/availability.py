"""Can this key create a fine-tuning job on this endpoint and base model today? Answered before anything is uploaded.

Every endpoint: its closing date and its per-model training end dates (endpoints.py), its list of fine-tunable
base models when it has one, then the service itself (the model, the jobs endpoint). A refusal by date names the
providers that still train, asked of the registry (never a fixed list). What follows is OpenAI's own platform:

OpenAI is winding down self-serve fine-tuning in stages (its deprecations page, notice of 2026-05-07):
organisations that had never fine-tuned lost access on 2026-05-07; on 2026-07-02 so did those that had not run
inference on a fine-tuned model in the previous 60 days; on 2027-01-06 no one can create new jobs. Base models also
retire on their own dates, kept in a dated table below, and OpenAI's models endpoint reports a `shutdown_date` that
we check as well, since it is newer than any table.

The checks: the closing date, the table, GET /models/{model} (the model must exist for this key), then one cheap
read, GET /fine_tuning/jobs?limit=1: a 403 means the organisation may not fine-tune, and an empty history means it
never did (so, since 2026-05-07, it cannot start). Against an OpenAI-compatible server (a base URL other than
OpenAI's) only the model and the jobs endpoint are checked: OpenAI's platform dates do not apply there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from model_customization.errors import UserError
from model_customization.providers.openai.endpoints import OPENAI, Endpoint

FINE_TUNING_CLOSES_ON = date(2027, 1, 6)
NEVER_FINE_TUNED_CLOSED_ON = date(2026, 5, 7)
INACTIVE_CLOSED_ON = date(2026, 7, 2)
PLATFORM_TIMELINE_SOURCE = (
    "OpenAI API deprecations page (developers.openai.com/api/docs/deprecations), section "
    "'Update to OpenAI's self-serve fine-tuning', notice of 2026-05-07; read 2026-11-22"
)


@dataclass(frozen=True)
class BaseModelShutdown:
    shutdown_on: date
    replacement: str
    read_on: str  # when we read the source
    source: str


_LEGACY_SNAPSHOTS_2026_04_22 = (
    "OpenAI API deprecations page, '2026-04-22: Legacy GPT model snapshots' (copy of 2026-04-23 on spybara.com, "
    "openai/api/history/docs/en/2026-04-22-0555..2026-04-23-0556)"
)
_GPT_41_NANO = "aihola.com/article/openai-ends-fine-tuning-2027 (reporting OpenAI's deprecation list, May 2026)"

# Base models OpenAI has retired or will retire, by the names a job may give (alias and snapshot).
BASE_MODEL_SHUTDOWNS: dict[str, BaseModelShutdown] = {
    "gpt-3.5-turbo": BaseModelShutdown(date(2026, 10, 23), "gpt-4.1-mini", "2026-11-22", _LEGACY_SNAPSHOTS_2026_04_22),
    "gpt-3.5-turbo-0125": BaseModelShutdown(date(2026, 10, 23), "gpt-4.1-mini", "2026-11-22", _LEGACY_SNAPSHOTS_2026_04_22),
    "gpt-4": BaseModelShutdown(date(2026, 10, 23), "gpt-4.1", "2026-11-22", _LEGACY_SNAPSHOTS_2026_04_22),
    "gpt-4-0613": BaseModelShutdown(date(2026, 10, 23), "gpt-4.1", "2026-11-22", _LEGACY_SNAPSHOTS_2026_04_22),
    "gpt-4.1-nano": BaseModelShutdown(date(2026, 10, 23), "gpt-4.1-mini", "2026-11-22", _GPT_41_NANO),
    "gpt-4.1-nano-2025-04-14": BaseModelShutdown(date(2026, 10, 23), "gpt-4.1-mini", "2026-11-22", _GPT_41_NANO),
}

NEXT_STEP = "Train locally instead: start_job with provider 'local' (LoRA on this machine, free)."


def underlying_base(model: str) -> str:
    """The base model of a name: itself, or for a tuned model 'ft:BASE:org:suffix:id' (or Azure's BASE.ft-id) its BASE."""
    from model_customization.providers.openai.endpoints import underlying_base as base_of

    return base_of(model)


def live_alternatives(excluding: str, today: date) -> str:
    """The providers that can still train, as the registry knows them (built-ins, entry points, configured
    endpoints): "'local' (LoRA on this machine, free), 'together' (...) or ..."; OpenAI-compatible endpoints past
    their own closing date are left out."""
    from model_customization.providers.openai.provider import OpenAICompatibleProvider
    from model_customization.providers.registry import providers

    shown = []
    for provider in providers("train"):
        if provider.name == excluding:
            continue
        if isinstance(provider, OpenAICompatibleProvider):
            try:
                own = provider.endpoint()
            except UserError:
                continue
            if own.closes_on and today >= own.closes_on:
                continue
        shown.append(f"'{provider.name}'" + (f" ({provider.training_summary})" if provider.training_summary else ""))
    if not shown:
        return "Train locally instead: start_job with provider 'local'."
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
    return f"Providers that still train: {listed}; start_job with one of them."


def check_endpoint_dates(endpoint: Endpoint, base_model: str, today: date) -> None:
    """Refuse a job the endpoint no longer takes on this day (whole endpoint or this base model), naming alternatives."""
    end = endpoint.training_end(underlying_base(base_model), today)
    if end and today >= end[0]:
        source = f" (source: {endpoint.closing_source})" if endpoint.closing_source else ""
        raise UserError(
            f"{end[1]} from {end[0].isoformat()}: provider {endpoint.name!r} cannot start a job on {base_model!r} today "
            f"({today.isoformat()}){source}. Models tuned earlier still answer until they are shut down. "
            f"{live_alternatives(endpoint.name, today)}"
        )
    if endpoint.base_models is not None and underlying_base(base_model) not in endpoint.base_models and not base_model.startswith("ft:"):
        raise UserError(
            f"{endpoint.title} ({endpoint.name}) does not fine-tune {base_model!r}; its base models: {', '.join(endpoint.base_models)}"
            + (f" ({endpoint.source})" if endpoint.source != "built in" else "") + "."
        )


def base_model_shutdown(model: str) -> BaseModelShutdown | None:
    return BASE_MODEL_SHUTDOWNS.get(underlying_base(model))


def _platform_dates(base_model: str, today: date) -> None:
    if today >= FINE_TUNING_CLOSES_ON:
        raise UserError(
            f"OpenAI stopped accepting new fine-tuning jobs on {FINE_TUNING_CLOSES_ON.isoformat()} (source: {PLATFORM_TIMELINE_SOURCE}). "
            f"Models tuned earlier still answer until their base model retires. {live_alternatives('openai', today)}"
        )
    shutdown = base_model_shutdown(base_model)
    if shutdown and today >= shutdown.shutdown_on:
        raise UserError(
            f"OpenAI retired {underlying_base(base_model)!r} on {shutdown.shutdown_on.isoformat()} (source: {shutdown.source}, read {shutdown.read_on}); "
            f"it can no longer be fine-tuned. Use base_model {shutdown.replacement!r}, or provider 'local'."
        )


def check_openai_available(client: Any, base_model: str, today: date, *, openai_platform: bool = True, endpoint: Endpoint = OPENAI) -> dict[str, Any]:
    """Raise UserError (with the next step) when no job can be created; else return what was checked.

    Makes two read-only calls (model lookup, one job listed); never uploads or creates anything.
    """
    import openai

    from model_customization.providers.openai.client import api_message, refusal

    if openai_platform:
        _platform_dates(base_model, today)
    elif endpoint.name != OPENAI.name:  # OpenAI's own dates are the platform's; a compatible server has none
        check_endpoint_dates(endpoint, base_model, today)

    model = None
    if endpoint.base_models is None or openai_platform:  # a configured list is the endpoint's answer; else ask
        try:
            model = client.models.retrieve(base_model)
        except openai.NotFoundError:
            hint = "the key's project (OPENAI_PROJECT_ID), " if openai_platform else ""
            raise UserError(
                f"The model {base_model!r} is not available to this API key at {endpoint.title} (GET /models/{base_model} found nothing). "
                f"Check the name (e.g. '{endpoint.default_base_model or 'gpt-4.1-mini'}'), {hint}or use provider 'local'."
            ) from None
        except openai.APIError as error:
            raise refusal(f"look up the model {base_model!r}", error, endpoint) from None
    live_shutdown = getattr(model, "shutdown_date", None)
    if live_shutdown and openai_platform:
        try:
            live_date = date.fromisoformat(str(live_shutdown)[:10])
        except ValueError:
            live_date = None
        if live_date and today >= live_date:
            raise UserError(f"OpenAI reports that {base_model!r} shut down on {live_date.isoformat()} (GET /models/{base_model}). Choose a current base model, or provider 'local'.")

    try:
        history = client.fine_tuning.jobs.list(limit=1)
    except openai.PermissionDeniedError as error:
        if not openai_platform:
            raise UserError(
                f"This {endpoint.title} key may not use fine-tuning ({api_message(error, endpoint)}). "
                f"{live_alternatives(endpoint.name, today)}"
            ) from None
        raise UserError(
            f"This OpenAI organisation may not use fine-tuning ({api_message(error)}). OpenAI is closing self-serve fine-tuning: "
            f"since {NEVER_FINE_TUNED_CLOSED_ON.isoformat()} organisations that never fine-tuned cannot start jobs, since "
            f"{INACTIVE_CLOSED_ON.isoformat()} neither can those without inference on a fine-tuned model in the last 60 days, "
            f"and from {FINE_TUNING_CLOSES_ON.isoformat()} no one can. {NEXT_STEP}"
        ) from None
    except openai.NotFoundError:
        raise UserError(
            "This server has no fine-tuning endpoint (GET /fine_tuning/jobs was not found): it serves chat only. "
            "Use it with prompt_model and evaluate, and train with provider 'local'."
        ) from None
    except openai.APIError as error:
        raise refusal("list fine-tuning jobs (the access check)", error, endpoint) from None
    if openai_platform and not history.data:
        raise UserError(
            "This OpenAI organisation has never run a fine-tuning job, and since "
            f"{NEVER_FINE_TUNED_CLOSED_ON.isoformat()} OpenAI accepts new fine-tuning jobs only from organisations that have "
            f"(source: {PLATFORM_TIMELINE_SOURCE}). If it fine-tuned under another project, set OPENAI_PROJECT_ID to that "
            f"project. {NEXT_STEP}"
        )

    checked: dict[str, Any] = {"base_model": base_model, "model_shutdown_date": str(live_shutdown) if live_shutdown else None}
    if openai_platform:
        checked["fine_tuning_closes_on"] = FINE_TUNING_CLOSES_ON.isoformat()
        checked["days_until_closing"] = (FINE_TUNING_CLOSES_ON - today).days
        shutdown = base_model_shutdown(base_model)
        if shutdown:
            checked["base_model_retires_on"] = shutdown.shutdown_on.isoformat()
    end = endpoint.training_end(underlying_base(base_model), today)
    if end:
        checked["training_ends_on"] = end[0].isoformat()
    scheduled = endpoint.shutdown(base_model)
    if scheduled:
        checked["model_shuts_down_on"] = scheduled[1].isoformat()
    return checked
