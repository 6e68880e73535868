"""Evaluations and their results: one row per run, plus each finished piece of it (an answer, a judge rating, a
pairwise verdict), written as it comes so that an interrupted run resumes with only the missing pieces."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert, select

from model_customization.store.repository import CreatedRows
from model_customization.store.rows import EvaluationResultRow, EvaluationRow
from model_customization.store.schema import evaluation_results, evaluations


class EvaluationRepository(CreatedRows[EvaluationRow]):
    table = evaluations
    home_relative = ("path",)  # its folder under the data home

    def update(self, eval_id: str, **values: Any) -> None:
        self._update(eval_id, {"updated_at": time.time(), **values})

    def add_results(self, eval_id: str, results: list[tuple[int, str, dict[str, Any]]]) -> None:
        """Store finished pieces (case_index, unit, payload) in one transaction; a piece stored before is kept as it was."""
        if not results:
            return
        now = time.time()
        rows = [{"eval_id": eval_id, "case_index": case, "unit": unit, "payload": payload, "at": now} for case, unit, payload in results]
        with self._store.transaction() as conn:
            keys = select(evaluation_results.c.case_index, evaluation_results.c.unit).where(evaluation_results.c.eval_id == eval_id)
            stored = {(case, unit) for case, unit in conn.execute(keys)}
            fresh = [r for r in rows if (r["case_index"], r["unit"]) not in stored]
            if fresh:
                conn.execute(insert(evaluation_results), fresh)

    def results(self, eval_id: str) -> list[EvaluationResultRow]:
        """Every stored piece of an evaluation, in case order."""
        query = select(evaluation_results).where(evaluation_results.c.eval_id == eval_id)
        return self._rows_of(EvaluationResultRow, query.order_by(evaluation_results.c.case_index, evaluation_results.c.unit))
