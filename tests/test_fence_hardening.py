"""The fence under attack (issue 17, section 2) and slow HTTP clients (section 1).

- A folder swapped for a link to an outside folder, in a loop, while builds and exports run: nothing from outside is
  stored, nothing is written outside.
- export_model never deletes or replaces what an export did not write, and never writes into the demo data.
- Credentials stay fenced with the working directory a parent of HOME.
- Refusals never name where a link leads and read the same whether an outside path exists or not (base models too).
- `serve --host` is judged by the address bound; a client sending half a request is disconnected.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from model_customization.config import ALLOWED_ROOTS_ENV
from model_customization.errors import UserError
from model_customization.paths import DEMO_DATA_DIR, check_readable, open_fenced
from model_customization.server.app import build_server
from model_customization.server.http import READ_TIMEOUT_ENV, TOKENS_ENV

OUTSIDE_MARK = "OUTSIDEMARK"


def sessions(path: Path, count: int = 6, tag: str = "a") -> Path:
    """A small OpenAI chat JSONL file of distinct sessions, each line carrying `tag`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"question {tag} {i} about topic {i * 7}"}, {"role": "assistant", "content": f"answer {tag} {i}: {i * 13} units"}]})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, str(folder))
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    sessions(folder / "s.jsonl", count=12, tag=OUTSIDE_MARK)
    return folder


_SWAP_LOOP = """
import json, os, signal, sys
place, parked_dir, parked_link, watch, report = sys.argv[1:6]
seen, swaps = set(), 0
def finish(*_):
    with open(report, "w") as out:
        json.dump({"swaps": swaps, "seen_outside": sorted(seen)}, out)
    sys.exit(0)
signal.signal(signal.SIGTERM, finish)
print("ready", flush=True)
while True:
    for source, target in ((place, parked_dir), (parked_link, place), (place, parked_link), (parked_dir, place)):
        try:
            os.rename(source, target)
        except OSError:
            pass  # the code under test made a folder meanwhile: swap on
        if watch:
            seen.update(os.listdir(watch))
    swaps += 1
"""


