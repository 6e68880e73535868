"""Training files on Together: a dataset rendered in Together's formats, validated by its rules, each content
uploaded once.

Formats (docs.together.ai, "Data preparation"): SFT examples are conversations, {"messages": [{"role", "content"}],
"tools"?} with roles system, user, assistant and tool; DPO examples are Together's preference format,
{"input": {"messages": [...]}, "preferred_output": [one assistant message], "non_preferred_output": [one]}. The stored
dataset already has these shapes, so rendering tidies it (no None values, `weight` only on assistant turns) and the
checks below refuse, with split and line, what Together's server would reject after the upload.

A file is known by the sha256 of its bytes, carried in its file name ("<dataset>-<split>-sha256-<hex>-<size>b.jsonl").
Before uploading we look in the ledger (provider_files, checked against GET /files/{id}) and then in Together's file
list (GET /files), so an upload from another data home, or one whose reply was lost, is found instead of sent twice.
The upload itself is POST /files/upload (multipart purpose, file_name, file_type, file), the route Together's OpenAPI
description publishes; the SDK's own files.upload() helper uses an unpublished redirect flow (POST /files, a signed
PUT, then /preprocess), so we send the published request through the SDK's client instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from model_customization.datasets.build import SPLITS, get_dataset, read_split
from model_customization.datasets.render import is_preference
from model_customization.errors import UserError
from model_customization.providers.send_once import NoReply, send_at_most_once
from model_customization.providers.together.client import api_message, refusal, retry_delay, retryable_errors, sdk
from model_customization.workspace import Workspace

PROVIDER = "together"
PURPOSE = "fine-tune"
ROLES = ("system", "user", "assistant", "tool")
MAX_UPLOAD_ATTEMPTS = 4
MAX_LISTED_FINDINGS = 5
_OUR_NAME = re.compile(r"-sha256-(?P<sha256>[0-9a-f]{64})-(?P<size>\d+)b\.jsonl$")


@dataclass(frozen=True)
class UploadResult:
    file_id: str
    filename: str
    sha256: str
    size: int
    how: str  # uploaded | reused (known to the ledger) | found (in Together's list: an earlier or interrupted upload)


# --- rendering and Together's rules ------------------------------------------------------------------------------------
def _message(message: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in message.items() if value is not None}
    if out.get("role") != "assistant" or out.get("weight") not in (0, 1):
        out.pop("weight", None)  # Together reads a 0/1 weight on assistant turns only
    if out.get("tool_calls") and not out.get("content"):
        out.pop("content", None)
    return out


def render_together(example: dict[str, Any]) -> dict[str, Any]:
    """One stored example in Together's conversational (SFT) or preference (DPO) format."""
    if is_preference(example):
        rendered_input: dict[str, Any] = {"messages": [_message(m) for m in example["input"]["messages"]]}
        if example["input"].get("tools"):
            rendered_input["tools"] = example["input"]["tools"]
        return {
            "input": rendered_input,
            "preferred_output": [_message(m) for m in example["preferred_output"]],
            "non_preferred_output": [_message(m) for m in example["non_preferred_output"]],
        }
    rendered: dict[str, Any] = {"messages": [_message(m) for m in example["messages"]]}
    if example.get("tools"):
        rendered["tools"] = example["tools"]
    return rendered


def _message_problems(messages: Any, where: str) -> list[str]:
    if not isinstance(messages, list) or not messages:
        return [f"{where} has no messages"]
    problems = []
    for index, message in enumerate(messages, 1):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            problems.append(f"{where} message {index} has role {role!r}; Together takes {', '.join(ROLES)}")
            continue
        content = message.get("content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            problems.append(f"{where} message {index} ({role}) has no content")
        elif content is not None and not isinstance(content, str):
            problems.append(f"{where} message {index} ({role}) has content that is not text")
    return problems


def together_problems(rendered: dict[str, Any], method: str) -> list[str]:
    """What Together's server would reject in one rendered example (empty: it is fine)."""
    if method == "dpo":
        if "preferred_output" not in rendered:
            return ["a chat example where a DPO job needs a preference pair (input, preferred_output, non_preferred_output)"]
        problems = _message_problems(rendered["input"].get("messages"), "input")
        if not problems and rendered["input"]["messages"][-1].get("role") != "user":
            problems.append("input must end with a user message (the turn both answers reply to)")
        for side in ("preferred_output", "non_preferred_output"):
            answer = rendered[side]
            if not (isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], dict) and answer[0].get("role") == "assistant"):
                problems.append(f"{side} must be exactly one assistant message")
            elif not isinstance(answer[0].get("content"), str) or not answer[0]["content"].strip():
                problems.append(f"{side} has no text")
        return problems
    if "messages" not in rendered:
        return ["a preference pair where an SFT job needs a conversation (messages)"]
    problems = _message_problems(rendered["messages"], "conversation")
    if not problems and not any(m.get("role") == "assistant" for m in rendered["messages"]):
        problems.append("conversation has no assistant message to learn")
    return problems


