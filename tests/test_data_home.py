"""The data home and the config file, through the interfaces where their failures were seen (issue 17, section 5).

- Concurrent builds of one memory (threads of one server, two server processes on one home, a PostgreSQL ledger)
  all return the same dataset: one id, one folder, no error.
- A moved home keeps working (ledger paths are relative to the home; older ledgers are migrated), and `doctor` never
  calls data safe to delete that the ledger cannot account for; a zero-byte ledger is refused, not taken as new.
- A damaged ledger, a read-only home and a full disk each get their own message, never "Internal error" or a traceback.
- Settings that are not numbers (nan, inf, abc, a store URL's port) are refused naming the setting and its source.
- The config file is checked as ssh checks its files: owner, folders, and secrets inside any value.
- A new home is private (0700, ledger 0600), and a dataset name cannot inject Markdown or HTML into card.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from model_customization.datasets.build import build_dataset
from model_customization.server.app import build_server
from model_customization.workspace import Workspace

pytestmark = pytest.mark.timeout(300)
SECRET_TOKEN = "ghp_" + "Zq7Xw2Lp9Rt4Vn8Bk3Hs6Jd1Fg5Mc0Ya2Wu7"
NOBODY = 65534


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def memory_file(path: Path, count: int = 40, tag: str = "m") -> Path:
    """An OpenAI chat JSONL file of `count` distinct sessions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"messages": [
            {"role": "user", "content": f"How do I rotate the {tag}{i} log on host {i * 7}? It fills the disk every {i + 2} days."},
            {"role": "assistant", "content": f"Use logrotate for {tag}{i}: keep {i % 5 + 2} files, compress, rotate at {i * 13 + 10} MB."},
        ]})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli(*args: str, home: Path | None = None, env: dict[str, str | None] | None = None, user: int | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (`python -m model_customization ...`); a variable given as None is unset."""
    command = [sys.executable, "-m", "model_customization", *args] + (["--home", str(home)] if home is not None else [])
    run_env = {k: v for k, v in os.environ.items() if k not in ("MODEL_CUSTOMIZATION_HOME", "MODEL_CUSTOMIZATION_STORE_URL")}
    run_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), run_env.get("PYTHONPATH", "")])
    for name, value in (env or {}).items():
        if value is None:
            run_env.pop(name, None)
        else:
            run_env[name] = value
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=run_env, user=user, check=False)


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def dataset_folders(home: Path) -> list[str]:
    """Every folder under <home>/datasets, hidden staging folders included."""
    return sorted(entry.name for entry in (home / "datasets").iterdir() if entry.is_dir()) if (home / "datasets").is_dir() else []


# --- 1. concurrent builds of one content ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def http_servers(home: Path, count: int, env: dict[str, str] | None = None):
    """`count` MCP server processes over streamable HTTP, all on one data home; yields their URLs."""
    processes, urls = [], []
    run_env = {k: v for k, v in os.environ.items() if k not in ("MODEL_CUSTOMIZATION_HOME",)}
    run_env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), run_env.get("PYTHONPATH", "")])
    run_env.update(env or {})
    try:
        for _ in range(count):
            port = _free_port()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "model_customization", "serve", "--transport", "streamable-http", "--port", str(port), "--home", str(home)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=run_env,
            ))
            urls.append(f"http://127.0.0.1:{port}/mcp")
        for process, url in zip(processes, urls):
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            deadline = time.monotonic() + 90
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    assert process.poll() is None, process.stderr.read().decode()[-3000:]
                    assert time.monotonic() < deadline, "a server did not start listening"
                    time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


async def _build_concurrently(urls: list[str], calls_per_server: int, args: dict[str, Any]) -> list[Any]:
    results: list[Any] = []

    async def one(url: str) -> None:
        async with Client(url) as client:
            results.append(await client.call_tool("build_dataset_from_memory", args))

    with anyio.fail_after(240):
        async with anyio.create_task_group() as group:
            for url in urls:
                for _ in range(calls_per_server):
                    group.start_soon(one, url)
    return results


def _assert_one_dataset(results: list[Any], home: Path) -> str:
    errors = [text_of(r) for r in results if r.is_error]
    assert not errors, errors
    ids = {r.structured_content["dataset_id"] for r in results}
    assert len(ids) == 1, ids
    (dataset_id,) = ids
    assert sum(not r.structured_content["already_existed"] for r in results) == 1  # stored once, found by the rest
    assert dataset_folders(home) == [dataset_id]  # no second folder, no staging folder left
    return dataset_id


@pytest.mark.anyio
async def test_four_concurrent_builds_on_two_servers_sharing_a_home_return_one_dataset(tmp_path: Path) -> None:
    home = tmp_path / "home"
    memory = memory_file(tmp_path / "memory" / "chats.jsonl", count=120)
    with http_servers(home, 2) as urls:
        results = await _build_concurrently(urls, 2, {"paths": [str(memory)], "name": "shared"})
    dataset_id = _assert_one_dataset(results, home)
    doctor = cli("doctor", "--json", home=home)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert json.loads(doctor.stdout)["leftovers"] == []
    assert [d["id"] for d in Workspace.open(home).store.datasets.all()] == [dataset_id]


@pytest.mark.anyio
async def test_four_concurrent_builds_in_one_server_return_one_dataset_on_sqlite_and_postgresql(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_CUSTOMIZATION_STORE_URL", store_url)
    home = tmp_path / "home"
    ws = Workspace.open(home)
    memory = memory_file(tmp_path / "memory" / "chats.jsonl", count=120)
    results: list[Any] = []
    async with Client(build_server(ws)) as client:

        async def one(name: str) -> None:
            results.append(await client.call_tool("build_dataset_from_memory", {"paths": [str(memory)], "name": name}))

        with anyio.fail_after(240):
            async with anyio.create_task_group() as group:
                for n in range(4):
                    group.start_soon(one, f"build {n}")
    _assert_one_dataset(results, home)
    ws.store.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    builders=st.integers(min_value=2, max_value=4),
    delays=st.lists(st.sampled_from([0.0, 0.0, 0.01, 0.05]), min_size=4, max_size=4),
    reverse=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_property_any_order_of_concurrent_builds_gives_one_dataset_and_one_folder(tmp_path_factory: pytest.TempPathFactory, builders: int, delays: list[float], reverse: list[bool]) -> None:
    base = tmp_path_factory.mktemp("race")
    first = memory_file(base / "memory" / "a.jsonl", count=30, tag="a")
    second = memory_file(base / "memory" / "b.jsonl", count=30, tag="b")
    home = base / "home"
    outcomes: list[Any] = []
    start = threading.Barrier(builders)

    def build(n: int) -> None:
        ws = Workspace.open(home)  # each builder as its own process would: its own engine and connections
        try:
            start.wait(timeout=60)
            time.sleep(delays[n])
            paths = [second, first] if reverse[n] else [first, second]  # the same memory given in another order
            outcomes.append(build_dataset(ws, paths, name=f"builder {n}"))
        except Exception as error:  # noqa: BLE001 - recorded and asserted on below
            outcomes.append(error)
        finally:
            ws.store.close()

    threads = [threading.Thread(target=build, args=(n,)) for n in range(builders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert len({o.dataset_id for o in outcomes}) == 1 and len(outcomes) == builders
    assert sum(not o.already_existed for o in outcomes) == 1
    assert dataset_folders(home) == [outcomes[0].dataset_id]
    shutil.rmtree(base, ignore_errors=True)


# --- 2. a moved home, a zero-byte ledger, doctor -------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_moved_home_keeps_its_datasets_and_doctor_finds_nothing_to_delete(tmp_path: Path) -> None:
    old_home, new_home = tmp_path / "old-home", tmp_path / "moved" / "home"
    memory = memory_file(tmp_path / "memory" / "chats.jsonl")
    ws = Workspace.open(old_home)
    async with Client(build_server(ws)) as client:
        built = await client.call_tool("build_dataset_from_memory", {"paths": [str(memory)]})
        assert not built.is_error, text_of(built)
    dataset_id = built.structured_content["dataset_id"]
    ws.store.close()
    new_home.parent.mkdir()
    shutil.move(str(old_home), str(new_home))

    moved = Workspace.open(new_home)
    async with Client(build_server(moved)) as client:
        inspected = await client.call_tool("inspect_dataset", {"dataset_id": dataset_id})
        assert not inspected.is_error, text_of(inspected)
        card = await client.read_resource(f"datasets://{dataset_id}/card.md")
        assert dataset_id in card.contents[0].text
    moved.store.close()
    doctor = cli("doctor", "--json", home=new_home)
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0 and report["ok"] is True, doctor.stdout + doctor.stderr
    assert report["leftovers"] == []


@pytest.mark.anyio
async def test_a_ledger_with_absolute_paths_from_an_older_version_is_migrated_when_its_home_has_moved(tmp_path: Path) -> None:
    old_home, new_home = tmp_path / "old-home", tmp_path / "new-home"
    memory = memory_file(tmp_path / "memory" / "chats.jsonl")
    ws = Workspace.open(old_home)
    dataset_id = build_dataset(ws, [memory]).dataset_id
    ws.store.close()
    # As the previous version left it: absolute paths, schema at 0002.
    with sqlite3.connect(old_home / "ledger.sqlite3") as conn:
        conn.execute("UPDATE datasets SET path = ?", (str(old_home / "datasets" / dataset_id),))
        conn.execute("UPDATE alembic_version SET version_num = '0002_job_leases'")
    shutil.move(str(old_home), str(new_home))

    moved = Workspace.open(new_home)
    assert moved.store.datasets.get(dataset_id)["path"] == str(new_home / "datasets" / dataset_id)
    with sqlite3.connect(new_home / "ledger.sqlite3") as conn:
        assert conn.execute("SELECT path FROM datasets").fetchall() == [(f"datasets/{dataset_id}",)]
    async with Client(build_server(moved)) as client:
        listed = await client.call_tool("list_datasets", {})
        assert [d["dataset_id"] for d in listed.structured_content["datasets"]] == [dataset_id]
        inspected = await client.call_tool("inspect_dataset", {"dataset_id": dataset_id})
        assert not inspected.is_error, text_of(inspected)
    moved.store.close()
    doctor = cli("doctor", "--json", home=new_home)
    assert doctor.returncode == 0 and json.loads(doctor.stdout)["leftovers"] == [], doctor.stdout + doctor.stderr


def test_a_zero_byte_ledger_is_refused_and_doctor_never_calls_the_datasets_safe_to_delete(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace.open(home)
    dataset_id = build_dataset(ws, [memory_file(tmp_path / "memory" / "chats.jsonl")]).dataset_id
    ws.store.close()
    (home / "ledger.sqlite3").write_bytes(b"")
    doctor = cli("doctor", "--json", home=home)
    output = doctor.stdout + doctor.stderr
    assert doctor.returncode == 1 and "empty file (0 bytes)" in output and "Restore it from a backup" in output, output
    assert "safe to delete" not in output and "Traceback" not in output
    listed = cli("dataset", "list", home=home)
    assert listed.returncode == 1 and "empty file (0 bytes)" in listed.stderr, listed.stdout + listed.stderr
    assert (home / "datasets" / dataset_id / "train.jsonl").is_file()  # nothing was touched
    assert (home / "ledger.sqlite3").stat().st_size == 0


def test_doctor_calls_only_staging_folders_safe_to_delete(tmp_path: Path) -> None:
    """A dataset folder the ledger does not record (a ledger restored from an older backup) is not called safe to delete."""
    home = tmp_path / "home"
    ws = Workspace.open(home)
    kept = build_dataset(ws, [memory_file(tmp_path / "memory" / "a.jsonl", tag="a")]).dataset_id
    ws.store.close()
    backup = tmp_path / "ledger-backup.sqlite3"
    with sqlite3.connect(home / "ledger.sqlite3") as source, sqlite3.connect(backup) as copy:
        source.backup(copy)
    ws = Workspace.open(home)
    lost = build_dataset(ws, [memory_file(tmp_path / "memory" / "b.jsonl", tag="b")]).dataset_id
    ws.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home / 'ledger.sqlite3'}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, home / "ledger.sqlite3")  # the backup knows only the first dataset
    (home / "datasets" / ".build-interrupted").mkdir()

    doctor = cli("doctor", "--json", home=home)
    report = json.loads(doctor.stdout)
    about_lost = [line for line in report["leftovers"] if lost in line]
    about_staging = [line for line in report["leftovers"] if ".build-interrupted" in line]
    assert about_lost and "safe to delete" not in about_lost[0] and "keep it" in about_lost[0], report
    assert about_staging and "safe to delete" in about_staging[0]
    assert not any(kept in line for line in report["leftovers"])


# --- 3. a damaged ledger, a read-only home, a full disk ------------------------------------------------------------


@pytest.mark.anyio
async def test_a_damaged_ledger_gets_its_own_message_over_mcp_and_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace.open(home)
    build_dataset(ws, [memory_file(tmp_path / "memory" / "chats.jsonl")])
    ws.store.close()
    ledger = home / "ledger.sqlite3"
    ledger.write_bytes(b"this is not a database, it was overwritten " * 200)

    damaged = Workspace.open(home)
    async with Client(build_server(damaged, dispatch_at_start="soon")) as client:  # as `serve` starts it
        result = await client.call_tool("list_datasets", {})
    assert result.is_error
    message = text_of(result)
    assert "is damaged" in message and "Restore it from a backup" in message, message
    assert "Internal error" not in message and "folder exists and is writable" not in message
    doctor = cli("doctor", home=home)
    assert doctor.returncode == 1 and "is damaged" in doctor.stderr and "Traceback" not in doctor.stderr, doctor.stderr


def test_a_ledger_damaged_inside_its_pages_gets_the_damaged_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace.open(home)
    build_dataset(ws, [memory_file(tmp_path / "memory" / "chats.jsonl", count=200)])
    ws.store.close()
    ledger = home / "ledger.sqlite3"
    data = bytearray(ledger.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data), page):  # keep the header page; scribble over every b-tree page after it
        data[offset:offset + 64] = b"\xff" * 64
    ledger.write_bytes(bytes(data))
    listed = cli("dataset", "list", home=home)
    doctor = cli("doctor", home=home)
    for run in (listed, doctor):
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stdout + run.stderr
        assert "is damaged" in run.stdout + run.stderr or "integrity_check" in run.stdout, run.stdout + run.stderr


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="h17-mount-probe-"))
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True, check=False).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    finally:
        probe.rmdir()


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs: a real full disk (needs root and the right to mount)."""
    if not _can_mount():
        pytest.skip("mounting a tmpfs needs root and CAP_SYS_ADMIN; the ENOSPC test below covers the write boundary")
    folder = tmp_path / "small-disk"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.anyio
async def test_a_full_disk_gets_its_own_message_over_mcp(tmp_path: Path, small_disk: Path) -> None:
    home = small_disk / "home"
    ws = Workspace.open(home)
    ws.store.datasets.all()  # the ledger is created while there is room
    filler = small_disk / "filler"
    with filler.open("wb") as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
            handle.flush()
    big = memory_file(tmp_path / "memory" / "chats.jsonl", count=400)
    async with Client(build_server(ws)) as client:
        result = await client.call_tool("build_dataset_from_memory", {"paths": [str(big)]})
    message = text_of(result)
    assert result.is_error and "full" in message and "Free some space" in message, message
    assert "Internal error" not in message
    assert [entry for entry in dataset_folders(home) if not entry.startswith(".")] == []
    # The ledger's own writes on the full disk: the store's one error handler says so too.
    from model_customization.store.errors import StorageError

    with pytest.raises(StorageError, match="The disk holding the ledger .* is full"):
        for n in range(200):
            ws.store.datasets.add({"id": f"ds-fill-{n}", "name": "x" * 50000, "path": str(home / "datasets" / f"ds-fill-{n}"), "counts": {}, "card": {}})
    filler.unlink()
    ws.store.close()


@pytest.mark.anyio
async def test_enospc_at_the_write_boundary_gets_the_full_disk_message(ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no tmpfs can be mounted: the splits' writer fails as a full disk makes it fail."""
    import errno

    from model_customization.datasets import build

    def no_space(*_args: Any, **_kwargs: Any) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(build, "_write_splits", no_space)
    async with Client(build_server(ws)) as client:
        result = await client.call_tool("build_dataset_from_memory", {"paths": [str(memory_file(tmp_path / "memory" / "chats.jsonl"))]})
    message = text_of(result)
    assert result.is_error and "disk is full" in message and "Internal error" not in message, message


@contextlib.contextmanager
def read_only(folder: Path):
    """The folder read-only for this process: a read-only bind mount as root (root ignores mode bits), chmod otherwise."""
    if os.geteuid() == 0:
        if not _can_mount():
            pytest.skip("a read-only home as root needs a read-only bind mount")
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        yield
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)


@pytest.mark.anyio
async def test_a_read_only_home_gets_its_own_message_over_mcp_and_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace.open(home)
    build_dataset(ws, [memory_file(tmp_path / "memory" / "a.jsonl", tag="a")])
    ws.store.close()
    other = memory_file(tmp_path / "memory" / "b.jsonl", tag="b")
    with read_only(home):
        built = cli("dataset", "build", str(other), home=home)
        output = built.stdout + built.stderr
        assert built.returncode == 1 and "Traceback" not in output, output
        assert "read-only" in output or "not writable" in output, output
        assert "malformed" not in output and "damaged" not in output

        ro = Workspace.open(home)
        async with Client(build_server(ro, dispatch_at_start="soon")) as client:  # as `serve` starts it
            result = await client.call_tool("build_dataset_from_memory", {"paths": [str(other)]})
        message = text_of(result)
        assert result.is_error and ("read-only" in message or "not writable" in message), message
        assert "Internal error" not in message


# --- 4. settings that are not numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS", "abc"),
        ("MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS", "nan"),
        ("MODEL_CUSTOMIZATION_LEASE_SECONDS", "nan"),
        ("MODEL_CUSTOMIZATION_LEASE_SECONDS", "inf"),
        ("MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD", "inf"),
        ("MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD", "abc"),
        ("MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD", "1e400"),
    ],
)
def test_a_setting_that_is_not_a_usable_number_is_refused_naming_it_and_its_source(tmp_path: Path, name: str, value: str) -> None:
    from_env = cli("dataset", "list", home=tmp_path / "home", env={name: value})
    assert from_env.returncode == 1, from_env.stdout + from_env.stderr
    assert "Traceback" not in from_env.stderr and f"{name}={value!r}" in from_env.stderr and f"environment variable {name}" in from_env.stderr, from_env.stderr

    home = tmp_path / "file-home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(f'max_line_bytes = 1000\n\n[env]\n{name} = "{value}"\n')
    config.chmod(0o600)
    # The environment wins over the config file: the test session's own budgets must not hide the file's value.
    from_file = cli("dataset", "list", home=home, env={name: None})
    assert from_file.returncode == 1 and "Traceback" not in from_file.stderr, from_file.stderr
    assert f"{config} line 4 (env.{name})" in " ".join(from_file.stderr.split()), from_file.stderr


