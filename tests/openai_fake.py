"""A stateful fake of the OpenAI API for tests, held to OpenAI's published OpenAPI description, or (flavour "azure")
to Azure OpenAI's v1 description: the same state behind Azure's path prefix /openai/v1, its `api-key` header, its
file expiry (`expires_after`, required there), its AzureErrorResponse error shape, tuned model names of the form
BASE.ft-<id>, and chat through deployments (a request names a deployment, not the model).

The fake sits behind `httpx2.MockTransport`, so the real `openai` SDK does all its own work (URLs, query strings,
multipart encoding, retries, parsing) and no request leaves the process. Every request body the SDK sends and every
response the fake serves is validated against `../shared/specs/openai-openapi.json`: the operation is found by
method and path template in the spec itself, and its requestBody / 200 response schema (or ErrorResponse for
errors) is checked with jsonschema over a `referencing` registry. A violation is recorded in `violations` and
raised as SpecViolation (which the SDK does not swallow), so a drifting client or fake fails the test.

The spec is OpenAPI 3.1, whose schemas are JSON Schema 2020-12, but some of its schemas still use OpenAPI 3.0
forms (`nullable: true`, boolean `exclusiveMinimum`). Read literally under 2020-12 these would reject null for
nullable fields and turn `exclusiveMinimum: true` into "greater than 1", so they are rewritten to their 2020-12
meaning before validation (see _to_json_schema_2020).

State: files, jobs that move along a scripted list of statuses (one step per retrieve), events and checkpoints
(both listed newest first, `after` paging to older ones, as OpenAI does), a base64 result CSV on success, the
tuned model registered for chat, chat completions, model lookup; and injected faults: an HTTP error status
(429, 403, 500 ...), or a dropped connection before or after the request was processed.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from email import policy
from email.parser import BytesParser
from functools import cache
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, quote

import httpx2
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "specs" / "openai-openapi.json"
SPEC_URI = "https://spec.test/openai-openapi.json"
AZURE_SPEC_PATH = SPEC_PATH.with_name("azure-openai-v1.json")
AZURE_SPEC_URI = "https://spec.test/azure-openai-v1.json"
API_PREFIX = "/v1"
AZURE_API_PREFIX = "/openai/v1"
AZURE_RESOURCE = "https://fake-resource.openai.azure.com"
TERMINAL = {"succeeded", "failed", "cancelled"}


class SpecViolation(AssertionError):
    """A request or response that does not match OpenAI's published schema."""


# --- the spec ---------------------------------------------------------------------------------------------------
def _to_json_schema_2020(node: Any) -> Any:
    """A copy of a spec node with OpenAPI 3.0 leftovers rewritten as JSON Schema 2020-12."""
    if isinstance(node, list):
        return [_to_json_schema_2020(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _to_json_schema_2020(value) for key, value in node.items()}
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool):
            if out.pop(bound) and limit in out:
                out[bound] = out.pop(limit)
    if out.get("nullable") is True:
        out.pop("nullable")
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif isinstance(kind, list):
            out["type"] = [*kind, "null"] if "null" not in kind else kind
        elif any(k in out for k in ("$ref", "anyOf", "oneOf", "allOf")):
            annotations = {k: out.pop(k) for k in ("description", "default", "example", "title", "x-oaiTypeLabel") if k in out}
            out = {"anyOf": [out, {"type": "null"}], **annotations}
    elif out.get("nullable") is False:
        out.pop("nullable")
    return out


def _pointer(*parts: str, uri: str = SPEC_URI) -> str:
    escaped = "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)
    return uri + "#" + quote("/" + escaped, safe="/~")


