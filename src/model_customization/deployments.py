"""Deployment: which model serves an agent, by default or for one task tag, behind an evaluation gate, with rollback.

Replacing the model that serves an agent (or one of its tasks) needs evidence: an evaluation holding both models
whose paired comparison on its primary metric shows the candidate not significantly worse than the model it
replaces (gate "not_worse", the default) or significantly better (gate "better"). MODEL_CUSTOMIZATION_DEPLOY_GATE
chooses the gate; "off" lets every change through. force=True skips the gate and records who forced it and why.
Every change is a row in the ledger's deployments table, so the history is kept and a rollback is a change too.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.paths import resolve_user_path
from model_customization.providers.registry import get_provider, resolve_chat_model
from model_customization.workspace import Workspace

GATE_ENV = "MODEL_CUSTOMIZATION_DEPLOY_GATE"
GATES = ("not_worse", "better", "off")
# Agent names appear in agents://{name}; task tags are free text but short.
_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_TASK_CHARS = 100


def deploy_model(
    ws: Workspace,
    agent: str,
    model: str,
    task: str | None = None,
    *,
    eval_id: str | None = None,
    force: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    """Assign `model` to `agent` (for `task`, or as its default), once the gate lets it through; returns the change."""
    agent = _check_agent(agent)
    task = _check_task(task)
    model_key = _model_key(ws, model)
    if force and not (reason or "").strip():
        raise UserError("force=true skips the evaluation gate, so it needs a reason (e.g. reason='hotfix: the current model leaks secrets').")
    history = ws.store.deployments.of(agent)
    live_row = _live_row(history, task)
    # What serves this task now: its own model, else the agent's default. The candidate must hold up against that.
    serving_row = live_row or (_live_row(history, None) if task is not None else None)
    if live_row and live_row["model"] == model_key:
        return {**_change(live_row), "unchanged": True, "message": f"{model_key} already serves {_target(agent, task)}; nothing changed."}

    gate = gate_mode()
    comparison = None
    used_eval = None
    if force:
        applied = "forced"
    elif serving_row is None:
        applied = "first"  # nothing to compare with
    elif gate == "off":
        applied = "off"
    else:
        used_eval, comparison = _gate_evidence(ws, serving_row["model"], model_key, eval_id, agent_suite(ws, agent, task))
        _apply_gate(gate, comparison, serving_row["model"], model_key, used_eval)
        applied = gate
    row = {
        "agent": agent,
        "task": task,
        "model": model_key,
        "action": "deploy",
        "replaces_id": live_row["id"] if live_row else None,
        "eval_id": used_eval,
        "gate": applied,
        "reason": (reason or "").strip() or None,
        "actor": _actor(),
        "details": {"comparison": comparison, "previous_model": serving_row["model"] if serving_row else None},
    }
    row["id"] = ws.store.deployments.add(row)
    change = _change({**row, "at": None})
    change["unchanged"] = False
    change["message"] = _deploy_message(agent, task, model_key, serving_row, applied, used_eval)
    from model_customization.serving.engines import register_deployment  # a serving engine, when one is configured

    engine_note = register_deployment(ws, model_key)
    if engine_note:
        change["message"] += " " + engine_note
    return change


def rollback(ws: Workspace, agent: str, task: str | None = None) -> dict[str, Any]:
    """Put back the assignment the live one replaced (recorded as a new history entry); repeated calls step further back."""
    agent = _check_agent(agent)
    task = _check_task(task)
    history = ws.store.deployments.of(agent)
    if not history:
        raise NotFoundError(f"No agent {agent!r} has a deployment. Read agents://index for the agents, or deploy_model to assign one.")
    live_row = _live_row(history, task)
    if live_row is None:
        raise NotFoundError(f"Nothing is deployed for {_target(agent, task)}, so there is nothing to roll back. Read agents://{agent}.")
    by_id = {r["id"]: r for r in history}
    earlier = by_id.get(live_row["replaces_id"]) if live_row["replaces_id"] is not None else None
    if earlier is None:
        raise UserError(
            f"{live_row['model']} is the first model deployed for {_target(agent, task)}; there is no earlier assignment to roll back to. "
            "Deploy another model with deploy_model instead."
        )
    row = {
        "agent": agent,
        "task": task,
        "model": earlier["model"],
        "action": "rollback",
        # Points where the restored assignment pointed, so a second rollback goes one further step back.
        "replaces_id": earlier["replaces_id"],
        "eval_id": earlier["eval_id"],
        "gate": "rollback",
        "reason": f"rolled back from {live_row['model']}",
        "actor": _actor(),
        "details": {"restored_entry": earlier["id"], "rolled_back_entry": live_row["id"], "previous_model": live_row["model"]},
    }
    row["id"] = ws.store.deployments.add(row)
    change = _change({**row, "at": None})
    change["unchanged"] = False
    change["message"] = f"{_target(agent, task)} is served by {earlier['model']} again (was {live_row['model']})."
    from model_customization.serving.engines import register_deployment  # a serving engine, when one is configured

    engine_note = register_deployment(ws, earlier["model"])
    if engine_note:
        change["message"] += " " + engine_note
    return change


def agent_assignments(ws: Workspace, agent: str) -> dict[str, Any]:
    """{agent, assignments: [{task (None = default), model, eval_id, ...}], suites: the cases each task is judged on,
    history: every change, oldest first}."""
    agent = _check_agent(agent)
    history = ws.store.deployments.of(agent)
    suite_rows = ws.store.deployments.suites_of(agent)
    if not history and not suite_rows:
        raise NotFoundError(f"No agent {agent!r} has a deployment. Read agents://index for the agents, or deploy_model to assign one.")
    tasks = list(dict.fromkeys(r["task"] for r in history))
    assignments = [_change(_live_row(history, t)) for t in sorted(tasks, key=lambda t: (t is not None, t or ""))]
    suite_tasks = sorted(dict.fromkeys(r["task"] for r in suite_rows), key=lambda t: (t is not None, t or ""))
    suites = [_suite_view(_live_row(suite_rows, t)) for t in suite_tasks]
    return {"agent": agent, "gate": gate_mode(), "assignments": assignments, "suites": suites, "history": [_change(r) for r in history]}


# --- the cases an agent is judged on -------------------------------------------------------------------------
def set_agent_suite(
    ws: Workspace, agent: str, task: str | None = None, *, suite: str | Path | None = None, dataset_id: str | None = None, split: str = "test"
) -> dict[str, Any]:
    """Name the cases (a suite file, or a dataset's split) that `agent` (for `task`, or all its tasks) is judged on.

    From then on, replacing its model needs an evaluation of exactly these cases, whole (no limit) and as they are
    when the deployment is asked for: an evaluation on other cases, part of them, or an older version of the file
    does not count."""
    from model_customization.evaluation.runner import cases_fingerprint

    agent = _check_agent(agent)
    task = _check_task(task)
    suite_path = str(resolve_user_path(suite, what="Suite file")[1]) if suite is not None else None
    found = cases_fingerprint(ws, dataset_id=dataset_id, split=split, suite=suite_path)
    row = {
        "agent": agent,
        "task": task,
        "dataset_id": dataset_id,
        "split": split if dataset_id is not None else None,
        "suite": suite_path,
        "cases": found["cases"],
        "cases_sha256": found["cases_sha256"],
        "actor": _actor(),
    }
    row["id"] = ws.store.deployments.add_suite(row)
    view = _suite_view({**row, "at": None})
    view["message"] = (
        f"{_target(agent, task)} is judged on {view['source']} ({found['cases']} cases): a new model must be evaluated on them "
        f"with the model serving it now, e.g. evaluate({_evaluate_arguments(row)}, models=[<current>, <candidate>])."
    )
    return view


def agent_suite(ws: Workspace, agent: str, task: str | None) -> dict[str, Any] | None:
    """The cases in force for (agent, task): the task's own, else the agent's default; None when none were named."""
    rows = ws.store.deployments.suites_of(agent)
    return (_live_row(rows, task) if task is not None else None) or _live_row(rows, None)


def _suite_view(row: dict[str, Any]) -> dict[str, Any]:
    source = f"suite {row['suite']}" if row.get("suite") else f"dataset {row['dataset_id']} ({row['split']} split)"
    return {
        "task": row["task"],
        "source": source,
        "suite": row.get("suite"),
        "dataset_id": row.get("dataset_id"),
        "split": row.get("split"),
        "cases": row["cases"],
        "cases_sha256": row["cases_sha256"],
        "set_by": row.get("actor"),
    }


def _evaluate_arguments(suite_row: dict[str, Any]) -> str:
    if suite_row.get("suite"):
        return f"suite={suite_row['suite']!r}"
    return f"dataset_id={suite_row['dataset_id']!r}, split={suite_row['split']!r}"


def _on_agent_cases(evaluation: dict[str, Any], suite_row: dict[str, Any], current_sha256: str) -> bool:
    plan = evaluation.get("plan") or {}
    if plan.get("limit") is not None or plan.get("cases_sha256") != current_sha256:
        return False
    if suite_row.get("suite"):
        return plan.get("suite") == suite_row["suite"]
    return (plan.get("dataset_id"), plan.get("split")) == (suite_row["dataset_id"], suite_row["split"])


def list_agents(ws: Workspace) -> list[dict[str, Any]]:
    """Every agent with a deployment and its live model per task."""
    agents = []
    for name in ws.store.deployments.agents():
        current = agent_assignments(ws, name)["assignments"]
        agents.append({"agent": name, "uri": f"agents://{name}", "models": {a["task"] or "(default)": a["model"] for a in current}})
    return agents


def deployed_model(ws: Workspace, agent: str, task: str | None = None) -> str:
    """The model that serves `agent` for `task`: the task's own assignment, else the agent's default."""
    agent = _check_agent(agent)
    task = _check_task(task)
    history = ws.store.deployments.of(agent)
    row = (_live_row(history, task) if task is not None else None) or _live_row(history, None)
    if row is None:
        if history:
            raise NotFoundError(
                f"Agent {agent!r} has no model for task {task!r} and no default model. Deploy one with deploy_model(agent={agent!r}, model=...), "
                f"or give one of its tasks (read agents://{agent})."
            )
        raise NotFoundError(f"Nothing is deployed for agent {agent!r}. Deploy a model with deploy_model(agent={agent!r}, model=...) first.")
    return row["model"]


def gate_mode() -> str:
    value = os.environ.get(GATE_ENV, "not_worse").strip().lower() or "not_worse"
    if value not in GATES:
        raise UserError(f"{GATE_ENV}={value!r} is not a deployment gate; set it to one of {', '.join(GATES)}.")
    return value


# --- the gate ------------------------------------------------------------------------------------------------
def _gate_evidence(
    ws: Workspace, current: str, candidate: str, eval_id: str | None, suite_row: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """(eval_id, comparison of candidate against current on the evaluation's primary metric, candidate-oriented).

    With agent cases named (set_agent_suite), only a finished evaluation of exactly those cases counts."""
    current_sha256 = None
    if suite_row is not None:
        from model_customization.evaluation.runner import cases_fingerprint

        current_sha256 = cases_fingerprint(ws, dataset_id=suite_row.get("dataset_id"), split=suite_row.get("split") or "test", suite=suite_row.get("suite"))["cases_sha256"]
        how = f"evaluate({_evaluate_arguments(suite_row)}, models=[{current!r}, {candidate!r}]) without a limit"
        where = f" on the agent's cases ({_suite_view(suite_row)['source']})"
    else:
        how = f"evaluate with models=[{current!r}, {candidate!r}] on the agent's dataset or suite"
        where = ""

    def counts(row: dict[str, Any]) -> bool:
        return suite_row is None or _on_agent_cases(row, suite_row, current_sha256 or "")

    if eval_id is not None:
        row = ws.store.evaluations.get(eval_id)
        if not row:
            raise NotFoundError(f"Evaluation {eval_id!r} not found. Run {how}.")
        if not {current, candidate} <= set(row["models"]):
            raise UserError(
                f"Evaluation {eval_id} compares {row['models']}, not both {current} (deployed now) and {candidate}. "
                f"Run {how} and deploy with its eval_id."
            )
        if row["status"] != "succeeded":
            raise UserError(f"Evaluation {eval_id} is {row['status']}, not finished; resume it (evaluate with resume={eval_id!r}) or run {how}.")
        if not counts(row):
            raise UserError(
                f"Evaluation {eval_id} was not run on the whole of the agent's cases ({_suite_view(suite_row)['source']}) as they are now, "
                f"so it cannot pass the gate. Run {how} and deploy with its eval_id."
            )
    else:
        # The newest finished evaluation holding both models decides: picking an older, kinder one would defeat the gate.
        row = next(
            (r for r in ws.store.evaluations.all() if r["status"] == "succeeded" and {current, candidate} <= set(r["models"]) and counts(r)),
            None,
        )
        if row is None:
            raise UserError(
                f"No finished evaluation compares {candidate} with {current}, which serves this agent now{where}, so the deployment gate "
                f"cannot pass. Run {how}, then deploy_model again (or force=true with a reason to skip the gate)."
            )
    return row["id"], _comparison(Path(row["path"]), current, candidate, row["id"])


def _comparison(folder: Path, current: str, candidate: str, eval_id: str) -> dict[str, Any]:
    report_file = folder / "report.json"
    if not report_file.is_file():
        raise UserError(f"Evaluation {eval_id}'s report is missing from {folder}. Run evaluate again.")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    metric = report.get("primary_metric") or "token_f1"
    for found in report.get("comparisons") or []:
        if found.get("metric", metric) != metric:
            continue
        if (found["baseline"], found["candidate"]) == (current, candidate):
            return _oriented(found, metric, flipped=False)
        if (found["baseline"], found["candidate"]) == (candidate, current):
            return _oriented(found, metric, flipped=True)
    # Comparisons are made against the first model only; for another pair compare the per-case scores directly.
    cases_file = folder / "cases.jsonl"
    if not cases_file.is_file():
        raise UserError(f"Evaluation {eval_id} has no per-case scores to compare {candidate} with {current}. Run evaluate with both models.")
    scores: dict[str, list[float]] = {current: [], candidate: []}
    with cases_file.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            outputs = json.loads(line).get("outputs", {})
            pair = [outputs.get(m, {}).get(metric) for m in (current, candidate)]
            if all(v is not None for v in pair):
                scores[current].append(pair[0])
                scores[candidate].append(pair[1])
    from model_customization.evaluation.statistics import compare

    return _oriented(compare(scores, baseline=current)[0], metric, flipped=False)


def _oriented(found: dict[str, Any], metric: str, *, flipped: bool) -> dict[str, Any]:
    """The comparison as candidate minus current, whichever way round the evaluation listed them."""
    difference = found.get("mean_difference")
    low, high = found.get("low"), found.get("high")
    if flipped:
        difference = -difference if difference is not None else None
        low, high = (-high if high is not None else None), (-low if low is not None else None)
    significant = bool(found.get("significant"))
    return {
        "metric": metric,
        "mean_difference": difference,
        "low": low,
        "high": high,
        "n": found.get("n"),
        "significant": significant,
        "candidate_better": significant and difference is not None and difference > 0,
        "candidate_worse": significant and difference is not None and difference < 0,
        "verdict": found.get("verdict"),
    }


def _apply_gate(gate: str, comparison: dict[str, Any], current: str, candidate: str, eval_id: str) -> None:
    if comparison["n"] == 0:
        raise UserError(f"Evaluation {eval_id} has no case scored for both {current} and {candidate}. Run evaluate with both models again.")
    evidence = f"evaluation {eval_id} on {comparison['metric']}: {comparison['verdict']}"
    if gate == "not_worse" and comparison["candidate_worse"]:
        raise UserError(
            f"Refused: {candidate} is significantly worse than {current}, which serves this agent now ({evidence}). "
            "Improve the model and evaluate again, or force=true with a reason to deploy it anyway."
        )
    if gate == "better" and not comparison["candidate_better"]:
        raise UserError(
            f"Refused: the deployment gate is 'better' and {candidate} is not significantly better than {current} ({evidence}). "
            "Evaluate on more cases, or force=true with a reason."
        )


# --- helpers -------------------------------------------------------------------------------------------------
def _model_key(ws: Workspace, model: str) -> str:
    """The model as evaluations name it: canonical for local models (ft-… id or absolute path), as given for cloud ones."""
    provider, name = resolve_chat_model(ws, model)
    return get_provider(provider).evaluation_key(ws, model, name)


def _live_row(history: list[dict[str, Any]], task: str | None) -> dict[str, Any] | None:
    rows = [r for r in history if r["task"] == task]
    return rows[-1] if rows else None


def _change(row: dict[str, Any]) -> dict[str, Any]:
    details = row.get("details") or {}
    return {
        "entry": row["id"],
        "agent": row["agent"],
        "task": row["task"],
        "model": row["model"],
        "action": row["action"],
        "previous_model": details.get("previous_model"),
        "eval_id": row["eval_id"],
        "gate": row["gate"],
        "forced": row["gate"] == "forced",
        "reason": row["reason"],
        "actor": row["actor"],
        "comparison": details.get("comparison"),
        "at": row.get("at"),
    }


def _deploy_message(agent: str, task: str | None, model: str, serving: dict[str, Any] | None, applied: str, eval_id: str | None) -> str:
    target = _target(agent, task)
    if applied == "first":
        return f"{model} now serves {target} (first assignment: no gate)."
    if applied == "forced":
        return f"{model} now serves {target} in place of {serving['model'] if serving else 'nothing'}; the gate was skipped (forced, recorded)."
    if applied == "off":
        return f"{model} now serves {target} in place of {serving['model'] if serving else 'nothing'} ({GATE_ENV}=off)."
    return f"{model} now serves {target} in place of {serving['model'] if serving else 'nothing'}; gate '{applied}' passed on evaluation {eval_id}."


def _target(agent: str, task: str | None) -> str:
    return f"agent {agent!r}" + (f" task {task!r}" if task is not None else " (default)")


def _check_agent(agent: str) -> str:
    name = (agent or "").strip()
    if not _AGENT_NAME.match(name):
        raise UserError(f"Agent name {agent!r} is not usable: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 'support-bot').")
    return name


def _check_task(task: str | None) -> str | None:
    if task is None:
        return None
    tag = task.strip()
    if not tag or len(tag) > MAX_TASK_CHARS:
        raise UserError(f"Task tag {task!r} must be 1-{MAX_TASK_CHARS} characters; leave task out for the agent's default model.")
    return tag


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (e.g. a container without one) is no reason to refuse
        return "unknown"
