"""A fake Hugging Face Hub for the hf-jobs provider: the Jobs API and the repository file storage it uses, served
over HTTP on 127.0.0.1 in a thread and reached through HF_ENDPOINT, so the real huggingface_hub client does every
request. State is kept in memory: repositories (files by path, one commit sha per commit), jobs, their logs.

Every job spec a request carries is checked against what huggingface_hub itself produces (the keys of its
_create_job_spec, its JobHardware flavours, JobSpec parsing), and every job, model and hardware body the fake returns
is parsed with huggingface_hub's own JobInfo, ModelInfo and JobHardwareInfo before it is sent: a body those types
cannot read fails the test (`SpecViolation`).

A job really runs: its command goes to `bash` in a subprocess here, with the job's environment and secrets and a
PATH whose `pip` installs a wheel (offline, no dependencies, into the job's own folder) and otherwise does nothing
(this environment already has torch, transformers and huggingface_hub), and whose `python` puts that folder first,
so the code that trains is the code the wheel shipped. Its stdout and stderr are the job's log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlparse

from huggingface_hub import JobHardware, JobInfo, ModelInfo
from huggingface_hub._jobs_api import JobHardwareInfo, JobSpec, _create_job_spec

USER = "tester"
ORGS = ["team-ml"]


class SpecViolation(AssertionError):
    """A request or response that huggingface_hub's own types or job spec builder would not produce or read."""


def _spec_keys() -> set[str]:
    """Every key huggingface_hub's job spec builder can write, found by asking it for a spec with every option."""
    from huggingface_hub import Volume

    full = _create_job_spec(
        image="x", command=["x"], env={"A": "1"}, secrets={"B": "2"}, flavor="cpu-basic", timeout=10, name="n",
        labels={"k": "v"}, volumes=[Volume(type="bucket", source="a/b", mount_path="/m")], expose=[1], expose_public=[2],
        ssh=True, network_group="g", network_aliases=["a"], resource_group_id="r", attempts=2,
    )
    return set(full) | {"dockerImage", "spaceId"}


SPEC_KEYS = _spec_keys()
FLAVOURS = {member.value for member in JobHardware}


def check_job_spec(body: Any) -> None:
    """A run_job request body as huggingface_hub builds it; SpecViolation otherwise."""
    if not isinstance(body, dict):
        raise SpecViolation(f"job spec is not an object: {body!r}")
    unknown = set(body) - SPEC_KEYS
    if unknown:
        raise SpecViolation(f"job spec has keys huggingface_hub never sends: {sorted(unknown)}")
    for required in ("command", "arguments", "environment", "flavor"):
        if required not in body:
            raise SpecViolation(f"job spec lacks {required!r}")
    if not (body.get("dockerImage") or body.get("spaceId")):
        raise SpecViolation("job spec names no image (dockerImage or spaceId)")
    if body["flavor"] not in FLAVOURS:
        raise SpecViolation(f"flavor {body['flavor']!r} is not one of JobHardware's")
    if not (isinstance(body["command"], list) and all(isinstance(c, str) for c in body["command"])):
        raise SpecViolation("command must be a list of strings")
    for mapping in ("environment", "secrets", "labels"):
        value = body.get(mapping, {})
        if not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            raise SpecViolation(f"{mapping} must map strings to strings")
    if "timeoutSeconds" in body and not (isinstance(body["timeoutSeconds"], int) and body["timeoutSeconds"] > 0):
        raise SpecViolation("timeoutSeconds must be a positive integer")
    parsed = JobSpec(**body)
    if parsed.command != body["command"]:
        raise SpecViolation("JobSpec did not read the command back")


def check_job_info(body: Any) -> None:
    """A job body huggingface_hub's JobInfo reads, with every field it needs; SpecViolation otherwise."""
    try:
        info = JobInfo(**body, endpoint="http://fake")
    except (KeyError, TypeError, ValueError) as error:
        raise SpecViolation(f"JobInfo cannot read {body!r}: {type(error).__name__}: {error}") from None
    if not isinstance(info.status.stage, str) or not info.id:
        raise SpecViolation("a job needs an id and a status.stage")


