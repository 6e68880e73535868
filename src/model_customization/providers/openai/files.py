"""Training files on an OpenAI-compatible endpoint: each content uploaded once, found again by its hash, never
duplicated by a retry. Files are kept per endpoint (the ledger's provider is the endpoint's name); Azure's carry the
expiry its API requires (`expires_after`), so an expired copy is simply uploaded again.

A file is known by the sha256 of its bytes. Before uploading, we look in the ledger (provider_files) and check that
the remote file still exists; then in OpenAI's file list, where our uploads carry the hash and size in their
filename (so an upload made from another data home, or one whose reply was lost, is found too). The upload itself
runs with the SDK's retries off: after a dropped connection the bytes may have arrived, so before trying again we
list the files and take the one that arrived instead of sending a second copy.

The bytes of a dataset split are its examples rendered with datasets.render.render_openai, one compact JSON per
line: the same dataset always gives the same bytes, hence the same hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_customization.datasets.build import SPLITS, get_dataset, read_split
from model_customization.datasets.render import render_openai
from model_customization.errors import NotFoundError, UserError
from model_customization.providers.openai.client import api_message, openai_client, refusal, retry_delay, retryable_errors
from model_customization.providers.send_once import NoReply, send_at_most_once
from model_customization.providers.openai.endpoints import OPENAI, Endpoint
from model_customization.workspace import Workspace
from model_customization.timestamps import iso_or_none

PROVIDER = "openai"
PURPOSE = "fine-tune"
MAX_UPLOAD_ATTEMPTS = 4
MAX_FILES_SCANNED = 20_000  # how far back the remote list is searched for an earlier upload
_OUR_NAME = re.compile(r"-sha256-(?P<sha256>[0-9a-f]{64})-(?P<size>\d+)b\.jsonl$")


@dataclass(frozen=True)
class UploadResult:
    file_id: str
    filename: str
    sha256: str
    size: int
    how: str  # uploaded | reused (known to the ledger) | found (in OpenAI's list: an earlier or interrupted upload)


def content_filename(hint: str, sha256: str, size: int) -> str:
    """A filename that carries the content's hash and size, so OpenAI's file list can tell us what it holds."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", hint).strip("-.")[:80] or "training"
    return f"{safe}-sha256-{sha256}-{size}b.jsonl"


def parse_content_filename(filename: str | None) -> tuple[str, int] | None:
    match = _OUR_NAME.search(filename or "")
    return (match["sha256"], int(match["size"])) if match else None


def _usable(remote: Any, size: int) -> bool:
    return getattr(remote, "status", None) not in ("error", "deleting", "deleted") and remote.purpose == PURPOSE and remote.bytes == size


def _find_remote(client: Any, sha256: str, size: int) -> Any | None:
    """Our file with this content in OpenAI's list of fine-tune files (newest first), or None."""
    for scanned, remote in enumerate(client.files.list(purpose=PURPOSE)):  # the SDK pages through the list
        if scanned >= MAX_FILES_SCANNED:
            break
        if parse_content_filename(remote.filename) == (sha256, size) and _usable(remote, size):
            return remote
    return None


def _remember(ws: Workspace, remote_id: str, filename: str, sha256: str, size: int, provider: str = PROVIDER) -> None:
    if not any(row["remote_id"] == remote_id for row in ws.store.provider_files.find(provider, sha256)):
        ws.store.provider_files.add({"provider": provider, "sha256": sha256, "remote_id": remote_id, "filename": filename, "bytes": size})


def ensure_uploaded(ws: Workspace, client: Any, content: bytes | Path, filename_hint: str, endpoint: Endpoint = OPENAI) -> UploadResult:
    """The id of a fine-tune file on the endpoint with exactly these bytes: an existing one, or a new upload."""
    import openai

    data = Path(content).read_bytes() if isinstance(content, Path) else bytes(content)
    sha256 = hashlib.sha256(data).hexdigest()
    size = len(data)
    filename = content_filename(filename_hint, sha256, size)

    for row in ws.store.provider_files.find(endpoint.name, sha256):
        try:
            remote = client.files.retrieve(row["remote_id"])
        except openai.NotFoundError:
            remote = None  # deleted on OpenAI's side since: forget it
        except openai.APIError as error:
            raise refusal(f"check the earlier upload {row['remote_id']}", error, endpoint) from None
        if remote is not None and _usable(remote, size):
            return UploadResult(remote.id, remote.filename, sha256, size, "reused")
        ws.store.provider_files.forget(endpoint.name, row["remote_id"])

    try:
        found = _find_remote(client, sha256, size)
    except openai.APIError as error:
        raise refusal("list files (to find an earlier upload of the same content)", error, endpoint) from None
    if found is not None:
        _remember(ws, found.id, found.filename, sha256, size, endpoint.name)
        return UploadResult(found.id, found.filename, sha256, size, "found")

    uploader = client.with_options(max_retries=0)  # our loop retries, and looks before it sends again
    transient = retryable_errors()

    def send() -> Any:
        try:
            return uploader.files.create(file=(filename, data, "application/jsonl"), purpose=PURPOSE, **_expiry(endpoint))
        except transient:
            raise
        except openai.APIError as error:
            raise refusal(f"upload {filename}", error, endpoint) from None

    def look() -> Any | None:
        try:
            return _find_remote(client, sha256, size)
        except transient:
            raise
        except openai.APIError as error:
            raise refusal("list files (to see whether an interrupted upload arrived)", error, endpoint) from None

    try:
        remote, found_earlier = send_at_most_once(send, look, attempts=MAX_UPLOAD_ATTEMPTS, transient=transient, delay=retry_delay)
    except NoReply as failure:
        raise UserError(
            f"Could not upload {filename} to {endpoint.title} after {MAX_UPLOAD_ATTEMPTS} tries "
            f"({api_message(failure.last_error, endpoint) if failure.last_error else 'no reply'}). "
            "No second copy was sent; try again later: the same call reuses whatever arrived."
        ) from None
    _remember(ws, remote.id, remote.filename if found_earlier else filename, sha256, size, endpoint.name)
    return UploadResult(remote.id, remote.filename if found_earlier else filename, sha256, size, "found" if found_earlier else "uploaded")


