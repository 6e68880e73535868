"""A stateful fake of Together AI's API for tests, held to Together's published OpenAPI description.

The fake sits behind `httpx.MockTransport` (the `together` SDK speaks httpx), so the real SDK builds every URL,
query, JSON and multipart body, retries and parses, and no request leaves the process. Every request body it sends
and every response the fake serves is validated against `../shared/specs/together-openapi.yaml` (read with PyYAML):
the operation is found by method and path template in the spec itself, and its requestBody / 200 response schema (or
ErrorData for errors) is checked with jsonschema over a `referencing` registry. A violation is recorded and raised
as SpecViolation (the SDK reports it as a connection error whose cause it is), and `serving` asserts at the end of
every test that none was recorded, so a drifting client or fake fails the test even where a retry hid the error.

The published file does not validate some of Together's real values; each exception made is below (_work_around_quirks)
with its reason, on top of openai_fake._to_json_schema_2020 (OpenAPI 3.0 `nullable` read as a null type).

State: the models Together fine-tunes and their limits, files (POST /files/upload), jobs that move along a scripted
list of statuses (one step per GET /fine-tunes/{id}), their events (oldest first, as Together lists them), metrics,
checkpoints, the price on completion, the adapter archive for /finetune/download, chat completions; and injected
faults: an HTTP error status, or a dropped connection before or after the request was processed.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser
from functools import cache
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, quote

import httpx
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from openai_fake import _to_json_schema_2020

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "specs" / "together-openapi.yaml"
SPEC_URI = "https://spec.test/together-openapi.json"
API_PREFIX = "/v1"
TERMINAL = {"completed", "error", "cancelled"}
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
LLAMA = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
SUPPORTED = [LLAMA, "meta-llama/Llama-3.3-70B-Instruct-Reference", "Qwen/Qwen2.5-7B-Instruct", "deepseek-ai/DeepSeek-V3", SMOL]


class SpecViolation(AssertionError):
    """A request or response that does not match Together's published schema."""


