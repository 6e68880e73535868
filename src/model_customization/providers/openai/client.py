"""The OpenAI SDK client for an endpoint (endpoints.py), and the one place API errors become user-facing text.

For the `openai` endpoint: OPENAI_API_KEY (required), OPENAI_BASE_URL or MODEL_CUSTOMIZATION_OPENAI_BASE_URL (the
latter wins: an OpenAI-compatible server such as vLLM or Ollama), OPENAI_ORG_ID and OPENAI_PROJECT_ID. Other
endpoints name their own key variable, base URL and header: `Authorization: Bearer <key>`, Azure's `api-key: <key>`,
or none. The key is never put in a message: errors carry the service's own message, with the key masked should a
server ever echo it.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any

from model_customization.errors import TransientError, UserError, retry_after_seconds
from model_customization.providers.openai.endpoints import OPENAI, Endpoint

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


def base_url(endpoint: Endpoint = OPENAI) -> str | None:
    """The endpoint's API base URL, or None for OpenAI's own platform."""
    return endpoint.resolved_base_url()


def is_openai_platform(endpoint: Endpoint = OPENAI) -> bool:
    """True when requests go to OpenAI itself, where its platform rules (closing dates, access) apply."""
    if not endpoint.openai_platform:
        return False
    url = base_url(endpoint)
    return url is None or OPENAI_PLATFORM_HOST in url


def openai_client(endpoint: Endpoint = OPENAI, *, max_retries: int | None = None) -> openai.OpenAI:
    """An SDK client for the endpoint; max_retries None keeps the SDK's default (2 retries with back-off).

    Clients are kept per configuration and reused (the SDK client is thread-safe): building one costs a TLS context
    and a connection pool, which an evaluation making hundreds of calls should pay once.
    """
    key = endpoint.api_key()  # a missing key is refused here, before any request
    organisation = (os.environ.get("OPENAI_ORG_ID"), os.environ.get("OPENAI_PROJECT_ID")) if endpoint.openai_platform else (None, None)
    # Told apart by a fingerprint of the key, so the key itself is held only by the SDK client.
    identity = (endpoint.name, endpoint.auth, hashlib.sha256(key.encode()).hexdigest(), base_url(endpoint), *organisation, id(_http_client), max_retries)
    with _clients_lock:
        client = _clients.get(identity)
        if client is None:
            client = _clients[identity] = _new_client(endpoint, key, organisation, max_retries)
            while len(_clients) > 8:
                _clients.pop(next(iter(_clients)))
        return client


def _new_client(endpoint: Endpoint, key: str, organisation: tuple[str | None, str | None], max_retries: int | None) -> openai.OpenAI:
    options: dict[str, Any] = {
        "api_key": key,
        "base_url": base_url(endpoint),
        "organization": organisation[0] or None,
        "project": organisation[1] or None,
        "http_client": _http_client,
    }
    if max_retries is not None:
        options["max_retries"] = max_retries
    return _client_class(endpoint.auth)(**options)


_client_classes: dict[str, type] = {}


def _client_class(auth: str) -> type[openai.OpenAI]:
    """The SDK client for an auth kind: OpenAI's own for a bearer key; for Azure's `api-key` header (or no key at all) a
    subclass whose auth headers are that header (or none), with the SDK's check for an Authorization header off."""
    import openai

    if auth == "bearer":
        return openai.OpenAI
    if auth not in _client_classes:

        class HeaderKeyOpenAI(openai.OpenAI):
            @property
            def auth_headers(self) -> dict[str, str]:
                return {"api-key": self.api_key} if auth == "api-key" else {}

            def _auth_headers(self, security: Any) -> dict[str, str]:  # what each request's headers start from
                return self.auth_headers

            def _validate_headers(self, headers: Any, custom_headers: Any) -> None:
                return None

        HeaderKeyOpenAI.__name__ = HeaderKeyOpenAI.__qualname__ = "ApiKeyHeaderOpenAI" if auth == "api-key" else "NoAuthOpenAI"
        _client_classes[auth] = HeaderKeyOpenAI
    return _client_classes[auth]


def mask_key(text: str, endpoint: Endpoint = OPENAI) -> str:
    return endpoint.scrub(text)


def api_message(error: BaseException, endpoint: Endpoint = OPENAI) -> str:
    """The service's own explanation of a failed call: its error message (with code and param when given); OpenAI's
    ErrorResponse and Azure's AzureErrorResponse share the {"error": {"message", "code", "param"}} shape."""
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
        text = f"could not reach {_shown_url(endpoint)} ({type(error).__name__}: {error})"
    else:
        text = str(error) or type(error).__name__
    status = getattr(error, "status_code", None)
    return mask_key(f"HTTP {status}: {text}" if status else text, endpoint)


def _shown_url(endpoint: Endpoint) -> str:
    try:
        return base_url(endpoint) or "https://" + OPENAI_PLATFORM_HOST
    except UserError:
        return endpoint.title


def refusal(action: str, error: BaseException, endpoint: Endpoint = OPENAI) -> UserError:
    """A UserError for an API call that failed: what we tried, what the service said, what to do next."""
    import openai

    message = api_message(error, endpoint)
    title = endpoint.title
    if isinstance(error, openai.AuthenticationError):
        hint = f"Check {endpoint.key_env or 'the endpoint key'}: {title} did not accept the key."
    elif isinstance(error, openai.PermissionDeniedError):
        hint = "This key's organisation or project may not use this feature; use provider 'local' instead."
    elif isinstance(error, openai.RateLimitError):
        hint = f"{title} is rate-limiting this key (or its quota is spent); wait a minute and try again."
    elif isinstance(error, openai.APIConnectionError):
        hint = "Check the network and the base URL, then try again."
    elif isinstance(error, openai.InternalServerError):
        hint = f"{title} had a server error; try again in a minute."
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
    from model_customization.providers.send_once import backoff_delay

    return backoff_delay(error, attempt, RETRY_BASE_SECONDS, MAX_RETRY_SECONDS)
