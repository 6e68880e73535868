"""Several servers on one ledger (SQLite and PostgreSQL): real dispatcher processes race for one queue.

Each job must be launched once and executed once, each machine must keep to its own max_local_jobs, and every
server must see every job's final status. A worker whose lease runs out on another machine is taken over; a worker
on this machine that died is resumed as before; a worker whose job is cancelled from another machine stops itself.
Workers are tests/quick_worker.py: the real worker entry point with the training replaced by a short sleep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_customization.store.database import Store
from model_customization.store.status import this_host

pytestmark = pytest.mark.timeout(180)
QUICK_WORKER = Path(__file__).resolve().parent / "quick_worker.py"
LAUNCHER = f"{sys.executable} {QUICK_WORKER}"

DISPATCHER = """
import json, sys, time
from model_customization.jobs.orchestrator import dispatch
from model_customization.workspace import Workspace

ws = Workspace.open(sys.argv[1])
job_ids = sys.argv[2].split(",")
launched, deadline = [], time.monotonic() + 120
while time.monotonic() < deadline:
    launched += dispatch(ws)
    states = {job_id: ws.store.jobs.get(job_id)["status"] for job_id in job_ids}
    if all(state in ("succeeded", "failed", "cancelled") for state in states.values()):
        break
    time.sleep(0.05)
