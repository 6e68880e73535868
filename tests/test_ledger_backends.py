"""Every Ledger method, on SQLite and on a real PostgreSQL server (the `store_url` fixture runs each test on both).

The same code must behave the same on both: JSON columns come back as the structures stored, float timestamps keep
their precision, autoincrement ids count up, transactions and foreign keys hold, and claims of a queued job are atomic.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest

from model_customization.jobs.ledger import HEAD_REVISION, Ledger, this_host

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ledger(store_url: str):
    opened = Ledger(store_url, lease_seconds=30)
    yield opened
    opened.close()


def _dataset(ledger: Ledger, dataset_id: str = "ds-1", created_at: float | None = None) -> None:
    ledger.add_dataset(
        {"id": dataset_id, "name": "memory", "created_at": created_at or time.time(), "path": f"/data/{dataset_id}", "counts": {"train": 12, "test": 3}, "card": {"method": "sft", "drops": {"empty": 2}, "ok": True}}
    )


def _job(ledger: Ledger, job_id: str, **extra) -> None:
    row = {"id": job_id, "provider": "local", "base_model": "base", "dataset_id": "ds-1", "method": "sft", "hyperparameters": {"epochs": 2, "lr": 1e-4, "targets": ["q_proj", "v_proj"]}, "status": "queued", "queued_at": time.time()}
    ledger.add_job({**row, **extra})


def test_opens_at_the_newest_schema_and_reopens(ledger: Ledger, store_url: str) -> None:
    assert ledger.schema_revision() == HEAD_REVISION
    assert ledger.dialect in ("sqlite", "postgresql")
    again = Ledger(store_url)
    assert again.schema_revision() == HEAD_REVISION
    again.close()


def test_datasets_round_trip_json_and_order(ledger: Ledger) -> None:
    _dataset(ledger, "ds-old", created_at=1000.25)
    _dataset(ledger, "ds-new", created_at=2000.5)
    row = ledger.get_dataset("ds-old")
    assert row["counts"] == {"train": 12, "test": 3} and row["card"]["drops"] == {"empty": 2} and row["card"]["ok"] is True
    assert row["created_at"] == 1000.25
    assert [d["id"] for d in ledger.list_datasets()] == ["ds-new", "ds-old"]
    assert ledger.get_dataset("missing") is None


def test_jobs_events_metrics_and_progress(ledger: Ledger) -> None:
    _dataset(ledger)
    _job(ledger, "job-a")
    _job(ledger, "job-b", provider="openai", idempotency_key="key-1", details={"files": {"train": "file-1"}})
    job = ledger.get_job("job-a")
    assert job["status"] == "queued" and job["step"] == 0 and job["hyperparameters"]["targets"] == ["q_proj", "v_proj"]
    assert job["created_at"] == job["updated_at"] and isinstance(job["created_at"], float)
    assert {j["id"] for j in ledger.list_jobs()} == {"job-a", "job-b"}
    assert [j["id"] for j in ledger.list_jobs("queued")] and ledger.list_jobs("running") == []
    assert ledger.job_by_idempotency_key("openai", "key-1")["details"] == {"files": {"train": "file-1"}}
    assert ledger.job_by_idempotency_key("bedrock", "key-1") is None

    ledger.update_job("job-a", total_steps=4, details={"checkpoints": ["checkpoint-2"]})
    assert ledger.get_job("job-a")["details"] == {"checkpoints": ["checkpoint-2"]}

    ledger.add_event("job-a", "started")
    ledger.add_event("job-a", "slow", "warning")
    events = ledger.events("job-a")
    assert [e["message"] for e in events] == ["job created", "started", "slow"] and events[-1]["level"] == "warning"
    assert [e["message"] for e in ledger.events("job-a", limit=2)] == ["started", "slow"]
    assert events[0]["id"] < events[1]["id"] < events[2]["id"]  # autoincrement ids

    for step in (1, 2, 3):
        ledger.record_step("job-a", {"step": step, "epoch": step / 4, "train_loss": 2.0 / step, "tokens_per_second": 100.0 * step}, step=step, train_loss=2.0 / step)
    ledger.add_metric("job-a", step=4, epoch=1.0, validation_loss=0.5)
    assert [m["step"] for m in ledger.metrics("job-a")] == [1, 2, 3, 4]
    assert ledger.get_job("job-a")["step"] == 3 and ledger.get_job("job-a")["train_loss"] == pytest.approx(2 / 3)
    ledger.drop_metrics_after("job-a", 2)
    assert [m["step"] for m in ledger.metrics("job-a")] == [1, 2]

    assert ledger.local_speed_history("base") == []  # not finished yet
    assert ledger.finish_job("job-a", "succeeded", model_id="model-a") is True
    assert ledger.finish_job("job-a", "failed", error="late") is False  # ends once
    assert ledger.get_job("job-a")["status"] == "succeeded"
    assert ledger.local_speed_history("base") == [pytest.approx(150.0)]  # mean tokens/s of steps 1 and 2
    assert ledger.finish_job("job-a", "failed", only_if_active=False, error="forced") is True
    assert ledger.get_job("job-a")["error"] == "forced"


def test_foreign_keys_hold(ledger: Ledger) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        _job(ledger, "job-orphan", dataset_id="no-such-dataset")
    assert ledger.get_job("job-orphan") is None


def test_a_failed_transaction_leaves_nothing(ledger: Ledger) -> None:
    from model_customization.jobs.ledger import job_events

    _dataset(ledger)
    _job(ledger, "job-a")
    with pytest.raises(RuntimeError):
        with ledger.transaction() as conn:
            conn.execute(job_events.insert().values(job_id="job-a", at=time.time(), level="info", message="half-way"))
            raise RuntimeError("crash in the middle")
    assert [e["message"] for e in ledger.events("job-a")] == ["job created"]


def test_models_spend_and_provider_files(ledger: Ledger) -> None:
    ledger.add_model({"id": "m-1", "provider": "local", "kind": "tuned", "base_model": "base", "path": "/a", "job_id": "job-a", "dataset_id": "ds-1", "details": {"alias": ["x"]}})
    ledger.add_model({"id": "m-2", "provider": "openai", "kind": "base", "base_model": "gpt"})
    ledger.update_model("m-1", details={"alias": ["x", "y"]})
    assert ledger.get_model("m-1")["details"] == {"alias": ["x", "y"]}
    assert {m["id"] for m in ledger.list_models()} == {"m-1", "m-2"} and ledger.get_model("m-3") is None

    before = time.time() - 1
    ledger.add_spend({"job_id": "job-b", "provider": "openai", "quoted_usd": 1.5, "committed_usd": 2.0, "approved_by": "budget"})
    ledger.add_spend({"job_id": "job-b", "provider": "openai", "quoted_usd": 1.5, "committed_usd": 2.5, "approved_by": "argument"})  # replaces
    ledger.add_spend({"job_id": "job-c", "provider": "openai", "quoted_usd": None, "committed_usd": 4.0, "approved_by": "elicitation"})
    assert ledger.spend_since(before) == pytest.approx(6.5)
    ledger.set_actual_spend("job-b", 0.75)
    assert ledger.spend_since(before) == pytest.approx(4.75)
    assert ledger.spend_since(time.time() + 60) == 0.0
    assert ledger.spend_for_job("job-b")["approved_by"] == "argument" and ledger.spend_for_job("job-z") is None

    ledger.add_provider_file({"provider": "openai", "sha256": "abc", "remote_id": "file-1", "filename": "train.jsonl", "bytes": 10})
    ledger.add_provider_file({"provider": "openai", "sha256": "abc", "remote_id": "file-2", "filename": "train.jsonl", "bytes": 10})
    assert [f["remote_id"] for f in ledger.find_provider_file("openai", "abc")] == ["file-2", "file-1"]
    ledger.forget_provider_file("openai", "file-2")
    assert [f["remote_id"] for f in ledger.find_provider_file("openai", "abc")] == ["file-1"]
    assert ledger.find_provider_file("bedrock", "abc") == []


def test_evaluations_and_their_results(ledger: Ledger) -> None:
    ledger.add_evaluation({"id": "ev-1", "dataset_id": "ds-1", "models": ["a", "b"], "status": "running", "summary": {}, "path": "/r", "plan": {"cases": 3}})
    ledger.update_evaluation("ev-1", status="succeeded", summary={"a": {"rouge": 0.5}})
    row = ledger.get_evaluation("ev-1")
    assert row["status"] == "succeeded" and row["summary"] == {"a": {"rouge": 0.5}} and row["models"] == ["a", "b"] and row["updated_at"]
    ledger.add_evaluation_results("ev-1", [(1, "answer:a", {"text": "one"}), (0, "answer:a", {"text": "zero"})])
    ledger.add_evaluation_results("ev-1", [(0, "answer:a", {"text": "changed"}), (0, "judge:a", {"score": 4})])  # stored pieces are kept
    ledger.add_evaluation_results("ev-1", [])
    results = ledger.evaluation_results("ev-1")
    assert [(r["case_index"], r["unit"]) for r in results] == [(0, "answer:a"), (0, "judge:a"), (1, "answer:a")]
    assert results[0]["payload"] == {"text": "zero"}
    assert [e["id"] for e in ledger.list_evaluations()] == ["ev-1"] and ledger.get_evaluation("ev-2") is None


def test_deployments_and_agent_suites(ledger: Ledger) -> None:
    first = ledger.add_deployment({"agent": "triage", "task": None, "model": "m-1", "action": "deploy", "gate": "first", "details": {"n": 1}})
    second = ledger.add_deployment({"agent": "triage", "task": None, "model": "m-2", "action": "deploy", "replaces_id": first, "gate": "better"})
    assert second > first
    assert [d["model"] for d in ledger.deployments_of("triage")] == ["m-1", "m-2"] and ledger.deployments_of("triage")[0]["details"] == {"n": 1}
    suite = ledger.add_agent_suite({"agent": "review", "task": "lint", "dataset_id": "ds-1", "split": "test", "cases": 3, "cases_sha256": "f00"})
    assert isinstance(suite, int)
    assert [s["cases"] for s in ledger.agent_suites_of("review")] == [3]
    assert ledger.list_agents() == ["review", "triage"]


def test_reserve_attach_claim_and_lease(ledger: Ledger) -> None:
    _dataset(ledger)
    _job(ledger, "job-a")
    assert ledger.reserve_job("job-a", "host-1") is True
    assert ledger.reserve_job("job-a", "host-2") is False  # held by host-1's dispatcher
    job = ledger.get_job("job-a")
    assert job["worker_host"] == "host-1" and job["lease_expires_at"] > time.time() + 20
    assert ledger.release_job("job-a") is False  # the lease has not run out
    assert ledger.attach_worker("job-a", 4242, "host-2") is False  # not host-2's reservation
    assert ledger.attach_worker("job-a", 4242, "host-1") is True
    assert ledger.get_job("job-a")["worker_pid"] == 4242 and ledger.get_job("job-a")["attempts"] == 1
    assert ledger.claim_job("job-a", 4242, "host-1") is True
    assert ledger.claim_job("job-a", 5555, "host-2") is False  # running already
    assert ledger.renew_lease("job-a", 4242, "host-1") is True
    assert ledger.renew_lease("job-a", 5555, "host-2") is False
    ledger.finish_job("job-a", "succeeded")
    assert ledger.renew_lease("job-a", 4242, "host-1") is False  # nothing to hold once it ended

    _job(ledger, "job-b")
    ledger.update_job("job-b", worker_host="gone-host", lease_expires_at=time.time() - 1)  # its dispatcher died
    assert ledger.reserve_job("job-b", "host-1") is True  # an expired reservation can be taken
    ledger.update_job("job-b", lease_expires_at=time.time() - 1)
    assert ledger.release_job("job-b") is True
    assert ledger.get_job("job-b")["worker_host"] is None


def test_heartbeat_renews_and_reports_a_cancelled_job(ledger: Ledger) -> None:
    import os

    _dataset(ledger)
    _job(ledger, "job-a")
    assert ledger.claim_job("job-a", os.getpid())
    assert ledger.get_job("job-a")["worker_host"] == this_host()
    lost: list = []
    with ledger.lease_heartbeat("job-a", os.getpid(), on_lost=lost.append, interval=0.05):
        ledger.update_job("job-a", lease_expires_at=time.time() + 0.5)
        deadline = time.monotonic() + 10
        while ledger.get_job("job-a")["lease_expires_at"] < time.time() + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ledger.get_job("job-a")["lease_expires_at"] > time.time() + 20  # renewed to a full lease
        ledger.finish_job("job-a", "cancelled")
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(lost) == 1 and lost[0]["status"] == "cancelled"


def test_heartbeat_notices_a_takeover_and_stays_quiet_when_the_job_just_ends(ledger: Ledger) -> None:
    import os

    _dataset(ledger)
    _job(ledger, "job-a")
    _job(ledger, "job-b")
    for job_id in ("job-a", "job-b"):
        assert ledger.claim_job(job_id, os.getpid())
    lost: list = []
    with ledger.lease_heartbeat("job-a", os.getpid(), on_lost=lost.append, interval=0.05), ledger.lease_heartbeat("job-b", os.getpid(), on_lost=lost.append, interval=0.05):
        time.sleep(0.3)  # both beat while running
        ledger.finish_job("job-b", "succeeded")  # this worker's own result: not a loss
        ledger.update_job("job-a", worker_pid=999999, worker_host="other-host")  # another server took it over
        deadline = time.monotonic() + 10
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    assert [j["id"] for j in lost] == ["job-a"]


def test_exclusive_lock_is_shared_between_ledger_objects(ledger: Ledger, store_url: str) -> None:
    import threading

    other = Ledger(store_url)
    order: list[str] = []
    with ledger.exclusive("dispatch"):
        waiter = threading.Thread(target=lambda: (other.exclusive("dispatch").__enter__(), order.append("other got it")))
        waiter.start()
        time.sleep(0.5)
        order.append("first releases")
    waiter.join(10)
    assert order == ["first releases", "other got it"]
    other.close()


def _claim_in_process(url: str, job_ids: list[str], barrier, results) -> None:
    import os
    import random

    claimer = Ledger(url)
    random.shuffle(job_ids)  # each process goes through the jobs in its own order
    barrier.wait(60)  # every process connected: all claim at once
    for job_id in job_ids:
        results.put((job_id, os.getpid(), claimer.claim_job(job_id, os.getpid(), f"host-{os.getpid()}")))
    claimer.close()


def test_claims_racing_from_processes_have_exactly_one_winner(ledger: Ledger, store_url: str) -> None:
    _dataset(ledger)
    job_ids = [f"job-{n}" for n in range(5)]
    for job_id in job_ids:
        _job(ledger, job_id)
    context = multiprocessing.get_context("fork")  # fork: no re-import, the race starts within milliseconds
    results = context.Queue()
    barrier = context.Barrier(4)
    processes = [context.Process(target=_claim_in_process, args=(store_url, list(job_ids), barrier, results)) for _ in range(4)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in range(len(processes) * len(job_ids))]
    for process in processes:
        process.join(30)
    for job_id in job_ids:
        winners = [pid for claimed, pid, won in outcomes if claimed == job_id and won]
        assert len(winners) == 1, (job_id, outcomes)
        job = ledger.get_job(job_id)
        assert job["status"] == "running" and job["worker_pid"] == winners[0] and job["worker_host"] == f"host-{winners[0]}"
