"""Input models of the agent operations: deploy a model behind the gate, roll back, name the agent's cases."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from model_customization.operations.bounds import BoundedRequest


class DeployModelRequest(BoundedRequest):
    agent: Annotated[str, Field(description="The agent's name, e.g. 'support-bot' (letters, digits, '.', '_', '-').")]
    model: Annotated[str, Field(description="Any model prompt_model takes: a tuned ft-… id, a local path, a cloud model.")]
    task: Annotated[str | None, Field(description="A task tag to deploy for only; leave out for the agent's default model.")] = None
    eval_id: Annotated[
        str | None, Field(description="The evaluation (from evaluate) that compares this model with the one deployed now; default: the newest one holding both.")
    ] = None
    force: Annotated[bool, Field(description="Skip the evaluation gate (recorded in the history, with reason).")] = False
    reason: Annotated[str | None, Field(description="Why; required with force=true.")] = None


class RollbackDeploymentRequest(BoundedRequest):
    agent: Annotated[str, Field(description="The agent's name, as given to deploy_model (agents://index lists them).")]
    task: Annotated[str | None, Field(description="The task tag whose model to roll back; leave out for the agent's default model.")] = None


class SetAgentSuiteRequest(BoundedRequest):
    agent: Annotated[str, Field(description="The agent's name, e.g. 'support-bot' (letters, digits, '.', '_', '-').")]
    suite: Annotated[str | None, Field(description="A .jsonl or .yaml suite file of the agent's cases (as evaluate takes it).")] = None
    dataset_id: Annotated[str | None, Field(description="Or a dataset whose split holds the agent's cases.")] = None
    split: Annotated[str, Field(description="The dataset's split, with dataset_id.")] = "test"
    task: Annotated[str | None, Field(description="Only for this task tag; leave out for all the agent's tasks without their own.")] = None
