"""MCP resources: read-only JSON views of datasets, jobs and evaluations, and a job's loss curve as a PNG."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from model_customization.errors import NotFoundError, UserError
from model_customization.timestamps import utc_iso
from model_customization.tools.common import lazy_module
from model_customization.workspace import Workspace

# The domain is imported on first use: the orchestrator brings in the ledger (SQLAlchemy), the others their own
# dependencies (matplotlib for the charts), none of which a starting server need wait for.
orchestrator = lazy_module("model_customization.jobs.orchestrator")
dataset_build = lazy_module("model_customization.datasets.build")
plots = lazy_module("model_customization.jobs.plots")
registry = lazy_module("model_customization.registry")
deployments = lazy_module("model_customization.deployments")
eval_report = lazy_module("model_customization.evaluation.report")
eval_results = lazy_module("model_customization.evaluation.results")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@contextmanager
def _resource_errors() -> Iterator[None]:
    """The domain's errors as MCP resource errors: not found, or what is wrong (e.g. no metrics yet to chart) instead
    of an opaque internal error."""
    try:
        yield
    except NotFoundError as error:
        raise ResourceNotFoundError(str(error)) from error
    except UserError as error:
        raise ResourceError(str(error)) from error


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
        "created_at": utc_iso(row["created_at"]),
        "uri": f"evals://{row['id']}",
        "report_uri": f"evals://{row['id']}/report.md",
        "chart_uri": f"evals://{row['id']}/chart.png",
    }


def register(server: MCPServer, ws: Workspace) -> None:
    @server.resource("datasets://index", name="datasets", mime_type="application/json", description="Every stored dataset with its split sizes.")
    def datasets_index() -> str:
        rows = ws.store.datasets.all()
        return _json([{"dataset_id": r["id"], "name": r["name"], "counts": r["counts"], "uri": f"datasets://{r['id']}"} for r in rows])

    @server.resource("datasets://{dataset_id}", name="dataset", mime_type="application/json", description="A dataset's card: counts per split, drops by reason, unreadable lines, sources with sha256, options.")
    def dataset_card(dataset_id: str) -> str:
        row = ws.store.datasets.get(dataset_id)
        if not row:
            raise ResourceNotFoundError(f"No dataset {dataset_id!r}. Read datasets://index or call list_datasets.")
        card = dict(row["card"])
        sources = card.get("sources") or []
        if len(sources) > dataset_build.CARD_SOURCES_SHOWN:  # grows with the data: the first ones, a count, and where the rest are
            card["sources"] = sources[: dataset_build.CARD_SOURCES_SHOWN]
            card["sources_count"] = len(sources)
            card["sources_rest"] = f"datasets://{dataset_id}/sources/1 ({dataset_build.SOURCES_PER_PAGE:,} per page)"
        return _json(card)

    @server.resource("datasets://{dataset_id}/sources/{page}", name="dataset sources", mime_type="application/json", description="A dataset's source files with their sha256, a page at a time (page 1 first).")
    def dataset_sources(dataset_id: str, page: str) -> str:
        row = ws.store.datasets.get(dataset_id)
        if not row:
            raise ResourceNotFoundError(f"No dataset {dataset_id!r}. Read datasets://index or call list_datasets.")
        sources = row["card"].get("sources") or []
        pages = max(1, -(-len(sources) // dataset_build.SOURCES_PER_PAGE))
        if not page.isdigit() or not 1 <= int(page) <= pages:
            raise ResourceNotFoundError(f"Page {page[:20]!r} of {dataset_id}'s sources does not exist: pages run from 1 to {pages}.")
        start = (int(page) - 1) * dataset_build.SOURCES_PER_PAGE
        following = f"datasets://{dataset_id}/sources/{int(page) + 1}" if int(page) < pages else None
        return _json({"count": len(sources), "page": int(page), "pages": pages, "sources": sources[start : start + dataset_build.SOURCES_PER_PAGE], "next": following})

    @server.resource("datasets://{dataset_id}/card.md", name="dataset card (Markdown)", mime_type="text/markdown", description="The dataset card for people: splits, tokens, what was left out and why, redactions, sources.")
    def dataset_card_markdown(dataset_id: str) -> str:
        row = ws.store.datasets.get(dataset_id)
        if not row:
            raise ResourceNotFoundError(f"No dataset {dataset_id!r}. Read datasets://index or call list_datasets.")
        stored = Path(row["path"]) / "card.md"
        return stored.read_text(encoding="utf-8") if stored.is_file() else dataset_build.card_markdown(row["card"])

    @server.resource("jobs://index", name="jobs", mime_type="application/json", description="Every fine-tuning job, newest first.")
    def jobs_index() -> str:
        return _json(orchestrator.list_jobs(ws, limit=1000))

    @server.resource("jobs://{job_id}", name="job", mime_type="application/json", description="A job's status, progress, losses, recent events and metrics history.")
    def job_detail(job_id: str) -> str:
        with _resource_errors():
            summary = orchestrator.check_job(ws, job_id, events=50)
        summary["metrics"] = [
            {k: m[k] for k in ("step", "epoch", "train_loss", "validation_loss", "learning_rate", *(("reward_mean", "reward_std", "kl", "validation_reward") if summary["method"] == "grpo" else ()))}
            for m in ws.store.jobs.metrics(job_id)
        ]
        return _json(summary)

    @server.resource("jobs://{job_id}/events", name="job events", mime_type="application/json", description="Every event of a job, oldest first: worker launch, epochs, warnings, errors, the result.")
    def job_events(job_id: str) -> str:
        if not ws.store.jobs.get(job_id):
            raise ResourceNotFoundError(f"Job {job_id!r} not found. Read jobs://index or call list_jobs.")
        events = [
            {"at": utc_iso(e["at"]), "level": e["level"], "message": e["message"]}
            for e in ws.store.jobs.events(job_id, limit=None)  # None: no limit, every event
        ]
        return _json({"job_id": job_id, "events": events})

    @server.resource("jobs://{job_id}/loss.png", name="job loss curve", mime_type="image/png", description="A job's loss curve as a PNG: train loss per step (smoothed when long), validation loss, learning rate, epoch boundaries.")
    def job_loss_curve(job_id: str) -> bytes:
        with _resource_errors():  # no metrics yet is a UserError: said as it is
            return plots.loss_curve_png(ws, job_id)

    @server.resource("models://index", name="models", mime_type="application/json", description="Every registered model, newest first, with its lineage in one line: job, dataset, evaluations, live deployments.")
    def models_index() -> str:
        return _json(registry.list_registry(ws))

    @server.resource(
        "models://{model_id}",
        name="model lineage",
        mime_type="application/json",
        description="A model's lineage: source memory files (path, sha256) -> dataset -> job -> model -> evaluations (score, verdicts) and deployments (live or not). Also base models and <job_id>@step-<N> checkpoints.",
    )
    def model_detail(model_id: str) -> str:
        with _resource_errors():
            return _json(registry.model_lineage(ws, model_id))

    @server.resource("agents://index", name="agents", mime_type="application/json", description="Every agent with a deployed model, and its model per task.")
    def agents_index() -> str:
        return _json(deployments.list_agents(ws))

    @server.resource("agents://{name}", name="agent", mime_type="application/json", description="An agent's deployed model per task (None = default), the evaluation that justified each, and the full history.")
    def agent_detail(name: str) -> str:
        with _resource_errors():
            return _json(deployments.agent_assignments(ws, name))

    @server.resource("evals://index", name="evaluations", mime_type="application/json", description="Every evaluation, newest first: what it compared on, its models, status and where to read it.")
    def evals_index() -> str:
        rows = ws.store.evaluations.all()
        return _json([_evaluation_entry(r) for r in rows])

    @server.resource("evals://{eval_id}", name="evaluation", mime_type="application/json", description="An evaluation: per-model scores, per-case outputs and the cases where the models differ most.")
    def evaluation_report(eval_id: str) -> str:
        with _resource_errors():
            evaluation = eval_results.get_evaluation(ws, eval_id, cases=1000)
        evaluation["differing_cases"] = eval_report.differing_cases(evaluation, evaluation["per_case"])
        return _json(evaluation)

    @server.resource("evals://{eval_id}/report.md", name="evaluation report (Markdown)", mime_type="text/markdown", description="An evaluation for people: each metric's mean with its 95% CI per model, the comparisons and their verdicts, the pairwise judge, and the cases where the models differ most.")
    def evaluation_markdown(eval_id: str) -> str:
        with _resource_errors():
            return eval_report.stored_report_markdown(_evaluation_folder(eval_id))

    @server.resource("evals://{eval_id}/chart.png", name="evaluation chart", mime_type="image/png", description="An evaluation's 0-1 metrics as a PNG: the mean per model with its 95% CI, grouped by metric, the primary metric first.")
    def evaluation_chart(eval_id: str) -> bytes:
        with _resource_errors():  # nothing to chart is a UserError: said as it is
            return eval_report.stored_report_chart(_evaluation_folder(eval_id))

    def _evaluation_folder(eval_id: str) -> Path:
        row = ws.store.evaluations.get(eval_id)
        if not row:
            raise NotFoundError(f"Evaluation {eval_id!r} not found. Read evals://index to see the evaluations, or run evaluate.")
        folder = Path(row["path"])
        if row.get("status") not in (None, "succeeded") and not (folder / "report.json").is_file():
            raise ResourceError(f"Evaluation {eval_id} is {row['status']}: its report is written when it finishes. Read evals://index for its status.")
        return folder
