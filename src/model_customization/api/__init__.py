"""The OpenAI-compatible HTTP adapter: `/v1` beside `/mcp` on the streamable HTTP server, over the same operations
(serving/, datasets/, jobs/). Only this package (and server/) knows HTTP; errors come back in OpenAI's shape."""
