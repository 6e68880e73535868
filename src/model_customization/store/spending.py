"""Spending: money committed to paid operations (a job, a prompt, an evaluation run ...), one row each (job_id holds the
job's or the operation's id), written before the provider is asked to spend anything."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from model_customization.store.repository import Repository
from model_customization.store.rows import SpendRow
from model_customization.store.schema import spend


class SpendingRepository(Repository[SpendRow]):
    table = spend

    def add(self, row: Mapping[str, Any]) -> None:
        """Record a job's approved cost; a job approved again (a resubmission of the same row) keeps one row."""
        with self._store.transaction() as conn:
            conn.execute(delete(spend).where(spend.c.job_id == row["job_id"]))
            conn.execute(insert(spend).values(at=time.time(), **row))

    def set_actual(self, job_id: str, actual_usd: float) -> None:
        """The provider's bill for a job once it ends (counts instead of what was committed)."""
        with self._store.transaction() as conn:
            conn.execute(update(spend).where(spend.c.job_id == job_id).values(actual_usd=actual_usd))

    def since(self, moment: float) -> float:
        """Dollars counted against the daily budget since a moment: the actual bill where known, else what was committed.

        A spend approved at an unknown price (no quote) whose bill is not known yet counts as unbounded (math.inf):
        until the provider reports it, nothing more fits into the day without a person's confirmation."""
        amount = func.coalesce(spend.c.actual_usd, spend.c.committed_usd)
        unknown = (spend.c.quoted_usd.is_(None)) & (spend.c.actual_usd.is_(None))
        with self._store.engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(spend).where((spend.c.at >= moment) & unknown)).scalar_one():
                return math.inf
            return float(conn.execute(select(func.coalesce(func.sum(amount), 0.0)).where(spend.c.at >= moment)).scalar_one())

    def for_job(self, job_id: str) -> SpendRow | None:
        return self._first(select(spend).where(spend.c.job_id == job_id).order_by(spend.c.id.desc()))