def test_a_store_url_whose_port_is_not_a_number_is_refused_without_a_traceback_or_the_password(tmp_path: Path) -> None:
    url = "postgresql://app:Sup3rSecretPw@db.internal:abc/ledger"
    for args in (("dataset", "list"), ("doctor",)):
        run = cli(*args, home=tmp_path / "home", env={"MODEL_CUSTOMIZATION_STORE_URL": url})
        output = run.stdout + run.stderr
        assert run.returncode == 1 and "Traceback" not in output, output
        assert "MODEL_CUSTOMIZATION_STORE_URL" in output and "port" in output and "Sup3rSecretPw" not in output, output


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(
    st.text(max_size=12),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "Infinity", "1e309", "0", "-1", "0.5", "2", "60", " 7 ", "1_000", "0x10", "１２"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
))
def test_property_numeric_settings_are_finite_in_range_or_refused_with_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    import math

    from model_customization.config import ConfigError, load_settings

    if "\x00" in value:
        return  # an environment variable cannot hold NUL
    for name, attribute, minimum in (
        ("MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS", "max_local_jobs", 1),
        ("MODEL_CUSTOMIZATION_LEASE_SECONDS", "lease_seconds", 1),
        ("MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD", "budget_per_day_usd", 0),
    ):
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            try:
                loaded = getattr(load_settings(tmp_path / "home"), attribute)
            except ConfigError as error:
                assert name in str(error) and "environment variable" in str(error)
                continue
            assert math.isfinite(loaded) and loaded >= minimum, (name, value, loaded)


