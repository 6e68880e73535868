"""MCP resources: read-only JSON views of datasets, jobs and evaluations, and a job's loss curve as a PNG."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from model_customization.errors import NotFoundError, UserError
from model_customization.tools.common import lazy_module
from model_customization.workspace import Workspace

# Imported on first use: the orchestrator brings in the ledger (SQLAlchemy), which a starting server need not wait for.
orchestrator = lazy_module("model_customization.jobs.orchestrator")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _evaluation_entry(row: dict[str, Any]) -> dict[str, Any]:
    # The ledger's dataset_id column holds "suite:<path>" for an evaluation run on a suite file.
    source = row["dataset_id"] or ""
    suite = source[len("suite:") :] if source.startswith("suite:") else None
    return {
        "eval_id": row["id"],
        "dataset_id": None if suite is not None else source,
        "suite": suite,
        "models": row["models"],
        "status": row["status"],
        "created_at": datetime.fromtimestamp(row["created_at"], timezone.utc).isoformat(timespec="seconds"),
        "uri": f"evals://{row['id']}",
        "report_uri": f"evals://{row['id']}/report.md",
        "chart_uri": f"evals://{row['id']}/chart.png",
    }


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

    @server.resource("models://index", name="models", mime_type="application/json", description="Every registered model, newest first, with its lineage in one line: job, dataset, evaluations, live deployments.")
    def models_index() -> str:
        from model_customization.registry import list_registry

        return _json(list_registry(ws))

    @server.resource(
        "models://{model_id}",
        name="model lineage",
        mime_type="application/json",
        description="A model's lineage: source memory files (path, sha256) -> dataset -> job -> model -> evaluations (score, verdicts) and deployments (live or not). Also base models and <job_id>@step-<N> checkpoints.",
    )
    def model_detail(model_id: str) -> str:
        from model_customization.registry import model_lineage

        try:
            return _json(model_lineage(ws, model_id))
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from error
        except UserError as error:
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

    @server.resource("evals://index", name="evaluations", mime_type="application/json", description="Every evaluation, newest first: what it compared on, its models, status and where to read it.")
    def evals_index() -> str:
        rows = ws.ledger.list_evaluations()
        return _json([_evaluation_entry(r) for r in rows])

    @server.resource("evals://{eval_id}", name="evaluation", mime_type="application/json", description="An evaluation: per-model scores, per-case outputs and the cases where the models differ most.")
    def evaluation_report(eval_id: str) -> str:
        from model_customization.evaluation.report import differing_cases

        try:
            from model_customization.evaluation.runner import get_evaluation  # loaded on first use

            evaluation = get_evaluation(ws, eval_id, cases=1000)
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from error
        evaluation["differing_cases"] = differing_cases(evaluation, evaluation["per_case"])
        return _json(evaluation)

    @server.resource("evals://{eval_id}/report.md", name="evaluation report (Markdown)", mime_type="text/markdown", description="An evaluation for people: each metric's mean with its 95% CI per model, the comparisons and their verdicts, the pairwise judge, and the cases where the models differ most.")
    def evaluation_markdown(eval_id: str) -> str:
        from model_customization.evaluation.report import stored_report_markdown

        try:
            return stored_report_markdown(_evaluation_folder(eval_id))
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from error

    @server.resource("evals://{eval_id}/chart.png", name="evaluation chart", mime_type="image/png", description="An evaluation's 0-1 metrics as a PNG: the mean per model with its 95% CI, grouped by metric, the primary metric first.")
    def evaluation_chart(eval_id: str) -> bytes:
        from model_customization.evaluation.report import stored_report_chart

        try:
            return stored_report_chart(_evaluation_folder(eval_id))
        except NotFoundError as error:
            raise ResourceNotFoundError(str(error)) from error
        except UserError as error:  # nothing to chart: say so instead of an opaque internal error
            raise ResourceError(str(error)) from error

    def _evaluation_folder(eval_id: str) -> Path:
        row = ws.ledger.get_evaluation(eval_id)
        if not row:
            raise NotFoundError(f"Evaluation {eval_id!r} not found. Read evals://index to see the evaluations, or run evaluate.")
        folder = Path(row["path"])
        if row.get("status") not in (None, "succeeded") and not (folder / "report.json").is_file():
            raise ResourceError(f"Evaluation {eval_id} is {row['status']}: its report is written when it finishes. Read evals://index for its status.")
        return folder
