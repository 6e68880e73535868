"""The model registry: every model with its lineage, from the memory files it learned from to where it serves.

    source memory files (path + sha256) -> dataset version -> job -> model -> evaluations, deployments

Tuned models are rows of the ledger's models table (written when a job succeeds). Base models (the embedded one, a
model folder, a cloud model name) and the checkpoints of local jobs (`<job_id>@step-<N>`) are not rows, but they are
evaluated and deployed under a name too, so their lineage holds what exists: evaluations and deployments (and, for a
checkpoint, its job and dataset). Evaluations and deployments name a model the way evaluate does: canonical for local
models (ft-… id, the embedded model's name, an absolute folder path, <job_id>@step-<N>), as given for cloud ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.registry import resolve_chat_model, runs_locally as _runs_locally
from model_customization.workspace import Workspace
from model_customization.timestamps import iso_or_none

_JOB_FIELDS = (
    "id", "provider", "status", "base_model", "method", "dataset_id", "hyperparameters", "continue_from", "remote_id",
    "remote_status", "step", "total_steps", "train_loss", "validation_loss", "error", "created_at", "started_at", "finished_at",
)  # fmt: skip


def _uri(model_id: str) -> str | None:
    """models://{id}, except for folder paths, which a URI template cannot carry."""
    return None if "/" in model_id or "\\" in model_id else f"models://{model_id}"


def _identify(ws: Workspace, model_id: str) -> tuple[dict[str, Any], set[str]]:
    """(the model section of its lineage, the names evaluations and deployments may use for it)."""
    name = (model_id or "").strip()
    if not name:
        raise UserError("No model given. Name a model id (the resource models://index lists them).")
    row = ws.store.models.get(name)
    if row:
        model = {**row, "registered": True, "uri": _uri(row["id"])}
        if _runs_locally(row["provider"]) and row.get("path"):
            model["adapter_present"] = (Path(row["path"]) / "adapter_config.json").is_file()
        return model, {name, f"{row['provider']}:{name}"}  # evaluate keeps a cloud model's name as typed

    provider, provider_name = resolve_chat_model(ws, name)
    if not _runs_locally(provider):
        # Evaluations key cloud models as the caller typed them: with or without the provider prefix.
        names = {name, provider_name, f"{provider}:{provider_name}"}
        return {"id": name, "provider": provider, "kind": "base", "base_model": provider_name, "registered": False, "uri": _uri(name)}, names

    from model_customization.providers.local.checkpoints import is_checkpoint_name

    if is_checkpoint_name(name):
        return _checkpoint_model(ws, name)
    from model_customization.providers.local.models import check_base_model

    try:
        canonical = check_base_model(provider_name)
    except UserError as error:
        # A folder that is gone may still have evaluations and deployments on record under its name.
        if _mentioned(ws, {provider_name}):
            return {"id": provider_name, "provider": provider, "kind": "base", "base_model": provider_name, "registered": False, "uri": _uri(provider_name), "note": str(error)}, {provider_name}
        raise NotFoundError(
            f"No model {name!r} in the registry, and it is not a base model either ({error}) "
            "Read the resource models://index for the registered models; a tuned model's id is the model_id check_job shows."
        ) from error
    return {"id": canonical, "provider": provider, "kind": "base", "base_model": canonical, "registered": False, "uri": _uri(canonical)}, {canonical, provider_name}


def _checkpoint_model(ws: Workspace, name: str) -> tuple[dict[str, Any], set[str]]:
    """A checkpoint named <job_id>@step-<N>: on disk now, or only on record in evaluations and deployments."""
    from model_customization.providers.local.checkpoints import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(ws, name)
    except NotFoundError as error:
        if not _mentioned(ws, {name}):
            raise
        job_id, _, step = name.rpartition("@step-")
        job = ws.store.jobs.get(job_id)
        return {
            "id": name, "provider": "local", "kind": "checkpoint", "base_model": job["base_model"] if job else None,
            "job_id": job_id if job else None, "dataset_id": job["dataset_id"] if job else None, "step": int(step),
            "path": None, "registered": False, "uri": _uri(name), "note": f"no longer on disk: {error}",
        }, {name}  # fmt: skip
    job = ws.store.jobs.get(checkpoint.job_id)
    assert job is not None
    return {
        "id": checkpoint.model_id, "provider": "local", "kind": "checkpoint", "base_model": job["base_model"],
        "job_id": checkpoint.job_id, "dataset_id": job["dataset_id"], "step": checkpoint.step, "path": str(checkpoint.folder),
        "registered": False, "uri": _uri(checkpoint.model_id),
    }, {checkpoint.model_id, name.strip()}  # fmt: skip


def _mentioned(ws: Workspace, names: set[str]) -> bool:
    if any(names & set(row["models"] or []) for row in ws.store.evaluations.all()):
        return True
    return any(r["model"] in names for agent in ws.store.deployments.agents() for r in ws.store.deployments.of(agent))


