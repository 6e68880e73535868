"""Every Ledger method, on SQLite and on a real PostgreSQL server (the `store_url` fixture runs each test on both).

The same code must behave the same on both: JSON columns come back as the structures stored, float timestamps keep
their precision, autoincrement ids count up, transactions and foreign keys hold, and claims of a queued job are atomic.
"""

from __future__ import annotations

import multiprocessing
import math
import time

import pytest

from model_customization.store.database import HEAD_REVISION, Store
from model_customization.store.status import this_host

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def store(store_url: str):
    opened = Store(store_url, lease_seconds=30)
    yield opened
    opened.close()


def _dataset(store: Store, dataset_id: str = "ds-1", created_at: float | None = None) -> None:
    store.datasets.add(
        {"id": dataset_id, "name": "memory", "created_at": created_at or time.time(), "path": f"/data/{dataset_id}", "counts": {"train": 12, "test": 3}, "card": {"method": "sft", "drops": {"empty": 2}, "ok": True}}
    )


def _job(store: Store, job_id: str, **extra) -> None:
    row = {"id": job_id, "provider": "local", "base_model": "base", "dataset_id": "ds-1", "method": "sft", "hyperparameters": {"epochs": 2, "lr": 1e-4, "targets": ["q_proj", "v_proj"]}, "status": "queued", "queued_at": time.time()}
    store.jobs.add({**row, **extra})


def test_opens_at_the_newest_schema_and_reopens(store: Store, store_url: str) -> None:
    assert store.schema_revision() == HEAD_REVISION
    assert store.dialect in ("sqlite", "postgresql")
    again = Store(store_url)
    assert again.schema_revision() == HEAD_REVISION
    again.close()


def test_datasets_round_trip_json_and_order(store: Store) -> None:
    _dataset(store, "ds-old", created_at=1000.25)
    _dataset(store, "ds-new", created_at=2000.5)
    row = store.datasets.get("ds-old")
    assert row["counts"] == {"train": 12, "test": 3} and row["card"]["drops"] == {"empty": 2} and row["card"]["ok"] is True
    assert row["created_at"] == 1000.25
    assert [d["id"] for d in store.datasets.all()] == ["ds-new", "ds-old"]
    assert store.datasets.get("missing") is None


def test_jobs_events_metrics_and_progress(store: Store) -> None:
    _dataset(store)
    _job(store, "job-a")
    _job(store, "job-b", provider="openai", idempotency_key="key-1", details={"files": {"train": "file-1"}})
    job = store.jobs.get("job-a")
    assert job["status"] == "queued" and job["step"] == 0 and job["hyperparameters"]["targets"] == ["q_proj", "v_proj"]
    assert job["created_at"] == job["updated_at"] and isinstance(job["created_at"], float)
    assert {j["id"] for j in store.jobs.all()} == {"job-a", "job-b"}
    assert [j["id"] for j in store.jobs.all("queued")] and store.jobs.all("running") == []
    assert store.jobs.by_idempotency_key("openai", "key-1")["details"] == {"files": {"train": "file-1"}}
    assert store.jobs.by_idempotency_key("bedrock", "key-1") is None

    store.jobs.update("job-a", total_steps=4, details={"checkpoints": ["checkpoint-2"]})
    assert store.jobs.get("job-a")["details"] == {"checkpoints": ["checkpoint-2"]}

    store.jobs.add_event("job-a", "started")
    store.jobs.add_event("job-a", "slow", "warning")
    events = store.jobs.events("job-a")
    assert [e["message"] for e in events] == ["job created", "started", "slow"] and events[-1]["level"] == "warning"
    assert [e["message"] for e in store.jobs.events("job-a", limit=2)] == ["started", "slow"]
    assert events[0]["id"] < events[1]["id"] < events[2]["id"]  # autoincrement ids

    for step in (1, 2, 3):
        store.jobs.record_step("job-a", {"step": step, "epoch": step / 4, "train_loss": 2.0 / step, "tokens_per_second": 100.0 * step}, step=step, train_loss=2.0 / step)
    store.jobs.add_metric("job-a", step=4, epoch=1.0, validation_loss=0.5)
    assert [m["step"] for m in store.jobs.metrics("job-a")] == [1, 2, 3, 4]
    assert store.jobs.get("job-a")["step"] == 3 and store.jobs.get("job-a")["train_loss"] == pytest.approx(2 / 3)
    store.jobs.drop_metrics_after("job-a", 2)
    assert [m["step"] for m in store.jobs.metrics("job-a")] == [1, 2]

    assert store.jobs.speed_history("local", "base") == []  # not finished yet
    assert store.jobs.finish("job-a", "succeeded", model_id="model-a") is True
    assert store.jobs.finish("job-a", "failed", error="late") is False  # ends once
    assert store.jobs.get("job-a")["status"] == "succeeded"
    assert store.jobs.speed_history("local", "base") == [pytest.approx(150.0)]  # mean tokens/s of steps 1 and 2
    assert store.jobs.finish("job-a", "failed", only_if_active=False, error="forced") is True
    assert store.jobs.get("job-a")["error"] == "forced"


