"""Creating something at a cloud service at most once, over a network that may lose the reply.

An upload or a job creation whose reply is lost may still have arrived. Sending it again could make a second file
or a second billed job, so every retry first looks for what the earlier try may have made, and takes that instead.
When even the look fails, nobody knows whether the earlier try arrived: the round is spent waiting, not sending.
The providers that upload files and create jobs (OpenAI-compatible endpoints, Together) share this loop; each
brings its own send, look, transient error types and refusals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

Made = TypeVar("Made")


class NoReply(Exception):
    """Every try failed in a way that may pass with time; `last_error` is the latest failure (None: none seen)."""

    def __init__(self, last_error: BaseException | None) -> None:
        super().__init__(str(last_error) if last_error else "no reply")
        self.last_error = last_error


def send_at_most_once(
    send: Callable[[], Made],
    look: Callable[[], Made | None],
    *,
    attempts: int,
    transient: tuple[type[BaseException], ...],
    delay: Callable[[BaseException, int], float],
    on_transient: Callable[[BaseException, float], None] | None = None,
) -> tuple[Made, bool]:
    """(what was made, whether it was found by `look` rather than answered by `send`).

    `send` makes the thing; `look` finds what an earlier try made, or None. Failures of the types in `transient`
    are retried after delay(error, attempt) seconds (on_transient is told of each failed send); any other error
    propagates at once. Raises NoReply after `attempts` rounds."""
    last_error: BaseException | None = None
    wait = 0.0
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            time.sleep(wait)
            try:
                found = look()
            except transient as error:
                last_error, wait = error, delay(error, attempt)
                continue
            if found is not None:
                return found, True
        try:
            return send(), False
        except transient as error:
            last_error, wait = error, delay(error, attempt)
            if on_transient is not None:
                on_transient(error, wait)
    raise NoReply(last_error)


def backoff_delay(error: BaseException, attempt: int, base_seconds: float, max_seconds: float) -> float:
    """Seconds to wait before try attempt+1: the server's Retry-After (ms or s) when it gives one, else doubling."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, per_second in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            wait = float(headers.get(name)) / per_second
        except (TypeError, ValueError):
            continue
        if wait >= 0:
            return min(wait, max_seconds)
    return min(base_seconds * 2 ** (attempt - 1), max_seconds)