def _job_section(ws: Workspace, job_id: str | None, notes: list[str]) -> dict[str, Any] | None:
    if not job_id:
        return None
    job = ws.store.jobs.get(job_id)
    if job is None:
        notes.append(f"job {job_id} is no longer in the ledger")
        return None
    section = {key: job.get(key) for key in _JOB_FIELDS}
    section["uri"] = f"jobs://{job_id}"
    return section


def _dataset_section(ws: Workspace, dataset_id: str | None, notes: list[str]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    if not dataset_id:
        return None, []
    row = ws.store.datasets.get(dataset_id)
    if row is None:
        notes.append(f"dataset {dataset_id} is no longer stored (deleted?); its sources are unknown")
        return None, []
    card = row["card"] or {}
    section = {
        "id": row["id"],
        "name": row["name"],
        "method": card.get("method"),
        "format": card.get("format"),
        "counts": row["counts"],
        "content_sha256": card.get("content_sha256"),
        "created_at": row["created_at"],
        "path": row["path"],
        "uri": f"datasets://{row['id']}",
    }
    sources = [{"path": s.get("path"), "sha256": s.get("sha256")} for s in card.get("sources") or []]
    return section, sources


def _evaluation_entries(ws: Workspace, names: set[str]) -> list[dict[str, Any]]:
    """Each evaluation holding the model, oldest first: its primary metric, this model's score, the comparisons it is in."""
    entries = []
    for row in reversed(ws.store.evaluations.all()):  # the ledger lists newest first
        key = next((m for m in row["models"] or [] if m in names), None)
        if key is None:
            continue
        source = row["dataset_id"] or ""
        entry: dict[str, Any] = {
            "eval_id": row["id"],
            "created_at": row["created_at"],
            "dataset_id": None if source.startswith("suite:") else source,
            "suite": source.removeprefix("suite:") if source.startswith("suite:") else None,
            "models": row["models"],
            "as": key,
            "status": row["status"],
            "uri": f"evals://{row['id']}",
        }
        summary = (row["summary"] or {}).get(key) or {}
        report_file = Path(row["path"]) / "report.json"
        report: dict[str, Any] | None = None
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            entry["report"] = f"missing: {report_file} is gone; scores below are the ledger's summary"
        except (OSError, json.JSONDecodeError) as error:
            entry["report"] = f"unreadable: {report_file} ({error}); scores below are the ledger's summary"
        metric = (report or {}).get("primary_metric") or ("token_f1" if "token_f1" in summary else None)
        entry["split"] = (report or {}).get("split")
        entry["cases"] = (report or {}).get("cases")
        entry["primary_metric"] = metric
        entry["score"] = summary.get(metric) if metric else None
        if "perplexity" in summary:
            entry["perplexity"] = summary["perplexity"]
        comparisons = [c for c in (report or {}).get("comparisons") or [] if key in (c.get("baseline"), c.get("candidate"))]
        entry["comparisons"] = [
            {k: c.get(k) for k in ("baseline", "candidate", "metric", "mean_difference", "low", "high", "n", "significant", "verdict")}
            for c in comparisons
        ]
        pairwise = (report or {}).get("pairwise") or {}
        judged = [p for p in pairwise.get("comparisons") or [] if key in (p.get("baseline"), p.get("candidate"))]
        if judged:
            entry["pairwise"] = [{"judge": pairwise.get("judge"), **{k: p.get(k) for k in ("baseline", "candidate", "verdict")}} for p in judged]
        entries.append(entry)
    return entries


def _deployment_entries(ws: Workspace, names: set[str]) -> list[dict[str, Any]]:
    """Every assignment of the model to an agent (deploy or rollback to it), with whether it serves there now."""
    entries = []
    for agent in ws.store.deployments.agents():
        history = ws.store.deployments.of(agent)
        live_ids = {[r for r in history if r["task"] == task][-1]["id"] for task in {r["task"] for r in history}}
        for row in history:
            if row["model"] not in names:
                continue
            entries.append(
                {
                    "agent": agent,
                    "task": row["task"],
                    "action": row["action"],
                    "at": row["at"],
                    "live": row["id"] in live_ids,
                    "entry": row["id"],
                    "eval_id": row["eval_id"],
                    "gate": row["gate"],
                    "uri": f"agents://{agent}",
                }
            )
    return sorted(entries, key=lambda e: (e["at"], e["entry"]))


def model_lineage(ws: Workspace, model_id: str) -> dict[str, Any]:
    """{model, job, dataset, sources, evaluations, deployments, notes} for a registered model, a base model or a checkpoint.

    model: the registry row (or what is known of a base model / checkpoint); job: the job that trained it (id,
    status, method, hyperparameters, ...); dataset: the dataset version (id, name, counts, content_sha256, ...);
    sources: the memory files the dataset was built from, [{path, sha256}]; evaluations: every evaluation holding
    the model, oldest first, with its primary metric, this model's score and the comparisons involving it;
    deployments: every assignment to an agent, with live=True where it serves now; notes: links that are missing.
    """
    model, names = _identify(ws, model_id)
    notes: list[str] = [model.pop("note")] if "note" in model else []
    job = _job_section(ws, model.get("job_id"), notes)
    dataset_id = model.get("dataset_id") or (job or {}).get("dataset_id")
    dataset, sources = _dataset_section(ws, dataset_id, notes)
    if job and job.get("continue_from"):
        notes.append(f"trained on from the adapter of {job['continue_from']}: read models://{job['continue_from']} for its lineage")
    return {
        "model": model,
        "job": job,
        "dataset": dataset,
        "sources": sources,
        "evaluations": _evaluation_entries(ws, names),
        "deployments": _deployment_entries(ws, names),
        "notes": notes,
    }


def list_registry(ws: Workspace) -> list[dict[str, Any]]:
    """Every registered model, newest first, with its lineage in one line: job, dataset, evaluations, live deployments."""
    evaluations = ws.store.evaluations.all()
    live: dict[str, list[str]] = {}
    for agent in ws.store.deployments.agents():
        history = ws.store.deployments.of(agent)
        for task in {r["task"] for r in history}:
            current = [r for r in history if r["task"] == task][-1]
            live.setdefault(current["model"], []).append(f"{agent}/{task}" if task is not None else agent)
    jobs = {}
    entries = []
    for row in ws.store.models.all():
        job_id = row.get("job_id")
        if job_id and job_id not in jobs:
            jobs[job_id] = ws.store.jobs.get(job_id)
        job = jobs.get(job_id) if job_id else None
        dataset_id = row.get("dataset_id") or (job or {}).get("dataset_id")
        dataset = ws.store.datasets.get(dataset_id) if dataset_id else None
        source_count = len((dataset or {}).get("card", {}).get("sources") or []) if dataset else None
        evaluated = sum(1 for e in evaluations if row["id"] in (e["models"] or []))
        serving = sorted(live.get(row["id"], []))
        parts = [row["id"]]
        if job_id:
            parts.append(f"job {job_id} ({job['status'] if job else 'gone'})")
        if dataset_id:
            parts.append(f"dataset {dataset_id}" + (f" ({source_count} source files)" if dataset else " (gone)"))
        line = " <- ".join(parts) + f"; {evaluated} evaluation{'s' if evaluated != 1 else ''}"
        line += f"; serves {', '.join(serving)}" if serving else "; not deployed"
        entries.append(
            {
                "model_id": row["id"],
                "provider": row["provider"],
                "kind": row["kind"],
                "base_model": row["base_model"],
                "job_id": job_id,
                "job_status": job["status"] if job else None,
                "dataset_id": dataset_id,
                "source_files": source_count,
                "evaluations": evaluated,
                "live_deployments": serving,
                "created_at": row["created_at"],
                "uri": _uri(row["id"]),
                "lineage": line,
            }
        )
    return entries


def list_models_page(ws: Workspace, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """{models, next_cursor}: the embedded base model first, then every registered (tuned) model newest first with
    its job, dataset, created time and live deployments (list_registry's entries), one page at a time."""
    from model_customization.paging import page_rows
    from model_customization.providers.local.models import EMBEDDED_MODEL

    base = {
        "model_id": EMBEDDED_MODEL, "provider": "local", "kind": "base", "base_model": EMBEDDED_MODEL, "job_id": None, "job_status": None,
        "dataset_id": None, "source_files": None, "evaluations": None, "live_deployments": [], "created_at": None, "uri": _uri(EMBEDDED_MODEL),
        "lineage": f"{EMBEDDED_MODEL}: the embedded base model (shipped with the package); start_job trains on it by default",
    }  # fmt: skip

    # The base model sorts before every tuned one (group 1 > 0 in a newest-first list); tuned ones by time, then id.
    def key(entry: dict[str, Any]) -> tuple[int, float, str]:
        return (1, 0.0, entry["model_id"]) if entry is base else (0, entry["created_at"], entry["model_id"])

    rows = [base, *sorted(list_registry(ws), key=key, reverse=True)]
    shown, next_cursor = page_rows(rows, key, kind="models", limit=limit, cursor=cursor, newest_first=True)
    shown = [{**entry, "created_at": iso_or_none(entry["created_at"]), "notice": _notice(entry)} for entry in shown]
    return {"models": shown, "next_cursor": next_cursor}


def _notice(entry: dict[str, Any]) -> str | None:
    """The provider's warning about a listed model (a shutdown date), if any."""
    from model_customization.providers.registry import find_provider

    provider = find_provider(entry.get("provider"))
    return provider.model_notice(entry["model_id"]) if provider is not None else None