def check_model_info(body: Any) -> None:
    try:
        info = ModelInfo(**body)
    except (KeyError, TypeError, ValueError) as error:
        raise SpecViolation(f"ModelInfo cannot read {body!r}: {error}") from None
    if info.sha is None:
        raise SpecViolation("repo_info needs a sha (snapshot_download asserts it)")


def check_hardware(body: Any) -> None:
    try:
        [JobHardwareInfo(**item) for item in body]
    except (KeyError, TypeError) as error:
        raise SpecViolation(f"JobHardwareInfo cannot read {body!r}: {error}") from None


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Repo:
    repo_id: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    sha: str = "0" * 40

    def commit(self, added: dict[str, bytes], deleted: list[str]) -> str:
        self.files.update(added)
        for path in deleted:
            self.files.pop(path, None)
        self.sha = hashlib.sha1((self.sha + json.dumps(sorted(added)) + str(time.time_ns())).encode()).hexdigest()
        return self.sha


@dataclass
class Job:
    id: str
    namespace: str
    spec: dict[str, Any]
    created_at: float
    stage: str = "SCHEDULING"
    message: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    log: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None

    def body(self) -> dict[str, Any]:
        running = None
        if self.started_at is not None:
            running = int((self.finished_at or time.time()) - self.started_at)
        return {
            "id": self.id,
            "createdAt": _iso(self.created_at),
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "dockerImage": self.spec.get("dockerImage"),
            "command": self.spec["command"],
            "arguments": self.spec.get("arguments", []),
            "environment": self.spec.get("environment", {}),
            "secrets": {name: None for name in self.spec.get("secrets", {})},  # the Hub never returns secret values
            "flavor": self.spec["flavor"],
            "labels": self.spec.get("labels"),
            "status": {"stage": self.stage, "message": self.message},
            "durations": {"schedulingSecs": 0, "runningSecs": running, "totalSecs": int(time.time() - self.created_at)},
            "owner": {"id": "u-" + self.namespace, "name": self.namespace, "type": "user"},
        }


