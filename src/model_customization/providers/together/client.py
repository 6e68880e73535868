"""The Together SDK client, built from the environment, and the one place its errors become user-facing text.

Environment: TOGETHER_API_KEY (required; the SDK's own variable). The SDK itself also reads TOGETHER_BASE_URL and
TOGETHER_PROJECT_ID. The key is never put in a message: errors carry Together's own message, with the key masked
should a server ever echo it.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING, Any

from model_customization.errors import TransientError, UserError, retry_after_seconds
from model_customization.providers.keys import api_key, scrub_key

if TYPE_CHECKING:  # the SDK is imported only when a client is built
    import httpx
    import together

KEY_ENV = "TOGETHER_API_KEY"
EXTRA = "together"  # pip install 'model-customization[together]'
RETRY_BASE_SECONDS = 1.0  # our own retries (uploads, job creation): doubled after each try unless the server says
MAX_RETRY_SECONDS = 30.0

# Tests put an httpx.Client over a MockTransport here; every client built afterwards sends through it.
_http_client: httpx.Client | None = None
_clients: dict[tuple[Any, ...], together.Together] = {}
_clients_lock = threading.Lock()


def use_http_client(client: httpx.Client | None) -> None:
    """Route every Together client built from now on through this httpx client (None: the SDK's own)."""
    global _http_client
    _http_client = client


def require_key() -> str:
    """The key, or a UserError saying where to set it (no network)."""
    return api_key(
        KEY_ENV,
        f"{KEY_ENV} is not set. Set it to a Together AI API key (api.together.ai, Settings > API keys) in the environment "
        "of the server or CLI, or use provider 'local' to train on this machine.",
    )


def sdk() -> Any:
    """The `together` module, or a UserError naming the extra to install."""
    try:
        import together
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "together":
            raise
        raise UserError(
            f"The together package is not installed; install it with pip install 'model-customization[{EXTRA}]' "
            "(or pip install together) to use Together AI."
        ) from None
    return together


def together_client() -> together.Together:
    """An SDK client from the environment, kept per key fingerprint and transport (building one costs a TLS context
    and a connection pool, which an evaluation of hundreds of calls should pay once)."""
    key = require_key()  # a missing key is refused before the SDK is even imported
    module = sdk()
    identity = (hashlib.sha256(key.encode()).hexdigest(), id(_http_client))
    with _clients_lock:
        client = _clients.get(identity)
        if client is None:
            client = _clients[identity] = module.Together(api_key=key, http_client=_http_client)
            while len(_clients) > 8:
                _clients.pop(next(iter(_clients)))
        return client


def mask_key(text: str) -> str:
    return scrub_key(text, KEY_ENV, min_length=8)


def api_message(error: BaseException) -> str:
    """Together's own explanation of a failed call (its error message), the HTTP status first."""
    import together

    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
        extras = [f"{name} {body[name]}" for name in ("code", "param") if body.get(name)]
        if extras:
            text += f" ({', '.join(extras)})"
    elif isinstance(error, together.APIConnectionError):
        text = f"could not reach Together ({type(error).__name__}: {error})"
    else:
        text = str(error) or type(error).__name__
    status = getattr(error, "status_code", None)
    return mask_key(f"HTTP {status}: {text}" if status else text)


def retryable_errors() -> tuple[type[Exception], ...]:
    """Failures that may pass with time: a dropped connection or timeout, rate limits, conflicts, server errors."""
    import together

    return (together.APIConnectionError, together.RateLimitError, together.InternalServerError, together.ConflictError)


def refusal(action: str, error: BaseException) -> UserError:
    """A UserError for an API call that failed: what we tried, what Together said, what to do next. Failures that may
    pass (rate limits, dropped connections, server errors) are TransientError, which the orchestrator retries."""
    import together

    message = api_message(error)
    if isinstance(error, together.AuthenticationError):
        hint = f"Check {KEY_ENV}: Together did not accept the key."
    elif isinstance(error, together.PermissionDeniedError):
        hint = "This key may not use this feature (a spent credit limit or an organisation setting); use provider 'local' instead."
    elif isinstance(error, together.RateLimitError):
        hint = "Together is rate-limiting this key; wait a minute and try again."
    elif isinstance(error, together.APIConnectionError):
        hint = "Check the network (and TOGETHER_BASE_URL if set), then try again."
    elif isinstance(error, together.InternalServerError):
        hint = "Together had a server error; try again in a minute."
    else:
        hint = ""
    text = f"Could not {action}: {message}." + (f" {hint}" if hint else "")
    if isinstance(error, retryable_errors()):
        response = getattr(error, "response", None)
        return TransientError(text, retry_after=retry_after_seconds(getattr(response, "headers", None)))
    return UserError(text)


def retry_delay(error: BaseException, attempt: int) -> float:
    """Seconds to wait before try attempt+1: the server's Retry-After when it gives one, else exponential."""
    from model_customization.providers.send_once import backoff_delay

    return backoff_delay(error, attempt, RETRY_BASE_SECONDS, MAX_RETRY_SECONDS)
