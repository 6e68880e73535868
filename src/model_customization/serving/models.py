"""The model names the OpenAI-compatible endpoint answers to: the embedded base, every tuned model, and each agent's
deployment as `agent:<name>` (its default model) and `agent:<name>:<task>` (a task's own model).

An agent name is resolved on every request (deployments.deployed_model), so a runtime pointed at `agent:<name>`
follows every deploy and rollback without changing its configuration.
"""

from __future__ import annotations

from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.workspace import Workspace

AGENT_PREFIX = "agent:"
OWNER = "model-customization"


def split_agent_name(model: str) -> tuple[str, str | None] | None:
    """(agent, task) for `agent:<name>` or `agent:<name>:<task>`; None for any other name. Agent names hold no
    colon, so everything after the second colon is the task tag (which may hold colons)."""
    if not model.startswith(AGENT_PREFIX):
        return None
    agent, separator, task = model[len(AGENT_PREFIX):].partition(":")
    if not agent:
        raise UserError(f"{model!r} names no agent; write agent:<name> or agent:<name>:<task>.")
    return agent, (task if separator else None)


def served_model(ws: Workspace, model: str) -> str:
    """The model a request's `model` field means: the agent's deployed model for agent names, else the name itself."""
    from model_customization.deployments import deployed_model

    name = (model or "").strip()
    if not name:
        raise UserError("No model given: name one from GET /v1/models (the embedded base, a tuned ft-… id, or agent:<name>).")
    agent = split_agent_name(name)
    return deployed_model(ws, *agent) if agent else name


def list_served_models(ws: Workspace) -> list[dict[str, Any]]:
    """Every name the endpoint lists: {id, created (unix seconds), owned_by, serves (the model behind an agent name)}."""
    from model_customization import deployments
    from model_customization.providers.local.models import EMBEDDED_MODEL

    listed: list[dict[str, Any]] = [{"id": EMBEDDED_MODEL, "created": 0, "owned_by": OWNER, "serves": EMBEDDED_MODEL}]
    for row in sorted(ws.store.models.all(), key=lambda r: (-(r.get("created_at") or 0), r["id"])):
        listed.append({"id": row["id"], "created": int(row.get("created_at") or 0), "owned_by": OWNER, "serves": row["id"]})
    for agent in ws.store.deployments.agents():
        history = ws.store.deployments.of(agent)
        tasks = sorted({r["task"] for r in history}, key=lambda t: (t is not None, t or ""))
        for task in tasks:
            live = [r for r in history if r["task"] == task][-1]
            name = f"{AGENT_PREFIX}{agent}" + (f":{task}" if task is not None else "")
            created = int(live.get("at") or 0) if isinstance(live.get("at"), (int, float)) else 0
            listed.append({"id": name, "created": created, "owned_by": OWNER, "serves": deployments.deployed_model(ws, agent, task)})
    return listed


def describe_served_model(ws: Workspace, model: str) -> dict[str, Any]:
    """One entry of list_served_models, or NotFoundError naming where the list is."""
    for entry in list_served_models(ws):
        if entry["id"] == model:
            return entry
    agent = split_agent_name(model)
    if agent:  # a task without its own model falls back to the agent's default, as a request would
        return {"id": model, "created": 0, "owned_by": OWNER, "serves": served_model(ws, model)}
    raise NotFoundError(f"The model {model!r} does not exist here. GET /v1/models lists the models this server serves.")
