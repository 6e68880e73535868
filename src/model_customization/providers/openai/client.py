"""The OpenAI SDK client, built from the environment, and the one place API errors become user-facing text.

Environment: OPENAI_API_KEY (required), OPENAI_BASE_URL or MODEL_CUSTOMIZATION_OPENAI_BASE_URL (the latter wins:
an OpenAI-compatible server such as vLLM or Ollama), OPENAI_ORG_ID and OPENAI_PROJECT_ID. The key is never put in a
message: errors carry OpenAI's own message, with the key masked should a server ever echo it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any

from model_customization.errors import TransientError, UserError, retry_after_seconds
from model_customization.providers.keys import api_key, scrub_key

if TYPE_CHECKING:  # the SDK is imported only when a client is built
    import httpx2
    import openai

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENVS = ("MODEL_CUSTOMIZATION_OPENAI_BASE_URL", "OPENAI_BASE_URL")  # first set wins
OPENAI_PLATFORM_HOST = "api.openai.com"
RETRY_BASE_SECONDS = 1.0  # our own retries (uploads, job creation): doubled after each try unless the server says
MAX_RETRY_SECONDS = 30.0

# Tests put an httpx2.Client over a MockTransport here; every client built afterwards sends through it.
_http_client: httpx2.Client | None = None
_clients: dict[tuple[Any, ...], openai.OpenAI] = {}
_clients_lock = threading.Lock()


def use_http_client(client: httpx2.Client | None) -> None:
    """Route every OpenAI client built from now on through this httpx2 client (None: the SDK's own)."""
    global _http_client
    _http_client = client


def base_url() -> str | None:
    """The configured API base URL, or None for OpenAI's own platform."""
    for name in BASE_URL_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def is_openai_platform() -> bool:
    """True when requests go to OpenAI itself, where its platform rules (closing dates, access) apply."""
    url = base_url()
    return url is None or OPENAI_PLATFORM_HOST in url


def _api_key() -> str:
    return api_key(
        KEY_ENV,
        f"{KEY_ENV} is not set. Set it to an OpenAI API key in the environment of the server or CLI "
        "(an OpenAI-compatible server that needs no key accepts any value), or use provider 'local' to train on this machine.",
    )


def openai_client(*, max_retries: int | None = None) -> openai.OpenAI:
    """An SDK client from the environment; max_retries None keeps the SDK's default (2 retries with back-off).

    Clients are kept per configuration and reused (the SDK client is thread-safe): building one costs a TLS context
    and a connection pool, which an evaluation making hundreds of calls should pay once.
    """
    key = _api_key()
    # Told apart by a fingerprint of the key, so the key itself is held only by the SDK client.
    identity = (
        hashlib.sha256(key.encode()).hexdigest(), base_url(), os.environ.get("OPENAI_ORG_ID"), os.environ.get("OPENAI_PROJECT_ID"),
        id(_http_client), max_retries,
    )
    with _clients_lock:
        client = _clients.get(identity)
        if client is None:
            client = _clients[identity] = _new_client(key, max_retries)
            while len(_clients) > 8:
                _clients.pop(next(iter(_clients)))
        return client


def _new_client(key: str, max_retries: int | None) -> openai.OpenAI:
    import openai

    options: dict[str, Any] = {
        "api_key": key,
        "base_url": base_url(),
        "organization": os.environ.get("OPENAI_ORG_ID") or None,
        "project": os.environ.get("OPENAI_PROJECT_ID") or None,
        "http_client": _http_client,
    }
    if max_retries is not None:
        options["max_retries"] = max_retries
    return openai.OpenAI(**options)


def mask_key(text: str) -> str:
    return scrub_key(text, KEY_ENV, min_length=8)


def api_message(error: BaseException) -> str:
    """OpenAI's own explanation of a failed call: its error message (with code and param when given)."""
    import openai

    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
        extras = [f"{name} {body[name]}" for name in ("code", "param") if body.get(name)]
        if extras:
            text += f" ({', '.join(extras)})"
    elif isinstance(error, openai.APIConnectionError):
        text = f"could not reach {base_url() or 'https://' + OPENAI_PLATFORM_HOST} ({type(error).__name__}: {error})"
    else:
        text = str(error) or type(error).__name__
    status = getattr(error, "status_code", None)
    return mask_key(f"HTTP {status}: {text}" if status else text)


def refusal(action: str, error: BaseException) -> UserError:
    """A UserError for an API call that failed: what we tried, what OpenAI said, what to do next."""
    import openai

    message = api_message(error)
    if isinstance(error, openai.AuthenticationError):
        hint = f"Check {KEY_ENV}: OpenAI did not accept the key."
    elif isinstance(error, openai.PermissionDeniedError):
        hint = "This key's organisation or project may not use this feature; use provider 'local' instead."
    elif isinstance(error, openai.RateLimitError):
        hint = "OpenAI is rate-limiting this key (or its quota is spent); wait a minute and try again."
    elif isinstance(error, openai.APIConnectionError):
        hint = "Check the network and the base URL, then try again."
    elif isinstance(error, openai.InternalServerError):
        hint = "OpenAI had a server error; try again in a minute."
    else:
        hint = ""
    text = f"Could not {action}: {message}." + (f" {hint}" if hint else "")
    # Rate limits (other than a spent quota), dropped connections and server errors may pass: callers that repeat
    # many calls (an evaluation) retry these.
    quota_spent = isinstance(error, openai.RateLimitError) and "insufficient_quota" in message
    if isinstance(error, (openai.RateLimitError, openai.APIConnectionError, openai.InternalServerError)) and not quota_spent:
        response = getattr(error, "response", None)
        return TransientError(text, retry_after=retry_after_seconds(getattr(response, "headers", None)))
    return UserError(text)


def retryable_errors() -> tuple[type[Exception], ...]:
    """Failures that may pass with time: a dropped connection or timeout, rate limits, conflicts, server errors."""
    import openai

    return (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError, openai.ConflictError)


def retry_delay(error: BaseException, attempt: int) -> float:
    """Seconds to wait before try attempt+1: the server's Retry-After when it gives one, else exponential."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, per_second in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            wait = float(headers.get(name)) / per_second
        except (TypeError, ValueError):
            continue
        if wait >= 0:
            return min(wait, MAX_RETRY_SECONDS)
    return min(RETRY_BASE_SECONDS * 2 ** (attempt - 1), MAX_RETRY_SECONDS)
