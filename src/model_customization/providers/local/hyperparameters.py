"""Hyperparameters of a local LoRA job (SFT, DPO or KTO), validated before anything is written or started (no heavy imports)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from model_customization.deferred_model import DeferredModel
from model_customization.errors import UserError

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class LocalHyperparameters(DeferredModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(3, ge=1, le=100, description="Passes over the training split.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Peak AdamW learning rate (LoRA weights only).")
    lr_scheduler: Literal["linear", "cosine", "constant"] = Field("linear", description="Decay after warm-up: linear or cosine to 0, or constant.")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="Share of optimizer steps with a linear warm-up.")
    batch_size: int = Field(8, ge=1, le=512, description="Examples (or preference pairs) per forward pass.")
    micro_batch_size: int | None = Field(None, ge=1, le=512, description="At most this many examples per forward pass within a batch (gradients add up to the batch's). Default: batch_size; on CPU a pass also holds at most about 512 padded tokens, to bound memory.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=256, description="Forward passes per optimizer step (effective batch = batch_size x this).")
    lora_rank: int = Field(16, ge=1, le=512, description="Rank of each LoRA update (its trainable size); higher fits more, trains slower.")
    lora_alpha: float = Field(32, gt=0, description="LoRA scale: the update is multiplied by lora_alpha / lora_rank.")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input during training (0 = off).")
    target_modules: list[str] = Field(list(DEFAULT_TARGET_MODULES), min_length=1, description="Names of the linear layers that get LoRA adapters.")
    max_seq_length: int = Field(512, ge=16, le=32768, description="Longer examples are truncated; examples with no trained token left are skipped.")
    seed: int = Field(0, ge=0, description="Same seed, same data order and initialisation: a resumed run repeats the uninterrupted one.")
    eval_interval_steps: int | None = Field(None, ge=1, description="Validation loss (GRPO: validation reward) every this many optimizer steps (and at each epoch end). Default: at each epoch end only; GRPO about ten times per job.")
    early_stopping_patience: int | None = Field(None, ge=1, description="Stop after this many validations without a better validation loss, and keep the best adapter. Default: off.")
    checkpoint_interval_steps: int = Field(50, ge=1, description="Save a resumable checkpoint every this many optimizer steps (and at each epoch end).")
    dpo_beta: float = Field(0.1, gt=0, le=10, description="DPO only: how strongly the tuned model may move away from the base model.")
    kto_beta: float = Field(0.1, gt=0, le=10, description="KTO only: the scale of the implied reward (log-ratio to the starting model) in the loss; higher keeps the tuned model closer to it.")
    desirable_weight: float = Field(1.0, gt=0, le=100, description="KTO only: weight of a desirable session's loss. With more undesirable sessions, raise it (weight x count of desirable about 1 to 4/3 times the undesirable's).")
    undesirable_weight: float = Field(1.0, gt=0, le=100, description="KTO only: weight of an undesirable session's loss (see desirable_weight).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU.")
    quantization: Literal["none", "4bit"] = Field("none", description="4bit: QLoRA (NF4 base weights via bitsandbytes, CUDA only).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory (CUDA; on CPU it is about 6x slower).")
    chat_template: str | None = Field(None, description="A Jinja chat template for a base model whose tokenizer has none.")
    # --- GRPO (method='grpo') only: batch_size is the prompts per optimizer step, each answered group_size times ---
    group_size: int = Field(4, ge=2, le=64, description="GRPO only: answers sampled per prompt; rewards are compared within this group.")
    max_new_tokens: int = Field(64, ge=1, le=2048, description="GRPO only: the longest answer sampled (tokens).")
    temperature: float = Field(1.0, gt=0, le=2, description="GRPO only: sampling temperature of the answers (above 0: a group needs different answers).")
    grpo_beta: float = Field(0.04, ge=0, le=10, description="GRPO only: weight of the KL penalty that keeps the policy near the model the job started from.")
    clip_epsilon: float = Field(0.2, gt=0, lt=1, description="GRPO only: the policy ratio is clipped to [1 - clip_epsilon, 1 + clip_epsilon].")
    max_tool_turns: int = Field(2, ge=0, le=8, description="GRPO only: in a case with tool_results, how many times one answer may call a tool and get the result back before its episode ends (0: single-turn).")
    holdout_fraction: float = Field(0.2, ge=0, lt=1, description="GRPO only: share of the suite's cases kept out of training, for evaluate.")
    validation_fraction: float = Field(0.1, ge=0, lt=1, description="GRPO only: share of the suite's cases kept out of training and answered greedily every eval_interval_steps (default: about ten times per job); the adapter of the step with the best mean reward on them is the one kept, and early_stopping_patience stops a job whose reward there stops rising. 0: no guard, the last step's adapter is kept.")
    reward_weights: dict[str, float] | None = Field(None, description="GRPO only: weight per metric in the reward, e.g. {\"schema_valid\": 1, \"json_valid\": 0}; unnamed metrics keep their defaults.")
    judge_model: str | None = Field(None, description="GRPO only: an LLM judge that scores each group's answers against each other (0-1, one call per group), named as evaluate's judge (e.g. 'gpt-4.1-mini', 'anthropic:claude-haiku-4-5', or a local model). A paid judge's calls are quoted and approved when the job starts.")
    judge_weight: float = Field(1.0, gt=0, le=100, description="GRPO only, with judge_model: the judge's weight in the reward beside the checks' (reward = (checks weighted + judge_weight x judge score) / total weight); a suite case with no check is rewarded by the judge alone.")
    judge_rubric: str | None = Field(None, min_length=1, max_length=3000, description="GRPO only, with judge_model: what a good answer is, shown to the judge for cases without their own rubric.")

    @field_validator("target_modules")
    @classmethod
    def _module_names(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if not _MODULE_NAME.match(n)]
        if bad:
            raise ValueError(f"not module names: {bad}")
        if len(set(names)) != len(names):
            raise ValueError("names repeat")
        return names

    @field_validator("reward_weights")
    @classmethod
    def _known_metrics(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        if weights is not None:
            from model_customization.evaluation.rewards import reward_weights

            if "judge" in weights:
                raise ValueError("the judge's weight is judge_weight (with judge_model), not a key of reward_weights")
            try:
                reward_weights(weights)
            except UserError as error:
                raise ValueError(str(error)) from None
        return weights

    @field_validator("judge_model")
    @classmethod
    def _judge_named(cls, name: str | None) -> str | None:
        if name is not None and not name.strip():
            raise ValueError("name a judge model, or leave judge_model out")
        return name.strip() if name is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> LocalHyperparameters:
        if self.holdout_fraction + self.validation_fraction >= 1:
            raise ValueError(f"holdout_fraction + validation_fraction must leave cases to train on (got {self.holdout_fraction} + {self.validation_fraction})")
        # By value, not by whether it was given: a stored job's hyperparameters hold every field at its default.
        judge_options = [name for name, unset in (("judge_weight", 1.0), ("judge_rubric", None)) if getattr(self, name) != unset]
        if self.judge_model is None and judge_options:
            raise ValueError(f"{' and '.join(judge_options)} apply only with judge_model (the LLM judge they configure)")
        if self.quantization == "4bit" and self.device == "cpu":
            raise ValueError("quantization='4bit' (QLoRA) needs a CUDA GPU; use device='auto' or 'cuda', or quantization='none' on CPU")
        return self


GRPO_FIELDS = (
    "group_size", "max_new_tokens", "temperature", "grpo_beta", "clip_epsilon", "max_tool_turns", "holdout_fraction", "validation_fraction", "reward_weights",
    "judge_model", "judge_weight", "judge_rubric",
)
GRPO_LEARNING_RATE = 1e-4  # the default for method='grpo': policy-gradient steps are noisier than supervised ones


def parse_hyperparameters(values: dict[str, Any] | None) -> LocalHyperparameters:
    try:
        return LocalHyperparameters.model_validate(values or {})
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'hyperparameters'}: {e['msg']}" for e in error.errors())
        allowed = ", ".join(LocalHyperparameters.model_fields)
        raise UserError(f"Invalid hyperparameters ({details}). Allowed keys: {allowed}.") from error


def for_method(method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
    """The hyperparameters as given, for a job of this method: GRPO starts from its own learning rate, and the GRPO
    fields are refused on other methods (they would be silently ignored)."""
    given = dict(raw or {})
    if method == "grpo":
        given.setdefault("learning_rate", GRPO_LEARNING_RATE)
    else:
        misplaced = [name for name in GRPO_FIELDS if name in given]
        if misplaced:
            raise UserError(f"{', '.join(misplaced)} apply to method='grpo' only; leave them out of a {method} job.")
    return given
