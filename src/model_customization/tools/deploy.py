"""MCP tools that choose which model serves an agent: deploy behind the evaluation gate, roll back."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import Field

from model_customization.deferred_model import DeferredModel
from model_customization.operations.agents import DeployModelRequest, RollbackDeploymentRequest, SetAgentSuiteRequest
from model_customization.tools.common import lazy_module, run_domain, takes
from model_customization.workspace import Workspace

deployments = lazy_module("model_customization.deployments")  # imported on first use: start-up stays short


class GateComparison(DeferredModel):
    metric: str
    mean_difference: float | None = Field(description="Candidate minus the model it replaces, averaged over cases.")
    low: float | None
    high: float | None
    n: int | None
    significant: bool
    verdict: str | None


class DeploymentChange(DeferredModel):
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


class AgentSuite(DeferredModel):
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
    @takes(DeployModelRequest)
    async def deploy_model(request: DeployModelRequest) -> DeploymentChange:
        """Make a model serve an agent (by default, or for one task tag); prompt_model(agent=...) then uses it.

        The first model of an agent needs no evidence. Replacing one passes a gate: an evaluation holding both models
        (on the agent's cases, when set_agent_suite named them) must show the new one not significantly worse on its primary metric (the server's
        MODEL_CUSTOMIZATION_DEPLOY_GATE can demand 'better', or turn the gate 'off'). Without such an evaluation the
        deployment is refused: run evaluate with both models first. force=true with a reason skips the gate and is
        recorded. Every change is kept in agents://{agent}; rollback_deployment undoes one. Free: it only records
        which model serves the agent, nothing is trained or called. Next: prompt_model(agent=...) to use it.
        """
        return _result(await run_domain(deployments.deploy_model, ws, **request.model_dump()))

    @server.tool(annotations=ToolAnnotations(title="Roll back a deployment", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    @takes(RollbackDeploymentRequest)
    async def rollback_deployment(request: RollbackDeploymentRequest) -> DeploymentChange:
        """Put back the model that served an agent (or task) before the current one; each call steps one further back.

        Use it when a newly deployed model misbehaves. The rollback is recorded in agents://{agent} as a new entry; no
        gate applies, as the earlier model had served before. Free: nothing is trained or called. Next:
        prompt_model(agent=...) answers with the restored model.
        """
        return _result(await run_domain(deployments.rollback, ws, request.agent, request.task))

    @server.tool(annotations=ToolAnnotations(title="Set the cases an agent is judged on", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @takes(SetAgentSuiteRequest)
    async def set_agent_suite(request: SetAgentSuiteRequest) -> AgentSuite:
        """Name the cases an agent (or one of its tasks) is judged on; deploy_model's gate then accepts only an
        evaluation of exactly those cases, whole and as they are now (not a limited run, not an older version of
        the file). agents://{agent} shows them. Free: it only reads the cases and records them. Next: evaluate the
        current and the new model on those cases (suite=... or dataset_id=...), then deploy_model.
        """
        return AgentSuite(**await run_domain(deployments.set_agent_suite, ws, **request.model_dump()))
