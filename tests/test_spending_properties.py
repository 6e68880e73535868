"""Properties of the spending guard (issue 17, section 4): for random quotes, budgets, consents and call sizes, no paid
call runs above a cap, and none runs without a quote being counted."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_customization.errors import ConfirmationNeeded, UserError
from model_customization.jobs.spending import Allowance, Consent, commit_spend, prompt_tokens_bound, start_of_utc_day

amounts = st.floats(min_value=0, max_value=50, allow_nan=False, allow_infinity=False)
quotes = st.one_of(st.none(), st.just(0.0), amounts)
consents = st.builds(
    Consent,
    human_usd=st.one_of(st.none(), amounts, st.just(math.inf)),
    argument_usd=st.one_of(st.none(), amounts, st.just(1e6)),
)
operations = st.lists(st.tuples(quotes, consents), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    from model_customization.workspace import Workspace

    return Workspace.open(tmp_path_factory.mktemp("spending-home"))


def _clear(ws) -> None:
    from model_customization.store.schema import spend

    with ws.store.transaction() as conn:
        conn.execute(spend.delete())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(per_job=amounts, per_day=amounts, arguments_allowed=st.booleans(), sequence=operations)
def test_every_approval_is_justified_counted_and_the_agent_alone_stays_within_the_budgets(ledger, per_job, per_day, arguments_allowed, sequence):
    ws = ledger
    _clear(ws)
    ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=per_job, budget_per_day_usd=per_day, allow_argument_confirmation=arguments_allowed)
    unattended = 0.0  # what the budgets approved without a person or an allowed argument
    rows = 0
    for number, (quote, consent) in enumerate(sequence):
        before = ws.store.spending.since(start_of_utc_day())
        try:
            approval = commit_spend(ws, f"op-{number}", "openai", quote, consent)
        except (ConfirmationNeeded, UserError):
            assert ws.store.spending.for_job(f"op-{number}") is None  # a refusal records nothing
            continue
        rows += 1
        row = ws.store.spending.for_job(f"op-{number}")
        assert row is not None and row["quoted_usd"] == quote  # counted, with its quote, before anything is sent
        if approval.approved_by == "free":
            assert quote == 0
        elif approval.approved_by == "budget":
            assert quote is not None and quote <= per_job and before + quote <= per_day
            unattended += quote
        elif approval.approved_by == "argument":
            # Only where the operator allowed it, never for an unknown price, and never below the quote.
            assert arguments_allowed and quote is not None and consent.argument_usd is not None and consent.argument_usd >= quote
        else:
            assert approval.approved_by == "elicitation" and consent.human_usd is not None
            assert (quote is None and math.isinf(consent.human_usd)) or (quote is not None and quote <= consent.human_usd)
        if quote is None:  # an unknown price counts as unbounded, never as $0
            assert math.isinf(ws.store.spending.since(start_of_utc_day()))
    assert unattended <= per_day + 1e-9
    assert len([r for r in range(len(sequence)) if ws.store.spending.for_job(f"op-{r}")]) == rows


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(approved=amounts, calls=st.lists(st.tuples(st.text(max_size=400), st.integers(min_value=1, max_value=4096)), max_size=25))
def test_calls_never_draw_past_what_was_approved(ledger, approved, calls):
    allowance = Allowance(ledger, "op-calls", approved)
    sent = 0.0
    for text, max_tokens in calls:
        try:
            bound = allowance.draw("openai", "gpt-4o-mini", [{"role": "user", "content": text}], max_tokens)
        except UserError:
            continue
        assert bound > 0
        sent += bound
        assert sent <= approved + 1e-9
    assert allowance.drawn_usd == pytest.approx(sent)


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(max_size=300), min_size=1, max_size=6))
def test_the_prompt_bound_is_never_below_the_real_token_count(texts):
    from model_customization.datasets.tokens import count_chat_tokens

    messages = [{"role": "user" if n % 2 == 0 else "assistant", "content": text} for n, text in enumerate(texts)]
    assert count_chat_tokens(messages, "o200k_base") <= prompt_tokens_bound(messages)
