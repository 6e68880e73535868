"""`agent ...` (and `model deploy`): which model each agent uses, deployed behind the evaluation gate."""

from __future__ import annotations

from typing import Any

import typer

from model_customization import deployments
from model_customization.cli.common import command, print_json
from model_customization.cli.models import model_app
from model_customization.operations.agents import DeployModelRequest, RollbackDeploymentRequest, SetAgentSuiteRequest
from model_customization.workspace import Workspace

agent_app = typer.Typer(help="Which model each agent uses: deploy behind the evaluation gate, roll back, show.", no_args_is_help=True)


def _deploy(ws: Workspace, request: DeployModelRequest) -> dict[str, Any]:
    """Assign MODEL to AGENT; replacing a model needs an evaluation showing the new one is not significantly worse."""
    return deployments.deploy_model(ws, **request.model_dump())


command(agent_app, "deploy", request=DeployModelRequest, positional=("agent", "model"))(_deploy)
# `model deploy AGENT MODEL` is the deploy_model tool's name for the same command; `agent deploy` stays as it was.
command(
    model_app, "deploy", request=DeployModelRequest, positional=("agent", "model"),
    help="Assign MODEL to AGENT behind the evaluation gate (same as the deploy_model tool and agent deploy).",
)(_deploy)


@command(agent_app, "suite", request=SetAgentSuiteRequest, positional=("agent",), flags={"dataset_id": ("--dataset", "--dataset-id")})
def agent_suite_command(ws: Workspace, request: SetAgentSuiteRequest) -> dict[str, Any]:
    """Name the cases AGENT is judged on: deploying a new model then needs an evaluation of exactly these cases."""
    return deployments.set_agent_suite(ws, **request.model_dump())


@command(agent_app, "rollback", request=RollbackDeploymentRequest, positional=("agent",))
def agent_rollback(ws: Workspace, request: RollbackDeploymentRequest) -> dict[str, Any]:
    """Go back to the model AGENT used before the last deployment (for TASK, or its default)."""
    return deployments.rollback(ws, request.agent, request.task)


@command(agent_app, "show", render=print_json)
def agent_show(ws: Workspace, agent: str) -> dict[str, Any]:
    """The models AGENT uses per task, the evaluations behind them and the history (JSON, as agents://{name}; --json is the same)."""
    return deployments.agent_assignments(ws, agent)
