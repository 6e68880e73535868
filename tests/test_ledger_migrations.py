"""Schema migrations (Alembic) of the ledger, store URLs and their secrets, on SQLite and on a real PostgreSQL server.

An old ledger (made before migrations: tables without alembic_version, some columns and tables missing) must open
with its rows intact and every later column added; a ledger stamped at an earlier revision must get the columns of
the later ones; several processes opening one new ledger at once must not race; a password in a store URL never
appears in the ledger's attributes or error messages.
"""

from __future__ import annotations

import multiprocessing
import time

import pytest
import sqlalchemy as sa

from model_customization.errors import UserError
from model_customization.store.database import HEAD_REVISION, MIGRATIONS_DIR, Store, mask_url, normalize_store_url

pytestmark = pytest.mark.timeout(120)


def _legacy_metadata() -> sa.MetaData:
    """Three tables as a version from before migrations made them: jobs without the cloud, queue and lease columns,
    evaluations without resume support; no models, spend, deployments or agent_suites tables at all."""
    metadata = sa.MetaData()
    sa.Table(
        "datasets", metadata,
        sa.Column("id", sa.String, primary_key=True), sa.Column("name", sa.String, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False), sa.Column("path", sa.Text, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False), sa.Column("card", sa.JSON, nullable=False),
    )
    sa.Table(
        "jobs", metadata,
        sa.Column("id", sa.String, primary_key=True), sa.Column("provider", sa.String, nullable=False),
        sa.Column("base_model", sa.Text, nullable=False), sa.Column("dataset_id", sa.String, sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("method", sa.String, nullable=False), sa.Column("hyperparameters", sa.JSON, nullable=False),
        sa.Column("status", sa.String, nullable=False), sa.Column("step", sa.Integer, nullable=False),
        sa.Column("error", sa.Text), sa.Column("model_id", sa.String), sa.Column("worker_pid", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False), sa.Column("updated_at", sa.Float, nullable=False),
    )
    sa.Table(
        "evaluations", metadata,
        sa.Column("id", sa.String, primary_key=True), sa.Column("dataset_id", sa.String, nullable=False),
        sa.Column("models", sa.JSON, nullable=False), sa.Column("status", sa.String, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False), sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    return metadata


def _make_legacy_ledger(url: str) -> None:
    engine = sa.create_engine(normalize_store_url(url))
    metadata = _legacy_metadata()
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(metadata.tables["datasets"].insert().values(id="ds-old", name="old", created_at=1.5, path="/d", counts={"train": 20}, card={"method": "sft"}))
        conn.execute(
            metadata.tables["jobs"].insert().values(
                id="job-old", provider="local", base_model="base", dataset_id="ds-old", method="sft", hyperparameters={"epochs": 3},
                status="succeeded", step=40, model_id="model-old", created_at=2.25, updated_at=3.5,
            )
        )
        conn.execute(metadata.tables["evaluations"].insert().values(id="ev-old", dataset_id="ds-old", models=["a"], status="succeeded", summary={"a": 1}, path="/e", created_at=4.0))
    engine.dispose()


def _columns(store: Store, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(store.engine).get_columns(table)}


def test_head_revision_is_the_newest_migration_and_ships_in_the_package() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [HEAD_REVISION]
    assert MIGRATIONS_DIR.parent.name == "store" and (MIGRATIONS_DIR / "env.py").is_file()
    # Every revision on the one line from the base to the head, each with a downgrade.
    assert [r.revision for r in scripts.walk_revisions()][::-1][0] == "0001_baseline"


def test_an_old_ledger_made_before_migrations_keeps_its_rows_and_gains_the_rest(store_url: str) -> None:
    _make_legacy_ledger(store_url)
    store = Store(store_url)
    assert store.schema_revision() == HEAD_REVISION
    job = store.jobs.get("job-old")
    assert job["status"] == "succeeded" and job["step"] == 40 and job["hyperparameters"] == {"epochs": 3} and job["created_at"] == 2.25
    assert job["remote_id"] is None and job["worker_host"] is None and job["lease_expires_at"] is None
    assert {"remote_id", "idempotency_key", "details", "queued_at", "worker_host", "lease_expires_at"} <= _columns(store, "jobs")
    assert store.evaluations.get("ev-old")["summary"] == {"a": 1}
    # The missing tables exist and work, the missing index was made.
    store.deployments.add({"agent": "triage", "model": "model-old", "action": "deploy"})
    store.spending.add({"job_id": "job-old", "provider": "openai", "committed_usd": 1.0, "approved_by": "budget"})
    store.evaluations.update("ev-old", plan={"cases": 2})
    assert store.evaluations.get("ev-old")["plan"] == {"cases": 2}
    assert "ix_jobs_idempotency_key" in {i["name"] for i in sa.inspect(store.engine).get_indexes("jobs")}
    store.jobs.update("job-old", idempotency_key="k", details={"a": [1]})
    assert store.jobs.by_idempotency_key("local", "k")["details"] == {"a": [1]}
    store.close()
    assert Store(store_url).datasets.get("ds-old")["counts"] == {"train": 20}  # and it reopens as it is


def test_a_ledger_at_an_earlier_revision_gets_the_columns_of_later_ones(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    engine = sa.create_engine(normalize_store_url(store_url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001_baseline")  # what the previous release made
    with engine.begin() as conn:
        assert "worker_host" not in {c["name"] for c in sa.inspect(conn).get_columns("jobs")}
        conn.execute(sa.text("INSERT INTO datasets (id, name, created_at, path, counts, card) VALUES ('ds', 'n', 1.0, '/d', '{}', '{}')"))
        conn.execute(
            sa.text(
                "INSERT INTO jobs (id, provider, base_model, dataset_id, method, hyperparameters, status, step, created_at, updated_at) "
                "VALUES ('job-1', 'local', 'b', 'ds', 'sft', '{}', 'queued', 0, 1.0, 1.0)"
            )
        )
    engine.dispose()

    store = Store(store_url)
    assert store.schema_revision() == HEAD_REVISION
    assert {"worker_host", "lease_expires_at"} <= _columns(store, "jobs")
    assert store.jobs.get("job-1")["status"] == "queued"
    assert store.jobs.reserve("job-1", "host-a") and store.jobs.get("job-1")["worker_host"] == "host-a"
    store.close()


def _open_in_process(url: str, barrier, results) -> None:
    barrier.wait(60)
    try:
        store = Store(url)
        results.put(("ok", store.schema_revision()))
        store.close()
    except Exception as error:  # noqa: BLE001 - reported to the test
        results.put(("error", f"{type(error).__name__}: {error}"))


@pytest.mark.parametrize("legacy", [False, True], ids=["new", "legacy"])
def test_several_processes_opening_one_ledger_at_once_do_not_race(store_url: str, legacy: bool) -> None:
    if legacy:
        _make_legacy_ledger(store_url)
    context = multiprocessing.get_context("fork")  # fork: no re-import, the race starts within milliseconds
    barrier, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_open_in_process, args=(store_url, barrier, results)) for _ in range(4)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=90) for _ in processes]
    for process in processes:
        process.join(30)
    assert outcomes == [("ok", HEAD_REVISION)] * 4
    store = Store(store_url)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD_REVISION]
    if legacy:
        assert store.jobs.get("job-old")["model_id"] == "model-old"
    store.close()


def test_store_urls_are_normalised_and_masked() -> None:
    assert normalize_store_url("postgresql://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert normalize_store_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_store_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"  # an explicit driver stays
    assert normalize_store_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    masked = mask_url("postgresql+psycopg://reader:s3cr%40t@db.internal:5432/ledger")
    assert "s3cr" not in masked and "reader" in masked and "db.internal" in masked and "***" in masked


def test_a_wrong_password_is_refused_without_showing_it(postgres_server) -> None:
    wrong = "not-the-" + postgres_server.password
    with pytest.raises(UserError) as refused:
        Store(postgres_server.url("postgres", password=wrong))
    message = str(refused.value)
    assert "password authentication failed" in message and "Cannot open the ledger" in message
    assert wrong not in message and postgres_server.password not in message
    assert refused.value.__cause__ is None  # the driver's exception (which could quote the URL) is not chained


def test_an_unreachable_server_and_a_bad_url_are_clear_errors_without_the_password(postgres_server) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(UserError) as unreachable:
        Store(f"postgresql://postgres:topsecret-pw@127.0.0.1:{closed_port}/ledger?connect_timeout=5")
    assert "topsecret-pw" not in str(unreachable.value) and f"127.0.0.1:{closed_port}" in str(unreachable.value)
    assert "database server is running" in str(unreachable.value) and time.monotonic() - started < 30
    with pytest.raises(UserError) as bad:
        Store("mysqlx://root:topsecret-pw@host/db")
    assert "topsecret-pw" not in str(bad.value) and "MODEL_CUSTOMIZATION_STORE_URL" in str(bad.value)


def test_the_ledger_never_shows_its_password(pg_url: str, postgres_server) -> None:
    store = Store(pg_url)
    assert postgres_server.password not in store.url and postgres_server.password not in repr(store.engine)
    assert store.dialect == "postgresql" and store.engine.url.drivername == "postgresql+psycopg"
    store.close()


def test_settings_and_workspace_reprs_leave_the_store_password_out(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_customization.workspace import Workspace

    monkeypatch.setenv("MODEL_CUSTOMIZATION_STORE_URL", "postgresql://reader:hunter2-secret@db.internal/ledger")
    ws = Workspace.open(tmp_path / "home")
    assert ws.settings.store_url.endswith("@db.internal/ledger")
    assert "hunter2-secret" not in repr(ws.settings) and "hunter2-secret" not in repr(ws)
