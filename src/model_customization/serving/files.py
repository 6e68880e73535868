"""Training files uploaded through the OpenAI-compatible endpoint (`POST /v1/files`, purpose fine-tune).

An upload goes through the gate inspect_dataset applies to a file (the same row checks, and the local provider's
own tokenizer and chat template for chat examples) and becomes a dataset (datasets/build.store_examples, content
addressed like every dataset, and redacted as a dataset built from memory is): all its examples in the train split. Any error is refused with its line number and
nothing is stored. The file record (its id, name, size and the dataset it became) and the bytes as uploaded, which
`GET /v1/files/{id}/content` returns, are kept in the data home under api_files/<file_id>/.

Deleting a file removes the record and the bytes; the dataset stays (datasets are immutable, and jobs name them).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.workspace import Workspace

FOLDER = "api_files"
PURPOSES = ("fine-tune",)
MAX_REPORTED = 5  # problems named in the refusal; the rest are counted
_FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")


class FileProblem(UserError):
    """An upload refused for its content: param is 'file', code 'invalid_file' (OpenAI's words for it)."""

    param = "file"
    code = "invalid_file"


def _folder(ws: Workspace) -> Path:
    return ws.settings.home / FOLDER


def _record_path(ws: Workspace, file_id: str) -> Path:
    if not _FILE_ID.match(file_id):
        raise NotFoundError(f"No file {file_id!r}: file ids look like file-<24 hex digits>. GET /v1/files lists them.")
    return _folder(ws) / file_id


def upload_file(ws: Workspace, filename: str, purpose: str, data: bytes) -> dict[str, Any]:
    """Check an uploaded JSONL file, store it as a dataset, and return the file record."""
    from model_customization.datasets.build import store_examples
    from model_customization.datasets.redaction import redact_record

    if purpose not in PURPOSES:
        error = UserError(f"purpose {purpose!r} is not served here: this server takes training files, purpose 'fine-tune'.")
        error.param = "purpose"  # type: ignore[attr-defined]
        raise error
    name = Path(filename or "upload.jsonl").name[:255] or "upload.jsonl"
    rows, method = check_training_file(ws, name, data)
    # Redacted as a dataset built from memory is: a stored dataset may later be uploaded to a cloud provider, and
    # no secret may travel there. The bytes as uploaded stay only in this data home, for GET .../content.
    redactions: Counter[str] = Counter()
    redacted_rows = []
    for row in rows:
        clean, counts = redact_record(row)
        redacted_rows.append(clean)
        redactions.update(counts)
    rows = redacted_rows
    dataset_id, _, _ = store_examples(
        ws, [("train", row) for row in rows], name=name, method=method,
        card_fields={
            "conversations_read": len(rows), "formats": {"openai_upload": len(rows)}, "dropped": {}, "duplicates_removed": {"exact": 0, "near": 0},
            "redactions": dict(redactions), "unreadable": {"count": 0, "first": []},
            "sources": [{"path": f"POST /v1/files: {name}", "sha256": hashlib.sha256(data).hexdigest()}],
            "options": {"method": method, "source": "POST /v1/files", "split": "all examples in train"},
        },
    )  # fmt: skip
    file_id = "file-" + secrets.token_hex(12)
    record = {
        "id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()), "filename": name,
        "purpose": purpose, "status": "processed", "dataset_id": dataset_id, "method": method, "examples": len(rows),
        "created_ns": time.time_ns(),  # orders uploads within one second (created_at is whole seconds)
    }  # fmt: skip
    folder = _record_path(ws, file_id)
    folder.mkdir(parents=True, exist_ok=False, mode=0o700)
    (folder / "content").write_bytes(data)
    (folder / "file.json").write_text(json.dumps(record), encoding="utf-8")
    return record


def check_training_file(ws: Workspace, name: str, data: bytes) -> tuple[list[dict[str, Any]], str]:
    """(the examples, 'sft' or 'dpo') of a training file, or FileProblem naming each bad line (up to MAX_REPORTED)."""
    from model_customization.datasets.render import is_preference
    from model_customization.datasets.validate import Finding, parse_line
    from model_customization.paths import memory_limits
    from model_customization.providers.registry import get_provider

    max_line = memory_limits().max_line_bytes
    rows: list[tuple[str, int, Any]] = []
    problems: list[Finding] = []
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        # The gate's reading of a line: too long, not JSON in UTF-8, a lone surrogate, or the row.
        row, problem = parse_line("train", line_no, len(raw) if len(raw) > max_line else raw, max_line)
        if problem is not None:
            problems.append(problem)
        elif row is not None:
            rows.append(("train", line_no, row))
    if not rows and not problems:
        raise FileProblem(f"{name} holds no examples: a training file is JSON Lines, one example per line.")
    # The gate inspect_dataset applies: the row checks and the local provider's measure (its tokenizer and chat
    # template). Preference rows are measured by a DPO job when it starts; here their format is checked.
    trainer = get_provider("local", "train")
    measure = trainer.measure_dataset(ws, iter(rows), model=trainer.default_inspect_model, max_seq_length=32768)
    problems += [f for f in measure.findings if f.severity == "error" and f.code != "unsupported_method"]
    if problems:
        problems.sort(key=lambda f: f.line)
        shown = "; ".join((f"line {f.line}: " if f.line else "the file: ") + f.message for f in problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        from model_customization.datasets.redaction import redact_text

        raise FileProblem(redact_text(f"{name} cannot be trained on: {shown}{more}. Fix these lines and upload the file again.")[0])
    kinds = {is_preference(row) for _, _, row in rows}
    if len(kinds) > 1:
        first = next(line for _, line, row in rows if is_preference(row) != is_preference(rows[0][2]))
        raise FileProblem(f"{name} mixes chat examples and preference pairs (line {first} differs from line {rows[0][1]}); a file holds one kind.")
    return [row for _, _, row in rows], "dpo" if kinds == {True} else "sft"


def get_file(ws: Workspace, file_id: str) -> dict[str, Any]:
    path = _record_path(ws, file_id) / "file.json"
    if not path.is_file():
        raise NotFoundError(f"No file {file_id!r}. GET /v1/files lists the files uploaded here.")
    return json.loads(path.read_text(encoding="utf-8"))


def file_content(ws: Workspace, file_id: str) -> bytes:
    get_file(ws, file_id)
    return (_record_path(ws, file_id) / "content").read_bytes()


def list_files(ws: Workspace, *, purpose: str | None = None, after: str | None = None, limit: int = 10000, order: str = "desc") -> tuple[list[dict[str, Any]], bool]:
    """(files, has_more): newest first (order desc) or oldest first, those after the file `after` in that order."""
    if order not in ("asc", "desc"):
        raise UserError(f"order must be asc or desc (got {order!r}).")
    if not 1 <= limit <= 10000:
        raise UserError(f"limit must be between 1 and 10000 (got {limit}).")
    folder = _folder(ws)
    records = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("file-*/file.json")] if folder.is_dir() else []
    records = [r for r in records if purpose is None or r["purpose"] == purpose]
    records.sort(key=lambda r: (r.get("created_ns", r["created_at"] * 10**9), r["id"]), reverse=order == "desc")
    if after is not None:
        position = next((i for i, r in enumerate(records) if r["id"] == after), None)
        if position is None:
            raise NotFoundError(f"after={after!r} is not a file here; give the id of the last file of the previous page.")
        records = records[position + 1 :]
    return records[:limit], len(records) > limit


def delete_file(ws: Workspace, file_id: str) -> dict[str, Any]:
    get_file(ws, file_id)
    shutil.rmtree(_record_path(ws, file_id))
    return {"id": file_id, "object": "file", "deleted": True}
