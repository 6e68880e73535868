"""Hyperparameters of a Bedrock customization job (no boto3 here: the MCP tools import this for their schemas).

Each model family takes its own set, with its own ranges and defaults (families.py, from Bedrock's user guide).
Parsing happens before the base model is known, so it checks names and types against the union of all families
(the widest ranges) and keeps only what the caller set; `resolve` then applies the chosen family's rules and fills
in its defaults, so a job without hyperparameters behaves exactly as one created in the Bedrock console. The API
takes every value as a string.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, ConfigDict, Field, ValidationError

from model_customization.deferred_model import DeferredModel
from model_customization.errors import UserError
from model_customization.providers.bedrock.families import ALL_HYPERPARAMETERS, Family, describe_ranges

_DESCRIPTIONS = {
    "epoch_count": "Passes over the training data (each one is billed).",
    "batch_size": "Examples per parameter update.",
    "learning_rate": "The learning rate (Nova, Llama, Titan, Cohere).",
    "learning_rate_multiplier": "Scales Bedrock's base learning rate (Claude 3 Haiku).",
    "learning_rate_warmup_steps": "Steps over which the learning rate rises to its value (Nova, Titan).",
    "early_stopping_threshold": "Least improvement of validation loss that counts as progress (Claude, Cohere).",
    "early_stopping_patience": "Validations without progress before training stops early (Claude, Cohere).",
    "eval_percentage": "Cohere: percent of the training data held out for evaluation when no validation split is uploaded.",
}


def _field(name: str) -> Any:
    rule = ALL_HYPERPARAMETERS[name]
    return Field(
        None,
        ge=rule.low,
        le=rule.high,
        validation_alias=AliasChoices(name, rule.api_name),
        description=f"{_DESCRIPTIONS[name]} Each model family has its own range within {rule.low:g}-{rule.high:g} and its own default.",
    )


class BedrockHyperparameters(DeferredModel):
    # Unknown keys are refused (a typo must not silently fall back to a default); the API's camelCase names are
    # accepted too, so values copied from the Bedrock console or docs work as they are. None means the family's default.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    epoch_count: int | None = _field("epoch_count")
    batch_size: int | None = _field("batch_size")
    learning_rate: float | None = _field("learning_rate")
    learning_rate_multiplier: float | None = _field("learning_rate_multiplier")
    learning_rate_warmup_steps: int | None = _field("learning_rate_warmup_steps")
    early_stopping_threshold: float | None = _field("early_stopping_threshold")
    early_stopping_patience: int | None = _field("early_stopping_patience")
    eval_percentage: float | None = _field("eval_percentage")


def _canonical(field: str) -> str | None:
    return next((name for name, rule in ALL_HYPERPARAMETERS.items() if field in (name, rule.api_name)), None)


def parse_bedrock_hyperparameters(raw: dict[str, Any] | None) -> dict[str, Any]:
    """What the caller set, by our names, checked against every family's widest range; UserError naming each bad field."""
    try:
        parsed = BedrockHyperparameters.model_validate(raw or {})
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = str(item["loc"][0]) if item["loc"] else "hyperparameters"
            canonical = _canonical(field)
            if item["type"] == "extra_forbidden":
                problems.append(f"{field!r} is not a Bedrock hyperparameter")
            elif canonical:
                rule = ALL_HYPERPARAMETERS[canonical]
                kind = "a whole number" if rule.whole else "a number"
                problems.append(f"{canonical} must be {kind} from {rule.low:g} to {rule.high:g} (got {item.get('input')!r})")
            else:
                problems.append(f"{field}: {item['msg']}")
        allowed = ", ".join(f"{name} ({rule.api_name})" for name, rule in ALL_HYPERPARAMETERS.items())
        raise UserError(f"Invalid Bedrock hyperparameters: {'; '.join(problems)}. Names Bedrock's families take: {allowed}.") from error
    return parsed.model_dump(exclude_none=True)


def resolve(family: Family, model_id: str, values: dict[str, Any]) -> dict[str, float]:
    """The family's full set: the caller's values checked against its ranges, its defaults for the rest."""
    problems = []
    unknown = sorted(set(values) - set(family.hyperparameters))
    if unknown:
        problems.append(f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not taken by {family.title}")
    for name, value in values.items():
        rule = family.hyperparameters.get(name)
        if rule is not None and not rule.low <= value <= rule.high:
            problems.append(f"{name} must be from {rule.low:g} to {rule.high:g} for {family.title} (got {value:g})")
    if problems:
        raise UserError(
            f"Hyperparameters that {model_id} cannot take: {'; '.join(problems)}. {family.title} takes: {describe_ranges(family)}. "
            "Nothing was uploaded; start the job again with those."
        )
    return {name: values.get(name, rule.default) for name, rule in family.hyperparameters.items()}


def to_api(family: Family, resolved: dict[str, float], *, with_validation: bool) -> dict[str, str]:
    """The API's hyperParameters map: camelCase names, values as strings ("2", "1e-05", ...).

    Early stopping acts on validation loss, so a job without validation data leaves it out, except for Cohere, whose
    evalPercentage holds out part of the training data to stop on instead (and is left out when a file is uploaded).
    """
    holds_out = "eval_percentage" in family.hyperparameters
    out: dict[str, str] = {}
    for name, rule in family.hyperparameters.items():
        if name.startswith("early_stopping") and not with_validation and not holds_out:
            continue
        if name == "eval_percentage" and with_validation:
            continue
        value = resolved[name]
        out[rule.api_name] = str(int(value)) if rule.whole else _as_text(float(value))
    return out


def _as_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
