"""Datasets: one row per built dataset (its files live in the dataset's folder under the data home)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select

from model_customization.store.repository import Repository
from model_customization.store.rows import DatasetRow
from model_customization.store.schema import datasets


class DatasetRepository(Repository[DatasetRow]):
    table = datasets

    def add(self, row: Mapping[str, Any]) -> None:
        self._insert(row)

    def all(self) -> list[DatasetRow]:
        """Every dataset, newest first."""
        return self._rows(select(datasets).order_by(datasets.c.created_at.desc()))

    def delete(self, dataset_id: str) -> bool:
        """Remove a dataset's row; False when there was none. Raises sqlalchemy's IntegrityError while a job names it
        (jobs.dataset_id is a foreign key: a model's lineage keeps its dataset)."""
        with self._store.transaction() as conn:
            return conn.execute(delete(datasets).where(datasets.c.id == dataset_id)).rowcount > 0
