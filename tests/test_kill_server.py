"""kill -9 of the server at random moments, 20 times: nothing is lost, duplicated or half-written.

The server is a real subprocess (`model-customization serve --transport streamable-http`), driven over HTTP by the
SDK's client. A seeded random schedule kills it (SIGKILL) during four phases: building a dataset, a local training
job (tiny model; the detached worker is killed too, twice), following an OpenAI job (tests/openai_fake.py, served
over real HTTP from this process, MODEL_CUSTOMIZATION_OPENAI_BASE_URL pointing at it) and an evaluation. After each
kill the server is started again and the data home is checked with `model-customization doctor`'s check_ledger;
the caller does what a client would after losing a reply (asks what exists, retries with the same arguments or
resumes). At the end: one dataset, one local job, one OpenAI job and one remote job, one evaluation, all finished,
and the ledger passes the integrity check.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
import httpx2
import pytest
from mcp import Client

from openai_fake import FakeOpenAI
from model_customization.jobs.integrity import check_ledger
from model_customization.workspace import Workspace

API_KEY = "sk-test-kill-0123456789abcdef"
SEED = 20261122
KILLS = {"build": 4, "training": 6, "polling": 5, "evaluation": 5}  # 20 in all
TERMINAL = {"succeeded", "failed", "cancelled"}
KILLED = object()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeOpenAIOverHTTP:
    """tests/openai_fake.py behind a real loopback HTTP server, so a server subprocess can reach it."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection; the fake itself answers one at a time

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = httpx2.Request(self.command, f"http://fake{self.path}", headers=list(self.headers.items()), content=body)
                try:
                    with lock:
                        response = fake.handler(request)
                        payload = response.read()
                except httpx2.TransportError:
                    self.close_connection = True  # an injected dropped connection: no reply at all
                    return
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAIOverHTTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.http.shutdown()
        self.http.server_close()


