"""The one place that talks to huggingface_hub: the token, the API client, and what its errors mean to us.

The token is HF_TOKEN or the one `hf auth login` stored (huggingface_hub.get_token reads both), read on each call and
never stored by us. HF_ENDPOINT (huggingface_hub's own setting) points the client at another Hub: a mirror, or the
tests' fake on 127.0.0.1. Every text that leaves here passes scrub(), which removes the token.
"""

from __future__ import annotations

import os
from typing import Any

from model_customization.errors import TransientError, UserError, retry_after_seconds

TOKEN_ENV = "HF_TOKEN"
ENDPOINT_ENV = "HF_ENDPOINT"
DEFAULT_ENDPOINT = "https://huggingface.co"
EXTRA = "hf-jobs"


def require_sdk() -> None:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as error:
        raise UserError(f"The hf-jobs provider needs huggingface_hub: pip install 'model-customization[{EXTRA}]'.") from error


def token() -> str:
    """The Hugging Face token; UserError saying how to set one."""
    require_sdk()
    from huggingface_hub import get_token

    found = (get_token() or "").strip()
    if not found:
        raise UserError(
            "No Hugging Face token: set HF_TOKEN in the server's environment (a token with write access and Jobs "
            "permission, from https://huggingface.co/settings/tokens), or run `hf auth login`, then start the job again."
        )
    return found


def endpoint() -> str:
    return (os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")


# This product runs with HF_HUB_OFFLINE=1 (nothing may download weights at run time), which makes huggingface_hub
# refuse every request. The hf-jobs provider's own calls are what the user asked for: they carry this header, and the
# client factory installed below lets exactly those through while every other request keeps the offline refusal.
OWN_CALL_HEADER = "X-Model-Customization-Client"
NETWORK_WAIT_SECONDS = 120.0  # one read or write of a Hub request (an upload chunk, a status reply)
_factory_installed = False


def _install_client_factory() -> None:
    global _factory_installed
    if _factory_installed:
        return
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import hf_request_event_hook

    def request_hook(request: Any) -> Any:
        if OWN_CALL_HEADER in request.headers:
            return None
        return hf_request_event_hook(request)

    def client_factory() -> Any:
        # As huggingface_hub's default_client_factory, with the hook above in place of its own, and a bound on each
        # network wait (not on a whole transfer): a hung connection fails a status check instead of holding it forever.
        return httpx2.Client(event_hooks={"request": [request_hook]}, follow_redirects=True, timeout=httpx2.Timeout(NETWORK_WAIT_SECONDS, connect=15.0))

    set_client_factory(client_factory)
    _factory_installed = True


def hub_api() -> Any:
    """An HfApi for this token and endpoint (read from the environment on each call)."""
    from huggingface_hub import HfApi

    _install_client_factory()
    return HfApi(endpoint=endpoint(), token=token(), headers={OWN_CALL_HEADER: "hf-jobs"})


def scrub(text: str) -> str:
    """`text` without the token (defence in depth: the Hub's messages and the remote logs should never hold it)."""
    try:
        from huggingface_hub import get_token

        secret = (get_token() or "").strip()
    except ImportError:
        secret = os.environ.get(TOKEN_ENV, "").strip()
    return text.replace(secret, f"[{TOKEN_ENV}]") if len(secret) >= 8 else text


def status_code(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def is_transient(error: BaseException) -> bool:
    """A timeout, a dropped connection, a rate limit or a server error: worth trying again."""
    import httpx2

    if isinstance(error, (httpx2.TransportError, TimeoutError, ConnectionError)):
        return True
    code = status_code(error)
    return code is not None and (code == 429 or code >= 500)


def translate(error: BaseException, what: str) -> UserError:
    """A huggingface_hub or network error as ours: TransientError to retry, or a UserError naming the next step."""
    code = status_code(error)
    message = scrub(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)[:400]
    if is_transient(error):
        headers = getattr(getattr(error, "response", None), "headers", None)
        return TransientError(f"Hugging Face could not {what} ({message})", retry_after=retry_after_seconds(headers))
    if code == 401:
        return UserError(f"Hugging Face refused the token while trying to {what} (401): set a valid HF_TOKEN (https://huggingface.co/settings/tokens).")
    if code == 402:
        return UserError(f"Hugging Face needs credits to {what} (402 Payment Required): add a payment method or pre-paid credits at https://huggingface.co/settings/billing.")
    if code == 403:
        return UserError(f"The token may not {what} (403: {message}). Use a token with write access and the Jobs permission for this namespace.")
    if code == 404:
        return UserError(f"Hugging Face found nothing to {what} (404: {message}).")
    return UserError(f"Hugging Face could not {what}: {message}")


def call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) with its errors translated (no retry here: the caller decides what is safe to repeat)."""
    from huggingface_hub.errors import HfHubHTTPError

    import httpx2

    try:
        return fn(*args, **kwargs)
    except (HfHubHTTPError, httpx2.HTTPError, TimeoutError, ConnectionError) as error:
        raise translate(error, what) from None


RETRY_ATTEMPTS = 3


def call_retrying(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """call() for an operation that is safe to repeat (an upload of the same content, a download, a listing, creating
    a repository with exist_ok): a transient failure is tried again, waiting 1 s then 2 s."""
    import time

    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            return call(what, fn, *args, **kwargs)
        except TransientError as error:
            if attempt == RETRY_ATTEMPTS:
                raise
            try:
                base = max(0.0, float(os.environ.get("MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS", "1")))
            except ValueError:
                base = 1.0
            time.sleep(error.retry_after if error.retry_after is not None else base * attempt)
    raise AssertionError("unreachable")
