"""Moments as text: the ledger keeps epoch seconds, memory files carry epochs in seconds or nanoseconds, and what the
server shows or stores from them is ISO 8601 in UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def utc_iso(seconds: float, *, timespec: str = "seconds", zulu: bool = False) -> str:
    """Epoch seconds as ISO 8601 in UTC: "2026-01-02T03:04:05+00:00", or "...05Z" with zulu."""
    text = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec=timespec)
    return text.replace("+00:00", "Z") if zulu else text


def iso_or_none(seconds: float | None, *, timespec: str = "seconds") -> str | None:
    """utc_iso of a moment the ledger or a provider may not have yet (None, or 0 for "not set"): None then."""
    return utc_iso(seconds, timespec=timespec) if seconds else None


def epoch_to_iso(value: Any, *, timespec: str = "seconds", zulu: bool = False) -> str | None:
    """utc_iso of an epoch read from a file; None when it is not a number or not a moment a datetime can hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return utc_iso(value, timespec=timespec, zulu=zulu)
    except (OverflowError, OSError, ValueError):
        return None


def nanos_to_iso(value: Any) -> str | None:
    """Epoch nanoseconds (OpenTelemetry's *UnixNano, a number or its text) as ISO 8601 with microseconds and Z; None
    when it is missing, not positive, or not a moment a datetime can hold. Integer arithmetic: no float rounding."""
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        return None
    if nanos <= 0:
        return None
    seconds, rest = divmod(nanos, 1_000_000_000)
    try:
        moment = datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=rest // 1000)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
