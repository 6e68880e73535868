"""The store's typed rows match its tables, and its status words load without SQLAlchemy.

Rows are TypedDicts written out by hand (store/rows.py): this keeps each one to exactly its table's columns, so a
column added by a migration cannot be forgotten in the row type.
"""

from __future__ import annotations

import subprocess
import sys
from typing import get_type_hints

import pytest

from model_customization.store import rows, schema

ROW_OF_TABLE = {
    "datasets": rows.DatasetRow,
    "jobs": rows.JobRow,
    "job_events": rows.JobEventRow,
    "job_metrics": rows.JobMetricRow,
    "models": rows.ModelRow,
    "spend": rows.SpendRow,
    "provider_files": rows.ProviderFileRow,
    "evaluations": rows.EvaluationRow,
    "evaluation_results": rows.EvaluationResultRow,
    "deployments": rows.DeploymentRow,
    "agent_suites": rows.AgentSuiteRow,
}


def test_every_table_has_a_row_type() -> None:
    assert set(ROW_OF_TABLE) == set(schema.metadata.tables)


@pytest.mark.parametrize("table_name", sorted(ROW_OF_TABLE))
def test_row_type_has_exactly_the_tables_columns(table_name: str) -> None:
    table = schema.metadata.tables[table_name]
    hints = get_type_hints(ROW_OF_TABLE[table_name])
    assert list(hints) == [column.name for column in table.columns]
    for column in table.columns:  # a nullable column's type admits None, a required one's does not
        admits_none = type(None) in getattr(hints[column.name], "__args__", ())
        assert admits_none == (column.nullable and not column.primary_key), column.name


def test_status_words_import_without_sqlalchemy() -> None:
    # Providers import the status words; they must not pull in the database layer (or jobs/) to do so.
    code = "import sys; import model_customization.store.status; print('sqlalchemy' in sys.modules, 'model_customization.jobs' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_the_store_has_a_repository_per_entity(tmp_path) -> None:
    from model_customization.store.database import Store

    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    try:
        store.datasets.add({"id": "ds-1", "name": "n", "created_at": 1.0, "path": "/d", "counts": {"train": 1}, "card": {}})
        store.jobs.add({"id": "job-1", "provider": "toy", "base_model": "b", "dataset_id": "ds-1", "method": "sft", "hyperparameters": {}, "status": "queued"})
        job = store.jobs.get("job-1")
        assert job is not None and job["status"] == "queued" and job["step"] == 0
        assert [e["message"] for e in store.jobs.events("job-1")] == ["job created"]
        assert store.deployments.add({"agent": "a", "model": "m", "action": "deploy"}) == 1
        assert store.deployments.add_suite({"agent": "a", "cases": 2, "cases_sha256": "x"}) == 1
        assert store.deployments.agents() == ["a"]
        assert store.models.all() == [] and store.evaluations.all() == [] and store.provider_files.find("toy", "x") == []
        assert store.spending.for_job("job-1") is None and store.spending.since(0) == 0.0
    finally:
        store.close()
