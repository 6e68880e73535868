"""The workspace: settings plus the ledger, handed to every domain function (server, CLI and tests alike)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from model_customization.config import Settings, load_settings

if TYPE_CHECKING:  # SQLAlchemy is imported when the ledger is first used, not when a server starts
    from model_customization.jobs.ledger import Ledger


@dataclass
class Workspace:
    settings: Settings

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None) -> Workspace:
        return cls(load_settings(home))

    @cached_property
    def ledger(self) -> Ledger:
        from model_customization.jobs.ledger import Ledger

        return Ledger(self.settings.store_url, lease_seconds=self.settings.lease_seconds)
