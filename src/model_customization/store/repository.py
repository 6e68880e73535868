"""What every repository shares: its table, the store it writes through, and typed reads."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from sqlalchemy import Select, Table, insert, select, update

if TYPE_CHECKING:  # the store builds its repositories: a runtime import would be a cycle
    from model_customization.store.database import Store

RowT = TypeVar("RowT", bound=Mapping[str, Any])
OtherRowT = TypeVar("OtherRowT", bound=Mapping[str, Any])


class Repository(Generic[RowT]):
    """One entity's rows in one table. `get`, `_insert` and `_update` assume an `id` primary key."""

    table: Table

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: str) -> RowT | None:
        return self._first(select(self.table).where(self.table.c.id == key))

    def _first(self, query: Select[Any]) -> RowT | None:
        rows = self._fetch(query.limit(1))
        return cast(RowT, rows[0]) if rows else None

    def _rows(self, query: Select[Any]) -> list[RowT]:
        return cast("list[RowT]", self._fetch(query))

    def _rows_of(self, row_type: type[OtherRowT], query: Select[Any]) -> list[OtherRowT]:
        """Rows of another table this repository also keeps (a job's events, an evaluation's results)."""
        return cast("list[OtherRowT]", self._fetch(query))

    def _fetch(self, query: Select[Any]) -> list[dict[str, Any]]:
        with self._store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def _insert(self, values: Mapping[str, Any], *, into: Table | None = None, **stamps: Any) -> int:
        """Insert one row (into this repository's table unless `into` names another, with `stamps` such as created_at
        added); the new primary key where the database generates it, else 0."""
        with self._store.transaction() as conn:
            key = conn.execute(insert(into if into is not None else self.table).values(**stamps, **values)).inserted_primary_key
        return int(key[0]) if key and isinstance(key[0], int) else 0

    def _update(self, key: str, values: Mapping[str, Any]) -> None:
        with self._store.transaction() as conn:
            conn.execute(update(self.table).where(self.table.c.id == key).values(**values))


class CreatedRows(Repository[RowT]):
    """An entity whose rows carry when they were created: stamped on add (unless the row brings its own), listed
    newest first."""

    def add(self, row: Mapping[str, Any]) -> None:
        self._insert({"created_at": time.time(), **row})

    def all(self) -> list[RowT]:
        """Every row, newest first."""
        return self._rows(select(self.table).order_by(self.table.c.created_at.desc()))
