"""Domain errors. The MCP adapters turn these into ToolError results; the CLI prints them and exits non-zero."""


class UserError(Exception):
    """Something the caller can fix. The message says what was wrong and what to do next."""


class NotFoundError(UserError):
    """An id or path that does not exist."""


class ConfirmationNeeded(UserError):
    """Something that costs money (a paid job over budget or at an unknown price, provisioned throughput) waits for
    a person to confirm the cost before it starts."""

    def __init__(self, message: str, *, quote_usd: float | None, question: str) -> None:
        super().__init__(message)
        self.quote_usd = quote_usd
        self.question = question  # what an elicitation asks the user


class TransientError(UserError):
    """A provider call that may well succeed if tried again later: a rate limit, a timeout, a server error, a dropped
    connection. retry_after is the wait the provider asked for, in seconds, when it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(headers: object) -> float | None:
    """The Retry-After header (seconds form) of an HTTP response's headers, if present and sensible."""
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    raw = getter("retry-after") or getter("Retry-After")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 600 else None
