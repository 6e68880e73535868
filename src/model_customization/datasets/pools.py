"""What the build's and the gate's worker pools share."""

from __future__ import annotations

from typing import Any


def end_half_started_pool(pool: Any) -> None:
    """End a ProcessPoolExecutor whose start failed because a fork was refused (a library's at-fork guard).

    The workers forked before the refusal wait for work that never comes: the pool's manager thread never started,
    so shutdown cannot tell them to stop, and the interpreter would wait for them at exit. They are ended here."""
    forked = list((getattr(pool, "_processes", None) or {}).values())
    for process in forked:
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
    for process in forked:
        process.join(timeout=10)
