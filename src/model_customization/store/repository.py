"""What every repository shares: its table, the store it writes through, and typed reads."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from sqlalchemy import Select, Table, insert, select, update

if TYPE_CHECKING:  # the store builds its repositories: a runtime import would be a cycle
    from model_customization.store.database import Store

RowT = TypeVar("RowT", bound=Mapping[str, Any])
OtherRowT = TypeVar("OtherRowT", bound=Mapping[str, Any])


def stored_path(value: Any, home: Path | None) -> Any:
    """A folder path as the ledger keeps it: relative to the data home (posix form) when it lies inside it, so that a
    moved or restored home (or another machine's home on a shared PostgreSQL ledger) finds its own files."""
    if home is None or not isinstance(value, str | Path) or not Path(value).is_absolute():
        return str(value) if isinstance(value, Path) else value
    try:
        return Path(value).relative_to(home).as_posix() or "."
    except ValueError:
        return str(value)  # outside the home (a path a user gave): kept as it was


def read_path(value: Any, home: Path | None) -> Any:
    """The absolute path for a stored one (see stored_path); absolute ones (outside the home) are returned as stored."""
    if home is None or not isinstance(value, str) or not value or Path(value).is_absolute():
        return value
    return str(home.joinpath(*PurePosixPath(value).parts))


class Repository(Generic[RowT]):
    """One entity's rows in one table. `get`, `_insert` and `_update` assume an `id` primary key.

    Columns named in `home_relative` hold folders under the data home: written relative to it, read back absolute."""

    table: Table
    home_relative: tuple[str, ...] = ()

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: str) -> RowT | None:
        return self._first(select(self.table).where(self.table.c.id == key))

    def _first(self, query: Select[Any]) -> RowT | None:
        rows = self._own_rows(query.limit(1))
        return cast(RowT, rows[0]) if rows else None

    def _rows(self, query: Select[Any]) -> list[RowT]:
        return cast("list[RowT]", self._own_rows(query))

    def _own_rows(self, query: Select[Any]) -> list[dict[str, Any]]:
        rows = self._fetch(query)
        home = self._store.home
        for row in rows:
            for column in self.home_relative:
                if column in row:
                    row[column] = read_path(row[column], home)
        return rows

    def _for_storage(self, values: Mapping[str, Any], table: Table) -> dict[str, Any]:
        stored = dict(values)
        if table is self.table:
            for column in self.home_relative:
                if column in stored:
                    stored[column] = stored_path(stored[column], self._store.home)
        return stored

    def _rows_of(self, row_type: type[OtherRowT], query: Select[Any]) -> list[OtherRowT]:
        """Rows of another table this repository also keeps (a job's events, an evaluation's results)."""
        return cast("list[OtherRowT]", self._fetch(query))

    def _fetch(self, query: Select[Any]) -> list[dict[str, Any]]:
        with self._store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def _insert(self, values: Mapping[str, Any], *, into: Table | None = None, **stamps: Any) -> int:
        """Insert one row (into this repository's table unless `into` names another, with `stamps` such as created_at
        added); the new primary key where the database generates it, else 0."""
        table = into if into is not None else self.table
        with self._store.transaction() as conn:
            key = conn.execute(insert(table).values(**stamps, **self._for_storage(values, table))).inserted_primary_key
        return int(key[0]) if key and isinstance(key[0], int) else 0

    def _update(self, key: str, values: Mapping[str, Any]) -> None:
        with self._store.transaction() as conn:
            conn.execute(update(self.table).where(self.table.c.id == key).values(**self._for_storage(values, self.table)))


class CreatedRows(Repository[RowT]):
    """An entity whose rows carry when they were created: stamped on add (unless the row brings its own), listed
    newest first."""

    def add(self, row: Mapping[str, Any]) -> None:
        self._insert({"created_at": time.time(), **row})

    def all(self) -> list[RowT]:
        """Every row, newest first."""
        return self._rows(select(self.table).order_by(self.table.c.created_at.desc()))
