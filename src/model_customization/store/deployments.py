"""Deployments and agent suites: which model serves an agent (per task), and the cases a change must be judged on.

Both are histories, one row per change, newest last; the latest row of an (agent, task) pair is the one in force.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from model_customization.store.repository import Repository
from model_customization.store.rows import AgentSuiteRow, DeploymentRow
from model_customization.store.schema import agent_suites, deployments


class DeploymentRepository(Repository[DeploymentRow]):
    table = deployments

    def add(self, row: Mapping[str, Any]) -> int:
        """Record an assignment change; its new row id."""
        return self._insert(row, at=time.time())

    def of(self, agent: str) -> list[DeploymentRow]:
        """Every assignment change of an agent, oldest first."""
        return self._rows(select(deployments).where(deployments.c.agent == agent).order_by(deployments.c.id))

    def agents(self) -> list[str]:
        """Every agent with a deployment or a suite, sorted by name."""
        with self._store.engine.connect() as conn:
            names = {a for (a,) in conn.execute(select(deployments.c.agent).distinct())}
            names |= {a for (a,) in conn.execute(select(agent_suites.c.agent).distinct())}
        return sorted(names)

    def add_suite(self, row: Mapping[str, Any]) -> int:
        """Record a suite change; its new row id."""
        return self._insert(row, into=agent_suites, at=time.time())

    def suites_of(self, agent: str) -> list[AgentSuiteRow]:
        """Every suite change of an agent, oldest first."""
        return self._rows_of(AgentSuiteRow, select(agent_suites).where(agent_suites.c.agent == agent).order_by(agent_suites.c.id))
