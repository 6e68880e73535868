"""Models: tuned models (written when a job succeeds) and registered base models, with provider details."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from model_customization.store.repository import Repository
from model_customization.store.rows import ModelRow
from model_customization.store.schema import models


class ModelRepository(Repository[ModelRow]):
    table = models

    def add(self, row: Mapping[str, Any]) -> None:
        self._insert(row, created_at=time.time())

    def all(self) -> list[ModelRow]:
        """Every model, newest first."""
        return self._rows(select(models).order_by(models.c.created_at.desc()))

    def update(self, model_id: str, **values: Any) -> None:
        self._update(model_id, values)