# --- 5. the config file is checked as ssh checks its files --------------------------------------------------------


needs_root = pytest.mark.skipif(os.name == "nt" or os.geteuid() != 0, reason="giving a file to another user needs root")


@needs_root
def test_a_config_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text('[env]\nMODEL_CUSTOMIZATION_WORKER_LAUNCHER = "/tmp/evil.sh"\n')
    config.chmod(0o644)
    os.chown(config, NOBODY, NOBODY)
    run = cli("dataset", "list", home=home)
    assert run.returncode == 1 and "belongs to another user" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert "/tmp/evil.sh" not in run.stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_private_config_file_in_a_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared-folder"
    shared.mkdir()
    shared.chmod(0o777)
    config = shared / "config.toml"
    config.write_text("max_line_bytes = 1000\n")
    config.chmod(0o600)
    run = cli("dataset", "list", home=tmp_path / "home", env={"MODEL_CUSTOMIZATION_CONFIG": str(config)})
    assert run.returncode == 1 and "writable by group or others" in run.stderr and str(shared) in run.stderr, run.stderr
    # A sticky folder (as /tmp is) lets others add files but not replace ours: accepted.
    shared.chmod(0o1777)
    run = cli("dataset", "list", home=tmp_path / "home", env={"MODEL_CUSTOMIZATION_CONFIG": str(config)})
    assert run.returncode == 0, run.stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODEL_CUSTOMIZATION_WORKER_LAUNCHER", f"env GITHUB_TOKEN={SECRET_TOKEN} accelerate launch"),
        ("OPENAI_ORG_ID", SECRET_TOKEN),
        ("AWS_REGION", "sk-proj-" + "Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv"),
    ],
)
def test_a_secret_inside_any_value_needs_a_private_config_file(tmp_path: Path, name: str, value: str) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(f'[env]\n{name} = "{value}"\n')
    config.chmod(0o644)
    run = cli("dataset", "list", home=home)
    assert run.returncode == 1 and f"holds secrets ({name})" in run.stderr and "chmod 600" in run.stderr, run.stderr
    assert value not in run.stderr and SECRET_TOKEN not in run.stderr
    config.chmod(0o600)
    assert cli("dataset", "list", home=home).returncode == 0


