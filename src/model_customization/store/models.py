"""Models: tuned models (written when a job succeeds) and registered base models, with provider details."""

from __future__ import annotations

from typing import Any

from model_customization.store.repository import CreatedRows
from model_customization.store.rows import ModelRow
from model_customization.store.schema import models


class ModelRepository(CreatedRows[ModelRow]):
    table = models
    home_relative = ("path",)  # its folder under the data home

    def update(self, model_id: str, **values: Any) -> None:
        self._update(model_id, values)
