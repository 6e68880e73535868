"""MCP tools that choose which model serves an agent: deploy behind the evaluation gate, roll back."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from model_customization.deployments import deploy_model as deploy_to_agent
from model_customization.deployments import rollback
from model_customization.tools.common import run_domain
from model_customization.workspace import Workspace


class GateComparison(BaseModel):
    metric: str
    mean_difference: float | None = Field(description="Candidate minus the model it replaces, averaged over cases.")
    low: float | None
    high: float | None
    n: int | None
    significant: bool
    verdict: str | None


class DeploymentChange(BaseModel):
    entry: int = Field(description="The history entry of this change (see agents://{agent}).")
    agent: str
    task: str | None = Field(description="The task tag; None: the agent's default model.")
    model: str = Field(description="The model that now serves it.")
    action: str = Field(description="deploy or rollback.")
    previous_model: str | None = Field(description="The model that served it before (the agent's default for a task's first model).")
    eval_id: str | None = Field(description="The evaluation that let the change through the gate.")
    gate: str | None = Field(description="not_worse, better, off, first (nothing to compare with), forced or rollback.")
    forced: bool
    reason: str | None
    comparison: GateComparison | None = Field(default=None, description="What the gate read from the evaluation.")
    unchanged: bool = Field(description="True when the model already served it; nothing was recorded.")
    message: str


def _result(change: dict) -> DeploymentChange:
    fields = {k: v for k, v in change.items() if k in DeploymentChange.model_fields}
    return DeploymentChange(**fields)


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(annotations=ToolAnnotations(title="Deploy a model to an agent", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    async def deploy_model(
        agent: Annotated[str, Field(description="The agent's name, e.g. 'support-bot' (letters, digits, '.', '_', '-').")],
        model: Annotated[str, Field(description="Any model prompt_model takes: a tuned ft-… id, a local path, a cloud model.")],
        task: Annotated[str | None, Field(description="A task tag to deploy for only; leave out for the agent's default model.")] = None,
        eval_id: Annotated[
            str | None, Field(description="The evaluation (from evaluate) that compares this model with the one deployed now; default: the newest one holding both.")
        ] = None,
        force: Annotated[bool, Field(description="Skip the evaluation gate (recorded in the history, with reason).")] = False,
        reason: Annotated[str | None, Field(description="Why; required with force=true.")] = None,
    ) -> DeploymentChange:
        """Make a model serve an agent (by default, or for one task tag); prompt_model(agent=...) then uses it.

        The first model of an agent needs no evidence. Replacing one passes a gate: an evaluation holding both models
        must show the new one not significantly worse on its primary metric (the server's
        MODEL_CUSTOMIZATION_DEPLOY_GATE can demand 'better', or turn the gate 'off'). Without such an evaluation the
        deployment is refused: run evaluate with both models first. force=true with a reason skips the gate and is
        recorded. Every change is kept in agents://{agent}; rollback_deployment undoes one.
        """
        return _result(await run_domain(deploy_to_agent, ws, agent, model, task, eval_id=eval_id, force=force, reason=reason))

    @server.tool(annotations=ToolAnnotations(title="Roll back a deployment", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    async def rollback_deployment(
        agent: str,
        task: Annotated[str | None, Field(description="The task tag whose model to roll back; leave out for the agent's default model.")] = None,
    ) -> DeploymentChange:
        """Put back the model that served an agent (or task) before the current one; each call steps one further back.

        The rollback is recorded in agents://{agent} as a new entry; no gate applies, as the earlier model had served before.
        """
        return _result(await run_domain(rollback, ws, agent, task))
