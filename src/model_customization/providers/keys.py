"""The one API-key lookup every provider uses: read from the environment on each call (a key set after start-up is
picked up), never stored by us, and scrubbed from any text that leaves a provider."""

from __future__ import annotations

import os

from model_customization.errors import UserError


def api_key(env: str, missing: str) -> str:
    """The key in environment variable `env`; UserError `missing` (saying where to set it) when it is not set."""
    key = os.environ.get(env, "").strip()
    if not key:
        raise UserError(missing)
    return key


def scrub_key(text: str, env: str, *, min_length: int = 1) -> str:
    """`text` with the key in `env` replaced by [<env>] (defence in depth; very short keys are left alone)."""
    key = os.environ.get(env, "").strip()
    return text.replace(key, f"[{env}]") if key and len(key) >= min_length else text