class SpecValidator:
    """Validates instances against the spec's operation and component schemas."""

    def __init__(self, path: Path = SPEC_PATH, uri: str = SPEC_URI, error_schema: str = "ErrorResponse") -> None:
        self.uri = uri
        self.error_schema = error_schema  # the component every error body must match
        self.spec = _to_json_schema_2020(json.loads(path.read_text(encoding="utf-8")))
        self.registry = Registry().with_resource(uri, DRAFT202012.create_resource(self.spec))
        self._validators: dict[str, Draft202012Validator] = {}
        self.routes: list[tuple[str, str, re.Pattern[str]]] = []
        for template, item in self.spec["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")
            for method in item:
                if method in ("get", "post", "delete", "put", "patch"):
                    self.routes.append((method.upper(), template, pattern))
        # Literal segments first, so /files/{file_id}/content never loses to a broader template.
        self.routes.sort(key=lambda route: route[1].count("{"))

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for route_method, template, pattern in self.routes:
            match = pattern.match(path)
            if route_method == method and match:
                return template, match.groupdict()
        return None

    def operation(self, method: str, template: str) -> dict[str, Any]:
        return self.spec["paths"][template][method.lower()]

    def _validator(self, ref: str) -> Draft202012Validator:
        if ref not in self._validators:
            self._validators[ref] = Draft202012Validator({"$ref": ref}, registry=self.registry)
        return self._validators[ref]

    def errors(self, ref: str, instance: Any) -> list[str]:
        found = sorted(self._validator(ref).iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}" for e in found]

    def request_ref(self, method: str, template: str, content_type: str) -> str:
        return _pointer("paths", template, method.lower(), "requestBody", "content", content_type, "schema", uri=self.uri)

    def response_ref(self, method: str, template: str, status: int = 200, content_type: str = "application/json") -> str:
        return _pointer("paths", template, method.lower(), "responses", str(status), "content", content_type, "schema", uri=self.uri)

    def component_ref(self, name: str) -> str:
        return _pointer("components", "schemas", name, uri=self.uri)

    def query_errors(self, method: str, template: str, query: list[tuple[str, str]]) -> list[str]:
        """Query parameters the operation does not declare, or scalars of the wrong type."""
        declared = {p["name"]: p for p in self.operation(method, template).get("parameters", []) if p.get("in") == "query"}
        problems = []
        for name, value in query:
            base = name.split("[", 1)[0]  # deepObject style: metadata[key]=value
            parameter = declared.get(base)
            if parameter is None:
                problems.append(f"query parameter {name!r} is not declared for {method} {template}")
                continue
            kind = (parameter.get("schema") or {}).get("type")
            if kind == "integer" and not re.fullmatch(r"-?\d+", value):
                problems.append(f"query parameter {name}={value!r} is not an integer")
            enum = (parameter.get("schema") or {}).get("enum")
            if enum and value not in enum:
                problems.append(f"query parameter {name}={value!r} is not one of {enum}")
        return problems


@cache
def spec_validator() -> SpecValidator:
    return SpecValidator()


@cache
def azure_spec_validator() -> SpecValidator:
    """Azure OpenAI v1 (../shared/specs/azure-openai-v1.json): OpenAPI 3.0, so `nullable` is translated as for OpenAI's."""
    return SpecValidator(AZURE_SPEC_PATH, AZURE_SPEC_URI, "AzureErrorResponse")


def _nest_form_fields(fields: dict[str, str], schema: dict[str, Any]) -> dict[str, Any]:
    """Multipart fields as the JSON instance the spec describes: `expires_after[seconds]` (how the SDK sends an object
    in a form) becomes {"expires_after": {"seconds": ...}}, and a field the schema types as integer becomes one."""
    nested: dict[str, Any] = {}
    for name, value in fields.items():
        keys = re.findall(r"[^\[\]]+", name)
        target = nested
        properties = schema.get("properties", {})
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            properties = properties.get(key, {}).get("properties", {})
        kind = properties.get(keys[-1], {}).get("type")
        target[keys[-1]] = int(value) if kind == "integer" and re.fullmatch(r"-?\d+", value) else value
    return nested


# --- faults -----------------------------------------------------------------------------------------------------
@dataclass
class Fault:
    method: str
    template: str
    kind: str  # status | drop_before | drop_after
    status: int = 0
    error: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1  # how many requests it hits; -1: every one


def _loss(step: int) -> float:
    return round(2.2 * 0.85**step + 0.1, 4)