class Swapper:
    """Swaps `place` between a real folder and a symbolic link to `elsewhere` as fast as it can, in another process
    (so truly at the same time as the code under test), and records anything that ever appears in `elsewhere`."""

    def __init__(self, place: Path, elsewhere: Path, parking: Path, *, watch: bool = False) -> None:
        parking.mkdir(parents=True, exist_ok=True)
        (parking / "link").symlink_to(elsewhere, target_is_directory=True)
        self.report = parking.parent / "swapper.json"
        self.args = [str(place), str(parking / "dir"), str(parking / "link"), str(elsewhere) if watch else "", str(self.report)]
        self.swaps = 0
        self.seen_outside: list[str] = []

    def __enter__(self) -> Self:
        self.process = subprocess.Popen([sys.executable, "-c", _SWAP_LOOP, *self.args], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.poll() is None, "the swapper stopped early"
        self.process.terminate()
        self.process.wait(timeout=20)
        result = json.loads(self.report.read_text())
        self.swaps, self.seen_outside = result["swaps"], result["seen_outside"]


def stored_bytes(home: Path) -> Iterator[tuple[Path, bytes]]:
    for file in home.rglob("*"):
        if file.is_file() and not file.is_symlink():
            yield file, file.read_bytes()


# --- 1. a link swapped in between the check and the use -----------------------------------------------------------
@pytest.mark.anyio
async def test_builds_with_a_folder_swapped_for_a_link_never_store_outside_content(ws, root: Path, outside: Path) -> None:
    memory = root / "memory"
    sessions(memory / "top.jsonl", count=12, tag="inside-top")
    sessions(memory / "sub" / "s.jsonl", count=12, tag="inside-sub")
    outcomes = {"built": 0, "refused": 0}
    with Swapper(memory / "sub", outside, root / "parking") as swapper:
        async with Client(build_server(ws=ws)) as client:
            for attempt in range(30):
                given = [str(memory)] if attempt % 2 else [str(memory / "sub" / "s.jsonl")]
                result = await client.call_tool("build_dataset_from_memory", {"paths": given, "validation_fraction": 0.2, "test_fraction": 0.2})
                outcomes["refused" if result.is_error else "built"] += 1
                text = json.dumps(result.structured_content) if result.structured_content else result.content[0].text
                assert OUTSIDE_MARK not in text
    assert swapper.swaps > 30 and outcomes["built"] > 0, (swapper.swaps, outcomes)
    for file, data in stored_bytes(ws.settings.home):
        assert OUTSIDE_MARK.encode() not in data, file


def test_a_file_swapped_after_the_check_is_refused_when_opened(root: Path, outside: Path) -> None:
    inside = sessions(root / "folder" / "s.jsonl", tag="in")
    checked = check_readable(inside)
    shutil.rmtree(root / "folder")
    (root / "folder").symlink_to(outside, target_is_directory=True)  # what an attacker does after the check
    with pytest.raises(UserError, match="refused") as caught:
        open_fenced(checked)
    assert str(outside) not in str(caught.value)


@pytest.fixture
def tuned_tiny(ws, tiny_model: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from test_export import make_tuned_model

    monkeypatch.setenv(ALLOWED_ROOTS_ENV, os.pathsep.join([str(root), str(tiny_model)]))
    model_id, _ = make_tuned_model(ws, tiny_model, str(tiny_model))
    return model_id


@pytest.mark.anyio
async def test_exports_with_a_folder_swapped_for_a_link_never_write_outside(ws, tuned_tiny: str, root: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "exports").mkdir()
    outcomes = {"exported": 0, "refused": 0}
    refusals: set[str] = set()
    with Swapper(root / "exports", elsewhere, root / "parking", watch=True) as swapper:
        async with Client(build_server(ws=ws)) as client:
            for attempt in range(25):
                result = await client.call_tool("export_model", {"model_id": tuned_tiny, "formats": ["adapter"], "output_dir": str(root / "exports" / f"e{attempt}")})
                outcomes["refused" if result.is_error else "exported"] += 1
                if result.is_error:
                    refusals.add(result.content[0].text[:200])
    assert swapper.swaps > 25, swapper.swaps
    assert swapper.seen_outside == [] and list(elsewhere.rglob("*")) == [], f"the export wrote outside the allowed roots: {swapper.seen_outside}"
    assert outcomes["exported"] > 0 and not any("Internal error" in text for text in refusals), (outcomes, refusals)


# --- 2. an export deletes only what an export wrote ---------------------------------------------------------------
def test_export_never_deletes_a_file_it_did_not_write_or_writes_into_the_demo_data(ws, tuned_tiny: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_customization.providers.local.export import export_model

    target = root / "export"
    export_model(ws, tuned_tiny, ["adapter"], output_dir=target)
    (target / "notes.txt").write_text("mine, keep me")
    (target / "adapter" / "my-annotations.md").write_text("also mine")
    with pytest.raises(UserError, match="notes.txt") as caught:
        export_model(ws, tuned_tiny, ["adapter"], output_dir=target)
    assert "did not write" in str(caught.value)
    assert (target / "notes.txt").read_text() == "mine, keep me" and (target / "adapter" / "my-annotations.md").read_text() == "also mine"
    assert (target / "adapter" / "adapter_model.safetensors").is_file() and (target / "export.json").is_file()

    # Without the user's files, the earlier export is replaced, leaving nothing of it behind.
    (target / "notes.txt").unlink()
    (target / "adapter" / "my-annotations.md").unlink()
    export_model(ws, tuned_tiny, ["adapter"], output_dir=target)
    assert sorted(p.name for p in root.iterdir() if p.name.startswith((".export", "export"))) == ["export"]

    # The demo data is a read-only root, even where a writable root holds it.
    monkeypatch.setenv(ALLOWED_ROOTS_ENV, os.pathsep.join([str(DEMO_DATA_DIR.parent), os.environ[ALLOWED_ROOTS_ENV]]))
    before = sorted(p.name for p in DEMO_DATA_DIR.iterdir())
    try:
        with pytest.raises(UserError, match="demo data, which is read-only"):
            export_model(ws, tuned_tiny, ["adapter"], output_dir=DEMO_DATA_DIR / "fence-test-export")
    finally:
        shutil.rmtree(DEMO_DATA_DIR / "fence-test-export", ignore_errors=True)
    assert sorted(p.name for p in DEMO_DATA_DIR.iterdir()) == before


# --- 3. credentials, whatever the roots ---------------------------------------------------------------------------
@pytest.fixture
def home_below_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME is /…/homes/alice and the working directory /…/homes, with no roots configured."""
    homes = tmp_path / "homes"
    alice = homes / "alice"
    (alice / ".ssh").mkdir(parents=True)
    (alice / ".ssh" / "id_rsa").write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA{OUTSIDE_MARK}\n-----END OPENSSH PRIVATE KEY-----\n")
    sessions(alice / ".ssh" / "looks-like-memory.jsonl", tag=OUTSIDE_MARK)
    (alice / ".claude").mkdir()
    (alice / ".claude" / ".credentials.json").write_text(json.dumps({"claudeAiOauth": {"accessToken": f"sk-ant-oat01-{OUTSIDE_MARK}", "refreshToken": "r"}}) + "\n")
    (alice / ".aws").mkdir()
    (alice / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {OUTSIDE_MARK}\n")
    sessions(alice / "project" / "memory.jsonl", count=12, tag="alice")
    monkeypatch.setenv("HOME", str(alice))
    monkeypatch.delenv(ALLOWED_ROOTS_ENV)
    monkeypatch.chdir(homes)
    return alice


@pytest.mark.anyio
async def test_credentials_are_fenced_with_the_working_directory_above_home(ws, home_below_cwd: Path) -> None:
    alice = home_below_cwd
    async with Client(build_server(ws=ws)) as client:
        for secret in (alice / ".ssh" / "id_rsa", alice / ".claude" / ".credentials.json", alice / ".aws" / "credentials", alice / ".ssh" / "looks-like-memory.jsonl"):
            inspected = await client.call_tool("inspect_dataset", {"path": str(secret)})
            assert inspected.is_error, secret
            text = inspected.content[0].text
            assert "credentials" in text and OUTSIDE_MARK not in text and "accessToken" not in text, text
            built = await client.call_tool("build_dataset_from_memory", {"paths": [str(secret)]})
            assert built.is_error and OUTSIDE_MARK not in built.content[0].text
        # A walk of the whole home reads alice's memory and passes the credentials by.
        walked = await client.call_tool("build_dataset_from_memory", {"paths": [str(alice)], "validation_fraction": 0.2, "test_fraction": 0.2})
        assert not walked.is_error, walked.content
        assert sum(walked.structured_content["counts"].values()) == 12
    for file, data in stored_bytes(ws.settings.home):
        assert OUTSIDE_MARK.encode() not in data, file


# --- 4. refusals tell nothing more than "refused" -----------------------------------------------------------------
def _same_refusal(messages: dict[str, str]) -> set[str]:
    return {message.replace(path, "<path>") for path, message in messages.items()}


@pytest.mark.anyio
async def test_refusals_name_no_link_target_and_do_not_tell_whether_a_path_exists(ws, root: Path, tmp_path: Path, tiny_model: Path) -> None:
    secret_file = tmp_path / "private" / "diary.jsonl"
    sessions(secret_file, tag=OUTSIDE_MARK)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    outside_model = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_model, outside_model)
    with secret_file.open("rb") as held:
        fd_path = f"/proc/self/fd/{held.fileno()}"
        secret_targets = [str(secret_file), os.path.realpath("/proc/self/exe"), os.path.realpath("/etc/localtime"), str(outside_model)]
        async with Client(build_server(ws=ws)) as client:
            async def refusal(tool: str, arguments: dict) -> str:
                result = await client.call_tool(tool, arguments)
                assert result.is_error, (tool, arguments)
                text = result.content[0].text
                assert not any(target in text for target in secret_targets if target not in json.dumps(arguments)), text
                assert OUTSIDE_MARK not in text and "Permission denied" not in text and "exist" not in text and "No such" not in text, text
                return text

            for probe in ("/proc/self/exe", "/etc/localtime", fd_path):
                await refusal("inspect_dataset", {"path": probe})
                await refusal("build_dataset_from_memory", {"paths": [probe]})
            paths = [str(secret_file), str(tmp_path / "private" / "missing.jsonl"), str(locked / "x.jsonl"), str(loop)]
            assert len(_same_refusal({p: await refusal("inspect_dataset", {"path": p}) for p in paths})) == 1
            assert len(_same_refusal({p: await refusal("build_dataset_from_memory", {"paths": [p]}) for p in paths})) == 1
            # Base-model folders are fenced too: an outside model folder and a missing one get the same refusal.
            models = [str(outside_model), str(tmp_path / "models" / "missing")]
            assert len(_same_refusal({m: await refusal("prompt_model", {"model": m, "prompt": "hi"}) for m in models})) == 1
            sessions(root / "train.jsonl", count=40, tag="train")
            built = await client.call_tool("build_dataset_from_memory", {"paths": [str(root / "train.jsonl")]})
            dataset_id = built.structured_content["dataset_id"]
            assert len(_same_refusal({m: await refusal("start_job", {"dataset_id": dataset_id, "base_model": m}) for m in models})) == 1
    assert not ws.store.jobs.all()


# --- a property: whatever path is asked for, only what lies inside is read ----------------------------------------
_PARTS = st.sampled_from(["..", ".", "in", "sub", "out-link", "in-link", "loop", "s.jsonl", "missing", "/proc/self/exe", "/etc/localtime", "~"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_PARTS, min_size=1, max_size=6))
def test_any_path_is_refused_or_reads_only_inside(parts: list[str], root: Path, outside: Path) -> None:
    if not (root / "in").exists():
        sessions(root / "in" / "s.jsonl", tag="inside")
        (root / "in" / "sub").mkdir()
        (root / "in" / "out-link").symlink_to(outside, target_is_directory=True)
        (root / "in" / "in-link").symlink_to(root / "in", target_is_directory=True)
        (root / "in" / "loop").symlink_to(root / "in" / "loop")
    text = str(root / "in" / Path(*parts)) if not parts[0].startswith("/") else str(Path(*parts))
    try:
        real = check_readable(text)
    except UserError as refused:
        message = str(refused)
        assert str(outside) not in message and os.path.realpath("/proc/self/exe") not in message and "zoneinfo" not in message
        return
    assert real.is_relative_to(root.resolve())
    try:
        with open_fenced(real) as handle:
            assert OUTSIDE_MARK.encode() not in handle.read()
    except (OSError, UserError):
        pass  # a folder or a missing file: nothing read


# --- 5. HTTP: the address bound decides; slow clients are cut off -------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_LOCALHOST_IS_WILDCARD = """
import socket, sys
real = socket.getaddrinfo
def hosts_file_says_wildcard(host, *args, **kwargs):  # a hosts file mapping localhost to 0.0.0.0
    return real("0.0.0.0" if host == "localhost" else host, *args, **kwargs)
socket.getaddrinfo = hosts_file_says_wildcard
from model_customization.server.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_name_is_judged_by_the_address_it_binds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKENS_ENV}
    port = _free_port()
    try:
        completed = subprocess.run(
            [sys.executable, "-c", _LOCALHOST_IS_WILDCARD, "--transport", "streamable-http", "--host", "localhost", "--port", str(port), "--home", str(tmp_path / "home")],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )
    except subprocess.TimeoutExpired as running:
        pytest.fail(f"the server started on every address without tokens: {running.stderr!r}")
    assert completed.returncode == 1, completed.stderr
    assert TOKENS_ENV in completed.stderr and "0.0.0.0" in completed.stderr and "loopback only" not in completed.stderr


@pytest.fixture
def impatient_server(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != TOKENS_ENV}
    env.update({"MODEL_CUSTOMIZATION_HOME": str(tmp_path / "home"), READ_TIMEOUT_ENV: "1"})
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "server did not start listening"
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _closed_by_server(sock: socket.socket, within_s: float = 20) -> bool:
    """Whether the server closes the connection (EOF or reset) within a generous time; False if it stays open."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass  # a 408 or similar may come first
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_half_a_request_is_cut_off_and_a_whole_one_still_answered(impatient_server: int) -> None:
    port = impatient_server
    with socket.create_connection(("127.0.0.1", port)) as half_headers:
        half_headers.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Ty".encode())
        assert _closed_by_server(half_headers), "a client that stopped mid-headers was never disconnected"
    with socket.create_connection(("127.0.0.1", port)) as half_body:
        half_body.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"jsonrpc\"".encode())
        assert _closed_by_server(half_body), "a client that stopped mid-body was never disconnected"
    with socket.create_connection(("127.0.0.1", port)) as silent:
        assert _closed_by_server(silent), "a client that sent nothing was never disconnected"
    # A whole request on a fresh connection is still served.
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
    with socket.create_connection(("127.0.0.1", port), timeout=30) as whole:
        whole.sendall(
            (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
             f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode()
        )
        answer = b""
        while chunk := whole.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b"serverInfo" in answer, answer[:300]
