"""The spending guard on its own: budgets per job and per day, who may confirm above them, unknown prices."""

from __future__ import annotations

import pytest

from model_customization.errors import UserError
import math

from model_customization.jobs.spending import ConfirmationNeeded, Consent, approve_spend
from model_customization.workspace import Workspace


def _workspace(tmp_path, monkeypatch, per_job: str | None = None, per_day: str | None = None, arguments: str | None = None) -> Workspace:
    for name, value in (
        ("MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD", per_job),
        ("MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD", per_day),
        ("MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION", arguments),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return Workspace.open(tmp_path / "home")


def _commit(ws: Workspace, job_id: str, approval) -> None:
    ws.store.spending.add({"job_id": job_id, "provider": "openai", "quoted_usd": approval.committed_usd, "committed_usd": approval.committed_usd, "approved_by": approval.approved_by})


def test_default_budget_is_zero_so_every_paid_job_needs_a_person(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch)
    with pytest.raises(ConfirmationNeeded) as refused:
        approve_spend(ws, "openai", 0.42)
    message = str(refused.value)
    assert "per-job budget of $0.00" in message and "a person must confirm" in message
    assert "MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION=true" in message
    assert refused.value.quote_usd == 0.42
    # A free job (quote 0) never asks.
    assert approve_spend(ws, "openai", 0.0).approved_by == "free"


def test_an_argument_never_approves_unless_the_operator_allowed_it(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch)
    with pytest.raises(ConfirmationNeeded, match="confirm_cost_usd cannot approve spending on this server"):
        approve_spend(ws, "openai", 0.42, Consent(argument_usd=1e6))
    allowed = _workspace(tmp_path, monkeypatch, arguments="true")
    with pytest.raises(ConfirmationNeeded, match=r"confirm_cost_usd=0.4 is below the quote of \$0.42"):
        approve_spend(allowed, "openai", 0.42, Consent(argument_usd=0.40))
    approval = approve_spend(allowed, "openai", 0.42, Consent(argument_usd=0.42))
    assert (approval.committed_usd, approval.approved_by) == (0.42, "argument")


def test_over_the_per_job_budget_is_refused_and_within_it_approved(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch, per_job="5", per_day="100")
    assert approve_spend(ws, "openai", 4.99).approved_by == "budget"
    with pytest.raises(ConfirmationNeeded, match=r"above the per-job budget of \$5.00"):
        approve_spend(ws, "openai", 5.01)


def test_daily_cap_counts_every_job_of_the_day(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch, per_job="6", per_day="10")
    _commit(ws, "job-1", approve_spend(ws, "openai", 4.0))
    _commit(ws, "job-2", approve_spend(ws, "openai", 5.0))  # 9 of 10
    with pytest.raises(ConfirmationNeeded, match=r"\$9.00 already committed today would pass the daily budget of \$10.00"):
        approve_spend(ws, "openai", 2.0)
    # A job whose provider reported the real (lower) bill frees the difference.
    ws.store.spending.set_actual("job-2", 3.0)
    assert approve_spend(ws, "openai", 2.0).approved_by == "budget"  # 4 + 3 + 2 <= 10
    # Yesterday's spend does not count today.
    from model_customization.store import schema as ledger_module

    with ws.store.transaction() as conn:
        conn.execute(ledger_module.spend.update().values(at=0.0))
    assert ws.store.spending.since(0.5) == 0.0
    assert approve_spend(ws, "openai", 5.5).approved_by == "budget"


def test_unknown_price_is_never_confirmed_by_an_amount_only_by_a_person(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch, per_job="1000", per_day="1000", arguments="true")
    for amount in (None, 0.0, 30.0, 1e6):
        with pytest.raises(ConfirmationNeeded, match="An unknown price cannot be confirmed by an amount") as refused:
            approve_spend(ws, "bedrock", None, Consent(argument_usd=amount))
        assert "dry_run=true" in str(refused.value)
    approval = approve_spend(ws, "bedrock", None, Consent(human_usd=math.inf))
    assert approval.approved_by == "elicitation"
    # Recorded without a quote, it counts as unbounded until the bill is known: nothing else runs unasked today.
    _commit_unknown = {"job_id": "job-u", "provider": "bedrock", "quoted_usd": None, "committed_usd": 0.0, "approved_by": "elicitation"}
    ws.store.spending.add(_commit_unknown)
    assert math.isinf(ws.store.spending.since(0))
    with pytest.raises(ConfirmationNeeded, match="already committed today"):
        approve_spend(ws, "openai", 0.01)
    ws.store.spending.set_actual("job-u", 2.0)
    assert ws.store.spending.since(0) == 2.0


def test_a_person_confirms_the_amount_they_saw_and_no_more(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch)
    assert approve_spend(ws, "openai", 1.0, Consent(human_usd=1.0)).approved_by == "elicitation"
    assert approve_spend(ws, "openai", 1.0, Consent(human_usd=1.0, human_via="terminal")).approved_by == "terminal"
    with pytest.raises(UserError, match="quote rose"):
        approve_spend(ws, "openai", 1.5, Consent(human_usd=1.0))


def test_a_bad_budget_setting_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD", "lots")
    with pytest.raises(ValueError, match="MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD='lots'"):
        Workspace.open(tmp_path / "home")


def test_a_job_approved_twice_is_counted_once(tmp_path, monkeypatch):
    ws = _workspace(tmp_path, monkeypatch)
    _commit(ws, "job-1", approve_spend(ws, "openai", 2.0, Consent(human_usd=2.0)))
    _commit(ws, "job-1", approve_spend(ws, "openai", 2.0, Consent(human_usd=2.0)))  # resubmitted after a crash
    assert ws.store.spending.since(0) == 2.0