# --- the fake -------------------------------------------------------------------------------------------------------
class FakeOpenAI:
    """OpenAI's files, fine-tuning, models and chat endpoints, in memory, validated against the spec."""

    def __init__(self, api_key: str, validator: SpecValidator | None = None, *, flavour: str = "openai") -> None:
        self.api_key = api_key
        self.azure = flavour == "azure"
        self.validator = validator or (azure_spec_validator() if self.azure else spec_validator())
        self.prefix = AZURE_API_PREFIX if self.azure else API_PREFIX
        self.deployments: dict[str, str] = {}  # Azure: deployment name -> the model it serves
        self.auth_headers: list[dict[str, str]] = []  # the auth headers each request carried
        self.hosts: set[str] = set()  # the hosts requests were sent to
        self.clock = 1_790_000_000
        self._ids = itertools.count(1)
        self.files: dict[str, dict[str, Any]] = {}  # id -> {"object", "content"}
        self.jobs: dict[str, dict[str, Any]] = {}  # id -> {"object", "script", "position", "events", "checkpoints", ...}
        self.models: dict[str, dict[str, Any]] = {}
        for name in ("gpt-4.1-mini-2025-04-14", "gpt-4.1-2025-04-14", "gpt-4o-mini-2024-07-18", "gpt-4.1-mini"):
            self.add_model(name)
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request, faults included
        self.queries: list[tuple[str, str, list[tuple[str, str]]]] = []  # (method, template, query pairs)
        self.request_bodies: list[tuple[str, str, Any]] = []  # (method, template, validated instance)
        self.faults: list[Fault] = []
        self.scripts: list[list[Any]] = []  # status scripts for the next jobs created, in order
        self.default_script: list[Any] = ["validating_files", "queued", "running", "running", "succeeded"]
        self.total_steps = 6
        self.metric_events = True  # False: metrics only in the result file, as when events were missed
        self.result_file_base64 = True  # OpenAI's result files are base64 text; a compatible server may send plain CSV
        self.off_spec_statuses = {"paused"}  # OpenAI serves 'paused' (after POST .../pause), its schema's enum lacks it
        self.off_spec_served: set[str] = set()
        self.violations: list[str] = []
        self.chat_reply: Callable[[str, list[dict[str, Any]]], str | dict[str, Any]] = lambda model, messages: f"reply from {model}"
        self.validated = 0

    # --- set-up helpers for tests -----------------------------------------------------------------------------------
    def http_client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handler))

    def add_model(self, model_id: str, owned_by: str = "openai", shutdown_date: str | None = None) -> None:
        self.models[model_id] = {"id": model_id, "object": "model", "created": self._now(), "owned_by": owned_by}
        if not self.azure:  # OpenAI's Model carries a shutdown date; Azure's OpenAI.Model has no such field
            self.models[model_id]["shutdown_date"] = shutdown_date

    def deploy(self, deployment: str, model: str) -> None:
        """Azure: a deployment (what the user creates in the portal) serving a base or tuned model."""
        self.deployments[deployment] = model

    def fail(self, method: str, template: str, status: int, *, times: int = 1, code: str | None = None, message: str | None = None, headers: dict[str, str] | None = None) -> None:
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error", 404: "invalid_request_error", 429: "requests"}.get(status, "server_error")
        error = {"message": message or f"fake failure {status}", "type": kind, "param": None, "code": code}
        self.faults.append(Fault(method, template, "status", status, error, headers or {}, times))

    def drop_connection(self, method: str, template: str, *, after_processing: bool, times: int = 1) -> None:
        self.faults.append(Fault(method, template, "drop_after" if after_processing else "drop_before", times=times))

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.calls if m == method and p == path)

    def add_job(self, **fields: Any) -> str:
        """A job created elsewhere (another machine, the dashboard), for listing tests."""
        job_id = self._id("ftjob")
        job = self._job_object(job_id, fields.pop("model", "gpt-4.1-mini-2025-04-14"), fields.pop("training_file", "file-elsewhere"), None, {}, {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}, fields.pop("metadata", None))
        job.update(fields)
        self.jobs[job_id] = {"object": job, "script": [job["status"]], "position": 0, "events": [], "checkpoints": [], "metrics": [], "paused": False}
        return job_id

    # --- plumbing -----------------------------------------------------------------------------------------------
    def _now(self) -> int:
        self.clock += 1
        return self.clock

    def _id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids):06d}"

    def _violation(self, text: str) -> None:
        self.violations.append(text)
        raise SpecViolation(text)

    def _check(self, ref: str, instance: Any, what: str) -> None:
        problems = self.validator.errors(ref, instance)
        self.validated += 1
        if problems:
            self._violation(f"{what} does not match OpenAI's schema: " + "; ".join(problems[:8]))

    def _take_fault(self, method: str, template: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.template == template and fault.times != 0:
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    def _json(self, method: str, template: str, body: Any, status: int = 200) -> httpx2.Response:
        shown = copy.deepcopy(body)
        self._allow_off_spec(shown)
        ref = self.validator.response_ref(method, template) if status == 200 else self.validator.component_ref(self.validator.error_schema)
        self._check(ref, shown, f"response to {method} {template} ({status})")
        return httpx2.Response(status, json=body)

    def _allow_off_spec(self, body: Any) -> None:
        """Statuses OpenAI really serves but its schema's enum lacks are validated as 'running', and noted."""
        for job in body.get("data", [body]) if isinstance(body, dict) else []:
            if isinstance(job, dict) and job.get("object") == "fine_tuning.job" and job.get("status") in self.off_spec_statuses:
                self.off_spec_served.add(job["status"])
                job["status"] = "running"

    def _error(self, status: int, message: str, *, code: str | None = None, param: str | None = None, headers: dict[str, str] | None = None, kind: str = "invalid_request_error") -> httpx2.Response:
        if self.azure:  # AzureErrorResponse: code, message, param as strings, type "error"
            error = {"code": code or kind, "message": message, "type": "error"}
            body = {"error": {**error, **({"param": param} if param else {})}}
        else:
            body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self._check(self.validator.component_ref(self.validator.error_schema), body, f"error response {status}")
        return httpx2.Response(status, json=body, headers=headers or {})

    # --- the handler ----------------------------------------------------------------------------------------------
    def handler(self, request: httpx2.Request) -> httpx2.Response:
        method = request.method
        path = request.url.path
        if self.azure and not path.startswith(AZURE_API_PREFIX):
            self._violation(f"{method} {path} is outside Azure's {AZURE_API_PREFIX} prefix")
        path = path[len(self.prefix):] if path.startswith(self.prefix) else path
        self.calls.append((method, path))
        self.hosts.add(request.url.host)
        self.auth_headers.append({name: value for name, value in request.headers.items() if name.lower() in ("authorization", "api-key")})
        if self.azure:
            if request.headers.get("api-key") != self.api_key or "authorization" in request.headers:
                return self._error(401, "Access denied due to invalid subscription key or wrong API endpoint.", code="401")
        elif request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", code="invalid_api_key")
        routed = self.validator.route(method, path)
        if routed is None:
            self._violation(f"{method} {path} is not an operation in OpenAI's spec")
        template, params = routed
        query = parse_qsl(request.url.query.decode() if isinstance(request.url.query, bytes) else str(request.url.query), keep_blank_values=True)
        self.queries.append((method, template, query))
        problems = self.validator.query_errors(method, template, query)
        if problems:
            self._violation("; ".join(problems))
        body = self._request_body(method, template, request)

        fault = self._take_fault(method, template)
        if fault and fault.kind == "status":
            return self._error(fault.status, fault.error["message"], code=fault.error.get("code"), kind=fault.error["type"], headers=fault.headers)
        if fault and fault.kind == "drop_before":
            raise httpx2.ConnectError("Connection reset by peer", request=request)
        handler = getattr(self, "_" + re.sub(r"\W+", "_", f"{method} {template}").strip("_").lower(), None)
        if handler is None:
            self._violation(f"the fake does not implement {method} {template}")
        response = handler(params, dict(query), body)
        if fault and fault.kind == "drop_after":
            # The server did the work; the reply never reached the client.
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return response

    def _request_body(self, method: str, template: str, request: httpx2.Request) -> Any:
        operation = self.validator.operation(method, template)
        declared = (operation.get("requestBody") or {}).get("content") or {}
        raw = request.content
        if not declared:
            if raw:
                self._violation(f"{method} {template} takes no body, got {raw[:100]!r}")
            return None
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in declared:
            self._violation(f"{method} {template}: content type {content_type!r} not in {sorted(declared)}")
        if content_type == "application/json":
            instance = json.loads(raw)
            body = instance
        elif content_type == "multipart/form-data":
            message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + raw)
            body, instance = {}, {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                filename = part.get_filename()
                body[name] = {"filename": filename, "content": payload} if filename is not None else payload.decode()
                instance[name] = payload.decode("utf-8", "replace")  # format: binary is a string to JSON Schema
        else:  # pragma: no cover - no such operation is used
            self._violation(f"unexpected content type {content_type}")
        if content_type == "multipart/form-data":
            schema = operation["requestBody"]["content"][content_type]["schema"]
            if "$ref" in schema:
                schema = self.validator.spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            instance = _nest_form_fields(instance, schema)
        self._check(self.validator.request_ref(method, template, content_type), instance, f"request body of {method} {template}")
        self.request_bodies.append((method, template, instance))
        return body

    # --- paging (newest first; `after` continues with older items) --------------------------------------------------
    @staticmethod
    def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1:] if after in ids else []
        return items[:limit], len(items) > limit

    # --- files ------------------------------------------------------------------------------------------------------
    def _post_files(self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]) -> httpx2.Response:
        upload = body["file"]
        file_id = self._id("file")
        obj = {"id": file_id, "object": "file", "bytes": len(upload["content"]), "created_at": self._now(), "filename": upload["filename"], "purpose": body["purpose"], "status": "processed"}
        if self.azure:
            obj["expires_at"] = obj["created_at"] + int(body["expires_after[seconds]"])
        self.files[file_id] = {"object": obj, "content": upload["content"]}
        return self._json("POST", "/files", obj)

    def _get_files(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        items = [f["object"] for f in sorted(self.files.values(), key=lambda f: f["object"]["created_at"], reverse=query.get("order", "desc") == "desc")]
        if query.get("purpose"):
            items = [item for item in items if item["purpose"] == query["purpose"]]
        data, has_more = self._page(items, query.get("after"), int(query.get("limit", 10_000)))
        return self._json("GET", "/files", {"object": "list", "data": data, "first_id": data[0]["id"] if data else "", "last_id": data[-1]["id"] if data else "", "has_more": has_more})

    def _get_files_file_id(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        stored = self.files.get(params["file_id"])
        if stored is None:
            return self._error(404, f"No such File object: {params['file_id']}", param="id")
        return self._json("GET", "/files/{file_id}", stored["object"])

    def _delete_files_file_id(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        if self.files.pop(params["file_id"], None) is None:
            return self._error(404, f"No such File object: {params['file_id']}", param="id")
        return self._json("DELETE", "/files/{file_id}", {"id": params["file_id"], "object": "file", "deleted": True})

    def _get_files_file_id_content(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        stored = self.files.get(params["file_id"])
        if stored is None:
            return self._error(404, f"No such File object: {params['file_id']}", param="id")
        declared = self.validator.operation("GET", "/files/{file_id}/content")["responses"]["200"]["content"]
        content_type = "application/json" if "application/json" in declared else next(iter(declared))  # Azure: octet-stream
        self._check(self.validator.response_ref("GET", "/files/{file_id}/content", content_type=content_type), stored["content"].decode("utf-8", "replace"), "file content")
        return httpx2.Response(200, content=stored["content"], headers={"content-type": "application/octet-stream"})

    # --- models and chat ----------------------------------------------------------------------------------------
    def _get_models_model(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        model = self.models.get(params["model"])
        if model is None:
            return self._error(404, f"The model '{params['model']}' does not exist", code="model_not_found", param="model")
        return self._json("GET", "/models/{model}", model)

    def _post_chat_completions(self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]) -> httpx2.Response:
        if self.azure:
            if body["model"] not in self.deployments:
                return self._error(404, "The API deployment for this resource does not exist.", code="DeploymentNotFound")
        elif body["model"] not in self.models:
            return self._error(404, f"The model '{body['model']}' does not exist", code="model_not_found", param="model")
        reply = self.chat_reply(body["model"], body["messages"])
        # A reply is the answer's text, or {"content", "tool_calls"} for an answer that calls the request's tools.
        text, calls = (reply.get("content") or "", reply.get("tool_calls")) if isinstance(reply, dict) else (reply, None)
        message: dict[str, Any] = {"role": "assistant", "content": text if not calls else reply.get("content"), "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = [{"id": self._id("call"), "type": "function", "function": call} for call in calls]
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"]) + 3 * len(body["messages"])
        completion = {
            "id": self._id("chatcmpl"),
            "object": "chat.completion",
            "created": self._now(),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()), "total_tokens": prompt_tokens + len(text.split())},
        }
        return self._json("POST", "/chat/completions", completion)

    # --- fine-tuning jobs -----------------------------------------------------------------------------------------
    def _job_object(self, job_id: str, model: str, training_file: str, validation_file: str | None, body: dict[str, Any], method: dict[str, Any], metadata: dict[str, str] | None) -> dict[str, Any]:
        kind = method.get("type", "supervised")
        hyperparameters = dict(((method.get(kind) or {}).get("hyperparameters")) or {})
        return {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": model,
            "created_at": self._now(),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-fake",
            "result_files": [],
            "status": "validating_files",
            "validation_file": validation_file,
            "training_file": training_file,
            "hyperparameters": {k: v for k, v in hyperparameters.items() if k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
            "trained_tokens": None,
            "error": None,
            "seed": body.get("seed", 42),
            "estimated_finish": None,
            "integrations": body.get("integrations"),
            "metadata": metadata,
            "method": {"type": kind, kind: {"hyperparameters": hyperparameters}},
        }

    def _event(self, job: dict[str, Any], message: str, *, level: str = "info", kind: str = "message", data: dict[str, Any] | None = None) -> None:
        job["events"].insert(0, {"object": "fine_tuning.job.event", "id": self._id("ftevent"), "created_at": self._now(), "level": level, "message": message, "type": kind, "data": data or {}})

    def _post_fine_tuning_jobs(self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]) -> httpx2.Response:
        for name in ("training_file", "validation_file"):
            file_id = body.get(name)
            if file_id and (file_id not in self.files or self.files[file_id]["object"]["purpose"] != "fine-tune"):
                return self._error(400, f"invalid {name}: {file_id}", param=name, code="invalid_file")
        if body["model"] not in self.models:
            return self._error(400, f"Model {body['model']} is not available for fine-tuning or does not exist.", param="model", code="model_not_available")
        job_id = self._id("ftjob")
        method = body.get("method") or {"type": "supervised", "supervised": {"hyperparameters": body.get("hyperparameters") or {}}}
        obj = self._job_object(job_id, body["model"], body["training_file"], body.get("validation_file"), body, copy.deepcopy(method), body.get("metadata"))
        obj["user_provided_suffix"] = body.get("suffix")
        script = [step if isinstance(step, dict) else {"status": step} for step in (self.scripts.pop(0) if self.scripts else self.default_script)]
        job = {"object": obj, "script": script, "position": -1, "events": [], "checkpoints": [], "metrics": [], "paused": False, "step": 0, "suffix": body.get("suffix")}
        self.jobs[job_id] = job
        self._event(job, f"Created fine-tuning job: {job_id}")
        self._advance(job)
        return self._json("POST", "/fine_tuning/jobs", obj)

    def _advance(self, job: dict[str, Any]) -> None:
        """Move a job to the next step of its script (a retrieve is one tick of OpenAI's clock)."""
        obj = job["object"]
        if job["paused"] or obj["status"] in TERMINAL or job["position"] + 1 >= len(job["script"]):
            return
        job["position"] += 1
        step = job["script"][job["position"]]
        status = step["status"]
        if step.get("off_spec"):
            self.off_spec_statuses.add(status)
        obj["status"] = status
        running_steps = sum(1 for s in job["script"] if s["status"] == "running") or 1
        if status == "validating_files":
            self._event(job, f"Validating training file: {obj['training_file']}")
        elif status == "queued":
            self._event(job, "Files validated, moving job to queued state")
        elif status == "running":
            if job["step"] == 0:
                self._resolve_hyperparameters(obj)
                self._event(job, "Fine-tuning job started")
            self._train(job, min(self.total_steps, job["step"] + -(-self.total_steps // running_steps)))
            obj["estimated_finish"] = self.clock + 600
        elif status == "succeeded":
            self._resolve_hyperparameters(obj)
            self._train(job, self.total_steps)
            self._succeed(job)
        elif status == "failed":
            obj["error"] = step.get("error") or {"code": "server_error", "message": "The job failed for an unknown reason.", "param": None}
            obj["finished_at"] = self._now()
            obj["estimated_finish"] = None
            self._event(job, f"Fine-tuning job failed: {obj['error']['message']}", level="error")
        else:
            self._event(job, f"Job entered status {status}")

    def _resolve_hyperparameters(self, obj: dict[str, Any]) -> None:
        chosen = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}
        kind = obj["method"]["type"]
        resolved = obj["method"][kind]["hyperparameters"]
        for name, value in chosen.items():
            if resolved.get(name, "auto") == "auto":
                resolved[name] = value
        if kind == "dpo" and resolved.get("beta", "auto") == "auto":
            resolved["beta"] = 0.1
        obj["hyperparameters"] = {k: v for k, v in resolved.items() if k in chosen}

    def _train(self, job: dict[str, Any], until: int) -> None:
        obj = job["object"]
        epochs = obj["method"][obj["method"]["type"]]["hyperparameters"]["n_epochs"]
        per_epoch = max(1, self.total_steps // epochs)
        while job["step"] < until:
            job["step"] += 1
            step = job["step"]
            data: dict[str, Any] = {"step": step, "train_loss": _loss(step), "train_mean_token_accuracy": round(0.5 + step / (2 * self.total_steps), 4), "total_steps": self.total_steps}
            epoch_end = step % per_epoch == 0 or step == self.total_steps
            if epoch_end and obj["validation_file"]:
                data.update(valid_loss=_loss(step) + 0.05, valid_mean_token_accuracy=0.6, full_valid_loss=_loss(step) + 0.04, full_valid_mean_token_accuracy=0.61)
            job["metrics"].append(data)
            if self.metric_events:
                self._event(job, f"Step {step}/{self.total_steps}: training loss={data['train_loss']:.4f}", kind="metrics", data=data)
            if epoch_end:
                metrics = {k: float(v) for k, v in data.items() if k != "total_steps"}
                job["checkpoints"].insert(0, {
                    "object": "fine_tuning.job.checkpoint",
                    "id": self._id("ftckpt"),
                    "created_at": self._now(),
                    "fine_tuned_model_checkpoint": f"{self._tuned_name(job)}:ckpt-step-{step}",
                    "fine_tuning_job_id": obj["id"],
                    "metrics": metrics,
                    "step_number": step,
                })

    def _succeed(self, job: dict[str, Any]) -> None:
        obj = job["object"]
        rows = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
        for d in job["metrics"]:
            rows.append(f"{d['step']},{d['train_loss']},{d['train_mean_token_accuracy']},{d.get('valid_loss', '')},{d.get('valid_mean_token_accuracy', '')}")
        content = ("\n".join(rows) + "\n").encode()
        if self.result_file_base64:
            content = base64.b64encode(content)
        result_id = self._id("file")
        self.files[result_id] = {"object": {"id": result_id, "object": "file", "bytes": len(content), "created_at": self._now(), "filename": "step_metrics.csv", "purpose": "fine-tune-results", "status": "processed"}, "content": content}
        epochs = obj["hyperparameters"].get("n_epochs") or obj["method"][obj["method"]["type"]]["hyperparameters"]["n_epochs"]
        obj["result_files"] = [result_id]
        obj["trained_tokens"] = len(self.files[obj["training_file"]]["content"]) // 4 * epochs
        obj["fine_tuned_model"] = self._tuned_name(job)
        obj["finished_at"] = self._now()
        obj["estimated_finish"] = None
        self.add_model(obj["fine_tuned_model"], owned_by="org-fake")
        self._event(job, f"New fine-tuned model created: {obj['fine_tuned_model']}")
        self._event(job, "The job has successfully completed")

    def _tuned_name(self, job: dict[str, Any]) -> str:
        obj = job["object"]
        if self.azure:  # Azure names a tuned model BASE.ft-<hex>[-suffix]
            return f"{obj['model']}.ft-{obj['id'][-6:]}" + (f"-{job['suffix']}" if job.get("suffix") else "")
        return f"ft:{obj['model']}:fake-org:{job.get('suffix') or ''}:{obj['id'][-6:]}"

    def _get_fine_tuning_jobs(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        items = [job["object"] for job in sorted(self.jobs.values(), key=lambda j: j["object"]["created_at"], reverse=True)]
        wanted = {key[len("metadata["):-1]: value for key, value in query.items() if key.startswith("metadata[")}
        if wanted:
            items = [item for item in items if all((item.get("metadata") or {}).get(k) == v for k, v in wanted.items())]
        data, has_more = self._page(items, query.get("after"), int(query.get("limit", 20)))
        return self._json("GET", "/fine_tuning/jobs", {"object": "list", "data": data, "has_more": has_more})

    def _job(self, params: dict[str, str]) -> dict[str, Any] | None:
        return self.jobs.get(params["fine_tuning_job_id"])

    def _missing_job(self, params: dict[str, str]) -> httpx2.Response:
        return self._error(404, f"Could not find fine tune: {params['fine_tuning_job_id']}", param="fine_tune_id", code="fine_tune_not_found")

    def _get_fine_tuning_jobs_fine_tuning_job_id(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        job = self._job(params)
        if job is None:
            return self._missing_job(params)
        self._advance(job)
        return self._json("GET", "/fine_tuning/jobs/{fine_tuning_job_id}", job["object"])

    def _get_fine_tuning_jobs_fine_tuning_job_id_events(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        job = self._job(params)
        if job is None:
            return self._missing_job(params)
        data, has_more = self._page(job["events"], query.get("after"), int(query.get("limit", 20)))
        return self._json("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events", {"object": "list", "data": data, "has_more": has_more})

    def _get_fine_tuning_jobs_fine_tuning_job_id_checkpoints(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        job = self._job(params)
        if job is None:
            return self._missing_job(params)
        data, has_more = self._page(job["checkpoints"], query.get("after"), int(query.get("limit", 10)))
        listing = {"object": "list", "data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
        return self._json("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", listing)

    def _control(self, params: dict[str, str], action: str, allowed: set[str], new_status: str) -> httpx2.Response:
        job = self._job(params)
        if job is None:
            return self._missing_job(params)
        obj = job["object"]
        if obj["status"] not in allowed:
            return self._error(400, f"Job {obj['id']} is {obj['status']}: it cannot {action} now.", param="fine_tuning_job_id", code="invalid_state")
        obj["status"] = new_status
        job["paused"] = new_status == "paused"
        if new_status == "cancelled":
            obj["finished_at"] = self._now()
            obj["estimated_finish"] = None
        self._event(job, f"Fine-tuning job {new_status}")
        return self._json("POST", "/fine_tuning/jobs/{fine_tuning_job_id}/" + action, obj)

    def _post_fine_tuning_jobs_fine_tuning_job_id_cancel(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        return self._control(params, "cancel", {"validating_files", "queued", "running", "paused"}, "cancelled")

    def _post_fine_tuning_jobs_fine_tuning_job_id_pause(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        return self._control(params, "pause", {"running"}, "paused")

    def _post_fine_tuning_jobs_fine_tuning_job_id_resume(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx2.Response:
        return self._control(params, "resume", {"paused"}, "running")


@contextlib.contextmanager
def serving(
    monkeypatch: Any, api_key: str, *, fine_tuned_before: bool = True, today: date = date(2026, 11, 1), ws: Any = None, flavour: str = "openai"
) -> Iterator[FakeOpenAI]:
    """Point the provider at a fresh fake for one test: key set, budgets at their default (0) with argument confirmation
    allowed, our retries without
    sleeps, and a fixed calendar date before OpenAI's closing day, so the tests keep passing after 2027-01-06."""
    from model_customization.providers.openai import client as client_module
    from model_customization.providers.openai import training

    for name in ("OPENAI_BASE_URL", "MODEL_CUSTOMIZATION_OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD", "MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD"):
        monkeypatch.delenv(name, raising=False)
    # The job tests confirm costs with confirm_cost_usd, as an operator who allowed argument confirmation;
    # tests/test_spending_everywhere.py checks the default, where only a person can.
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION", "true")
    if ws is not None:  # a workspace opened before this fixture read the settings already
        import dataclasses

        ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=0.0, budget_per_day_usd=0.0, allow_argument_confirmation=True)
    if flavour == "azure":
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", api_key)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", AZURE_RESOURCE)  # the SDK's Azure variable: the resource, no /openai/v1
    else:
        monkeypatch.setenv("OPENAI_API_KEY", api_key)
    monkeypatch.setattr(client_module, "RETRY_BASE_SECONDS", 0.0)
    monkeypatch.setattr(training, "_today", lambda: today)
    from model_customization.providers.openai import provider as provider_module

    monkeypatch.setattr(provider_module, "_today", lambda: today)
    server = FakeOpenAI(api_key, flavour=flavour)
    if fine_tuned_before:  # OpenAI lets only organisations that fine-tuned before create jobs
        server.add_job(status="succeeded", model="gpt-4o-mini-2024-07-18", fine_tuned_model="ft:gpt-4o-mini-2024-07-18:fake-org::old001", finished_at=1_780_000_000, trained_tokens=1000)
    http = server.http_client()
    client_module.use_http_client(http)
    try:
        yield server
    finally:
        client_module.use_http_client(None)
        http.close()
    assert server.violations == [], server.violations
