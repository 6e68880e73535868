"""Can this key create an OpenAI fine-tuning job on this base model today? Answered before anything is uploaded.

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
    """The OpenAI base model of a name: itself, or for a tuned model 'ft:BASE:org:suffix:id' its BASE."""
    parts = model.split(":")
    if parts[0] == "ft" and len(parts) > 1 and parts[1]:
        return parts[1]
    return model


def base_model_shutdown(model: str) -> BaseModelShutdown | None:
    return BASE_MODEL_SHUTDOWNS.get(underlying_base(model))


def _platform_dates(base_model: str, today: date) -> None:
    if today >= FINE_TUNING_CLOSES_ON:
        raise UserError(
            f"OpenAI stopped accepting new fine-tuning jobs on {FINE_TUNING_CLOSES_ON.isoformat()} (source: {PLATFORM_TIMELINE_SOURCE}). "
            f"Models tuned earlier still answer until their base model retires. {NEXT_STEP}"
        )
    shutdown = base_model_shutdown(base_model)
    if shutdown and today >= shutdown.shutdown_on:
        raise UserError(
            f"OpenAI retired {underlying_base(base_model)!r} on {shutdown.shutdown_on.isoformat()} (source: {shutdown.source}, read {shutdown.read_on}); "
            f"it can no longer be fine-tuned. Use base_model {shutdown.replacement!r}, or provider 'local'."
        )


def check_openai_available(client: Any, base_model: str, today: date, *, openai_platform: bool = True) -> dict[str, Any]:
    """Raise UserError (with the next step) when no job can be created; else return what was checked.

    Makes two read-only calls (model lookup, one job listed); never uploads or creates anything.
    """
    import openai

    if openai_platform:
        _platform_dates(base_model, today)

    try:
        model = client.models.retrieve(base_model)
    except openai.NotFoundError:
        raise UserError(
            f"The model {base_model!r} is not available to this API key (GET /models/{base_model} found nothing). "
            "Check the name (e.g. 'gpt-4.1-mini'), the key's project (OPENAI_PROJECT_ID), or use provider 'local'."
        ) from None
    except openai.APIError as error:
        from model_customization.providers.openai.client import refusal

        raise refusal(f"look up the model {base_model!r}", error) from None
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
        from model_customization.providers.openai.client import api_message

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
        from model_customization.providers.openai.client import refusal

        raise refusal("list fine-tuning jobs (the access check)", error) from None
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
    return checked
