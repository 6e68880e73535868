"""Job status words and the lease host name, shared by the store, the orchestrator and every provider.

Kept apart from the store's SQL (no SQLAlchemy import here) so that a provider can name a job's states without
importing jobs/ or the database layer: jobs/ stands above the providers, the store below both.
"""

from __future__ import annotations

import os
import socket

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE_LOCAL_STATUSES = ("queued", "running")  # a job a worker holds or is about to hold
DEFAULT_LEASE_SECONDS = 60.0  # a worker renews its job's lease every third of this
HOST_ID_ENV = "MODEL_CUSTOMIZATION_HOST_ID"  # names this machine in leases (default: its host name)


def this_host() -> str:
    """The name this machine goes by in job leases: $MODEL_CUSTOMIZATION_HOST_ID, else the host name."""
    return os.environ.get(HOST_ID_ENV) or socket.gethostname()