def _expiry(endpoint: Endpoint) -> dict[str, Any]:
    """Azure requires every file to say when it expires; OpenAI keeps files until deleted."""
    if endpoint.file_expiry_seconds is None:
        return {}
    return {"expires_after": {"anchor": "created_at", "seconds": endpoint.file_expiry_seconds}}


def upload_training_file(ws: Workspace, client: Any, path_or_bytes: bytes | Path, filename_hint: str) -> str:
    """The file id of these bytes on OpenAI (purpose fine-tune), uploading only when no copy exists yet."""
    return ensure_uploaded(ws, client, path_or_bytes, filename_hint).file_id


def render_split(ws: Workspace, dataset_id: str, split: str) -> tuple[bytes, int]:
    """A dataset split as OpenAI training JSONL (byte-stable) and its number of examples."""
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    get_dataset(ws, dataset_id)
    rows = read_split(ws, dataset_id, split)
    if not rows:
        raise UserError(f"The {split} split of dataset {dataset_id} has no examples; upload another split or rebuild the dataset with a larger fraction for it.")
    lines = [json.dumps(render_openai(row), ensure_ascii=False, separators=(",", ":")) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8"), len(rows)


def upload_dataset_file(ws: Workspace, dataset_id: str, split: str = "train", endpoint: Endpoint = OPENAI) -> dict[str, Any]:
    """Upload one split of a stored dataset for fine-tuning on the endpoint (or find the copy already there)."""
    data, examples = render_split(ws, dataset_id, split)
    result = ensure_uploaded(ws, openai_client(endpoint), data, f"{dataset_id}-{split}", endpoint)
    return {
        "file_id": result.file_id,
        "filename": result.filename,
        "bytes": result.size,
        "sha256": result.sha256,
        "dataset_id": dataset_id,
        "split": split,
        "examples": examples,
        "reused": result.how != "uploaded",
        "how": result.how,
    }


def _iso(seconds: int | None) -> str | None:
    return iso_or_none(seconds, timespec="auto")


def file_summary(ws: Workspace, remote: Any, endpoint: Endpoint = OPENAI) -> dict[str, Any]:
    parsed = parse_content_filename(remote.filename)
    in_ledger = bool(parsed) and any(row["remote_id"] == remote.id for row in ws.store.provider_files.find(endpoint.name, parsed[0]))
    return {
        "id": remote.id,
        "filename": remote.filename,
        "bytes": remote.bytes,
        "created_at": _iso(remote.created_at),
        "purpose": remote.purpose,
        "status": getattr(remote, "status", None),
        "sha256": parsed[0] if parsed else None,
        "uploaded_from_this_data_home": in_ledger,
    }


def list_files(ws: Workspace, limit: int = 20, after: str | None = None, endpoint: Endpoint = OPENAI) -> dict[str, Any]:
    """One page of this key's fine-tune files on the endpoint, newest first; pass next_after to get the next page."""
    import openai

    if not 1 <= limit <= 100:
        raise UserError(f"limit must be between 1 and 100 (got {limit}).")
    client = openai_client(endpoint)
    try:
        page = client.files.list(purpose=PURPOSE, limit=limit, **({"after": after} if after else {}))
    except openai.APIError as error:
        raise refusal("list files", error, endpoint) from None
    files = [file_summary(ws, remote, endpoint) for remote in page.data]
    has_more = bool(page.has_more)
    return {"files": files, "has_more": has_more, "next_after": files[-1]["id"] if has_more and files else None}


def delete_file(ws: Workspace, file_id: str, endpoint: Endpoint = OPENAI) -> dict[str, Any]:
    """Delete a file on the endpoint and forget it in the ledger (a later upload of the same content sends it again)."""
    import openai

    client = openai_client(endpoint)
    try:
        result = client.files.delete(file_id)
    except openai.NotFoundError:
        ws.store.provider_files.forget(endpoint.name, file_id)
        raise NotFoundError(f"{endpoint.title} has no file {file_id!r} for this key. list_files shows the files there are.") from None
    except openai.APIError as error:
        raise refusal(f"delete {file_id}", error, endpoint) from None
    ws.store.provider_files.forget(endpoint.name, file_id)
    return {"id": result.id, "deleted": bool(result.deleted)}
