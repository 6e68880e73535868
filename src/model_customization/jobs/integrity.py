"""A health check of the data home: the ledger database itself and the promises the rest of the product relies on.

`check_ledger(ws)` returns a list of problems, each a sentence naming the row or file and what is wrong (empty when all
is well). It reads only; nothing is repaired. What it checks:

  - the database: SQLite's own `PRAGMA integrity_check` and `PRAGMA foreign_key_check` (other databases vouch for
    their own pages and foreign keys, so these are skipped there);
  - datasets: every dataset row has its folder with card.json and one file per split, and the splits' content hash
    matches the card's content_sha256 (computed as the build computes it, when the splits are small enough to read);
    (`leftovers(ws)` lists, apart, the staging folders an interrupted write left: never visible as datasets);
  - jobs: every succeeded job names a model that exists, and a local tuned model has its adapter files;
    no two active jobs share an idempotency key (one start must never become two jobs);
  - evaluations: every evaluation marked succeeded has its report.json.

A crash (even kill -9) must leave none of these problems: files are written under a temporary name and renamed, and
ledger rows are written in transactions after the files they point to.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from model_customization.providers.registry import runs_locally as _runs_locally
from model_customization.workspace import Workspace

ACTIVE_STATUSES = ("validating", "queued", "running", "paused")
MAX_HASHED_BYTES = 256 * 1024 * 1024  # above this the splits' hash is not recomputed (the check stays quick)
SPLITS = ("train", "validation", "test")
LOCAL_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def check_ledger(ws: Workspace) -> list[str]:
    """Every problem found in the ledger and the files it points to; an empty list means the data home is sound."""
    problems: list[str] = []
    problems += _database_problems(ws)
    if problems:
        return problems  # a damaged database makes every later reading unreliable
    problems += _dataset_problems(ws)
    problems += _job_problems(ws)
    problems += _evaluation_problems(ws)
    return problems


def _database_problems(ws: Workspace) -> list[str]:
    from sqlalchemy import text

    if ws.store.engine.dialect.name != "sqlite":
        return []
    problems = []
    with ws.store.engine.connect() as conn:
        for (line,) in conn.execute(text("PRAGMA integrity_check")):
            if line != "ok":
                problems.append(f"SQLite integrity_check: {line}")
        for table, rowid, parent, _index in conn.execute(text("PRAGMA foreign_key_check")):
            problems.append(f"table {table} row {rowid} points to a missing row of {parent}")
    return problems


def splits_sha256(folder: Path) -> str:
    """The content hash of a dataset folder's splits, as the build computes it: the split files joined by \\x1e."""
    digest = hashlib.sha256()
    for index, split in enumerate(SPLITS):
        if index:
            digest.update(b"\x1e")
        with (folder / f"{split}.jsonl").open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _dataset_problems(ws: Workspace) -> list[str]:
    problems = []
    for row in ws.store.datasets.all():
        folder = Path(row["path"])
        if not folder.is_dir():
            problems.append(f"dataset {row['id']}: its folder {folder} is missing")
            continue
        missing = [name for name in ("card.json", *(f"{s}.jsonl" for s in SPLITS)) if not (folder / name).is_file()]
        if missing:
            problems.append(f"dataset {row['id']}: {', '.join(missing)} missing from {folder}")
            continue
        try:
            json.loads((folder / "card.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            problems.append(f"dataset {row['id']}: card.json is not readable JSON ({error})")
        counts = row.get("counts") or {}
        for split in SPLITS:
            if split in counts:
                with (folder / f"{split}.jsonl").open("rb") as handle:
                    lines = sum(1 for line in handle if line.strip())
                if lines != counts[split]:
                    problems.append(f"dataset {row['id']}: {split}.jsonl has {lines} examples, the ledger says {counts[split]}")
        expected = (row.get("card") or {}).get("content_sha256")
        size = sum((folder / f"{s}.jsonl").stat().st_size for s in SPLITS)
        if expected and size <= MAX_HASHED_BYTES and splits_sha256(folder) != expected:
            problems.append(f"dataset {row['id']}: the split files do not match the card's content_sha256 (changed or half-written)")
    return problems


# Staging names (datasets/build.py, storage.py, delete_dataset): what is under them never was, or no longer is, data.
_STAGING_PREFIXES = (".build-", ".deleted-")
_STAGING_INFIXES = (".tmp-", ".old-")


def _is_staging(name: str) -> bool:
    return name.startswith(_STAGING_PREFIXES) or (name.startswith(".") and any(infix in name for infix in _STAGING_INFIXES))


def leftovers(ws: Workspace) -> list[str]:
    """Folders no dataset or evaluation row points to, listed so that their space can be reclaimed.

    Only the staging folders of an interrupted write are called safe to delete: nothing is ever read from them. A
    dataset or report folder the ledger does not record may be the last step of an interrupted write, but it may as
    well be data whose ledger rows were lost (a ledger restored from an older backup or replaced): the ledger cannot
    tell, so neither does this list."""
    known = {Path(row["path"]).resolve() for row in ws.store.datasets.all()}
    known |= {Path(row["path"]).resolve() for row in ws.store.evaluations.all()}
    found = []
    for parent in (ws.settings.datasets_dir, ws.settings.evals_dir):
        if parent.is_dir():
            for entry in sorted(parent.iterdir()):
                if not entry.is_dir() or entry.resolve() in known:
                    continue
                if _is_staging(entry.name):
                    found.append(f"temporary folder {entry} (left by an interrupted write; safe to delete)")
                else:
                    found.append(
                        f"folder without a ledger row {entry}: the ledger does not account for it. It may be left by an "
                        "interrupted write, or hold data whose ledger rows were lost (a ledger replaced or restored from an "
                        "older backup): keep it unless you know which; building the same content again re-adopts a dataset folder"
                    )
    return found


def _job_problems(ws: Workspace) -> list[str]:
    problems = []
    jobs = ws.store.jobs.all()
    active_by_key: dict[tuple[str, str], list[str]] = {}
    for job in jobs:
        if job["status"] in ACTIVE_STATUSES and job.get("idempotency_key"):
            active_by_key.setdefault((job["provider"], job["idempotency_key"]), []).append(job["id"])
        if job["status"] != "succeeded":
            continue
        if not job.get("model_id"):
            if _runs_locally(job["provider"]):
                problems.append(f"job {job['id']} succeeded but names no model")
            continue  # a cloud job may report success a moment before it names its model
        model = ws.store.models.get(job["model_id"])
        if model is None:
            problems.append(f"job {job['id']} succeeded with model {job['model_id']}, which is not in the models table")
            continue
        if _runs_locally(model["provider"]) and model.get("path"):
            folder = Path(model["path"])
            missing = [name for name in LOCAL_ADAPTER_FILES if not (folder / name).is_file()]
            if missing:
                problems.append(f"model {model['id']} (job {job['id']}): {', '.join(missing)} missing from {folder}")
    for (provider, key), ids in sorted(active_by_key.items()):
        if len(ids) > 1:
            problems.append(f"{len(ids)} active {provider} jobs share the idempotency key {key}: {', '.join(sorted(ids))}")
    return problems


def _evaluation_problems(ws: Workspace) -> list[str]:
    problems = []
    for row in ws.store.evaluations.all():
        if row["status"] == "succeeded" and not (Path(row["path"]) / "report.json").is_file():
            problems.append(f"evaluation {row['id']} is marked succeeded but {Path(row['path']) / 'report.json'} is missing")
    return problems


def doctor_report(ws: Workspace) -> dict[str, Any]:
    """The check's result as the CLI prints it with --json."""
    problems = check_ledger(ws)
    return {"ok": not problems, "problems": problems, "leftovers": leftovers(ws), "store": ws.store.engine.dialect.name}
