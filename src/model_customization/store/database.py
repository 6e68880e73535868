"""The store: where datasets, jobs (with their events, metrics and leases), models, evaluations, deployments, spending
and provider files are recorded, one repository per entity (`store.jobs`, `store.datasets`, ...).

SQLAlchemy Core over SQLite (WAL mode, so the server, the CLI and detached training workers read and write at the same
time) or PostgreSQL (a postgresql:// store URL; several servers, on one machine or several, may share it). The schema
is kept by Alembic migrations (store/migrations/), run when a Store opens. Large payloads (dataset examples, adapters,
per-case evaluation outputs) live as files under the data home; the store holds their paths and summaries.

The Store owns what the repositories share: the engine, transactions, named locks across processes and machines, and
the schema revision.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import inspect as inspect_schema
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from model_customization.errors import UserError
from model_customization.storage import file_lock
from model_customization.store.datasets import DatasetRepository
from model_customization.store.deployments import DeploymentRepository
from model_customization.store.errors import ledger_error, refuse_emptied_ledger
from model_customization.store.evaluations import EvaluationRepository
from model_customization.store.jobs import JobRepository
from model_customization.store.models import ModelRepository
from model_customization.store.provider_files import ProviderFileRepository
from model_customization.store.spending import SpendingRepository
from model_customization.store.status import DEFAULT_LEASE_SECONDS

# The newest migration in store/migrations/versions; a store already there opens without importing Alembic.
HEAD_REVISION = "0005_grpo_validation_reward"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalize_store_url(url: str) -> str:
    """The SQLAlchemy URL for a store URL: postgresql:// and postgres:// mean PostgreSQL through psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# The parts of a store URL that hold a password, found without trusting a URL parser: a password may hold "@", "/"
# or "?" unescaped (the user info then ends at the last "@" before the query), and libpq also takes it as a
# ?password= query parameter (or sslpassword=, or a token).
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(.*)$", re.DOTALL)
_SECRET_PARAM_RE = re.compile(r"(?i)([?&;](?:[^=&;#]*(?:pass|pwd|secret|token|key)[^=&;#]*)=)([^&;#]*)")


def _split_user_info(rest: str) -> tuple[str, str | None, str]:
    """(user, password or None, what follows the user info) of the part of a URL after scheme://."""
    at = -1
    for index, char in enumerate(rest):
        if char == "@":
            at = index
        elif char == "=" or (char == "?" and "@" not in rest[index:]):
            break  # the query has begun: an "@" after this is a parameter's value
    if at < 0:
        return "", None, rest
    user, colon, password = rest[:at].partition(":")
    return user, (password if colon else None), rest[at + 1 :]


def url_passwords(url: str) -> list[str]:
    """Every password a store URL carries (in its user info and in its query), as written and %-decoded."""
    found = _SCHEME_RE.match(url)
    if not found:
        return []
    _, password, rest = _split_user_info(found.group(2))
    values = [password] if password else []
    values += [m.group(2) for m in _SECRET_PARAM_RE.finditer("?" + rest.partition("?")[2]) if m.group(2)]
    forms = set()
    for value in values:
        forms |= {value, unquote(value), quote(unquote(value), safe=""), quote(unquote(value))}
    return sorted((f for f in forms if f), key=len, reverse=True)


def mask_url(url: str) -> str:
    """The URL with every password (user info or query parameter) replaced by ***, for messages and logs."""
    found = _SCHEME_RE.match(url)
    if not found:
        return "<a store URL that is not a database URL>"
    scheme, rest = found.groups()
    user, password, after = _split_user_info(rest)
    if password is not None:
        rest = f"{user}:***@{after}"
    elif user:
        rest = f"{user}@{after}"
    head, mark, query = rest.partition("?")
    if mark:
        rest = head + _SECRET_PARAM_RE.sub(lambda m: m.group(1) + "***", "?" + query)
    return scheme + rest


def escape_user_info(url: str) -> str:
    """The URL with its password %-encoded, so that a password holding "@", "/" or "?" reaches the database whole
    (a URL parser would otherwise split it, connect to a host made of its tail and quote that tail in errors)."""
    found = _SCHEME_RE.match(url)
    if not found:
        return url
    scheme, rest = found.groups()
    user, password, after = _split_user_info(rest)
    if password is None:
        return url
    return f"{scheme}{user}:{quote(unquote(password), safe='')}@{after}"


def _scrub(message: str, url: str) -> str:
    # A driver's error text may quote the connection string; whatever it quotes, the password must not get out.
    for form in url_passwords(url):
        message = message.replace(form, "***")
    return message


