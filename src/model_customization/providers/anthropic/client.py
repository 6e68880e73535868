"""The Anthropic SDK client, configured from the environment.

The API key is read from ANTHROPIC_API_KEY on each call (so a key set after start-up is picked up) and is only ever
handed to the SDK: it never appears in results, errors or logs written by us. ANTHROPIC_BASE_URL points the client
at a proxy or gateway. Tests route the SDK's HTTP through a fake with `use_http_client`.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from model_customization.providers.keys import api_key as read_key, scrub_key

API_KEY_ENV = "ANTHROPIC_API_KEY"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
# The SDK itself retries 408/409/429/5xx (overloaded 529 included), honouring retry-after, with exponential backoff.
MAX_RETRIES = 2
TIMEOUT_SECONDS = 120.0

_lock = threading.Lock()
_http_client: Any = None  # an httpx2.Client every new SDK client uses instead of its own (tests); None: the SDK's
_cached: tuple[tuple[str, str | None, int], Any] | None = None  # (key fingerprint, base URL, http client id), client


def use_http_client(http_client: Any) -> None:
    """Send every Anthropic request through this httpx2.Client (e.g. one with a MockTransport); None undoes it."""
    global _http_client, _cached
    with _lock:
        _http_client = http_client
        _cached = None


def api_key() -> str:
    return read_key(
        API_KEY_ENV,
        f"No Anthropic API key: set {API_KEY_ENV} in the environment this server (or the CLI) runs in, then try "
        "again. Keys are made in the Claude Console under API keys. Local models need no key.",
    )


def base_url() -> str | None:
    return os.environ.get(BASE_URL_ENV, "").strip() or None


def anthropic_client() -> Any:
    """An `anthropic.Anthropic` for the current key and base URL (one is kept and reused while they stay the same)."""
    global _cached
    key = api_key()
    url = base_url()
    # The cache is told apart by a fingerprint of the key, so the key itself is held only by the SDK client.
    identity = (hashlib.sha256(key.encode()).hexdigest(), url, id(_http_client))
    with _lock:
        if _cached is not None and _cached[0] == identity:
            return _cached[1]
        import anthropic  # the SDK is loaded on first use only, never at server start-up

        # api_key is passed explicitly so the SDK does not go looking for profiles or federation credentials.
        client = anthropic.Anthropic(
            api_key=key, base_url=url, http_client=_http_client, max_retries=MAX_RETRIES, timeout=TIMEOUT_SECONDS
        )
        _cached = (identity, client)
        return client


def scrub(text: str) -> str:
    """Remove the API key from a text that is about to leave this module (defence in depth)."""
    return scrub_key(text, API_KEY_ENV)
