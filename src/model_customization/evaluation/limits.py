"""Evaluation limits the MCP adapter needs for its schema, apart from the runner so the server starts without it."""

# Provider calls in flight at once. A local model answers one batch at a time whatever this says.
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64
