"""Serving engines beyond this process: when one is configured, a tuned local model that is deployed to an agent is
also registered with the engine, and chat requests for that agent are forwarded to it.

  MODEL_CUSTOMIZATION_SERVING_ENGINE      vllm or ollama (unset: every request is answered here)
  MODEL_CUSTOMIZATION_SERVING_ENGINE_URL  the engine's address (default http://127.0.0.1:8001 for vllm,
                                          http://127.0.0.1:11434 for ollama)

vLLM: its OpenAI server started with LoRA enabled and runtime loading allowed (`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
vllm serve <base> --enable-lora --max-lora-rank 64 --port 8001`), on the base the adapters were trained on. A
tuned model is registered with `POST /v1/load_lora_adapter {lora_name: <model id>, lora_path: <adapter folder>}`
(the folder must be readable by the engine: same machine or a shared path) and prompted by its model id.

Ollama (`ollama serve`): a tuned model is registered from its Ollama export (export_model formats=['ollama'],
written to <home>/exports/<model id> if not there yet): the GGUF files its Modelfile names are pushed as blobs
(`POST /api/blobs/sha256:<digest>`, skipped when the engine has them) and the model is created with
`POST /api/create` (the Modelfile's template and stop parameters), under the model id in lower case.

Chat requests are forwarded to the engine's OpenAI-compatible `/v1/chat/completions`. An engine that does not
answer, or refuses, is an error for the caller (503, a TransientError naming the engine and its address, or the
engine's own 4xx message): a request is never answered by another model without saying so. Registration is
remembered per process and done again after a failure, so an engine restarted empty is filled again on the next
request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_customization.errors import TransientError, UserError
from model_customization.workspace import Workspace

ENGINE_ENV = "MODEL_CUSTOMIZATION_SERVING_ENGINE"
ENGINE_URL_ENV = "MODEL_CUSTOMIZATION_SERVING_ENGINE_URL"
DEFAULT_URLS = {"vllm": "http://127.0.0.1:8001", "ollama": "http://127.0.0.1:11434"}
TIMEOUT_S = 600.0  # an answer of many tokens, or a base GGUF pushed to Ollama, takes a while
_registered: set[tuple[str, str, str]] = set()  # (engine, url, model id)
_lock = threading.Lock()


def configured_engine() -> tuple[str, str] | None:
    """(engine kind, base URL) from the settings, or None when no engine is configured."""
    kind = os.environ.get(ENGINE_ENV, "").strip().lower()
    if not kind:
        return None
    if kind not in DEFAULT_URLS:
        raise UserError(f"{ENGINE_ENV}={kind!r}: use vllm or ollama, or leave it unset to answer every request here.")
    url = (os.environ.get(ENGINE_URL_ENV, "").strip() or DEFAULT_URLS[kind]).rstrip("/")
    if not re.match(r"^https?://", url):
        raise UserError(f"{ENGINE_URL_ENV}={url!r}: give the engine's address as http://host:port.")
    return kind, url


def engine_model_for(ws: Workspace, model: str) -> tuple[str, str, str] | None:
    """(engine, url, the engine's name for the model) when requests for `model` (a deployed tuned local model) go
    to a configured engine, registering it there first if needed; None when they are answered here."""
    engine = configured_engine()
    if engine is None:
        return None
    row = ws.store.models.get(model)
    if not row or row["kind"] != "tuned" or row["provider"] != "local":
        return None
    kind, url = engine
    name = model.lower() if kind == "ollama" else model
    with _lock:
        if (kind, url, model) in _registered:
            return kind, url, name
    (_register_vllm if kind == "vllm" else _register_ollama)(ws, url, row, name)
    with _lock:
        _registered.add((kind, url, model))
    return kind, url, name


def register_deployment(ws: Workspace, model: str) -> str | None:
    """At deploy time: register the deployed model with the configured engine now. Returns a sentence for the
    deployment's message (None when no engine is configured or the model is not one an engine serves); an engine
    that is down does not stop the deployment: it is said, and the first request registers the model."""
    if configured_engine() is None:
        return None
    try:
        found = engine_model_for(ws, model)
    except UserError as error:
        return f"Not registered with the serving engine yet ({error}); the first request for it tries again."
    return None if found is None else f"Registered with {found[0]} at {found[1]} as {found[2]}: chat requests for it are forwarded there."


def forget_registrations() -> None:
    """Register again on the next request (an engine that restarted empty, a test)."""
    with _lock:
        _registered.clear()


def _client(url: str) -> Any:
    import httpx2

    return httpx2.Client(base_url=url, timeout=httpx2.Timeout(TIMEOUT_S, connect=5.0))


def _down(kind: str, url: str, error: Exception) -> TransientError:
    how = "start it (see README: Use it as an OpenAI endpoint), or unset MODEL_CUSTOMIZATION_SERVING_ENGINE to answer here"
    return TransientError(f"The serving engine {kind} at {url} is not answering ({type(error).__name__}: {error}); the request was not answered. {how}.", retry_after=5)


def _refused(kind: str, url: str, what: str, response: Any) -> UserError:
    text = response.text[:500]
    if response.status_code >= 500:
        return TransientError(f"The serving engine {kind} at {url} failed to {what} (HTTP {response.status_code}: {text}); the request was not answered.", retry_after=5)
    return UserError(f"The serving engine {kind} at {url} refused to {what} (HTTP {response.status_code}: {text}).")


def _register_vllm(ws: Workspace, url: str, row: dict[str, Any], name: str) -> None:
    import httpx2

    adapter = Path(row["path"]).resolve()
    try:
        with _client(url) as http:
            listed = http.get("/v1/models")
            if listed.status_code == 200 and any(m.get("id") == name for m in listed.json().get("data", [])):
                return  # loaded already (another server, or before a restart of this one)
            response = http.post("/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(adapter)})
    except httpx2.TransportError as error:
        raise _down("vllm", url, error) from None
    if response.status_code != 200 and "already" not in response.text.lower():
        raise _refused("vllm", url, f"load the LoRA adapter of {name} from {adapter}", response)


def _register_ollama(ws: Workspace, url: str, row: dict[str, Any], name: str) -> None:
    import httpx2

    modelfile = _ollama_export(ws, row["id"])
    spec = _read_modelfile(modelfile)
    try:
        with _client(url) as http:
            files = {path.name: _push_blob(http, url, path) for path in spec["from"]}
            adapters = {path.name: _push_blob(http, url, path) for path in spec["adapters"]}
            body: dict[str, Any] = {"model": name, "files": files, "stream": False}
            if adapters:
                body["adapters"] = adapters
            if spec["template"] is not None:
                body["template"] = spec["template"]
            if spec["stops"]:
                body["parameters"] = {"stop": spec["stops"]}
            response = http.post("/api/create", json=body)
    except httpx2.TransportError as error:
        raise _down("ollama", url, error) from None
    if response.status_code != 200:
        raise _refused("ollama", url, f"create {name} from {modelfile}", response)


def _push_blob(http: Any, url: str, path: Path) -> str:
    digest = "sha256:" + _sha256(path)
    if http.head(f"/api/blobs/{digest}").status_code == 200:
        return digest
    with path.open("rb") as handle:
        response = http.post(f"/api/blobs/{digest}", content=_chunks(handle))
    if response.status_code not in (200, 201):
        raise _refused("ollama", url, f"take the blob {path.name}", response)
    return digest


def _chunks(handle: Any) -> Iterator[bytes]:
    while chunk := handle.read(1 << 20):
        yield chunk


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in _chunks(handle):
            digest.update(chunk)
    return digest.hexdigest()


def _ollama_export(ws: Workspace, model_id: str) -> Path:
    """The Modelfile of the model's Ollama export in the data home, exported now if there is none."""
    modelfile = ws.settings.home / "exports" / model_id / "Modelfile"
    if not modelfile.is_file():
        from model_customization.providers.local.export import export_model

        export_model(ws, model_id, ["ollama"])
    return modelfile


def _read_modelfile(path: Path) -> dict[str, Any]:
    """FROM and ADAPTER files (relative to the Modelfile's folder), the TEMPLATE and the stop parameters."""
    text = path.read_text(encoding="utf-8")
    found: dict[str, Any] = {"from": [], "adapters": [], "template": None, "stops": []}
    template = re.search(r'^TEMPLATE """(.*?)"""\s*$', text, re.DOTALL | re.MULTILINE)
    if template:
        found["template"] = template.group(1)
        text = text[: template.start()] + text[template.end():]
    for line in text.splitlines():
        keyword, _, value = line.strip().partition(" ")
        value = value.strip()
        if keyword.upper() in ("FROM", "ADAPTER"):
            file = (path.parent / value).resolve()
            if not file.is_file():
                raise UserError(f"{path} names {value}, which is not a file here; export the model again (export_model formats=['ollama']).")
            found["from" if keyword.upper() == "FROM" else "adapters"].append(file)
        elif keyword.upper() == "PARAMETER" and value.startswith("stop "):
            found["stops"].append(json.loads(value[len("stop "):]))
    if not found["from"]:
        raise UserError(f"{path} has no FROM line; export the model again (export_model formats=['ollama']).")
    return found


def forward_chat(kind: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """The engine's answer to an OpenAI chat request (not streamed)."""
    import httpx2

    try:
        with _client(url) as http:
            response = http.post("/v1/chat/completions", json={**body, "stream": False})
    except httpx2.TransportError as error:
        raise _down(kind, url, error) from None
    if response.status_code != 200:
        raise _refused(kind, url, f"answer a chat request for {body.get('model')}", response)
    return response.json()


def forward_chat_stream(kind: str, url: str, body: dict[str, Any]) -> Iterator[bytes]:
    """The engine's server-sent events for a streamed chat request, as they arrive. The connection is opened (and
    a refusal raised) before the first event is yielded."""
    import httpx2

    http = _client(url)
    try:
        request = http.build_request("POST", "/v1/chat/completions", json={**body, "stream": True})
        response = http.send(request, stream=True)
    except httpx2.TransportError as error:
        http.close()
        raise _down(kind, url, error) from None
    if response.status_code != 200:
        response.read()
        http.close()
        raise _refused(kind, url, f"answer a chat request for {body.get('model')}", response)

    def events() -> Iterator[bytes]:
        try:
            yield from response.iter_bytes()
        except httpx2.TransportError as error:  # the engine went away mid-answer: the stream says so
            message = f"The serving engine {kind} at {url} stopped answering mid-stream ({type(error).__name__}); the answer is incomplete."
            yield ("data: " + json.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": "engine_unavailable"}}) + "\n\n").encode()
        finally:
            response.close()
            http.close()

    return events()
