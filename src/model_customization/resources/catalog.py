"""MCP resources: read-only JSON views of datasets, jobs and evaluations, and a job's loss curve as a PNG."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from model_customization.errors import NotFoundError, UserError
from model_customization.evaluation.runner import get_evaluation
from model_customization.jobs import orchestrator
from model_customization.workspace import Workspace


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def register(server: MCPServer, ws: Workspace) -> None:
    @server.resource("datasets://index", name="datasets", mime_type="application/json", description="Every stored dataset with its split sizes.")
    def datasets_index() -> str:
        rows = ws.ledger.list_datasets()
        return _json([{"dataset_id": r["id"], "name": r["name"], "counts": r["counts"], "uri": f"datasets://{r['id']}"} for r in rows])

    @server.resource("datasets://{dataset_id}", name="dataset", mime_type="application/json", description="A dataset's card: counts per split, drops by reason, unreadable lines, sources with sha256, options.")
    def dataset_card(dataset_id: str) -> str:
        row = ws.ledger.get_dataset(dataset_id)
        if not row:
            raise ResourceNotFoundError(f"No dataset {dataset_id!r}. Read datasets://index or call list_datasets.")
        return _json(row["card"])

    @server.resource("datasets://{dataset_id}/card.md", name="dataset card (Markdown)", mime_type="text/markdown", description="The dataset card for people: splits, tokens, what was left out and why, redactions, sources.")
    def dataset_card_markdown(dataset_id: str) -> str:
        row = ws.ledger.get_dataset(dataset_id)
        if not row:
            raise ResourceNotFoundError(f"No dataset {dataset_id!r}. Read datasets://index or call list_datasets.")
        from pathlib import Path

        from model_customization.datasets.build import card_markdown

        stored = Path(row["path"]) / "card.md"
        return stored.read_text(encoding="utf-8") if stored.is_file() else card_markdown(row["card"])

    @server.resource("jobs://index", name="jobs", mime_type="application/json", description="Every fine-tuning job, newest first.")
    def jobs_index() -> str:
        return _json(orchestrator.list_jobs(ws, limit=1000))

    @server.resource("jobs://{job_id}", name="job", mime_type="application/json", description="A job's status, progress, losses, recent events and metrics history.")
    def job_detail(job_id: str) -> str:
        try:
            summary = orchestrator.check_job(ws, job_id, events=50)
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from error
        summary["metrics"] = [
            {k: m[k] for k in ("step", "epoch", "train_loss", "validation_loss", "learning_rate")} for m in ws.ledger.metrics(job_id)
        ]
        return _json(summary)

    @server.resource("jobs://{job_id}/events", name="job events", mime_type="application/json", description="Every event of a job, oldest first: worker launch, epochs, warnings, errors, the result.")
    def job_events(job_id: str) -> str:
        if not ws.ledger.get_job(job_id):
            raise ResourceNotFoundError(f"Job {job_id!r} not found. Read jobs://index or call list_jobs.")
        events = [
            {"at": datetime.fromtimestamp(e["at"], timezone.utc).isoformat(timespec="seconds"), "level": e["level"], "message": e["message"]}
            for e in ws.ledger.events(job_id, limit=None)  # None: no limit, every event
        ]
        return _json({"job_id": job_id, "events": events})

    @server.resource("jobs://{job_id}/loss.png", name="job loss curve", mime_type="image/png", description="A job's loss curve as a PNG: train loss per step (smoothed when long), validation loss, learning rate, epoch boundaries.")
    def job_loss_curve(job_id: str) -> bytes:
        from model_customization.jobs.plots import loss_curve_png

        try:
            return loss_curve_png(ws, job_id)
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from error
        except UserError as error:  # no metrics yet: say so instead of an opaque internal error
            raise ResourceError(str(error)) from error

    @server.resource("agents://index", name="agents", mime_type="application/json", description="Every agent with a deployed model, and its model per task.")
    def agents_index() -> str:
        from model_customization.deployments import list_agents

        return _json(list_agents(ws))

    @server.resource("agents://{name}", name="agent", mime_type="application/json", description="An agent's deployed model per task (None = default), the evaluation that justified each, and the full history.")
    def agent_detail(name: str) -> str:
        from model_customization.deployments import agent_assignments

        try:
            return _json(agent_assignments(ws, name))
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from error
        except UserError as error:
            raise ResourceError(str(error)) from error

    @server.resource("evals://{eval_id}", name="evaluation", mime_type="application/json", description="An evaluation: per-model scores and per-case outputs.")
    def evaluation_report(eval_id: str) -> str:
        try:
            return _json(get_evaluation(ws, eval_id, cases=1000))
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from error
