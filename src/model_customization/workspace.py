"""The workspace: settings plus the store, handed to every domain function (server, CLI and tests alike)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from model_customization.config import Settings, load_settings
from model_customization.store.errors import home_os_error

if TYPE_CHECKING:
    from model_customization.store.database import Store


@dataclass
class Workspace:
    settings: Settings

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(load_settings(home))

    @cached_property
    def store(self) -> Store:
        # Imported on first use: SQLAlchemy need not load while a server starts (its tools/list comes first).
        from model_customization.store.database import Store

        # A new SQLite ledger (and its -wal and -shm files, which SQLite gives the ledger's mode) is created 0600:
        # it holds dataset cards and evaluation answers.
        try:
            with private_files():
                return Store(self.settings.store_url, lease_seconds=self.settings.lease_seconds, home=self.settings.home)
        except OSError as error:  # the lock file beside the ledger: a read-only home or a full disk, said so
            explained = home_os_error(error, self.settings.home)
            if explained is None:
                raise
            raise explained from None


@contextmanager
def private_files() -> Iterator[None]:
    """Files created in the block are private to their owner (umask 077). The umask is the process's: the block is
    kept to the opening of the store."""
    if os.name == "nt":
        yield
        return
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