# --- the spec ---------------------------------------------------------------------------------------------------
def _work_around_quirks(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's known mismatches with Together's real values (../shared/specs/README.md), each narrowly fixed."""
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/fine-tunes"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    # 1. train_on_inputs: "auto" (its documented default) fails because a sibling `type: boolean` sits beside the
    #    `oneOf` of boolean and "auto"; the sibling is dropped, the oneOf kept (in the SFT method and the deprecated
    #    top-level field).
    for node in (schemas["TrainingMethodSFT"]["properties"]["train_on_inputs"], body["train_on_inputs"]):
        if "oneOf" in node and node.get("type") == "boolean":
            node.pop("type")
    # 2. lr_scheduler_args: cosine arguments {min_lr_ratio, num_cycles} also match the linear branch (no
    #    additionalProperties: false there), so `oneOf` rejects every cosine schedule; `anyOf` is what is meant.
    arguments = schemas["LRScheduler"]["properties"]["lr_scheduler_args"]
    arguments["anyOf"] = arguments.pop("oneOf")
    # 3. FineTuneEvent.level: the enum FinetuneEventLevels lists null under `type: string`, so a null level (which
    #    Together sends) fails; the type admits null as the enum already does.
    levels = schemas["FinetuneEventLevels"]
    if None in levels.get("enum", []):
        levels["type"] = ["string", "null"]
    return spec


def _pointer(*parts: str) -> str:
    escaped = "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)
    return SPEC_URI + "#" + quote("/" + escaped, safe="/~")


class SpecValidator:
    def __init__(self, path: Path = SPEC_PATH) -> None:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.spec = _to_json_schema_2020(_work_around_quirks(raw))
        self.registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(self.spec))
        self._validators: dict[str, Draft202012Validator] = {}
        self.routes: list[tuple[str, str, re.Pattern[str]]] = []
        for template, item in self.spec["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")
            for method in item:
                if method in ("get", "post", "delete", "put", "patch"):
                    self.routes.append((method.upper(), template, pattern))
        self.routes.sort(key=lambda route: route[1].count("{"))  # literal paths (/fine-tunes/estimate-price) first

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for route_method, template, pattern in self.routes:
            match = pattern.match(path)
            if route_method == method and match:
                return template, match.groupdict()
        return None

    def operation(self, method: str, template: str) -> dict[str, Any]:
        return self.spec["paths"][template][method.lower()]

    def errors(self, ref: str, instance: Any) -> list[str]:
        if ref not in self._validators:
            self._validators[ref] = Draft202012Validator({"$ref": ref}, registry=self.registry)
        found = sorted(self._validators[ref].iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}" for e in found]

    def request_ref(self, method: str, template: str, content_type: str = "application/json") -> str:
        return _pointer("paths", template, method.lower(), "requestBody", "content", content_type, "schema")

    def response_ref(self, method: str, template: str, status: int = 200, content_type: str = "application/json") -> str:
        return _pointer("paths", template, method.lower(), "responses", str(status), "content", content_type, "schema")

    def component_ref(self, name: str) -> str:
        return _pointer("components", "schemas", name)

    def query_errors(self, method: str, template: str, query: list[tuple[str, str]]) -> list[str]:
        declared = {p["name"]: p for p in self.operation(method, template).get("parameters", []) if p.get("in") == "query"}
        problems = []
        for name, value in query:
            parameter = declared.get(name)
            if parameter is None:
                problems.append(f"query parameter {name!r} is not declared for {method} {template}")
                continue
            schema = parameter.get("schema") or {}
            if schema.get("type") == "integer" and not re.fullmatch(r"-?\d+", value):
                problems.append(f"query parameter {name}={value!r} is not an integer")
            if schema.get("enum") and value not in schema["enum"]:
                problems.append(f"query parameter {name}={value!r} is not one of {schema['enum']}")
        for name, parameter in declared.items():
            if parameter.get("required") and name not in dict(query):
                problems.append(f"required query parameter {name!r} missing for {method} {template}")
        return problems


@cache
def spec_validator() -> SpecValidator:
    return SpecValidator()


@dataclass
class Fault:
    method: str
    template: str
    kind: str  # status | drop_before | drop_after
    status: int = 0
    message: str = ""
    times: int = 1  # -1: every request


def _loss(step: int) -> float:
    return round(2.0 * 0.8**step + 0.2, 4)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class FakeTogether:
    """Together's files, fine-tuning and chat endpoints, in memory, validated against the spec."""

    def __init__(self, api_key: str, validator: SpecValidator | None = None) -> None:
        self.api_key = api_key
        self.validator = validator or spec_validator()
        self.clock = datetime(2026, 12, 1, tzinfo=timezone.utc)
        self._ids = itertools.count(1)
        self.supported = list(SUPPORTED)
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.request_bodies: list[tuple[str, str, Any]] = []
        self.faults: list[Fault] = []
        self.scripts: list[list[str]] = []  # status scripts for the next jobs created, in order
        self.default_script = ["pending", "queued", "running", "running", "uploading", "completed"]
        self.off_spec_statuses: set[str] = set()  # statuses a test makes Together send that its enum lacks
        self.total_steps = 6
        self.adapter_archive: bytes | None = None  # what GET /finetune/download?checkpoint=adapter serves
        self.chat_models: set[str] = {"meta-llama/Llama-3.3-70B-Instruct-Turbo"}
        self.chat_reply: Callable[[str, list[dict[str, Any]]], str | dict[str, Any]] = lambda model, messages: f"together reply from {model}"
        self.estimates = True  # POST /fine-tunes/estimate-price answers with an estimate
        self.violations: list[str] = []

    # --- set-up helpers --------------------------------------------------------------------------------------------
    def http_client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def fail(self, method: str, template: str, status: int, *, times: int = 1, message: str | None = None) -> None:
        self.faults.append(Fault(method, template, "status", status, message or f"fake failure {status}", times))

    def drop_connection(self, method: str, template: str, *, after_processing: bool, times: int = 1) -> None:
        self.faults.append(Fault(method, template, "drop_after" if after_processing else "drop_before", times=times))

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.calls if m == method and p == path)

    def bodies(self, method: str, template: str) -> list[Any]:
        return [body for m, t, body in self.request_bodies if (m, t) == (method, template)]

    # --- plumbing -------------------------------------------------------------------------------------------------
    def _now(self) -> datetime:
        self.clock += timedelta(seconds=7)
        return self.clock

    def _violation(self, text: str) -> None:
        self.violations.append(text)
        raise SpecViolation(text)

    def _check(self, ref: str, instance: Any, what: str) -> None:
        problems = self.validator.errors(ref, instance)
        if problems:
            self._violation(f"{what} does not match Together's schema: " + "; ".join(problems[:8]))

    def _json(self, method: str, template: str, body: Any) -> httpx.Response:
        shown = copy.deepcopy(body)
        for job in shown.get("data", [shown]) if isinstance(shown, dict) else []:
            if isinstance(job, dict) and job.get("status") in self.off_spec_statuses:
                job["status"] = "running"  # validated as a status the enum knows; the test wanted the unknown one served
        self._check(self.validator.response_ref(method, template), shown, f"response to {method} {template}")
        return httpx.Response(200, json=body)

    def _error(self, status: int, message: str, *, kind: str = "invalid_request_error") -> httpx.Response:
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        self._check(self.validator.component_ref("ErrorData"), body, f"error response {status}")
        return httpx.Response(status, json=body)

    def _take_fault(self, method: str, template: str) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.template == template and fault.times != 0:
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    def handler(self, request: httpx.Request) -> httpx.Response:
        method = request.method
        path = request.url.path
        path = path[len(API_PREFIX):] if path.startswith(API_PREFIX) else path
        self.calls.append((method, path))
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Invalid API key provided.", kind="authentication_error")
        routed = self.validator.route(method, path)
        if routed is None:
            self._violation(f"{method} {path} is not an operation in Together's spec")
        template, params = routed
        query = parse_qsl(request.url.query.decode() if isinstance(request.url.query, bytes) else str(request.url.query), keep_blank_values=True)
        problems = self.validator.query_errors(method, template, query)
        if problems:
            self._violation("; ".join(problems))
        body = self._request_body(method, template, request)
        fault = self._take_fault(method, template)
        if fault and fault.kind == "status":
            return self._error(fault.status, fault.message, kind="server_error" if fault.status >= 500 else "invalid_request_error")
        if fault and fault.kind == "drop_before":
            raise httpx.ConnectError("Connection reset by peer", request=request)
        handler = getattr(self, "_" + re.sub(r"\W+", "_", f"{method} {template}").strip("_").lower(), None)
        if handler is None:
            self._violation(f"the fake does not implement {method} {template}")
        response = handler(params, dict(query), body)
        if fault and fault.kind == "drop_after":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return response

    def _request_body(self, method: str, template: str, request: httpx.Request) -> Any:
        declared_body = self.validator.operation(method, template).get("requestBody") or {}
        declared = declared_body.get("content") or {}
        raw = request.read()
        if not raw:
            if declared_body.get("required"):
                self._violation(f"{method} {template} needs a body")
            return None
        if not declared:
            self._violation(f"{method} {template} takes no body, got {raw[:100]!r}")
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in declared:
            self._violation(f"{method} {template}: content type {content_type!r} not in {sorted(declared)}")
        if content_type == "application/json":
            instance = body = json.loads(raw)
        else:
            message = BytesParser(policy=policy.HTTP).parsebytes(b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + raw)
            body, instance = {}, {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                filename = part.get_filename()
                body[name] = {"filename": filename, "content": payload} if filename is not None else payload.decode()
                instance[name] = payload.decode("utf-8", "replace")  # format: binary is a string to JSON Schema
        self._check(self.validator.request_ref(method, template, content_type), instance, f"request body of {method} {template}")
        self.request_bodies.append((method, template, instance))
        return body

    # --- files ------------------------------------------------------------------------------------------------------
    def _file_object(self, file_id: str, name: str, size: int, purpose: str) -> dict[str, Any]:
        return {"id": file_id, "object": "file", "created_at": int(self._now().timestamp()), "filename": name, "bytes": size, "purpose": purpose, "Processed": True, "FileType": "jsonl"}

    def _post_files_upload(self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        upload = body["file"]
        file_id = f"file-{uuid.UUID(int=next(self._ids))}"
        obj = self._file_object(file_id, body["file_name"], len(upload["content"]), body["purpose"])
        self.files[file_id] = {"object": obj, "content": upload["content"]}
        return self._json("POST", "/files/upload", obj)

    def _get_files(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        return self._json("GET", "/files", {"data": [f["object"] for f in self.files.values()]})

    def _get_files_id(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        stored = self.files.get(params["id"])
        if stored is None:
            return self._error(404, f"file {params['id']} not found")
        return self._json("GET", "/files/{id}", stored["object"])

    # --- models and limits --------------------------------------------------------------------------------------
    def _get_fine_tunes_models_supported(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        return self._json("GET", "/fine-tunes/models/supported", {"models": list(self.supported)})

    def _get_fine_tunes_models_limits(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        name = query["model_name"]
        if name not in self.supported:
            response = {"message": f"model {name} is not supported for fine-tuning"}
            self._check(self.validator.response_ref("GET", "/fine-tunes/models/limits", 404), response, "response 404")
            return httpx.Response(404, json=response)
        limits = {
            "model_name": name, "max_num_epochs": 20, "max_num_evals": 100, "max_learning_rate": 1.0, "min_learning_rate": 1e-8,
            "supports_vision": False, "supports_tools": True, "supports_reasoning": False, "merge_output_lora": False,
            "lora_training": {"max_batch_size": 32, "max_batch_size_dpo": 16, "min_batch_size": 8, "max_rank": 64,
                              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
            "full_training": {"max_batch_size": 32, "max_batch_size_dpo": 16, "min_batch_size": 8},
        }
        return self._json("GET", "/fine-tunes/models/limits", limits)

    def _post_fine_tunes_estimate_price(self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        stored = self.files.get(body["training_file"])
        if stored is None:
            return self._error(400, f"training_file {body['training_file']} not found")
        tokens = len(stored["content"]) // 4 * body.get("n_epochs", 1)
        if not self.estimates:
            return self._json("POST", "/fine-tunes/estimate-price", {"allowed_to_proceed": True})
        return self._json("POST", "/fine-tunes/estimate-price", {"estimation_available": True, "estimated_total_price": round(tokens * 0.5 / 1e6, 6), "allowed_to_proceed": True, "user_limit": 100.0, "estimated_train_token_count": tokens, "estimated_eval_token_count": 0})

    # --- jobs -------------------------------------------------------------------------------------------------------
    def _truncated(self, obj: dict[str, Any]) -> dict[str, Any]:
        keys = ("id", "status", "created_at", "updated_at", "training_file", "validation_file", "model", "model_output_name", "suffix", "n_epochs",
                "n_evals", "n_checkpoints", "batch_size", "training_type", "training_method", "learning_rate", "lr_scheduler", "warmup_ratio",
                "max_grad_norm", "weight_decay", "random_seed", "token_count", "total_price", "packing")
        # random_seed is nullable (null: no seed recorded); the other fields are left out when unset, as Together does
        return {key: obj[key] for key in keys if key in obj and (obj[key] is not None or key == "random_seed")}

    def _event(self, job: dict[str, Any], message: str, kind: str, *, level: str | None = "info", step: int = 0, checkpoint: str = "") -> None:
        job["events"].append({
            "object": "fine-tune-event", "created_at": _iso(self._now()), "level": level, "message": message, "type": kind,
            "param_count": 0, "token_count": 0, "total_steps": self.total_steps, "wandb_url": "", "step": step,
            "checkpoint_path": checkpoint, "model_path": "", "training_offset": 0, "hash": uuid.uuid4().hex,
        })

    def _post_fine_tunes(self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        for name in ("training_file", "validation_file"):
            if body.get(name) and body[name] not in self.files:
                return self._error(400, f"{name} {body[name]} not found")
        if body["model"] not in self.supported:
            return self._error(400, f"model {body['model']} is not available for fine-tuning")
        job_id = f"ft-{uuid.UUID(int=10**6 + next(self._ids))}"
        now = _iso(self._now())
        batch = body.get("batch_size", "max")
        suffix = body.get("suffix") or ""
        obj = {
            "id": job_id, "status": "pending", "created_at": now, "updated_at": now, "model": body["model"],
            "training_file": body["training_file"], "suffix": body.get("suffix"),
            "model_output_name": f"fake-user/{body['model'].split('/')[-1]}-{suffix}-{job_id[-6:]}".replace("--", "-"),
            "n_epochs": body.get("n_epochs", 1), "n_evals": body.get("n_evals", 0), "n_checkpoints": body.get("n_checkpoints", 1),
            "batch_size": 8 if batch == "max" else batch, "learning_rate": body.get("learning_rate", 1e-5),
            "lr_scheduler": body.get("lr_scheduler"), "warmup_ratio": body.get("warmup_ratio", 0.0), "max_grad_norm": body.get("max_grad_norm", 1.0),
            "weight_decay": body.get("weight_decay", 0.0), "random_seed": body.get("random_seed"), "packing": body.get("packing", True),
            "training_method": body.get("training_method") or {"method": "sft", "train_on_inputs": "auto"},
            "training_type": body.get("training_type") or {"type": "Lora", "lora_r": 64, "lora_alpha": 128},
        }
        if body.get("validation_file"):
            obj["validation_file"] = body["validation_file"]
        script = self.scripts.pop(0) if self.scripts else list(self.default_script)
        job = {"object": obj, "script": script, "position": 0, "events": [], "checkpoints": [], "metrics": [], "step": 0}
        self.jobs[job_id] = job
        self._event(job, f"Fine tune request created: {job_id}", "job_pending")
        return self._json("POST", "/fine-tunes", self._truncated(obj))

    def _get_fine_tunes(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        return self._json("GET", "/fine-tunes", {"data": [self._truncated(job["object"]) for job in self.jobs.values()]})

    def _advance(self, job: dict[str, Any]) -> None:
        """One step of the job's script per retrieve (Together's clock)."""
        obj = job["object"]
        if obj["status"] in TERMINAL or job["position"] + 1 >= len(job["script"]):
            return
        job["position"] += 1
        status = job["script"][job["position"]]
        obj["status"] = status
        obj["updated_at"] = _iso(self._now())
        running = sum(1 for s in job["script"] if s == "running") or 1
        if status == "queued":
            self._event(job, "Job queued", "job_pending")
        elif status == "running":
            if job["step"] == 0:
                obj["started_at"] = obj["updated_at"]
                self._event(job, "Training started", "training_start")
            self._train(job, min(self.total_steps, job["step"] + -(-self.total_steps // running)))
            obj["progress"] = {"estimate_available": True, "seconds_remaining": 120}
        elif status == "uploading":
            self._train(job, self.total_steps)
            self._event(job, "Uploading model", "model_uploading", level=None)
        elif status == "completed":
            self._train(job, self.total_steps)
            obj["token_count"] = sum(len(self.files[obj["training_file"]]["content"]) // 4 for _ in range(obj["n_epochs"]))
            obj["total_price"] = obj["token_count"] * 480  # nanodollars: $0.48 per million tokens
            obj["epochs_completed"] = obj["n_epochs"]
            obj.pop("progress", None)
            self.chat_models.add(obj["model_output_name"])
            self._event(job, f"Job finished: {obj['model_output_name']}", "job_complete")
        elif status == "error":
            self._event(job, "Job failed: the training data could not be tokenized", "job_error", level="error")
        else:
            self._event(job, f"Job entered status {status}", "warning", level="warning")

    def _train(self, job: dict[str, Any], until: int) -> None:
        obj = job["object"]
        per_epoch = max(1, self.total_steps // obj["n_epochs"])
        while job["step"] < until:
            job["step"] += 1
            step = job["step"]
            record: dict[str, float] = {"train/global_step": step, "train/loss": _loss(step), "train/epoch": round(step / per_epoch, 4), "train/learning_rate": obj["learning_rate"]}
            if obj.get("validation_file") and step % per_epoch == 0:
                record["eval/loss"] = _loss(step) + 0.05
            job["metrics"].append(record)
            if step % per_epoch == 0 or step == self.total_steps:
                job["checkpoints"].append({"step": step, "path": f"s3://fake/{obj['id']}/checkpoint-{step}", "created_at": _iso(self._now()), "checkpoint_type": "Intermediate" if step < self.total_steps else "Final"})
                self._event(job, f"Epoch completed, at step {step}", "epoch_complete", step=step)

    def _job(self, params: dict[str, str]) -> dict[str, Any] | None:
        return self.jobs.get(params["id"])

    def _get_fine_tunes_id(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        job = self._job(params)
        if job is None:
            return self._error(404, f"fine-tune job {params['id']} not found")
        self._advance(job)
        obj = copy.deepcopy(job["object"])
        obj["events"] = copy.deepcopy(job["events"])
        return self._json("GET", "/fine-tunes/{id}", obj)

    def _get_fine_tunes_id_events(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        job = self._job(params)
        if job is None:
            return self._error(404, f"fine-tune job {params['id']} not found")
        return self._json("GET", "/fine-tunes/{id}/events", {"data": job["events"]})

    def _get_fine_tunes_id_checkpoints(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        job = self._job(params)
        if job is None:
            return self._error(404, f"fine-tune job {params['id']} not found")
        return self._json("GET", "/fine-tunes/{id}/checkpoints", {"data": list(reversed(job["checkpoints"]))})

    def _get_fine_tunes_id_metrics(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        job = self._job(params)
        if job is None:
            return self._error(404, f"fine-tune job {params['id']} not found")
        return self._json("GET", "/fine-tunes/{id}/metrics", {"metrics": job["metrics"]})

    def _post_fine_tunes_id_cancel(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        job = self._job(params)
        if job is None:
            return self._error(404, f"fine-tune job {params['id']} not found")
        obj = job["object"]
        if obj["status"] in TERMINAL:
            return self._error(400, f"job {obj['id']} is {obj['status']} and cannot be cancelled")
        obj["status"] = "cancelled"
        obj["updated_at"] = _iso(self._now())
        self._event(job, "Job cancelled by the user", "job_stopped")
        return self._json("POST", "/fine-tunes/{id}/cancel", self._truncated(obj))

    def _get_finetune_download(self, params: dict[str, str], query: dict[str, str], body: Any) -> httpx.Response:
        job = self.jobs.get(query["ft_id"])
        if job is None or job["object"]["status"] != "completed":
            return self._error(404, f"no completed fine-tune job {query['ft_id']}")
        if query.get("checkpoint") != "adapter" or self.adapter_archive is None:
            return self._error(400, "only the adapter of this job can be downloaded here")
        return httpx.Response(200, content=self.adapter_archive, headers={"content-type": "application/x-tar"})

    # --- chat -------------------------------------------------------------------------------------------------------
    def _post_chat_completions(self, params: dict[str, str], query: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        if body["model"] not in self.chat_models:
            return self._error(404, f"Unable to access model {body['model']}.")
        reply = self.chat_reply(body["model"], body["messages"])
        # A reply is the answer's text, or {"content", "tool_calls"} for an answer that calls the request's tools.
        text, calls = (reply.get("content") or "", reply.get("tool_calls")) if isinstance(reply, dict) else (reply, None)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = [{"index": i, "id": f"call-{next(self._ids)}", "type": "function", "function": call} for i, call in enumerate(calls)]
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"]) + 3 * len(body["messages"])
        completion = {
            "id": f"chat-{next(self._ids)}", "object": "chat.completion", "created": int(self._now().timestamp()), "model": body["model"], "prompt": [],
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()), "total_tokens": prompt_tokens + len(text.split())},
        }
        return self._json("POST", "/chat/completions", completion)


@contextlib.contextmanager
def serving(monkeypatch: Any, api_key: str, *, ws: Any = None) -> Iterator[FakeTogether]:
    """Point the provider at a fresh fake for one test: key set, budgets at 0 with argument confirmation allowed (as in
    openai_fake.serving), our own retries without sleeps."""
    from model_customization.providers.together import client as client_module

    for name in ("TOGETHER_BASE_URL", "TOGETHER_PROJECT_ID", "TOGETHER_CUSTOM_HEADERS", "MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD", "MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION", "true")
    if ws is not None:
        import dataclasses

        ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=0.0, budget_per_day_usd=0.0, allow_argument_confirmation=True)
    monkeypatch.setenv("TOGETHER_API_KEY", api_key)
    monkeypatch.setattr(client_module, "RETRY_BASE_SECONDS", 0.0)
    server = FakeTogether(api_key)
    http = server.http_client()
    client_module.use_http_client(http)
    try:
        yield server
    finally:
        client_module.use_http_client(None)
        http.close()
    assert server.violations == [], server.violations
