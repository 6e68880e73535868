"""Hyperparameters of an OpenAI fine-tuning job, checked before anything is uploaded (no SDK import: the tools use it).

Ranges follow OpenAI's published schemas FineTuneSupervisedHyperparameters and FineTuneDPOHyperparameters
(n_epochs 1-50, batch_size 1-256, learning_rate_multiplier > 0, beta in (0, 2]). The schema sets no upper bound on
learning_rate_multiplier; we stop at 10, far above OpenAI's own choices (around 0.1 to 2), to catch typos such as
a learning rate given where a multiplier is meant.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from model_customization.deferred_model import DeferredModel
from model_customization.errors import UserError

Auto = Literal["auto"]


class OpenAIHyperparameters(DeferredModel):
    model_config = ConfigDict(extra="forbid")

    # strict: a boolean or a numeric string is a mistake here, not a number to coerce
    n_epochs: Auto | Annotated[int, Field(ge=1, le=50, strict=True)] = Field(
        "auto", description="OpenAI: passes over the training file, 1-50, or 'auto' (OpenAI picks about 3, fewer for large files)."
    )
    batch_size: Auto | Annotated[int, Field(ge=1, le=256, strict=True)] = Field(
        "auto", description="OpenAI: examples per optimizer step, 1-256, or 'auto' (OpenAI picks from the file size)."
    )
    learning_rate_multiplier: Auto | Annotated[float, Field(gt=0, le=10, strict=True)] = Field(
        "auto", description="OpenAI: scales OpenAI's base learning rate, above 0 up to 10, or 'auto'. Lower it if the tuned model overfits."
    )
    beta: Auto | Annotated[float, Field(gt=0, le=2, strict=True)] | None = Field(
        None, description="OpenAI DPO jobs only: above 0 up to 2, or 'auto'. Higher keeps the tuned model closer to the base model."
    )


METHOD_TYPES = {"sft": "supervised", "dpo": "dpo"}  # our method word -> OpenAI's method.type
ALLOWED = {
    "n_epochs": "'auto' or a whole number 1-50",
    "batch_size": "'auto' or a whole number 1-256",
    "learning_rate_multiplier": "'auto' or a number above 0 up to 10",
    "beta": "'auto' or a number above 0 up to 2 (DPO only)",
}


def parse_openai_hyperparameters(method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    """Validated hyperparameters with every field explicit ('auto' where not given), as the job's method sends them."""
    if method not in METHOD_TYPES:
        raise UserError(f"OpenAI jobs take method 'sft' (supervised) or 'dpo'; got {method!r}.")
    try:
        parsed = OpenAIHyperparameters.model_validate(raw or {})
    except ValidationError as error:
        problems: dict[str, str] = {}
        for e in error.errors():
            field = str(e["loc"][0]) if e["loc"] else "hyperparameters"
            if field in ALLOWED:
                problems.setdefault(field, f"{field} must be {ALLOWED[field]} (got {e['input']!r})")
            else:
                problems.setdefault(field, f"{field} is not an OpenAI hyperparameter")
        allowed = ", ".join(f"{name}: {text}" for name, text in ALLOWED.items())
        raise UserError(f"Invalid OpenAI hyperparameters: {'; '.join(problems.values())}. Allowed: {allowed}.") from error
    values = parsed.model_dump()
    if method == "sft":
        if values["beta"] is not None:
            raise UserError("beta applies to DPO jobs only; drop it, or start the job with method 'dpo' on a preference dataset.")
        values.pop("beta")
    elif values["beta"] is None:
        values["beta"] = "auto"
    return values
