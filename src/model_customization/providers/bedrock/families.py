"""The model families Bedrock fine-tunes, each with its own data format, hyperparameters and limits (no boto3 here).

Discovery (training.offered_base_models) asks Bedrock which foundation models this account may fine-tune; a family
says how to train one of them: which JSONL format its training file takes, which hyperparameters its
CreateModelCustomizationJob accepts (API names, ranges, defaults) and the record and length limits its data must
keep. A model Bedrock offers whose family is not described here is reported as offered but not supported by this
product, never guessed at.

Sources, read 2026-12-06 (Amazon Bedrock User Guide unless said otherwise):
  custom-models-hp.html        hyperparameters per family (cm-hp-nova-mm, cm-hp-meta-llama31, cm-hp-meta-llama32,
                               cm-hp-titan-text, cm-hp-cohere-command, cm-hp-anth-claude-3)
  model-customization-prepare.html, preparing-text-data.html
                               formats: prompt/completion for Titan Text, Cohere Command and Llama 3.1; the Converse
                               format (schemaVersion "bedrock-conversation-2024") for Llama 3.2; Claude 3 Haiku's own
                               {"system", "messages"} format
  Amazon Nova User Guide, fine-tune-prepare-data-understanding.html
                               Nova's conversation format: user first, alternating, assistant last; the reserved
                               keywords; aws-samples/amazon-nova-samples dataset_validation: 8 to 20,000 records
                               (Nova 2 Lite: at least 200)
  aws-samples Llama dataset_validation README
                               Llama: at most 10,000 training and 1,000 validation rows, at most 16K input tokens per
                               row (10K for Llama 3.2 90B)
  docs.cohere.com "Fine-tuning Cohere models on Amazon Bedrock"
                               at least 32 examples, 4,096 tokens per prompt and completion; Cohere deprecated its
                               fine-tuning on 2025-09-15
Nova 2 Lite has no hyperparameter table of its own on Bedrock's page: it takes Nova's three (the same names) with the
ranges Bedrock documents for Nova Micro, Lite and Pro, and (as its SFT guide says) no validation set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Training-file formats.
CONVERSATION = "bedrock-conversation-2024"  # {"schemaVersion", "system": [{"text"}], "messages": [{"role", "content": [{"text"}]}]}
PROMPT_COMPLETION = "prompt-completion"  # {"prompt", "completion"}
CLAUDE_MESSAGES = "claude-messages"  # {"system": "...", "messages": [{"role", "content": "..."}]}

CLAUDE_FINE_TUNING_END_OF_LIFE = "2026-09-10"
SOURCES_CHECKED = "2026-12-06"

# Words Nova's training refuses anywhere in a prompt (its data-preparation guide; checked without regard to case).
NOVA_RESERVED = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")


@dataclass(frozen=True)
class Hyperparameter:
    api_name: str
    whole: bool  # an integer (epochs, steps) rather than a real number
    low: float
    high: float
    default: float


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    prefixes: tuple[str, ...]  # model ids (without a geography prefix) that belong to it
    data_format: str
    hyperparameters: dict[str, Hyperparameter]  # our snake_case name -> the API's rules
    min_train: int = 1
    max_train: int | None = None
    max_validation: int | None = None
    validation: bool = True  # whether a validation file is uploaded
    max_example_tokens: int | None = None  # per training row, counted approximately (o200k)
    long_variants: dict[str, int] = field(default_factory=dict)  # id prefix -> a lower per-row token limit
    reserved: tuple[str, ...] = ()
    note: str = ""

    def matches(self, model_id: str) -> bool:
        return any(model_id.startswith(prefix) for prefix in self.prefixes)

    def example_token_limit(self, model_id: str) -> int | None:
        for prefix, limit in self.long_variants.items():
            if model_id.startswith(prefix):
                return limit
        return self.max_example_tokens


def _hp(api_name: str, whole: bool, low: float, high: float, default: float) -> Hyperparameter:
    return Hyperparameter(api_name, whole, low, high, default)


_NOVA_HP = {
    "epoch_count": _hp("epochCount", True, 1, 5, 2),
    "learning_rate": _hp("learningRate", False, 1e-6, 1e-4, 1e-5),
    "learning_rate_warmup_steps": _hp("learningRateWarmupSteps", True, 0, 100, 10),
}
_LLAMA_HP = {
    "epoch_count": _hp("epochCount", True, 1, 10, 5),
    "batch_size": _hp("batchSize", True, 1, 1, 1),
    "learning_rate": _hp("learningRate", False, 5e-6, 0.1, 1e-4),
}
_COHERE_HP = {
    "epoch_count": _hp("epochCount", True, 1, 100, 1),
    "batch_size": _hp("batchSize", True, 8, 8, 8),
    "learning_rate": _hp("learningRate", False, 5e-6, 0.1, 1e-5),
    "early_stopping_threshold": _hp("earlyStoppingThreshold", False, 0, 0.1, 0.01),
    "early_stopping_patience": _hp("earlyStoppingPatience", True, 1, 10, 6),
    "eval_percentage": _hp("evalPercentage", False, 5, 50, 20),
}

FAMILIES: tuple[Family, ...] = (
    Family(
        "nova", "Amazon Nova (Micro, Lite, Pro)", ("amazon.nova-micro-v1", "amazon.nova-lite-v1", "amazon.nova-pro-v1"),
        CONVERSATION, _NOVA_HP, min_train=8, max_train=20_000, reserved=NOVA_RESERVED,
        note="tuned Nova models can also be served on demand (no provisioned throughput needed)",
    ),
    Family(
        "nova-2", "Amazon Nova 2 Lite", ("amazon.nova-2-lite-v1",), CONVERSATION, _NOVA_HP, min_train=200, max_train=20_000,
        validation=False, reserved=NOVA_RESERVED,
        note="hyperparameter ranges as Bedrock documents them for Nova 1; Nova 2 SFT takes no validation set",
    ),
    Family(
        "llama-3.2", "Meta Llama 3.2", ("meta.llama3-2-",), CONVERSATION, _LLAMA_HP, max_train=10_000, max_validation=1_000,
        max_example_tokens=16_000, long_variants={"meta.llama3-2-90b": 10_000},
    ),
    Family(
        "llama-3.1", "Meta Llama 3.1", ("meta.llama3-1-",), PROMPT_COMPLETION, _LLAMA_HP, max_train=10_000, max_validation=1_000,
        max_example_tokens=16_000,
    ),
    Family(
        "titan-text", "Amazon Titan Text G1 (Express, Lite)", ("amazon.titan-text-express-v1", "amazon.titan-text-lite-v1"), PROMPT_COMPLETION,
        {
            "epoch_count": _hp("epochCount", True, 1, 10, 5),
            "batch_size": _hp("batchSize", True, 1, 64, 1),
            "learning_rate": _hp("learningRate", False, 0, 1, 1e-5),
            "learning_rate_warmup_steps": _hp("learningRateWarmupSteps", True, 0, 250, 5),
        },
    ),
    Family(
        "titan-premier", "Amazon Titan Text Premier", ("amazon.titan-text-premier-v1",), PROMPT_COMPLETION,
        {
            "epoch_count": _hp("epochCount", True, 1, 5, 2),
            "batch_size": _hp("batchSize", True, 1, 1, 1),
            "learning_rate": _hp("learningRate", False, 1e-7, 1e-5, 1e-6),
            "learning_rate_warmup_steps": _hp("learningRateWarmupSteps", True, 0, 20, 5),
        },
    ),
    Family(
        "cohere-command", "Cohere Command", ("cohere.command-text-v14",), PROMPT_COMPLETION, _COHERE_HP, min_train=32, max_example_tokens=4_096,
        note="Cohere deprecated its fine-tuning on 2025-09-15",
    ),
    Family(
        "cohere-command-light", "Cohere Command Light", ("cohere.command-light-text-v14",), PROMPT_COMPLETION,
        {**_COHERE_HP, "batch_size": _hp("batchSize", True, 8, 32, 8)}, min_train=32, max_example_tokens=4_096,
        note="Cohere deprecated its fine-tuning on 2025-09-15",
    ),
    Family(
        "claude-3-haiku", "Anthropic Claude 3 Haiku", ("anthropic.claude-3-haiku-",), CLAUDE_MESSAGES,
        {
            "epoch_count": _hp("epochCount", True, 1, 10, 2),
            "batch_size": _hp("batchSize", True, 4, 256, 32),
            "learning_rate_multiplier": _hp("learningRateMultiplier", False, 0.1, 2, 1),
            "early_stopping_threshold": _hp("earlyStoppingThreshold", False, 0, 0.1, 0.001),
            "early_stopping_patience": _hp("earlyStoppingPatience", True, 1, 10, 2),
        },
        note=f"Claude 3 Haiku fine-tuning reached end of life on {CLAUDE_FINE_TUNING_END_OF_LIFE}",
    ),
)

# The default base model is the first offered model, in this order, that has a family above. Why this order:
# Nova first, because a tuned Nova model can be prompted on demand, while the others run only on provisioned
# throughput billed by the hour; Nova Lite before Micro (longer context, the same chat format) and before Pro (the
# largest of the three); then the chat-format Llama 3.2 models, small before large; then the
# prompt/completion families, which flatten a conversation into one prompt; Claude last (end of life).
DEFAULT_PREFERENCE: tuple[str, ...] = (
    "amazon.nova-lite-v1", "amazon.nova-micro-v1", "amazon.nova-2-lite-v1", "amazon.nova-pro-v1",
    "meta.llama3-2-3b", "meta.llama3-2-11b", "meta.llama3-2-1b", "meta.llama3-1-8b", "meta.llama3-2-90b", "meta.llama3-1-70b",
    "amazon.titan-text-express-v1", "amazon.titan-text-premier-v1", "amazon.titan-text-lite-v1",
    "cohere.command-text-v14", "cohere.command-light-text-v14", "anthropic.claude-3-haiku-",
)

# Every hyperparameter name any family takes, with the widest range: the tool schema's bounds (families narrow them).
ALL_HYPERPARAMETERS: dict[str, Hyperparameter] = {}
for _family in FAMILIES:
    for _name, _rule in _family.hyperparameters.items():
        _seen = ALL_HYPERPARAMETERS.get(_name)
        ALL_HYPERPARAMETERS[_name] = _rule if _seen is None else Hyperparameter(
            _rule.api_name, _rule.whole and _seen.whole, min(_seen.low, _rule.low), max(_seen.high, _rule.high), _seen.default
        )

_GEOGRAPHY = re.compile(r"^(?:us|eu|apac|us-gov|jp|au|ca|global)\.")
_ARN_MODEL = re.compile(r"^arn:aws[^:]*:bedrock:[^:]*:[^:]*:(?:foundation-model|custom-model)/(.+?)(?:/[a-z0-9]{12})?$")


def bare_model_id(name: str) -> str:
    """The foundation-model id in a model id, inference-profile id or ARN ("us.amazon.nova-lite-v1:0" -> "amazon.nova-lite-v1:0")."""
    matched = _ARN_MODEL.match(name)
    if matched:
        name = matched.group(1)
    return _GEOGRAPHY.sub("", name.removeprefix("bedrock:"))


def family_for(model_id: str) -> Family | None:
    bare = bare_model_id(model_id)
    return next((family for family in FAMILIES if family.matches(bare)), None)


def is_claude(model_id: str) -> bool:
    return bare_model_id(model_id).startswith("anthropic.") or "claude" in model_id.lower()


def preference(model_id: str) -> int:
    bare = bare_model_id(model_id)
    return next((rank for rank, prefix in enumerate(DEFAULT_PREFERENCE) if bare.startswith(prefix)), len(DEFAULT_PREFERENCE))


def describe_ranges(family: Family) -> str:
    return ", ".join(f"{name} ({_number(rule.low)} to {_number(rule.high)}, default {_number(rule.default)})" for name, rule in family.hyperparameters.items())


def _number(value: float) -> str:
    return f"{value:g}"
