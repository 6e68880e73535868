"""The base of this package's pydantic models: each builds its validator and serializer on first use.

A pydantic class otherwise builds them when it is defined. The server defines some seventy models at start (every
request, result and hyperparameter model its tools name) and a session uses a few, so building them when first
used takes that work out of every server's start (cold start is measured against a bare MCPServer, BENCHMARKS.md).
The fields are still collected when the class is defined; only the core schema waits.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DeferredModel(BaseModel):
    model_config = ConfigDict(defer_build=True)


__all__ = ["DeferredModel"]
