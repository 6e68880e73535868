"""The spending guard: no paid call runs unless it was quoted first, counted, and approved by the operator's budgets or
by a person.

Who may approve what:
- The operator's budgets (settings: per job and per UTC day, 0 by default) are what runs without asking anyone. "Per
  job" means one paid operation: a fine-tuning job, one prompt, one evaluation run, one constitutional generation, one
  upload. No tool argument raises them.
- Above them, a person must confirm: through MCP elicitation when the client declared it, or the CLI on a terminal. The
  adapter asks first and passes the amount the person saw as `human_usd` (math.inf when the price was unknown and the
  person accepted that); a quote above what the person saw is refused.
- A tool argument (`confirm_cost_usd`, `confirm=true`) approves only where the operator allowed argument confirmation
  (MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION, off by default), and never an unknown price.

What was approved is written to the ledger before the provider is asked to spend anything, under a lock shared by
every process on the ledger, so concurrent calls cannot together pass a budget. An operation of several paid calls
(an evaluation, a generation) gets an `Allowance`: each call draws its own upper bound from it before it is sent, so
no call runs beyond what was approved even when the operation's quote was short.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from model_customization.errors import ConfirmationNeeded, UserError
from model_customization.workspace import Workspace

ARGUMENT_CONFIRMATION_ENV = "MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION"
BUDGET_VARIABLES = "MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD, MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD"
PRICES_VARIABLE = "MODEL_CUSTOMIZATION_CHAT_PRICES"
# Tokens a chat API adds around each message (role markers, separators) and once per request, at most; generous.
MESSAGE_OVERHEAD_TOKENS = 16
REQUEST_OVERHEAD_TOKENS = 16


@dataclass(frozen=True)
class Approval:
    committed_usd: float  # what counts against the daily budget until the real bill is known
    approved_by: str  # free | budget | argument | elicitation | terminal


@dataclass(frozen=True)
class Consent:
    """What the caller brings besides the operator's budgets: a person's answer, or an argument."""

    human_usd: float | None = None  # the amount a person was shown and accepted; math.inf: accepted an unknown price
    human_via: str = "elicitation"  # elicitation | terminal
    argument_usd: float | None = None  # confirm_cost_usd from the caller's arguments


NO_CONSENT = Consent()


def start_of_utc_day(now: datetime | None = None) -> float:
    now = now or datetime.now(timezone.utc)
    return now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def usd(amount: float | None) -> str:
    if amount is None:
        return "an unknown amount"
    if math.isinf(amount):
        return "an amount not known yet"
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.6f}"


def approve_spend(
    ws: Workspace, provider: str, quote_usd: float | None, consent: Consent = NO_CONSENT, *, what: str = "fine-tuning job", by_argument: bool = True
) -> Approval:
    """Approve a quote or raise ConfirmationNeeded, whose message names who can approve it and how."""
    if quote_usd is not None and (math.isnan(quote_usd) or quote_usd < 0):
        raise UserError(f"The quote for this {what} is not a usable amount ({quote_usd}); nothing was started.")
    if quote_usd == 0:
        return Approval(0.0, "free")
    settings = ws.settings
    spent_today = ws.store.spending.since(start_of_utc_day())
    if quote_usd is not None and quote_usd <= settings.budget_per_job_usd and spent_today + quote_usd <= settings.budget_per_day_usd:
        return Approval(quote_usd, "budget")
    if consent.human_usd is not None:
        if quote_usd is None and not math.isinf(consent.human_usd):
            raise UserError(f"The price of this {what} is no longer known; it was confirmed at {usd(consent.human_usd)}. Call again to be asked anew.")
        if quote_usd is not None and quote_usd > consent.human_usd:
            raise UserError(f"The quote rose from {usd(consent.human_usd)} to {usd(quote_usd)} after it was confirmed; call again to be asked about the new amount.")
        return Approval(quote_usd or 0.0, consent.human_via)
    argument_allowed = settings.allow_argument_confirmation and by_argument  # by_argument: the operation takes confirm_cost_usd
    if argument_allowed and quote_usd is not None and consent.argument_usd is not None and consent.argument_usd >= quote_usd:
        return Approval(quote_usd, "argument")

    if quote_usd is None:
        reason = f"{provider}'s price for this {what} is not known here, so it cannot be checked against the budgets"
    elif quote_usd > settings.budget_per_job_usd:
        reason = f"the quote {usd(quote_usd)} is above the per-job budget of {usd(settings.budget_per_job_usd)}"
    else:
        reason = (
            f"the quote {usd(quote_usd)} with {usd(spent_today)} already committed today would pass the daily budget of "
            f"{usd(settings.budget_per_day_usd)}"
        )
    article = "an" if provider[:1].lower() in "aeiou" else "a"
    question = f"Allow {article} {provider} {what} costing {'at most ' + usd(quote_usd) if quote_usd is not None else 'an unknown amount'}? ({reason})"
    person = "a person must confirm it: use an MCP client that supports elicitation (it asks the user), or the CLI on a terminal"
    operator = f"or the operator raises the budgets ({BUDGET_VARIABLES})"
    if quote_usd is None:
        known = (
            "or choose a base model whose price is known (dry_run=true shows the quote)"
            if by_argument
            else f"or the operator sets the model's price ({PRICES_VARIABLE}) so it can be checked"
        )
        steps = f"An unknown price cannot be confirmed by an amount: {person}; {known}."
    elif argument_allowed:
        if consent.argument_usd is not None:
            steps = f"confirm_cost_usd={consent.argument_usd} is below the quote of {usd(quote_usd)}. Ask the user, then pass confirm_cost_usd={quote_usd}; {person}; {operator}."
        else:
            steps = f"Ask the user, then pass confirm_cost_usd={quote_usd} (at least the quote); {person}; {operator}."
    elif not by_argument:
        steps = f"Above the budgets {person}; {operator}."
    else:
        refused = (
            f"confirm_cost_usd cannot approve spending on this server (the operator has not set {ARGUMENT_CONFIRMATION_ENV}=true). "
            if consent.argument_usd is not None
            else ""
        )
        steps = f"{refused}Above the budgets {person}; {operator}, or allows argument confirmation ({ARGUMENT_CONFIRMATION_ENV}=true)."
    raise ConfirmationNeeded(f"Not started, nothing spent: {reason}. {steps}", quote_usd=quote_usd, question=question)


def commit_spend(
    ws: Workspace, spend_id: str, provider: str, quote_usd: float | None, consent: Consent = NO_CONSENT, *, what: str = "fine-tuning job",
    by_argument: bool = True,
) -> Approval:
    """Approve and record in one step, under the ledger-wide spending lock: two calls at once cannot both fit into the
    last dollar of a budget. The row counts against the day until the real bill replaces it."""
    with ws.store.exclusive("spending"):
        approval = approve_spend(ws, provider, quote_usd, consent, what=what, by_argument=by_argument)
        ws.store.spending.add(
            {"job_id": spend_id, "provider": provider, "quoted_usd": quote_usd, "committed_usd": approval.committed_usd, "approved_by": approval.approved_by}
        )
    return approval


# --- chat calls --------------------------------------------------------------------------------------------------------
def prompt_tokens_bound(messages: list[dict[str, Any]]) -> int:
    """An upper bound on the prompt tokens of a chat request: byte-level BPE tokenizers (OpenAI's, Anthropic's) never
    make more tokens than bytes, and the JSON form of each message holds at least its text's bytes."""
    size = sum(len(json.dumps(message, ensure_ascii=False, default=str).encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS for message in messages)
    return size + REQUEST_OVERHEAD_TOKENS


def chat_call_bound_usd(provider: str, model: str, prompt_tokens: int, max_tokens: int) -> float | None:
    """The most one chat call can cost at the price table's rates: every prompt token and max_tokens answered."""
    from model_customization.evaluation.pricing import chat_price  # the price table loads the provider registry

    price = chat_price(provider, model)
    if price is None:
        return None
    return (prompt_tokens * price[0] + max_tokens * price[1]) / 1_000_000


@dataclass
class Allowance:
    """Money approved for one operation; each paid call draws its upper bound before it is sent and settles after."""

    ws: Workspace
    spend_id: str
    approved_usd: float  # math.inf: a person accepted an unknown price
    drawn_usd: float = 0.0  # bounds of the calls sent so far
    billed_usd: float = 0.0  # what the calls cost, where the provider reported tokens (else their bound)
    calls: int = 0
    unpriced_calls: int = 0  # calls at an unknown price (a person accepted that): their bill stays unknown
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def draw(self, provider: str, model: str, messages: list[dict[str, Any]], max_tokens: int) -> float:
        bound = chat_call_bound_usd(provider, model, prompt_tokens_bound(messages), max_tokens)
        with self._lock:
            if bound is None and not math.isinf(self.approved_usd):
                raise UserError(f"No price is known for {provider} model {model!r}, so this call was not sent; set its price in {PRICES_VARIABLE}.")
            cost = bound if bound is not None else 0.0
            if self.drawn_usd + cost > self.approved_usd + 1e-12:
                raise UserError(
                    f"This {provider} call (at most {usd(cost)}) would pass the {usd(self.approved_usd)} approved for the operation "
                    f"({usd(self.drawn_usd)} already drawn), so it was not sent. Run it again with a lower max_tokens or fewer cases, or approve more."
                )
            self.drawn_usd += cost
            self.calls += 1
        return cost

    def refund(self, bound_usd: float) -> None:
        """A call that was drawn for but not billed (the provider refused or failed it)."""
        with self._lock:
            self.drawn_usd -= bound_usd
            self.calls -= 1

    def settle(self, provider: str, model: str, bound_usd: float, result: dict[str, Any] | None) -> None:
        """Count what a sent call cost: from its reported tokens, else its bound (a failed call may still be billed)."""
        from model_customization.evaluation.pricing import answer_cost_usd

        cost = None
        if result is not None:
            cost = answer_cost_usd(provider, model, result.get("prompt_tokens"), result.get("completion_tokens"))
        with self._lock:
            if cost is None and chat_call_bound_usd(provider, model, 0, 0) is None:
                self.unpriced_calls += 1
            self.billed_usd += bound_usd if cost is None else cost

    def close(self) -> None:
        """The operation ended: its bill replaces what was committed. Until then (and after a crash) the whole approved
        amount counts, so operations running side by side cannot together pass the daily budget."""
        with self._lock:
            billed, unpriced = round(self.billed_usd, 8), self.unpriced_calls
        if not unpriced:  # else the bill is unknown and keeps counting as such (see SpendingRepository.since)
            self.ws.store.spending.set_actual(self.spend_id, billed)


def new_spend_id(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(6)}"


def authorize_chat_operation(
    ws: Workspace, provider: str, quote_usd: float | None, consent: Consent = NO_CONSENT, *, what: str, kind: str
) -> Allowance | None:
    """The Allowance for an operation of paid chat calls quoted at `quote_usd`; None when it has nothing to pay
    (its calls are free: only paid calls need an allowance)."""
    if quote_usd == 0:
        return None
    spend_id = new_spend_id(kind)
    approval = commit_spend(ws, spend_id, provider, quote_usd, consent, what=what, by_argument=False)
    return Allowance(ws, spend_id, approval.committed_usd if quote_usd is not None else math.inf)
