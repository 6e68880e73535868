"""Domain errors. The MCP adapters turn these into ToolError results; the CLI prints them and exits non-zero."""


class UserError(Exception):
    """Something the caller can fix. The message says what was wrong and what to do next."""


class NotFoundError(UserError):
    """An id or path that does not exist."""