def _lock_key(name: str) -> int:
    # PostgreSQL advisory locks take a signed 64-bit key: derive a stable one from the lock's name.
    return int.from_bytes(hashlib.sha256(f"model-customization:{name}".encode()).digest()[:8], "big", signed=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (server, CLI) work while a worker writes; busy_timeout waits out short write locks. The
    # timeout comes first: switching a store to WAL takes a lock, and several processes may open it at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """One database, opened and migrated to the newest schema, with a repository per entity."""

    def __init__(self, url: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS, home: Path | None = None) -> None:
        full_url = escape_user_info(normalize_store_url(url))
        self.url = mask_url(full_url)  # safe to show; the engine keeps the real one
        self.lease_seconds = lease_seconds
        self.home = home  # the data home: folder paths in the ledger are stored relative to it (repository.py)
        self._local_lock = threading.RLock()  # stands in for a file lock when the database is in memory
        self.engine = self._create_engine(full_url)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # A damaged database, a read-only home, a full disk: a StorageError saying so, from any statement.
        where = self.engine.url.database if self.dialect == "sqlite" else self.url
        event.listen(self.engine, "handle_error", lambda context: ledger_error(context, where))
        try:
            self.upgrade_schema()
        except UserError:
            self.engine.dispose()
            raise
        except DBAPIError as error:
            self.engine.dispose()
            reason = " ".join(_scrub(str(error.orig) if error.orig is not None else str(error), full_url).strip().splitlines())[:500]
            if self.dialect == "sqlite":
                advice = "Check that the folder exists and is writable, or set MODEL_CUSTOMIZATION_STORE_URL to another file."
            else:
                advice = "Check that the database server is running and that the URL (user, password, host, port, database) is right."
            raise UserError(f"Cannot open the ledger at {self.url}: {reason}. {advice}") from None
        self.datasets = DatasetRepository(self)
        self.jobs = JobRepository(self)
        self.models = ModelRepository(self)
        self.evaluations = EvaluationRepository(self)
        self.deployments = DeploymentRepository(self)
        self.spending = SpendingRepository(self)
        self.provider_files = ProviderFileRepository(self)

    def _create_engine(self, full_url: str) -> Engine:
        try:
            if full_url.startswith("postgresql"):
                # pre_ping: a server that outlives a database restart gets fresh connections instead of errors.
                return create_engine(full_url, pool_pre_ping=True)
            return create_engine(full_url)
        except ImportError as error:
            raise UserError(
                f"The store {self.url} needs a database driver that is not installed ({error.name or error}). For PostgreSQL: "
                "pip install 'model-customization[postgres]' (psycopg 3)."
            ) from None
        except (ArgumentError, NoSuchModuleError, ValueError) as error:  # ValueError: a port that is not a number
            raise UserError(
                f"The store URL {self.url} cannot be opened: {_scrub(str(error), full_url)}. Set MODEL_CUSTOMIZATION_STORE_URL "
                "to sqlite:////absolute/path/ledger.sqlite3 or postgresql://user:password@host:port/database."
            ) from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at; None for a new database or one made before migrations."""
        with self.engine.connect() as conn:
            if not inspect_schema(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def upgrade_schema(self) -> None:
        """Bring the database to the newest schema (`alembic upgrade head`): creates a new store, migrates an older one.

        A ledger made before migrations existed (tables, no alembic_version) is adapted by the first revision
        without losing rows. Processes that open the same new or old database at once take turns: an advisory lock on
        PostgreSQL, a lock file beside the SQLite database.
        """
        # SQLite: even the first look takes the lock, since the first connection switches an old ledger to WAL,
        # which fails at once ("database is locked") while another process migrates it.
        if self.dialect != "sqlite" and self.schema_revision() == HEAD_REVISION:
            return  # the common case on a server: no Alembic import, no lock
        with self.exclusive("schema"):
            database = self.engine.url.database if self.dialect == "sqlite" else None
            if database and database != ":memory:" and not database.startswith("file:"):
                refuse_emptied_ledger(Path(database), self.home)  # before SQLite takes it for a new ledger
            if self.schema_revision() == HEAD_REVISION:
                return
            # Alembic loads only when there is something to migrate (a server start usually has nothing).
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                config.attributes["home"] = self.home  # 0003 rewrites folder paths relative to it
                command.upgrade(config, "head")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """A lock named `name`, held for the block, shared by every process that opens this database: a session
        advisory lock on PostgreSQL (so servers on several machines take turns), a lock file beside a SQLite database."""
        if self.dialect == "postgresql":
            key = _lock_key(name)
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            return
        database = self.engine.url.database if self.dialect == "sqlite" else None
        if database and database != ":memory:" and not database.startswith("file:"):
            with file_lock(Path(f"{database}.{name}.lock")):
                yield
            return
        with self._local_lock:
            yield

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection whose writes commit together at the end of the block, or not at all."""
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
