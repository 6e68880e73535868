"""MCP tools that choose which model serves an agent: deploy behind the evaluation gate, roll back."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

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


class AgentSuite(BaseModel):
    task: str | None = Field(description="The task tag; None: every task of the agent without its own cases.")
    source: str = Field(description="The suite file or dataset split, in words.")
    suite: str | None
    dataset_id: str | None
    split: str | None
    cases: int
    cases_sha256: str = Field(description="Of the cases now; an evaluation gates a deployment only if its cases hash the same when it is asked for.")
    set_by: str | None
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
        (on the agent's cases, when set_agent_suite named them) must show the new one not significantly worse on its primary metric (the server's
        MODEL_CUSTOMIZATION_DEPLOY_GATE can demand 'better', or turn the gate 'off'). Without such an evaluation the
        deployment is refused: run evaluate with both models first. force=true with a reason skips the gate and is
        recorded. Every change is kept in agents://{agent}; rollback_deployment undoes one. Free: it only records
        which model serves the agent, nothing is trained or called. Next: prompt_model(agent=...) to use it.
        """
        from model_customization.deployments import deploy_model as deploy_to_agent  # loaded on first use

        return _result(await run_domain(deploy_to_agent, ws, agent, model, task, eval_id=eval_id, force=force, reason=reason))

    @server.tool(annotations=ToolAnnotations(title="Roll back a deployment", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    async def rollback_deployment(
        agent: Annotated[str, Field(description="The agent's name, as given to deploy_model (agents://index lists them).")],
        task: Annotated[str | None, Field(description="The task tag whose model to roll back; leave out for the agent's default model.")] = None,
    ) -> DeploymentChange:
        """Put back the model that served an agent (or task) before the current one; each call steps one further back.

        Use it when a newly deployed model misbehaves. The rollback is recorded in agents://{agent} as a new entry; no
        gate applies, as the earlier model had served before. Free: nothing is trained or called. Next:
        prompt_model(agent=...) answers with the restored model.
        """
        from model_customization.deployments import rollback

        return _result(await run_domain(rollback, ws, agent, task))

    @server.tool(annotations=ToolAnnotations(title="Set the cases an agent is judged on", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    async def set_agent_suite(
        agent: Annotated[str, Field(description="The agent's name, e.g. 'support-bot' (letters, digits, '.', '_', '-').")],
        suite: Annotated[str | None, Field(description="A .jsonl or .yaml suite file of the agent's cases (as evaluate takes it).")] = None,
        dataset_id: Annotated[str | None, Field(description="Or a dataset whose split holds the agent's cases.")] = None,
        split: Annotated[str, Field(description="The dataset's split, with dataset_id.")] = "test",
        task: Annotated[str | None, Field(description="Only for this task tag; leave out for all the agent's tasks without their own.")] = None,
    ) -> AgentSuite:
        """Name the cases an agent (or one of its tasks) is judged on; deploy_model's gate then accepts only an
        evaluation of exactly those cases, whole and as they are now (not a limited run, not an older version of
        the file). agents://{agent} shows them. Free: it only reads the cases and records them. Next: evaluate the
        current and the new model on those cases (suite=... or dataset_id=...), then deploy_model.
        """
        from model_customization.deployments import set_agent_suite as set_agent_suite_domain

        return AgentSuite(**await run_domain(set_agent_suite_domain, ws, agent, task, suite=suite, dataset_id=dataset_id, split=split))