print(json.dumps({"launched": launched, "states": states}))
"""


def _env(store_url: str, log: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_CUSTOMIZATION_HOME", "MODEL_CUSTOMIZATION_CONFIG")}
    env.update(MODEL_CUSTOMIZATION_STORE_URL=store_url, QUICK_WORKER_LOG=str(log), HF_HUB_OFFLINE="1", **extra)
    return env


def _queue_jobs(store: Store, count: int, prefix: str = "job") -> list[str]:
    store.datasets.add({"id": "ds-1", "name": "n", "created_at": time.time(), "path": "/d", "counts": {"train": 20}, "card": {"method": "sft"}})
    job_ids = [f"{prefix}-{n}" for n in range(count)]
    for n, job_id in enumerate(job_ids):
        store.jobs.add(
            {"id": job_id, "provider": "local", "base_model": "base", "dataset_id": "ds-1", "method": "sft", "hyperparameters": {},
             "status": "queued", "launcher": LAUNCHER, "attempts": 0, "queued_at": time.time() + n * 0.001}
        )
    return job_ids


def _executions(log: Path) -> list[tuple[str, int, str, float, float]]:
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return [(job, int(pid), host, float(start), float(end)) for job, pid, host, start, end in rows]


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


def _wait_for(predicate, timeout: float = 60.0, pause: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError("timed out waiting")


def test_dispatchers_racing_on_one_ledger_run_each_job_exactly_once(store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    job_ids = _queue_jobs(store, 6)
    log = tmp_path / "executions.log"
    # Three servers, each with its own data home: two on machine "host-a", one on "host-b"; two jobs per machine at once.
    hosts = ["host-a", "host-a", "host-b"]
    servers = [
        subprocess.Popen(
            [sys.executable, "-c", DISPATCHER, str(tmp_path / f"home-{n}"), ",".join(job_ids)],
            env=_env(store_url, log, MODEL_CUSTOMIZATION_HOST_ID=host, MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS="2", MODEL_CUSTOMIZATION_LEASE_SECONDS="20", QUICK_WORKER_SECONDS="0.6"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n, host in enumerate(hosts)
    ]
    reports = []
    for server in servers:
        out, err = server.communicate(timeout=150)
        assert server.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))

    # Status visible to all: every server read every job as succeeded from its own connection.
    for report in reports:
        assert report["states"] == {job_id: "succeeded" for job_id in job_ids}
    launched_by_servers = [job_id for report in reports for job_id in report["launched"]]
    assert len(launched_by_servers) == len(set(launched_by_servers))  # no job launched by two servers

    executions = _executions(log)
    assert sorted(job for job, *_ in executions) == sorted(job_ids)  # each job executed exactly once
    for job_id in job_ids:
        job = store.jobs.get(job_id)
        launches = [e["message"] for e in store.jobs.events(job_id, limit=None) if e["message"].startswith("worker process")]
        assert len(launches) == 1, [(e["at"], e["level"], e["message"]) for e in store.jobs.events(job_id, limit=None)]
        assert job["attempts"] == 1 and job["worker_host"] in ("host-a", "host-b")
        assert launches[0].endswith(f"launched on {job['worker_host']}")
    # Each machine kept to its limit, though two servers on host-a dispatched from different data homes.
    for host in ("host-a", "host-b"):
        intervals = [(start, end) for _, _, ran_on, start, end in executions if ran_on == host]
        assert _most_at_once(intervals) <= 2
    assert {host for _, _, host, _, _ in executions} == {"host-a", "host-b"}  # both machines took work
    store.close()


@pytest.fixture
def shared_ws(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from model_customization.workspace import Workspace

    log = tmp_path / "executions.log"
    for name, value in _env(store_url, log, MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS="3", QUICK_WORKER_SECONDS="0.3").items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("MODEL_CUSTOMIZATION_HOME", raising=False)
    ws = Workspace.open(tmp_path / "home")
    yield ws, log
    ws.store.close()


def _dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_expired_leases_are_taken_over_and_dead_local_workers_resumed(shared_ws) -> None:
    from model_customization.jobs.orchestrator import dispatch

    ws, log = shared_ws
    store = ws.store
    ids = _queue_jobs(store, 4)
    remote_dead, remote_alive, local_dead, stale_reservation = ids
    now = time.time()
    store.jobs.update(remote_dead, status="running", worker_host="dead-host", worker_pid=4_000_000, lease_expires_at=now - 1, attempts=1, started_at=now - 60)
    store.jobs.update(remote_alive, status="running", worker_host="busy-host", worker_pid=4_000_001, lease_expires_at=now + 600, attempts=1)
    store.jobs.update(local_dead, status="running", worker_host=this_host(), worker_pid=_dead_pid(), lease_expires_at=now + 600, attempts=1)
    store.jobs.update(stale_reservation, worker_host="crashed-dispatcher", lease_expires_at=now - 1)

    launched = dispatch(ws)
    assert sorted(launched) == sorted([remote_dead, local_dead, stale_reservation])
    for job_id in launched:
        _wait_for(lambda: store.jobs.get(job_id)["status"] == "succeeded")
    messages = {job_id: " | ".join(e["message"] for e in store.jobs.events(job_id, limit=None)) for job_id in ids}
    assert "on dead-host stopped renewing its lease; taken over by" in messages[remote_dead]
    assert "ended without reporting a result" in messages[local_dead]  # the same-machine path, as before
    assert "reservation by crashed-dispatcher ran out" in messages[stale_reservation]
    assert store.jobs.get(remote_dead)["attempts"] == 2 and store.jobs.get(remote_dead)["worker_host"] == this_host()
    # A worker on another machine that keeps its lease is left alone: this server cannot see its process.
    alive = store.jobs.get(remote_alive)
    assert alive["status"] == "running" and alive["worker_pid"] == 4_000_001 and "taken over" not in messages[remote_alive]
    assert sorted(job for job, *_ in _executions(log)) == sorted(launched)


def test_a_worker_stops_when_its_job_is_cancelled_from_another_machine(shared_ws, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_customization.jobs.orchestrator import dispatch
    from model_customization.jobs.processes import worker_alive

    ws, log = shared_ws
    monkeypatch.setenv("MODEL_CUSTOMIZATION_LEASE_SECONDS", "1.5")  # the worker renews every 0.5 s
    monkeypatch.setenv("QUICK_WORKER_SECONDS", "60")
    (job_id,) = _queue_jobs(ws.store, 1)
    assert dispatch(ws) == [job_id]
    running = _wait_for(lambda: (job := ws.store.jobs.get(job_id))["status"] == "running" and job)
    pid = running["worker_pid"]
    assert worker_alive(pid, job_id)
    # cancel_job on a server of another machine: it records the cancellation but cannot signal the process.
    from model_customization.jobs.orchestrator import cancel_job

    monkeypatch.setenv("MODEL_CUSTOMIZATION_HOST_ID", "other-machine")
    assert cancel_job(ws, job_id)["status"] == "cancelled"
    assert worker_alive(pid, job_id)  # not signalled from here
    assert any("stops at its next lease renewal" in e["message"] for e in ws.store.jobs.events(job_id, limit=None))
    started = time.monotonic()
    _wait_for(lambda: not worker_alive(pid, job_id), timeout=20)
    assert time.monotonic() - started < 10
    assert any(f"worker process {pid}" in e["message"] and "stops: it was cancelled" in e["message"] for e in ws.store.jobs.events(job_id, limit=None))
    assert _executions(log) == []  # it never got to finish
    assert ws.store.jobs.get(job_id)["status"] == "cancelled"