def test_foreign_keys_hold(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        _job(store, "job-orphan", dataset_id="no-such-dataset")
    assert store.jobs.get("job-orphan") is None


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    from model_customization.store.schema import job_events

    _dataset(store)
    _job(store, "job-a")
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            conn.execute(job_events.insert().values(job_id="job-a", at=time.time(), level="info", message="half-way"))
            raise RuntimeError("crash in the middle")
    assert [e["message"] for e in store.jobs.events("job-a")] == ["job created"]


def test_models_spend_and_provider_files(store: Store) -> None:
    store.models.add({"id": "m-1", "provider": "local", "kind": "tuned", "base_model": "base", "path": "/a", "job_id": "job-a", "dataset_id": "ds-1", "details": {"alias": ["x"]}})
    store.models.add({"id": "m-2", "provider": "openai", "kind": "base", "base_model": "gpt"})
    store.models.update("m-1", details={"alias": ["x", "y"]})
    assert store.models.get("m-1")["details"] == {"alias": ["x", "y"]}
    assert {m["id"] for m in store.models.all()} == {"m-1", "m-2"} and store.models.get("m-3") is None

    before = time.time() - 1
    store.spending.add({"job_id": "job-b", "provider": "openai", "quoted_usd": 1.5, "committed_usd": 2.0, "approved_by": "budget"})
    store.spending.add({"job_id": "job-b", "provider": "openai", "quoted_usd": 1.5, "committed_usd": 2.5, "approved_by": "argument"})  # replaces
    assert store.spending.since(before) == pytest.approx(2.5)
    # Approved at an unknown price: unbounded until its bill is known, never counted as what was written down.
    store.spending.add({"job_id": "job-c", "provider": "openai", "quoted_usd": None, "committed_usd": 4.0, "approved_by": "elicitation"})
    assert math.isinf(store.spending.since(before))
    store.spending.set_actual("job-c", 4.0)
    assert store.spending.since(before) == pytest.approx(6.5)
    store.spending.set_actual("job-b", 0.75)
    assert store.spending.since(before) == pytest.approx(4.75)
    assert store.spending.since(time.time() + 60) == 0.0
    assert store.spending.for_job("job-b")["approved_by"] == "argument" and store.spending.for_job("job-z") is None

    store.provider_files.add({"provider": "openai", "sha256": "abc", "remote_id": "file-1", "filename": "train.jsonl", "bytes": 10})
    store.provider_files.add({"provider": "openai", "sha256": "abc", "remote_id": "file-2", "filename": "train.jsonl", "bytes": 10})
    assert [f["remote_id"] for f in store.provider_files.find("openai", "abc")] == ["file-2", "file-1"]
    store.provider_files.forget("openai", "file-2")
    assert [f["remote_id"] for f in store.provider_files.find("openai", "abc")] == ["file-1"]
    assert store.provider_files.find("bedrock", "abc") == []


def test_evaluations_and_their_results(store: Store) -> None:
    store.evaluations.add({"id": "ev-1", "dataset_id": "ds-1", "models": ["a", "b"], "status": "running", "summary": {}, "path": "/r", "plan": {"cases": 3}})
    store.evaluations.update("ev-1", status="succeeded", summary={"a": {"rouge": 0.5}})
    row = store.evaluations.get("ev-1")
    assert row["status"] == "succeeded" and row["summary"] == {"a": {"rouge": 0.5}} and row["models"] == ["a", "b"] and row["updated_at"]
    store.evaluations.add_results("ev-1", [(1, "answer:a", {"text": "one"}), (0, "answer:a", {"text": "zero"})])
    store.evaluations.add_results("ev-1", [(0, "answer:a", {"text": "changed"}), (0, "judge:a", {"score": 4})])  # stored pieces are kept
    store.evaluations.add_results("ev-1", [])
    results = store.evaluations.results("ev-1")
    assert [(r["case_index"], r["unit"]) for r in results] == [(0, "answer:a"), (0, "judge:a"), (1, "answer:a")]
    assert results[0]["payload"] == {"text": "zero"}
    assert [e["id"] for e in store.evaluations.all()] == ["ev-1"] and store.evaluations.get("ev-2") is None


def test_deployments_and_agent_suites(store: Store) -> None:
    first = store.deployments.add({"agent": "triage", "task": None, "model": "m-1", "action": "deploy", "gate": "first", "details": {"n": 1}})
    second = store.deployments.add({"agent": "triage", "task": None, "model": "m-2", "action": "deploy", "replaces_id": first, "gate": "better"})
    assert second > first
    assert [d["model"] for d in store.deployments.of("triage")] == ["m-1", "m-2"] and store.deployments.of("triage")[0]["details"] == {"n": 1}
    suite = store.deployments.add_suite({"agent": "review", "task": "lint", "dataset_id": "ds-1", "split": "test", "cases": 3, "cases_sha256": "f00"})
    assert isinstance(suite, int)
    assert [s["cases"] for s in store.deployments.suites_of("review")] == [3]
    assert store.deployments.agents() == ["review", "triage"]


def test_reserve_attach_claim_and_lease(store: Store) -> None:
    _dataset(store)
    _job(store, "job-a")
    assert store.jobs.reserve("job-a", "host-1") is True
    assert store.jobs.reserve("job-a", "host-2") is False  # held by host-1's dispatcher
    job = store.jobs.get("job-a")
    assert job["worker_host"] == "host-1" and job["lease_expires_at"] > time.time() + 20
    assert store.jobs.release("job-a") is False  # the lease has not run out
    assert store.jobs.attach_worker("job-a", 4242, "host-2") is False  # not host-2's reservation
    assert store.jobs.attach_worker("job-a", 4242, "host-1") is True
    assert store.jobs.get("job-a")["worker_pid"] == 4242 and store.jobs.get("job-a")["attempts"] == 1
    assert store.jobs.claim("job-a", 4242, "host-1") is True
    assert store.jobs.claim("job-a", 5555, "host-2") is False  # running already
    assert store.jobs.renew_lease("job-a", 4242, "host-1") is True
    assert store.jobs.renew_lease("job-a", 5555, "host-2") is False
    store.jobs.finish("job-a", "succeeded")
    assert store.jobs.renew_lease("job-a", 4242, "host-1") is False  # nothing to hold once it ended

    _job(store, "job-b")
    store.jobs.update("job-b", worker_host="gone-host", lease_expires_at=time.time() - 1)  # its dispatcher died
    assert store.jobs.reserve("job-b", "host-1") is True  # an expired reservation can be taken
    store.jobs.update("job-b", lease_expires_at=time.time() - 1)
    assert store.jobs.release("job-b") is True
    assert store.jobs.get("job-b")["worker_host"] is None


def test_heartbeat_renews_and_reports_a_cancelled_job(store: Store) -> None:
    import os

    _dataset(store)
    _job(store, "job-a")
    assert store.jobs.claim("job-a", os.getpid())
    assert store.jobs.get("job-a")["worker_host"] == this_host()
    lost: list = []
    with store.jobs.lease_heartbeat("job-a", os.getpid(), on_lost=lost.append, interval=0.05):
        store.jobs.update("job-a", lease_expires_at=time.time() + 0.5)
        deadline = time.monotonic() + 10
        while store.jobs.get("job-a")["lease_expires_at"] < time.time() + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.jobs.get("job-a")["lease_expires_at"] > time.time() + 20  # renewed to a full lease
        store.jobs.finish("job-a", "cancelled")
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(lost) == 1 and lost[0]["status"] == "cancelled"


def test_heartbeat_notices_a_takeover_and_stays_quiet_when_the_job_just_ends(store: Store) -> None:
    import os

    _dataset(store)
    _job(store, "job-a")
    _job(store, "job-b")
    for job_id in ("job-a", "job-b"):
        assert store.jobs.claim(job_id, os.getpid())
    lost: list = []
    with store.jobs.lease_heartbeat("job-a", os.getpid(), on_lost=lost.append, interval=0.05), store.jobs.lease_heartbeat("job-b", os.getpid(), on_lost=lost.append, interval=0.05):
        time.sleep(0.3)  # both beat while running
        store.jobs.finish("job-b", "succeeded")  # this worker's own result: not a loss
        store.jobs.update("job-a", worker_pid=999999, worker_host="other-host")  # another server took it over
        deadline = time.monotonic() + 10
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    assert [j["id"] for j in lost] == ["job-a"]


def test_exclusive_lock_is_shared_between_ledger_objects(store: Store, store_url: str) -> None:
    import threading

    other = Store(store_url)
    order: list[str] = []
    with store.exclusive("dispatch"):
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

    claimer = Store(url)
    random.shuffle(job_ids)  # each process goes through the jobs in its own order
    barrier.wait(60)  # every process connected: all claim at once
    for job_id in job_ids:
        results.put((job_id, os.getpid(), claimer.jobs.claim(job_id, os.getpid(), f"host-{os.getpid()}")))
    claimer.close()


def test_claims_racing_from_processes_have_exactly_one_winner(store: Store, store_url: str) -> None:
    _dataset(store)
    job_ids = [f"job-{n}" for n in range(5)]
    for job_id in job_ids:
        _job(store, job_id)
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
        job = store.jobs.get(job_id)
        assert job["status"] == "running" and job["worker_pid"] == winners[0] and job["worker_host"] == f"host-{winners[0]}"