def render_split(ws: Workspace, dataset_id: str, split: str, method: str) -> tuple[bytes, int]:
    """A dataset split as Together training JSONL (byte-stable: the same dataset gives the same bytes and hash) and
    its number of examples; UserError listing the first problems by split and line when Together would refuse it."""
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    get_dataset(ws, dataset_id)
    rows = read_split(ws, dataset_id, split)
    if not rows:
        raise UserError(f"The {split} split of dataset {dataset_id} has no examples; rebuild the dataset with a larger fraction for it.")
    lines, findings = [], []
    for line, row in enumerate(rows, 1):
        rendered = render_together(row)
        findings.extend(f"{split} line {line}: {problem}" for problem in together_problems(rendered, method))
        lines.append(json.dumps(rendered, ensure_ascii=False, separators=(",", ":")))
    if findings:
        shown = "; ".join(findings[:MAX_LISTED_FINDINGS])
        more = f" (and {len(findings) - MAX_LISTED_FINDINGS} more)" if len(findings) > MAX_LISTED_FINDINGS else ""
        raise UserError(
            f"Dataset {dataset_id} cannot be trained on Together with method {method!r}: {shown}{more}. Nothing was uploaded. "
            "inspect_dataset with provider 'together' lists every finding; rebuild the dataset without those examples."
        )
    return ("\n".join(lines) + "\n").encode("utf-8"), len(rows)


# --- content-addressed upload ------------------------------------------------------------------------------------------
def content_filename(hint: str, sha256: str, size: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", hint).strip("-.")[:80] or "training"
    return f"{safe}-sha256-{sha256}-{size}b.jsonl"


def parse_content_filename(filename: str | None) -> tuple[str, int] | None:
    match = _OUR_NAME.search(filename or "")
    return (match["sha256"], int(match["size"])) if match else None


def _usable(remote: Any, size: int) -> bool:
    return remote.purpose == PURPOSE and remote.bytes == size


def _find_remote(client: Any, sha256: str, size: int) -> Any | None:
    """Our file with this content in Together's file list, or None (GET /files lists every file at once)."""
    for remote in client.files.list().data:
        if parse_content_filename(remote.filename) == (sha256, size) and _usable(remote, size):
            return remote
    return None


def _remember(ws: Workspace, remote_id: str, filename: str, sha256: str, size: int) -> None:
    if not any(row["remote_id"] == remote_id for row in ws.store.provider_files.find(PROVIDER, sha256)):
        ws.store.provider_files.add({"provider": PROVIDER, "sha256": sha256, "remote_id": remote_id, "filename": filename, "bytes": size})


def known_upload(ws: Workspace, client: Any, data: bytes) -> str | None:
    """The id of a Together file with exactly these bytes that the ledger knows and Together still holds, or None;
    uploads nothing (the quote asks this, before any spending is approved)."""
    together = sdk()  # a missing SDK is a UserError naming the extra

    sha256 = hashlib.sha256(data).hexdigest()
    for row in ws.store.provider_files.find(PROVIDER, sha256):
        try:
            remote = client.files.retrieve(row["remote_id"])
        except together.NotFoundError:
            continue
        except together.APIError as error:
            raise refusal(f"check the earlier upload {row['remote_id']}", error) from None
        if _usable(remote, len(data)):
            return remote.id
    return None


def ensure_uploaded(ws: Workspace, client: Any, data: bytes, filename_hint: str) -> UploadResult:
    """The id of a Together fine-tune file with exactly these bytes: an existing one, or a new upload."""
    together = sdk()  # a missing SDK is a UserError naming the extra

    sha256 = hashlib.sha256(data).hexdigest()
    size = len(data)
    filename = content_filename(filename_hint, sha256, size)

    for row in ws.store.provider_files.find(PROVIDER, sha256):
        try:
            remote = client.files.retrieve(row["remote_id"])
        except together.NotFoundError:
            remote = None  # deleted on Together's side since: forget it
        except together.APIError as error:
            raise refusal(f"check the earlier upload {row['remote_id']}", error) from None
        if remote is not None and _usable(remote, size):
            return UploadResult(remote.id, remote.filename, sha256, size, "reused")
        ws.store.provider_files.forget(PROVIDER, row["remote_id"])

    try:
        found = _find_remote(client, sha256, size)
    except together.APIError as error:
        raise refusal("list files (to find an earlier upload of the same content)", error) from None
    if found is not None:
        _remember(ws, found.id, found.filename, sha256, size)
        return UploadResult(found.id, found.filename, sha256, size, "found")

    from together.types import FileResponse

    uploader = client.with_options(max_retries=0)  # our loop retries, and looks before it sends again
    transient = retryable_errors()

    def send() -> Any:
        try:
            return uploader.post(
                "/files/upload",
                cast_to=FileResponse,
                body={"purpose": PURPOSE, "file_name": filename, "file_type": "jsonl"},
                files={"file": (filename, data, "application/jsonl")},
                options={"headers": {"Content-Type": "multipart/form-data"}},
            )
        except transient:
            raise
        except together.APIError as error:
            raise refusal(f"upload {filename}", error) from None

    def look() -> Any | None:
        try:
            return _find_remote(client, sha256, size)
        except transient:
            raise
        except together.APIError as error:
            raise refusal("list files (to see whether an interrupted upload arrived)", error) from None

    try:
        remote, found_earlier = send_at_most_once(send, look, attempts=MAX_UPLOAD_ATTEMPTS, transient=transient, delay=retry_delay)
    except NoReply as failure:
        raise UserError(
            f"Could not upload {filename} to Together after {MAX_UPLOAD_ATTEMPTS} tries "
            f"({api_message(failure.last_error) if failure.last_error else 'no reply'}). "
            "No second copy was sent; try again later: the same call reuses whatever arrived."
        ) from None
    _remember(ws, remote.id, remote.filename if found_earlier else filename, sha256, size)
    return UploadResult(remote.id, remote.filename if found_earlier else filename, sha256, size, "found" if found_earlier else "uploaded")
