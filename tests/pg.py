"""A throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, a cluster in a temporary folder.

`PostgresServer.start()` runs initdb (as the `postgres` user when the tests run as root: the server refuses to run
as root), starts it on a free local port with its unix socket in the same folder, and `create_database()` gives each
test a database of its own. Password authentication (scram) is on for TCP, so the URLs the tests use carry a real
password, which the product must never show.

Binaries are looked up in $MODEL_CUSTOMIZATION_TEST_PG_BIN, then on PATH, then in /usr/lib/postgresql/<version>/bin.
Without them the fixtures skip, except in CI (CI=true), where they fail: CI installs the package (dev.sh setup).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SUPERUSER = "postgres"


def find_pg_bin() -> Path | None:
    named = os.environ.get("MODEL_CUSTOMIZATION_TEST_PG_BIN")
    candidates = [Path(named)] if named else []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.password = "pw-" + secrets.token_hex(8)
        self.root = Path(tempfile.mkdtemp(prefix="mc-test-pg-"))  # not under pytest's 0700 tmp: postgres must reach it
        self.data = self.root / "data"
        self.port = _free_port()
        self.run_as: list[str] = []
        self._reused: dict[str, str] = {}  # prefix -> the database made for it
        if os.geteuid() == 0:
            try:
                import pwd

                account = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("the tests run as root and there is no 'postgres' user to run PostgreSQL as (apt-get install postgresql creates it)") from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.run_as, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")

    def start(self) -> PostgresServer:
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        if self.run_as:
            shutil.chown(password_file, "postgres")
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--pwfile", str(password_file),
            "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync",
        )
        password_file.unlink()
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")
        return self

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        return f"postgresql://{SUPERUSER}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "ledger") -> str:
        """A new empty database; returns its URL (postgresql://, with the password)."""
        import psycopg

        name = f"{prefix}_{secrets.token_hex(4)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password, dbname="postgres", autocommit=True) as conn:
            # FILE_COPY (PostgreSQL 15+) copies the tiny template at once instead of through the WAL: much faster here.
            strategy = " STRATEGY = FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}"{strategy}')
        return self.url(name)

    def empty_database(self, name: str = "ledger_tests") -> str:
        """One database reused by test after test, emptied each time (far quicker than CREATE DATABASE here)."""
        import psycopg

        if name not in self._reused:
            self._reused[name] = self.create_database(name).rsplit("/", 1)[1]
        database = self._reused[name]
        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password, dbname=database, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return self.url(database)

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def unavailable(reason: str) -> None:
    """Skip with the reason, or fail in CI, where PostgreSQL must be there (dev.sh setup installs it)."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason} (apt-get install postgresql, or ./dev.sh setup)")


@pytest.fixture(scope="session")
def postgres_server():
    bin_dir = find_pg_bin()
    if bin_dir is None:
        unavailable("initdb/pg_ctl/postgres not found on PATH, in /usr/lib/postgresql/*/bin or $MODEL_CUSTOMIZATION_TEST_PG_BIN")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the psycopg driver is not installed (pip install -e '.[postgres]')")
    server = PostgresServer(bin_dir)
    started = time.monotonic()
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        shutil.rmtree(server.root, ignore_errors=True)
        unavailable(f"the test server did not start: {error}")
    server.startup_seconds = time.monotonic() - started
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """An empty PostgreSQL database for one test (its URL carries the server's password)."""
    return postgres_server.empty_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each ledger test runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    return request.getfixturevalue("pg_url")
