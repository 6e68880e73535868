"""Hyperparameters of a Together AI fine-tuning job, checked before anything is uploaded (no SDK import: the tools
publish this schema).

Names follow Together's create-job body (POST /fine-tunes in its OpenAPI description): the flat fields here become
its `training_method` object ({"method": "sft", "train_on_inputs"} or {"method": "dpo", "dpo_beta", ...}) and its
`training_type` object ({"type": "Lora", "lora_r", "lora_alpha", ...} or {"type": "Full"}) when the job is created.
Static ranges catch typos here; the limits of the chosen base model (GET /fine-tunes/models/limits: epochs, learning
rate, batch sizes, LoRA rank and target modules) are checked against them at quote time, still before any upload.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from model_customization.deferred_model import DeferredModel
from model_customization.errors import UserError

PositiveInt = Annotated[int, Field(ge=1, strict=True)]


class TogetherHyperparameters(DeferredModel):
    model_config = ConfigDict(extra="forbid")

    # strict numbers: a boolean or a numeric string is a mistake here, not a value to coerce
    n_epochs: Annotated[int, Field(ge=1, le=100, strict=True)] = Field(1, description="Together: passes over the training file (default 1; the model's limit applies).")
    learning_rate: Annotated[float, Field(gt=0, le=1, strict=True)] = Field(1e-5, description="Together: the peak learning rate (default 1e-5; the model's range applies).")
    batch_size: Literal["max"] | PositiveInt = Field("max", description="Together: examples per step, or 'max' (the largest the model allows, the default).")
    warmup_ratio: Annotated[float, Field(ge=0, le=1, strict=True)] = Field(0.0, description="Together: share of steps spent warming the learning rate up, 0-1.")
    lr_scheduler: Literal["linear", "cosine"] = Field("linear", description="Together: the learning-rate schedule after warm-up.")
    min_lr_ratio: Annotated[float, Field(ge=0, le=1, strict=True)] = Field(0.0, description="Together: the final learning rate as a share of the peak, 0-1.")
    scheduler_num_cycles: Annotated[float, Field(gt=0, strict=True)] = Field(0.5, description="Together, cosine schedule only: number of cycles (0.5 = one half-cosine).")
    max_grad_norm: Annotated[float, Field(ge=0, strict=True)] = Field(1.0, description="Together: gradient clipping norm; 0 turns clipping off.")
    weight_decay: Annotated[float, Field(ge=0, strict=True)] = Field(0.0, description="Together: AdamW weight decay.")
    n_checkpoints: Annotated[int, Field(ge=1, le=100, strict=True)] = Field(1, description="Together: checkpoints kept during training (the last is the model).")
    n_evals: Annotated[int, Field(ge=0, le=100, strict=True)] = Field(0, description="Together: validation-loss evaluations during training (needs a validation split).")
    max_seq_length: PositiveInt | None = Field(None, description="Together: longest sequence trained on; omit for the model's own.")
    packing: bool = Field(True, description="Together: pack several short examples into one sequence.")
    lora: bool = Field(True, description="Together: LoRA (true, the default) or full fine-tuning (false; costs more, no adapter to download).")
    lora_r: PositiveInt | None = Field(None, description="Together LoRA rank; omit for the model's largest.")
    lora_alpha: PositiveInt | None = Field(None, description="Together LoRA alpha; omit for twice the rank.")
    lora_dropout: Annotated[float, Field(ge=0, lt=1, strict=True)] = Field(0.0, description="Together LoRA dropout, 0 up to (not including) 1.")
    lora_trainable_modules: str = Field("all-linear", min_length=1, description="Together LoRA target modules: 'all-linear' or a comma-separated list such as 'q_proj,v_proj'.")
    train_on_inputs: bool | Literal["auto"] = Field("auto", description="Together SFT: also learn the user turns (true), only the assistant turns (false), or 'auto'.")
    dpo_beta: Annotated[float, Field(gt=0, strict=True)] | None = Field(None, description="Together DPO only: how far the tuned model may move from the base (default 0.1).")
    rpo_alpha: Annotated[float, Field(ge=0, strict=True)] | None = Field(None, description="Together DPO only: weight of the NLL term on preferred answers (RPO).")
    simpo_gamma: Annotated[float, Field(ge=0, strict=True)] | None = Field(None, description="Together DPO only: SimPO margin (with reference-free training).")


ALLOWED = {
    "n_epochs": "a whole number 1-100",
    "learning_rate": "a number above 0 up to 1",
    "batch_size": "'max' or a whole number of at least 1",
    "warmup_ratio": "a number 0-1",
    "lr_scheduler": "'linear' or 'cosine'",
    "min_lr_ratio": "a number 0-1",
    "scheduler_num_cycles": "a number above 0",
    "max_grad_norm": "a number of at least 0",
    "weight_decay": "a number of at least 0",
    "n_checkpoints": "a whole number 1-100",
    "n_evals": "a whole number 0-100",
    "max_seq_length": "a whole number of at least 1",
    "packing": "true or false",
    "lora": "true or false",
    "lora_r": "a whole number of at least 1",
    "lora_alpha": "a whole number of at least 1",
    "lora_dropout": "a number from 0 up to (not including) 1",
    "lora_trainable_modules": "'all-linear' or module names separated by commas",
    "train_on_inputs": "true, false or 'auto' (SFT only)",
    "dpo_beta": "a number above 0 (DPO only)",
    "rpo_alpha": "a number of at least 0 (DPO only)",
    "simpo_gamma": "a number of at least 0 (DPO only)",
}
DPO_ONLY = ("dpo_beta", "rpo_alpha", "simpo_gamma")
LORA_ONLY = ("lora_r", "lora_alpha")
METHODS = ("sft", "dpo")


def parse_together_hyperparameters(method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    """Validated hyperparameters with every field explicit (None where Together picks from the model's limits)."""
    if method not in METHODS:
        raise UserError(f"Together jobs take method 'sft' (supervised) or 'dpo' (preference pairs); got {method!r}.")
    given = dict(raw or {})
    try:
        parsed = TogetherHyperparameters.model_validate(given)
    except ValidationError as error:
        problems: dict[str, str] = {}
        for e in error.errors():
            field = str(e["loc"][0]) if e["loc"] else "hyperparameters"
            if field in ALLOWED:
                problems.setdefault(field, f"{field} must be {ALLOWED[field]} (got {e['input']!r})")
            else:
                problems.setdefault(field, f"{field} is not a Together hyperparameter")
        allowed = ", ".join(f"{name}: {text}" for name, text in ALLOWED.items())
        raise UserError(f"Invalid Together hyperparameters: {'; '.join(problems.values())}. Allowed: {allowed}.") from error
    values = parsed.model_dump()

    def changed(name: str) -> bool:  # given with a value other than its default (parsing its own output is a no-op)
        return name in given and given[name] != TogetherHyperparameters.model_fields[name].default

    if method == "sft":
        wrong = [name for name in DPO_ONLY if given.get(name) is not None]
        if wrong:
            raise UserError(f"{', '.join(wrong)} apply to DPO jobs only; drop them, or start the job with method 'dpo' on a preference dataset.")
        for name in DPO_ONLY:
            values.pop(name)
    else:
        if changed("train_on_inputs"):
            raise UserError("train_on_inputs applies to SFT jobs only (DPO learns from the preferred and rejected answers); drop it.")
        values.pop("train_on_inputs")
        if values["dpo_beta"] is None:
            values["dpo_beta"] = 0.1  # Together's documented default, made explicit so the job records it
    if not values["lora"]:
        wrong = [name for name in (*LORA_ONLY, "lora_dropout", "lora_trainable_modules") if changed(name)]
        if wrong:
            raise UserError(f"{', '.join(wrong)} apply to LoRA jobs only; drop them, or set lora to true.")
    if values["lr_scheduler"] != "cosine" and changed("scheduler_num_cycles"):
        raise UserError("scheduler_num_cycles applies to the cosine schedule only; set lr_scheduler to 'cosine' or drop it.")
    return values
