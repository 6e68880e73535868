"""Hyperparameters of a local LoRA job, validated before anything is written or started (no heavy imports)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_customization.errors import UserError


class LocalHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(3, ge=1, le=100, description="Passes over the training split.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Peak AdamW learning rate (LoRA weights only).")
    batch_size: int = Field(8, ge=1, le=512, description="Examples per optimizer step.")
    lora_rank: int = Field(16, ge=1, le=512)
    lora_alpha: float = Field(32, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    max_seq_length: int = Field(512, ge=16, le=32768, description="Longer examples are truncated.")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="Share of steps with a linear warm-up.")
    seed: int = Field(0, ge=0)


def parse_hyperparameters(values: dict[str, Any] | None) -> LocalHyperparameters:
    try:
        return LocalHyperparameters.model_validate(values or {})
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        allowed = ", ".join(LocalHyperparameters.model_fields)
        raise UserError(f"Invalid hyperparameters ({details}). Allowed keys: {allowed}.") from error
