"""The spending guard: no paid job starts unless its quote fits the budgets or someone confirmed the cost.

Budgets are per job and per UTC day (settings; 0 by default, so every paid job needs a confirmation). A job above
them starts only when the caller confirms: through MCP elicitation when the client supports it (the tool adapter
asks, then calls again with `elicited_quote_usd`), or with an explicit `confirm_cost_usd` at least equal to the quote.
What was approved is written to the ledger before the provider is asked to spend anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from model_customization.errors import ConfirmationNeeded, UserError
from model_customization.workspace import Workspace


@dataclass(frozen=True)
class Approval:
    committed_usd: float  # what counts against the daily budget until the provider reports the real bill
    approved_by: str  # free | budget | argument | elicitation


def start_of_utc_day(now: datetime | None = None) -> float:
    now = now or datetime.now(timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _usd(amount: float | None) -> str:
    return "an unknown amount" if amount is None else f"${amount:,.2f}"


def approve_spend(
    ws: Workspace,
    provider: str,
    quote_usd: float | None,
    *,
    confirm_cost_usd: float | None = None,
    elicited_quote_usd: float | None = None,
    elicited: bool = False,
) -> Approval:
    """Approve a job's cost or raise ConfirmationNeeded (whose message names how to confirm)."""
    if quote_usd == 0:
        return Approval(0.0, "free")
    settings = ws.settings
    spent_today = ws.store.spending.since(start_of_utc_day())
    if quote_usd is not None and quote_usd <= settings.budget_per_job_usd and spent_today + quote_usd <= settings.budget_per_day_usd:
        return Approval(quote_usd, "budget")
    if elicited:
        if quote_usd is not None and elicited_quote_usd is not None and quote_usd > elicited_quote_usd:
            raise UserError(f"The quote rose from {_usd(elicited_quote_usd)} to {_usd(quote_usd)} after it was confirmed; call start_job again to confirm the new amount.")
        return Approval(quote_usd or 0.0, "elicitation")
    if quote_usd is not None and confirm_cost_usd is not None and confirm_cost_usd >= quote_usd:
        return Approval(quote_usd, "argument")
    if quote_usd is None and confirm_cost_usd is not None:
        # The provider's price is unknown to us: the confirmed amount is the ceiling the caller accepted.
        return Approval(confirm_cost_usd, "argument")

    if quote_usd is None:
        reason = f"{provider}'s price for this job is not known here, so it cannot be checked against the budget"
    elif quote_usd > settings.budget_per_job_usd:
        reason = f"the quote {_usd(quote_usd)} is above the per-job budget of {_usd(settings.budget_per_job_usd)}"
    else:
        reason = (
            f"the quote {_usd(quote_usd)} with {_usd(spent_today)} already committed today would pass the daily budget of "
            f"{_usd(settings.budget_per_day_usd)}"
        )
    if confirm_cost_usd is not None:  # given, but below the quote
        raise ConfirmationNeeded(
            f"confirm_cost_usd={confirm_cost_usd} is below the quote of {_usd(quote_usd)}; nothing was started. "
            f"Pass confirm_cost_usd={quote_usd} to accept it, or use dry_run=true to see the quote.",
            quote_usd=quote_usd,
            question=f"Start a {provider} fine-tuning job costing about {_usd(quote_usd)}?",
        )
    how = (
        f"pass confirm_cost_usd={quote_usd} (at least the quote) to accept it"
        if quote_usd is not None
        else "pass confirm_cost_usd=<the most you accept to pay> to accept it"
    )
    raise ConfirmationNeeded(
        f"Not started: {reason}. Ask the user, then {how}; or raise the budgets "
        "(MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD, MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD). dry_run=true shows the quote.",
        quote_usd=quote_usd,
        question=f"Start a {provider} fine-tuning job costing about {_usd(quote_usd)}? ({reason})",
    )
