"""Provider files: training files uploaded to a provider, by content hash, so the same content is never uploaded twice."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select

from model_customization.store.repository import Repository
from model_customization.store.rows import ProviderFileRow
from model_customization.store.schema import provider_files


class ProviderFileRepository(Repository[ProviderFileRow]):
    table = provider_files

    def add(self, row: Mapping[str, Any]) -> None:
        self._insert(row, at=time.time())

    def find(self, provider: str, sha256: str) -> list[ProviderFileRow]:
        """The uploads of this content to this provider, newest first."""
        query = select(provider_files).where(provider_files.c.provider == provider, provider_files.c.sha256 == sha256)
        return self._rows(query.order_by(provider_files.c.id.desc()))

    def forget(self, provider: str, remote_id: str) -> None:
        """Drop the record of an upload (deleted on the provider's side, or found missing there)."""
        with self._store.transaction() as conn:
            conn.execute(delete(provider_files).where(provider_files.c.provider == provider, provider_files.c.remote_id == remote_id))