class FakeHub:
    def __init__(self, token: str, venv_python: str, workdir: Path) -> None:
        self.token = token
        self.venv_python = venv_python
        self.workdir = workdir
        self.repos: dict[str, Repo] = {}
        self.jobs: dict[str, Job] = {}
        self.calls: list[tuple[str, str]] = []  # (method, path template)
        self.lock = threading.RLock()
        self.execute = True  # False: jobs stay as the test scripts them, nothing runs
        self.failures: list[dict[str, Any]] = []  # {"method", "route", "status", "times", "drop"}
        self.stage_script: list[str] = []  # stages the next polls report for a job that does not execute
        self.on_commit: Callable[[list[str]], None] | None = None
        self.lose_run_job_replies = 0  # create the job, then answer 502 as if the reply was lost on the way
        self.endpoint = ""
        self.shims = self._make_shims()

    # --- scripting -------------------------------------------------------------------------------------------------
    def fail(self, method: str, route: str, status: int, times: int = 1) -> None:
        self.failures.append({"method": method, "route": route, "status": status, "times": times})

    def posts(self, route: str) -> int:
        return sum(1 for method, r in self.calls if method == "POST" and r == route)

    def uploaded_paths(self) -> list[str]:
        return sorted(path for repo in self.repos.values() for path in repo.files)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the fake Hub; logs: " + json.dumps({j.id: j.log[-20:] for j in self.jobs.values()}))
            time.sleep(0.2)

    # --- the "remote" machine ------------------------------------------------------------------------------------------
    def _make_shims(self) -> Path:
        shims = self.workdir / "shims"
        shims.mkdir(parents=True, exist_ok=True)
        (shims / "pip").write_text(
            f"#!{sys.executable}\n"
            "import os, re, subprocess, sys\n"
            "args = sys.argv[1:]\n"
            "with open(os.environ['FAKE_PIP_RECORD'], 'a') as record:\n"
            "    record.write(' '.join(args) + '\\n')\n"
            "wheels = [re.sub(r'\\[.*\\]$', '', a) for a in args if re.search(r'\\.whl(\\[.*\\])?$', a)]\n"
            "for wheel in wheels:\n"
            f"    subprocess.run([{self.venv_python!r}, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', '--target', os.environ['FAKE_SITE'], wheel], check=True)\n"
        )
        (shims / "python").write_text(
            "#!/bin/sh\n"
            'PYTHONPATH="$FAKE_SITE" exec ' + self.venv_python + ' "$@"\n'
        )
        for name in ("pip", "python"):
            (shims / name).chmod(0o755)
        return shims

    def _run(self, job: Job) -> None:
        folder = Path(tempfile.mkdtemp(prefix=f"job-{job.id[:8]}-", dir=self.workdir))
        (folder / "site").mkdir()
        env = {
            "PATH": f"{self.shims}:/usr/bin:/bin",
            "HOME": str(folder),
            "TMPDIR": str(folder),
            "FAKE_SITE": str(folder / "site"),
            "FAKE_PIP_RECORD": str(folder / "pip.txt"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            **job.spec.get("environment", {}),
            **job.spec.get("secrets", {}),
        }
        with self.lock:
            if job.stage != "SCHEDULING":
                return
            job.stage, job.started_at = "RUNNING", time.time()
            job.process = subprocess.Popen(
                job.spec["command"], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
            )
        job.workdir = folder  # type: ignore[attr-defined]
        assert job.process.stdout is not None
        for line in job.process.stdout:
            with self.lock:
                job.log.append(line.rstrip("\n"))
        code = job.process.wait()
        with self.lock:
            if job.stage == "RUNNING":
                job.stage = "COMPLETED" if code == 0 else "ERROR"
                job.message = None if code == 0 else f"exit code {code}"
            job.finished_at = time.time()

    def suspend_running(self) -> None:
        """Freeze every running job (SIGSTOP to its process group), as a machine that stops answering."""
        with self.lock:
            running = [j for j in self.jobs.values() if j.stage == "RUNNING" and j.process is not None]
        for job in running:
            os.killpg(job.process.pid, signal.SIGSTOP)

    def stop(self, job: Job) -> None:
        with self.lock:
            if job.stage in ("SCHEDULING", "RUNNING"):
                job.stage, job.finished_at = "CANCELED", time.time()
            process = job.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
                os.killpg(process.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        for job in list(self.jobs.values()):
            self.stop(job)


ROUTES = [
    ("GET", r"^/api/whoami-v2$", "whoami"),
    ("GET", r"^/api/jobs/hardware$", "hardware"),
    ("POST", r"^/api/repos/create$", "create_repo"),
    ("POST", r"^/api/validate-yaml$", "validate_yaml"),
    ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$", "repo_info"),
    ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", "tree"),
    ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$", "preupload"),
    ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$", "commit"),
    ("HEAD", r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
    ("GET", r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
    ("POST", r"^/api/jobs/(?P<ns>[^/]+)$", "run_job"),
    ("GET", r"^/api/jobs/(?P<ns>[^/]+)$", "list_jobs"),
    ("GET", r"^/api/jobs/(?P<ns>[^/]+)/(?P<id>[^/]+)$", "inspect_job"),
    ("GET", r"^/api/jobs/(?P<ns>[^/]+)/(?P<id>[^/]+)/logs$", "logs"),
    ("POST", r"^/api/jobs/(?P<ns>[^/]+)/(?P<id>[^/]+)/cancel$", "cancel_job"),
]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
            data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, message: str, code: str | None = None) -> None:
            self._send(status, {"error": message}, {"X-Error-Code": code} if code else None)

        def _dispatch(self) -> None:
            url = urlparse(self.path)
            path = unquote(url.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            found = next(((m, name) for method, pattern, name in ROUTES if method == self.command and (m := re.match(pattern, path))), None)
            if found is None:
                self._error(404, f"fake Hub: no route {self.command} {path}")
                return
            match, name = found
            with hub.lock:
                hub.calls.append((self.command, name))
                for failure in hub.failures:
                    if failure["method"] == self.command and failure["route"] == name and failure["times"] > 0:
                        failure["times"] -= 1
                        self._error(failure["status"], "fake failure")
                        return
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                self._error(401, "Invalid credentials in Authorization header")
                return
            getattr(self, "do_" + name)(match.groupdict(), parse_qs(url.query), body)

        do_GET = do_POST = do_HEAD = lambda self: self._dispatch()  # noqa: E731

        # --- account and hardware --------------------------------------------------------------------------------------
        def do_whoami(self, args, query, body):
            self._send(200, {"type": "user", "id": "u-" + USER, "name": USER, "orgs": [{"name": n, "type": "org"} for n in ORGS]})

        def do_hardware(self, args, query, body):
            listed = [
                {"name": "cpu-basic", "prettyName": "CPU Basic", "cpu": "2 vCPU", "ram": "16 GB", "ephemeralStorage": "50 GB", "accelerator": None,
                 "unitCostMicroUSD": 167, "unitCostUSD": 0.000167, "unitLabel": "minute"},
                {"name": "a10g-small", "prettyName": "Nvidia A10G - small", "cpu": "4 vCPU", "ram": "15 GB", "ephemeralStorage": "110 GB",
                 "accelerator": {"type": "gpu", "model": "A10G", "quantity": "1", "vram": "24 GB", "manufacturer": "Nvidia"},
                 "unitCostMicroUSD": 16667, "unitCostUSD": 0.016667, "unitLabel": "minute"},
            ]
            check_hardware(listed)
            self._send(200, listed)

        # --- repositories ----------------------------------------------------------------------------------------------
        def _repo(self, repo_id: str) -> Repo | None:
            with hub.lock:
                return hub.repos.get(repo_id)

        def do_create_repo(self, args, query, body):
            data = json.loads(body)
            repo_id = f"{data.get('organization') or USER}/{data['name']}"
            if data.get("type", "model") not in (None, "model"):
                self._error(400, "only model repositories here")
                return
            with hub.lock:
                if repo_id in hub.repos:
                    self._error(409, "You already created this model repo")
                    return
                hub.repos[repo_id] = Repo(repo_id, data.get("visibility") == "private" or bool(data.get("private")))
            self._send(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id})

        def do_validate_yaml(self, args, query, body):
            import yaml

            content = json.loads(body)["content"]
            front = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)  # the Hub reads the README's front matter
            try:
                yaml.safe_load(front.group(1) if front else "")
            except yaml.YAMLError as error:
                self._send(400, {"errors": [{"message": str(error)}], "warnings": []})
                return
            self._send(200, {"errors": [], "warnings": []})

        def do_repo_info(self, args, query, body):
            repo = self._repo(args["repo"])
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
                return
            info = {"id": repo.repo_id, "private": repo.private, "sha": repo.sha, "siblings": [{"rfilename": p} for p in sorted(repo.files)]}
            check_model_info(info)
            self._send(200, info)

        def do_tree(self, args, query, body):
            repo = self._repo(args["repo"])
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
                return
            prefix = (args.get("path") or "").strip("/")
            entries = [
                {"type": "file", "path": p, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                for p, data in sorted(repo.files.items()) if not prefix or p.startswith(prefix + "/")
            ]
            self._send(200, entries)

        def do_preupload(self, args, query, body):
            if self._repo(args["repo"]) is None:
                self._error(404, "Repository not found", "RepoNotFound")
                return
            files = json.loads(body)["files"]
            self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})

        def do_commit(self, args, query, body):
            repo = self._repo(args["repo"])
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
                return
            added, deleted = {}, []
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            if not lines or lines[0].get("key") != "header":
                raise SpecViolation("a commit starts with its header line")
            for line in lines[1:]:
                if line["key"] == "file":
                    if line["value"].get("encoding") != "base64":
                        raise SpecViolation("regular files come base64-encoded")
                    added[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                elif line["key"] in ("deletedFile", "deletedFolder"):
                    deleted.append(line["value"]["path"])
                else:
                    raise SpecViolation(f"the fake said every file is 'regular'; got a {line['key']!r} line")
            with hub.lock:
                sha = repo.commit(added, deleted)
            if hub.on_commit is not None:
                hub.on_commit(sorted(added))
            self._send(200, {"commitUrl": f"{hub.endpoint}/{repo.repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None})

        def do_resolve(self, args, query, body):
            repo = self._repo(args["repo"])
            if repo is None:
                self._error(404, "Repository not found", "RepoNotFound")
                return
            data = repo.files.get(args["path"])
            if data is None:
                self._error(404, "Entry not found", "EntryNotFound")
                return
            etag = '"' + hashlib.sha1(data).hexdigest() + '"'
            self._send(200, raw=data, headers={"X-Repo-Commit": repo.sha, "ETag": etag})

        # --- jobs ------------------------------------------------------------------------------------------------------
        def do_run_job(self, args, query, body):
            spec = json.loads(body)
            check_job_spec(spec)
            if args["ns"] not in (USER, *ORGS):
                self._error(403, f"no access to namespace {args['ns']}")
                return
            job = Job(uuid.uuid4().hex[:24], args["ns"], spec, time.time())
            with hub.lock:
                hub.jobs[job.id] = job
            response = job.body()
            check_job_info(response)
            if hub.execute:
                threading.Thread(target=hub._run, args=(job,), daemon=True).start()
            with hub.lock:
                lost = hub.lose_run_job_replies > 0
                hub.lose_run_job_replies -= int(lost)
            if lost:
                self._error(502, "Bad Gateway")
                return
            self._send(200, response)

        def _job(self, args) -> Job | None:
            with hub.lock:
                job = hub.jobs.get(args["id"])
            if job is None or job.namespace != args["ns"]:
                self._error(404, "Job not found")
                return None
            return job

        def do_list_jobs(self, args, query, body):
            wanted = dict(label.split("=", 1) for label in query.get("label", []))
            with hub.lock:
                found = [j.body() for j in hub.jobs.values() if j.namespace == args["ns"] and all((j.spec.get("labels") or {}).get(k) == v for k, v in wanted.items())]
            for item in found:
                check_job_info(item)
            self._send(200, found)

        def do_inspect_job(self, args, query, body):
            job = self._job(args)
            if job is None:
                return
            with hub.lock:
                if not hub.execute and hub.stage_script and job.stage not in ("CANCELED",):
                    job.stage = hub.stage_script.pop(0)
                response = job.body()
            check_job_info(response)
            self._send(200, response)

        def do_logs(self, args, query, body):
            job = self._job(args)
            if job is None:
                return
            with hub.lock:
                lines = list(job.log)
            stream = "".join(
                "data: " + json.dumps({"timestamp": _iso(time.time()), "data": line}) + "\n\n" for line in ["===== Job started at now =====", *lines]
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(stream)))
            self.end_headers()
            self.wfile.write(stream)

        def do_cancel_job(self, args, query, body):
            job = self._job(args)
            if job is None:
                return
            hub.stop(job)
            self._send(200, None, raw=b"")

    return Handler


@contextmanager
def serving(monkeypatch: Any, token: str, workdir: Path, venv_python: str | None = None):
    """A FakeHub on 127.0.0.1, with HF_ENDPOINT and HF_TOKEN pointing at it for the duration."""
    hub = FakeHub(token, venv_python or sys.executable, workdir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(workdir / "hf-home"))
    try:
        yield hub
    finally:
        hub.close()
        server.shutdown()
        server.server_close()
