"""Datasets: one row per built dataset (its files live in the dataset's folder under the data home)."""

from __future__ import annotations

from sqlalchemy import delete

from model_customization.store.repository import CreatedRows
from model_customization.store.rows import DatasetRow
from model_customization.store.schema import datasets


class DatasetRepository(CreatedRows[DatasetRow]):
    table = datasets
    home_relative = ("path",)  # its folder under the data home

    def delete(self, dataset_id: str) -> bool:
        """Remove a dataset's row; False when there was none. Raises sqlalchemy's IntegrityError while a job names it
        (jobs.dataset_id is a foreign key: a model's lineage keeps its dataset)."""
        with self._store.transaction() as conn:
            return conn.execute(delete(datasets).where(datasets.c.id == dataset_id)).rowcount > 0
