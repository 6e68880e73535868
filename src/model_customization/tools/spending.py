"""Asking a person about a cost, for the tools that spend money (start_job, prompt_model, evaluate,
generate_constitutional_dataset, upload_training_file, provision_throughput).

A paid tool declares two resolvers (the MCP SDK runs them before the tool body, on both protocol generations): one
quotes the call and returns the question a person would have to answer (a `CostQuestion`, or None when the budgets
cover it, the call is free, or the client cannot be asked); the other puts that question to the user through
elicitation. The tool body then passes what the person saw and accepted to the domain (`human_consent`), whose
spending guard re-quotes and refuses anything above it. The agent's own arguments never stand in for the person
unless the operator allowed it (see jobs/spending.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, DeclinedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from pydantic import Field

from model_customization.deferred_model import DeferredModel
from model_customization.errors import ConfirmationNeeded, UserError


class CostConfirmation(DeferredModel):
    confirm: bool = Field(description="Accept this cost and go ahead.")


class NotAsked(DeferredModel):
    """The cost needed no question (free, within budget, confirmed by argument) or the client cannot be asked."""


@dataclass(frozen=True)
class CostQuestion:
    question: str  # what the person is asked; it names the amount, so a changed quote is a new question
    quote_usd: float | None  # None: the price is unknown and the person is told so


def client_can_elicit(ctx: Context | None) -> bool:
    """True when the client declared form elicitation (the SDK's own rule: a bare `elicitation: {}` counts; url-only
    does not), so a question can be put to its user."""
    if ctx is None:
        return False
    try:
        capabilities = ctx.client_capabilities
    except (ValueError, AttributeError):  # no request in flight
        return False
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def question_for(check: Callable[[], Any]) -> CostQuestion | None:
    """Run the domain's spending check for the call about to be made (it raises ConfirmationNeeded when a person must
    decide); None when nothing needs asking. Other refusals are left for the tool body, which reports them itself."""
    try:
        check()
    except ConfirmationNeeded as needed:
        return CostQuestion(needed.question, needed.quote_usd)
    except UserError:
        return None
    return None


def cost_asker(quote_resolver: Callable[..., CostQuestion | None]) -> Callable[..., Elicit[CostConfirmation] | NotAsked]:
    """The resolver that asks the question `quote_resolver` found (the tool declares both)."""

    def ask_about_cost(question: CostQuestion | None) -> Elicit[CostConfirmation] | NotAsked:
        return Elicit(question.question, CostConfirmation) if question is not None else NotAsked()

    ask_about_cost.__annotations__ = {
        "question": Annotated[CostQuestion | None, Resolve(quote_resolver)],
        "return": Elicit[CostConfirmation] | NotAsked,
    }
    ask_about_cost.__qualname__ = f"ask_about_cost[{quote_resolver.__qualname__}]"
    return ask_about_cost


def human_consent(question: CostQuestion | None, answer: ElicitationResult[CostConfirmation] | None, *, refused: str) -> float | None:
    """The amount a person accepted (math.inf for an unknown price), None when nobody was asked; a ToolError when
    the person said no. `refused` starts the message, e.g. "Not started"."""
    if question is None or answer is None or (isinstance(answer, AcceptedElicitation) and isinstance(answer.data, NotAsked)):
        return None
    if isinstance(answer, AcceptedElicitation) and getattr(answer.data, "confirm", False):
        return math.inf if question.quote_usd is None else question.quote_usd
    if isinstance(answer, AcceptedElicitation):
        action = "accepted without confirming"
    else:
        action = "declined" if isinstance(answer, DeclinedElicitation) else "cancelled"
    raise ToolError(f"{refused}: the user did not confirm the cost ({action}). Nothing was sent to a provider or spent.")


def elicitation_parameters(quote_resolver: Callable[..., CostQuestion | None]) -> tuple[Any, Any]:
    """The annotations of a paid tool's two extra parameters: the question and the person's answer."""
    return (
        Annotated[CostQuestion | None, Resolve(quote_resolver)],
        Annotated[ElicitationResult[CostConfirmation], Resolve(cost_asker(quote_resolver))],
    )
