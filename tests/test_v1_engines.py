"""Serving engines: with vLLM or Ollama configured, a deployed tuned model is registered with the engine and chat
requests for it are forwarded; an engine that is down is a clear error, never a silent answer from another model.

The engines are fakes at their HTTP boundary (real HTTP servers on 127.0.0.1 speaking the routes we call: vLLM's
/v1/models, /v1/load_lora_adapter and /v1/chat/completions; Ollama's /api/blobs/<digest>, /api/create and
/v1/chat/completions), recording what they were sent; a blob whose bytes do not match its digest is refused, as
Ollama does. The server is the real one in a subprocess, and the client the `openai` SDK, every response checked
against OpenAI's spec."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from v1_live import free_port, serving

MODEL_ID = "ft-engine-test01"
ANSWER = "Forwarded answer from the engine."


class FakeEngine:
    """The routes of vLLM's OpenAI server and of Ollama that the forwarding uses."""

    def __init__(self) -> None:
        self.loaded: list[dict] = []
        self.blobs: dict[str, bytes] = {}
        self.created: list[dict] = []
        self.chats: list[dict] = []

    def app(self):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response, StreamingResponse
        from starlette.routing import Route

        async def models(request: Request):
            data = [{"id": "base", "object": "model", "created": 0, "owned_by": "vllm"}]
            data += [{"id": item["lora_name"], "object": "model", "created": 0, "owned_by": "vllm"} for item in self.loaded]
            return JSONResponse({"object": "list", "data": data})

        async def load_lora_adapter(request: Request):
            body = await request.json()
            if any(item["lora_name"] == body["lora_name"] for item in self.loaded):
                return Response(f"The lora adapter '{body['lora_name']}' has already been loaded.", status_code=400)
            self.loaded.append(body)
            return Response(f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

        async def blob(request: Request):
            digest = request.path_params["digest"]
            if request.method == "HEAD":
                return Response(status_code=200 if digest in self.blobs else 404)
            data = await request.body()
            if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
                return JSONResponse({"error": "digest mismatch"}, status_code=400)
            self.blobs[digest] = data
            return Response(status_code=201)

        async def create(request: Request):
            body = await request.json()
            missing = [d for d in [*body.get("files", {}).values(), *body.get("adapters", {}).values()] if d not in self.blobs]
            if missing:
                return JSONResponse({"error": f"blobs missing: {missing}"}, status_code=400)
            self.created.append(body)
            return JSONResponse({"status": "success"})

        async def chat(request: Request):
            body = await request.json()
            self.chats.append(body)
            head = {"id": "chatcmpl-engine", "created": 1, "model": body["model"]}
            if body.get("stream"):
                def events():
                    for delta, finish in (({"role": "assistant", "content": ""}, None), ({"content": ANSWER}, None), ({}, "stop")):
                        chunk = {**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
                        yield f"data: {json.dumps(chunk)}\n\n"
                    yield "data: [DONE]\n\n"

                return StreamingResponse(events(), media_type="text/event-stream")
            return JSONResponse({**head, "object": "chat.completion", "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
                                 "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {"role": "assistant", "content": ANSWER, "refusal": None}}]})  # fmt: skip

        return Starlette(routes=[
            Route("/v1/models", models), Route("/v1/load_lora_adapter", load_lora_adapter, methods=["POST"]),
            Route("/api/blobs/{digest}", blob, methods=["HEAD", "POST"]), Route("/api/create", create, methods=["POST"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ])  # fmt: skip


@contextmanager
def running(engine: FakeEngine, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(engine.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the fake engine did not start"
        time.sleep(0.05)
    try:
        yield engine
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _tuned_model(home: Path) -> Path:
    """A tuned local model in the registry: its adapter folder (what vLLM loads) with its config."""
    from model_customization.workspace import Workspace

    adapter = home / "adapters" / MODEL_ID
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": ["q_proj"], "base_model_name_or_path": "SmolLM2-135M-Instruct"}))
    ws = Workspace.open(home)
    try:
        ws.store.models.add({"id": MODEL_ID, "provider": "local", "kind": "tuned", "base_model": "SmolLM2-135M-Instruct", "path": str(adapter), "job_id": None, "dataset_id": None, "details": None})
    finally:
        ws.store.close()
    return adapter


def _deploy(home: Path, agent: str) -> str:
    from model_customization import deployments
    from model_customization.workspace import Workspace

    ws = Workspace.open(home)
    try:
        return deployments.deploy_model(ws, agent, MODEL_ID)["message"]
    finally:
        ws.store.close()


ASK = [{"role": "user", "content": "Hello?"}]


def test_vllm_registers_the_deployment_and_answers_for_it(tmp_path, monkeypatch):
    from model_customization.serving.engines import forget_registrations

    forget_registrations()
    port = free_port()
    env = {"MODEL_CUSTOMIZATION_SERVING_ENGINE": "vllm", "MODEL_CUSTOMIZATION_SERVING_ENGINE_URL": f"http://127.0.0.1:{port}"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    adapter = _tuned_model(home)
    engine = FakeEngine()
    with running(engine, port):
        message = _deploy(home, "helper")
        assert f"Registered with vllm at http://127.0.0.1:{port} as {MODEL_ID}" in message
        assert engine.loaded == [{"lora_name": MODEL_ID, "lora_path": str(adapter.resolve())}]
        with serving(home, tmp_path / "server.log", env=env) as server:
            client = server.client()
            answer = client.chat.completions.create(model="agent:helper", messages=ASK, max_tokens=20, temperature=0.3)
            assert answer.choices[0].message.content == ANSWER and answer.model == MODEL_ID
            sent = engine.chats[-1]
            assert sent["model"] == MODEL_ID and sent["messages"] == ASK and sent["max_tokens"] == 20 and sent["temperature"] == 0.3
            streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(model="agent:helper", messages=ASK, stream=True) if c.choices)
            assert streamed == ANSWER and engine.chats[-1]["stream"] is True
            assert len(engine.loaded) == 1  # loaded already: the server found it in the engine's model list
    # the engine is down now: the request fails, saying where, and is not answered by another model
    with serving(home, tmp_path / "server2.log", env=env) as server:
        with pytest.raises(openai.InternalServerError) as down:
            server.client().chat.completions.create(model="agent:helper", messages=ASK)
        assert down.value.status_code == 503
        assert f"vllm at http://127.0.0.1:{port} is not answering" in down.value.body["message"]
        assert "not answered" in down.value.body["message"]


def test_ollama_is_given_the_export_and_answers_for_it(tmp_path, monkeypatch):
    from model_customization.serving.engines import forget_registrations

    forget_registrations()
    port = free_port()
    env = {"MODEL_CUSTOMIZATION_SERVING_ENGINE": "ollama", "MODEL_CUSTOMIZATION_SERVING_ENGINE_URL": f"http://127.0.0.1:{port}"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    _tuned_model(home)
    # an Ollama export as export_model writes it: the Modelfile naming the base GGUF and the adapter GGUF
    export = home / "exports" / MODEL_ID
    export.mkdir(parents=True)
    (export / "base.gguf").write_bytes(b"GGUF base weights" * 1000)
    (export / "adapter-f32.gguf").write_bytes(b"GGUF adapter" * 100)
    template = "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
    (export / "Modelfile").write_text(f'# exported\nFROM ./base.gguf\nADAPTER ./adapter-f32.gguf\nTEMPLATE """{template}"""\nPARAMETER stop "<|im_end|>"\n')
    engine = FakeEngine()
    with running(engine, port):
        message = _deploy(home, "helper")
        assert "Registered with ollama" in message
        created = engine.created[0]
        assert created["model"] == MODEL_ID.lower() and created["template"] == template and created["parameters"] == {"stop": ["<|im_end|>"]}
        assert created["files"] == {"base.gguf": "sha256:" + hashlib.sha256((export / "base.gguf").read_bytes()).hexdigest()}
        assert list(created["adapters"]) == ["adapter-f32.gguf"]
        with serving(home, tmp_path / "server.log", env=env) as server:
            answer = server.client().chat.completions.create(model="agent:helper", messages=ASK)
            assert answer.choices[0].message.content == ANSWER and engine.chats[-1]["model"] == MODEL_ID.lower()
        assert len(engine.blobs) == 2  # each blob pushed once: the server found them on the engine
