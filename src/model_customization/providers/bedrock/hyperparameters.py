"""Hyperparameters of a Claude customization job on Bedrock (no boto3 here: the MCP tools import this for schemas).

Ranges and defaults are Bedrock's own for Anthropic Claude 3 customization (its user guide, "Anthropic Claude 3 model
customization hyperparameters"); keeping Bedrock's defaults means a job without hyperparameters behaves exactly as
one created in the Bedrock console. The API takes every value as a string.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from model_customization.errors import UserError

# field -> (API name, minimum, maximum); used for the API mapping and for error messages.
RANGES: dict[str, tuple[str, float, float]] = {
    "epoch_count": ("epochCount", 1, 10),
    "batch_size": ("batchSize", 4, 256),
    "learning_rate_multiplier": ("learningRateMultiplier", 0.1, 2),
    "early_stopping_threshold": ("earlyStoppingThreshold", 0, 0.1),
    "early_stopping_patience": ("earlyStoppingPatience", 1, 10),
}


def _field(name: str, default: float, description: str) -> Any:
    api_name, low, high = RANGES[name]
    return Field(default, ge=low, le=high, validation_alias=AliasChoices(name, api_name), description=f"{description} Range {low:g}-{high:g}, default {default:g}.")


class BedrockHyperparameters(BaseModel):
    # Unknown keys are refused (a typo must not silently fall back to a default); the API's camelCase names are
    # accepted too, so values copied from the Bedrock console or docs work as they are.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    epoch_count: int = _field("epoch_count", 2, "Passes over the training data (each one is billed).")
    batch_size: int = _field("batch_size", 32, "Examples per parameter update.")
    learning_rate_multiplier: float = _field("learning_rate_multiplier", 1.0, "Scales Bedrock's base learning rate.")
    early_stopping_threshold: float = _field(
        "early_stopping_threshold", 0.001, "Least improvement of validation loss that counts as progress (needs a validation split)."
    )
    early_stopping_patience: int = _field(
        "early_stopping_patience", 2, "Validations without progress before training stops early (needs a validation split)."
    )

    def to_bedrock(self, with_early_stopping: bool = True) -> dict[str, str]:
        """The API's hyperParameters map: camelCase names, values as strings ("2", "32", "1", "0.001", "2").

        Early stopping acts on validation loss, so a job without validation data leaves those two out.
        """
        values = self.model_dump()
        out: dict[str, str] = {}
        for name, (api_name, _low, _high) in RANGES.items():
            if name.startswith("early_stopping") and not with_early_stopping:
                continue
            out[api_name] = _as_text(values[name])
        return out


def _as_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "1", not "1.0"
    return repr(value) if isinstance(value, float) else str(value)


def parse_bedrock_hyperparameters(raw: dict[str, Any] | None) -> BedrockHyperparameters:
    """Validated hyperparameters; UserError naming each bad field with its allowed range."""
    try:
        return BedrockHyperparameters.model_validate(raw or {})
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = str(item["loc"][0]) if item["loc"] else "hyperparameters"
            canonical = next((n for n, (api, _l, _h) in RANGES.items() if field in (n, api)), None)
            if item["type"] == "extra_forbidden":
                problems.append(f"{field!r} is not a Bedrock hyperparameter")
            elif canonical:
                _api, low, high = RANGES[canonical]
                kind = "a whole number" if BedrockHyperparameters.model_fields[canonical].annotation is int else "a number"
                problems.append(f"{canonical} must be {kind} from {low:g} to {high:g} (got {item.get('input')!r})")
            else:
                problems.append(f"{field}: {item['msg']}")
        allowed = ", ".join(f"{n} ({low:g}-{high:g})" for n, (_a, low, high) in RANGES.items())
        raise UserError(f"Invalid Bedrock hyperparameters: {'; '.join(problems)}. Allowed: {allowed}.") from error