class ServerProcess:
    """The MCP server as a subprocess over streamable HTTP, started again after each kill."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.kills = 0
        self.log = home.parent / "server-stderr.log"
        self.trace = home.parent / "sessions.log"  # one line per session: what was killed when, and how long it took

    def start(self) -> None:
        self.port = _free_port()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--port", str(self.port), "--home", str(self.home)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=self.env,
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.process.poll() is None, self.log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the server did not start listening"
                time.sleep(0.1)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.process:
            self.process.wait(timeout=15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


async def _session(server: ServerProcess, work: Callable[[Client], Awaitable[Any]], kill_after: float | None, timeout: float = 120) -> Any:
    """Run `work` against the server; with kill_after, SIGKILL the server that many seconds in (even when the work
    finished earlier: the kill lands on an idle server then). Returns KILLED when the kill cut the work short, else
    what `work` returned. The server is running again when this returns."""
    outcome: Any = KILLED
    began = time.monotonic()

    async def killer(scope: anyio.CancelScope) -> None:
        await anyio.sleep(kill_after)
        server.kill()
        # A request in flight to a dead server may wait for a reply that never comes: give up on it.
        await anyio.sleep(3)
        scope.cancel()

    try:
        with anyio.fail_after(timeout):
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as group:
                    if kill_after is not None:
                        group.start_soon(killer, scope)
                    async with Client(server.url) as client:
                        outcome = await work(client)
    except Exception:  # noqa: BLE001 - the connection to a killed server breaks in many ways
        if kill_after is None:
            raise
        try:
            server.process.wait(timeout=10)  # the socket may close a moment before the process is reaped
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the session failed but the server was not killed; its log: {server.log.read_text()[-3000:]}") from None
    ended = time.monotonic()
    if server.process.poll() is not None or kill_after is not None:
        server.process.wait(timeout=10)
        server.start()
    with server.trace.open("a") as trace:
        trace.write(f"{getattr(work, '__name__', work)} kill_after={kill_after} killed={outcome is KILLED} session={ended - began:.1f}s restart={time.monotonic() - ended:.1f}s\n")
    return outcome


async def _call(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    assert not result.is_error, f"{name}: {result.content[0].text}"
    return result.structured_content


def _check(home: Path, when: str) -> Workspace:
    fresh = Workspace.open(home)
    problems = check_ledger(fresh)
    assert problems == [], f"after the kill {when}: {problems}"
    return fresh


@pytest.mark.anyio
@pytest.mark.timeout(600)
async def test_kill_9_at_random_moments_loses_and_duplicates_nothing(ws, tiny_model, demo_paths, tmp_path, monkeypatch):
    rng = random.Random(SEED)
    fake = FakeOpenAI(API_KEY)
    fake.add_job(status="succeeded", model="gpt-4o-mini-2024-07-18", fine_tuned_model="ft:gpt-4o-mini-2024-07-18:fake-org::old001", finished_at=1_780_000_000, trained_tokens=1000)
    fake.default_script = ["validating_files", "queued", *["running"] * 10, "succeeded"]  # long enough to be killed while followed
    home = Path(ws.settings.home)
    ws.store.close()
    with FakeOpenAIOverHTTP(fake) as openai_http:
        env = {
            **os.environ, "OPENAI_API_KEY": API_KEY, "MODEL_CUSTOMIZATION_OPENAI_BASE_URL": openai_http.url, "MODEL_CUSTOMIZATION_HOME": str(home),
            "MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS": "0.05", "HF_HUB_OFFLINE": "1",
        }
        for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "MODEL_CUSTOMIZATION_STORE_URL"):
            env.pop(name, None)
        server = ServerProcess(home, env)
        server.start()
        try:
            await _phases(server, rng, fake, home, tiny_model, demo_paths)
        finally:
            server.stop()
            final = Workspace.open(home)
            from model_customization.jobs.processes import stop_worker

            for job in final.store.jobs.all():
                if job["worker_pid"] and job["status"] not in TERMINAL:
                    stop_worker(job["worker_pid"], job["id"], grace_seconds=1)
    assert server.kills == sum(KILLS.values())


async def _phases(server: ServerProcess, rng: random.Random, fake: FakeOpenAI, home: Path, tiny_model: Path, demo_paths: list[Path]) -> None:
    paths = [str(p) for p in demo_paths]

    # --- 1. build: killed at random moments, then asked again (the same content is the same dataset) -----------------
    async def build(client: Client) -> dict[str, Any]:
        return await _call(client, "build_dataset_from_memory", {"paths": paths, "name": "demo"})

    for kill in range(KILLS["build"]):
        await _session(server, build, rng.uniform(0.0, 2.5))
        _check(home, f"during build #{kill + 1}")
    built = await _session(server, build, None)
    dataset_id = built["dataset_id"]
    state = _check(home, "after the builds")
    assert [d["id"] for d in state.store.datasets.all()] == [dataset_id]

    # --- 2. a local job: the server (and twice the worker too) killed while it trains --------------------------------
    job_args = {"dataset_id": dataset_id, "base_model": str(tiny_model), "hyperparameters": {"epochs": 1, "batch_size": 16, "max_seq_length": 256}}
    local_job: dict[str, Any] = {}

    async def train(client: Client) -> dict[str, Any]:
        if not local_job:
            # After a lost reply the client looks before starting again: local jobs have no idempotency key.
            known = [j for j in (await _call(client, "list_jobs", {}))["jobs"] if j["provider"] == "local"]
            local_job.update(known[0] if known else await _call(client, "start_job", job_args))
        while True:
            status = await _call(client, "check_job", {"job_id": local_job["job_id"]})
            if status["status"] in TERMINAL:
                return status
            await anyio.sleep(0.3)

    worker_kills = {1, 3}
    for kill in range(KILLS["training"]):
        await _session(server, train, rng.uniform(0.5, 4.0))
        if kill in worker_kills and local_job:
            job = Workspace.open(home).store.jobs.get(local_job["job_id"])
            if job["worker_pid"] and job["status"] not in TERMINAL:
                try:
                    os.killpg(job["worker_pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        _check(home, f"during training #{kill + 1}")
    trained = await _session(server, train, None, timeout=300)
    assert trained["status"] == "succeeded", trained
    state = _check(home, "after training")
    assert [j["id"] for j in state.store.jobs.all() if j["provider"] == "local"] == [local_job["job_id"]]
    tuned = trained["model_id"]

    # --- 3. an OpenAI job followed through kills; a start cut short is retried under the same idempotency key -------
    async def follow_openai(client: Client) -> dict[str, Any]:
        quote = (await _call(client, "start_job", {"dataset_id": dataset_id, "provider": "openai", "dry_run": True}))["quote"]["estimated_cost_usd"]
        job = await _call(client, "start_job", {"dataset_id": dataset_id, "provider": "openai", "confirm_cost_usd": quote})
        while True:
            status = await _call(client, "check_job", {"job_id": job["job_id"]})
            if status["status"] in TERMINAL:
                return status
            await anyio.sleep(0.2)

    for kill in range(KILLS["polling"]):
        await _session(server, follow_openai, rng.uniform(0.3, 3.0))
        _check(home, f"while following the OpenAI job #{kill + 1}")
    followed = await _session(server, follow_openai, None)
    assert followed["status"] == "succeeded" and followed["model_id"].startswith("ft:"), followed
    state = _check(home, "after the OpenAI job")
    assert [j["id"] for j in state.store.jobs.all() if j["provider"] == "openai"] == [followed["job_id"]]
    created = [b for m, t, b in fake.request_bodies if (m, t) == ("POST", "/fine_tuning/jobs")]
    # However many creates were cut short, OpenAI holds one job of ours (the other is the history job made above).
    remote_jobs = [j["object"] for j in fake.jobs.values() if (j["object"].get("metadata") or {}).get("mc_idempotency_key")]
    assert [(j["metadata"]["mc_job_id"], j["id"]) for j in remote_jobs] == [(followed["job_id"], followed["remote_id"])], (created, remote_jobs)
    assert state.store.models.get(followed["model_id"])["job_id"] == followed["job_id"]

    # --- 4. an evaluation killed part-way, resumed (or started, if the kill came before it was recorded) -------------
    eval_args = {"dataset_id": dataset_id, "models": [str(tiny_model), tuned], "limit": 4, "max_tokens": 4}

    async def evaluate(client: Client) -> dict[str, Any]:
        known = Workspace.open(home).store.evaluations.all()
        if known:
            return await _call(client, "evaluate", {"resume": known[0]["id"]})
        return await _call(client, "evaluate", eval_args)

    for kill in range(KILLS["evaluation"]):
        await _session(server, evaluate, rng.uniform(0.5, 6.0))
        _check(home, f"during evaluation #{kill + 1}")
    report = await _session(server, evaluate, None)
    state = _check(home, "after the evaluation")
    evaluations = state.store.evaluations.all()
    assert [(e["id"], e["status"]) for e in evaluations] == [(report["eval_id"], "succeeded")]
    assert report["cases"] == 4 and set(report["scores"]) == {str(Path(tiny_model).resolve()), tuned}

    # The CLI's doctor agrees, and exits 0.
    doctor = subprocess.run([sys.executable, "-m", "model_customization", "doctor", "--json", "--home", str(home)], capture_output=True, text=True, timeout=60, env=server.env)
    assert doctor.returncode == 0 and json.loads(doctor.stdout)["ok"] is True, doctor.stdout + doctor.stderr


def test_the_integrity_check_finds_each_kind_of_damage(ws, demo_paths):
    """check_ledger is what the kill test relies on: it must see a half-written dataset, a lost adapter, a lost
    report and a duplicated job."""
    from model_customization.datasets.build import build_dataset

    dataset_id = build_dataset(ws, demo_paths).dataset_id
    assert check_ledger(ws) == []
    folder = Path(ws.store.datasets.get(dataset_id)["path"])

    # A split cut short, as a crash in the middle of writing it in place would leave it.
    train = folder / "train.jsonl"
    whole = train.read_bytes()
    train.write_bytes(whole[: len(whole) // 2])
    problems = check_ledger(ws)
    assert any(dataset_id in p and "content_sha256" in p for p in problems), problems
    assert any("train.jsonl has" in p for p in problems), problems
    train.write_bytes(whole)

    # A succeeded job whose adapter is gone, two active jobs under one idempotency key, a report that is missing.
    base = {"provider": "local", "base_model": "tiny", "dataset_id": dataset_id, "method": "sft", "hyperparameters": {}}
    ws.store.jobs.add({**base, "id": "job-done", "status": "succeeded", "model_id": "ft-done"})
    ws.store.models.add({"id": "ft-done", "provider": "local", "kind": "tuned", "base_model": "tiny", "path": str(ws.settings.jobs_dir / "job-done" / "adapter"), "job_id": "job-done", "dataset_id": dataset_id})
    for job_id in ("job-a", "job-b"):
        ws.store.jobs.add({**base, "id": job_id, "provider": "openai", "status": "running", "idempotency_key": "mc-same"})
    ws.store.evaluations.add({"id": "eval-x", "dataset_id": dataset_id, "models": ["a", "b"], "status": "succeeded", "summary": {}, "path": str(ws.settings.evals_dir / "eval-x")})
    (ws.settings.datasets_dir / f".{dataset_id}-tmp123").mkdir()
    problems = check_ledger(ws)
    assert any("ft-done" in p and "adapter_model.safetensors" in p for p in problems), problems
    assert any("job-a, job-b" in p and "mc-same" in p for p in problems), problems
    assert any("eval-x" in p and "report.json" in p for p in problems), problems
    assert len(problems) == 3, problems
    from model_customization.jobs.integrity import leftovers

    assert any(f".{dataset_id}-tmp123" in item for item in leftovers(ws))