# --- 6. a private home; 7. card.md ---------------------------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_new_home_is_private(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    memory = memory_file(tmp_path / "memory" / "chats.jsonl")
    run = cli("dataset", "build", str(memory), "--json", home=home)
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm"):
        if (home / name).exists():
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name


@pytest.mark.anyio
async def test_a_dataset_name_with_markdown_and_html_is_shown_as_text_in_card_md(ws, tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    name = '<img src=x onerror="alert(1)"> [click](javascript:alert(1)) **bold**\n# injected heading | cell'
    async with Client(build_server(ws)) as client:
        built = await client.call_tool("build_dataset_from_memory", {"paths": [str(memory_file(tmp_path / "memory" / "chats.jsonl"))], "name": name})
        assert not built.is_error, text_of(built)
        dataset_id = built.structured_content["dataset_id"]
        card = (await client.read_resource(f"datasets://{dataset_id}/card.md")).contents[0].text
    heading = card.splitlines()[0]
    assert "<img" not in card and "](javascript" not in card and "\n# injected" not in card
    rendered = MarkdownIt("commonmark").render(heading)
    assert "<img" not in rendered and "<a " not in rendered and "<strong>" not in rendered
    assert rendered.count("<h1>") == 1


@settings(max_examples=200, deadline=None)
@given(name=st.text(min_size=1, max_size=60))
def test_property_any_name_renders_as_its_own_text(name: str) -> None:
    import html
    import re

    from markdown_it import MarkdownIt

    from model_customization.datasets.build import markdown_text

    name = name.replace("\x00", "")  # CommonMark shows NUL as U+FFFD whatever precedes it
    rendered = MarkdownIt("commonmark").render(f"# Dataset ds-1: {markdown_text(name)}\n\nnext paragraph")
    heading = re.fullmatch(r"<h1>(.*)</h1>\n<p>next paragraph</p>\n", rendered, re.DOTALL)
    assert heading, rendered  # one heading, nothing added after it
    inner = heading.group(1)
    assert "<" not in inner.replace("&lt;", "")  # no tag of any kind
    shown = html.unescape(inner)
    assert shown == f"Dataset ds-1: {' '.join(name.split())}".rstrip() or shown == f"Dataset ds-1:{' '.join(name.split())}".rstrip()
