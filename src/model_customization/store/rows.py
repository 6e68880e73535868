"""Typed rows: what each repository returns, one TypedDict per table.

TypedDicts rather than dataclasses or pydantic models: a row stays the plain dict it always was (subscriptable by
column name, JSON-serialisable, spreadable into a new dict), and a type checker now knows every column and its type.
Each has exactly its table's columns (tests/test_store_rows.py holds them to store/schema.py). JSON columns hold
whatever the writer stored, so they are typed by their usual shape.
"""

from __future__ import annotations

from typing import Any, TypedDict


class DatasetRow(TypedDict):
    id: str
    name: str
    created_at: float
    path: str
    counts: dict[str, int]  # examples per split
    card: dict[str, Any]


class JobRow(TypedDict):
    id: str
    provider: str
    base_model: str
    dataset_id: str
    method: str
    hyperparameters: dict[str, Any]
    status: str
    step: int
    total_steps: int | None
    epoch: float | None
    train_loss: float | None
    validation_loss: float | None
    eta_seconds: float | None
    error: str | None
    model_id: str | None
    worker_pid: int | None
    continue_from: str | None
    launcher: str | None
    attempts: int | None
    queued_at: float | None
    remote_id: str | None
    remote_status: str | None
    idempotency_key: str | None
    details: dict[str, Any] | None
    worker_host: str | None
    lease_expires_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float


class JobEventRow(TypedDict):
    id: int
    job_id: str
    at: float
    level: str
    message: str


class JobMetricRow(TypedDict):
    id: int
    job_id: str
    step: int
    epoch: float
    train_loss: float | None
    validation_loss: float | None
    learning_rate: float | None
    tokens_per_second: float | None
    reward_mean: float | None
    reward_std: float | None
    kl: float | None
    validation_reward: float | None
    at: float


class ModelRow(TypedDict):
    id: str
    provider: str
    kind: str  # base | tuned
    base_model: str
    path: str | None
    job_id: str | None
    dataset_id: str | None
    details: dict[str, Any] | None
    created_at: float


class SpendRow(TypedDict):
    id: int
    job_id: str
    provider: str
    quoted_usd: float | None
    committed_usd: float
    actual_usd: float | None
    approved_by: str  # budget | argument | elicitation
    at: float


class ProviderFileRow(TypedDict):
    id: int
    provider: str
    sha256: str
    remote_id: str
    filename: str | None
    bytes: int | None
    at: float


class EvaluationRow(TypedDict):
    id: str
    dataset_id: str
    models: list[str]
    status: str
    summary: dict[str, Any]
    path: str
    created_at: float
    plan: dict[str, Any] | None
    error: str | None
    updated_at: float | None


class EvaluationResultRow(TypedDict):
    eval_id: str
    case_index: int
    unit: str  # answer:<model> | judge:<model> | pairwise:<candidate>
    payload: dict[str, Any]
    at: float


class DeploymentRow(TypedDict):
    id: int
    agent: str
    task: str | None
    model: str
    action: str  # deploy | rollback
    replaces_id: int | None
    eval_id: str | None
    gate: str | None
    reason: str | None
    actor: str | None
    details: dict[str, Any] | None
    at: float


class AgentSuiteRow(TypedDict):
    id: int
    agent: str
    task: str | None
    dataset_id: str | None
    split: str | None
    suite: str | None
    cases: int
    cases_sha256: str
    actor: str | None
    at: float
