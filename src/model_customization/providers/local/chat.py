"""Chat examples to token ids with a loss mask that covers assistant tokens only.

The model's own chat template renders the conversation. Each message's tokens are found by rendering growing
prefixes of the conversation and taking the difference, which works for any template where a longer conversation
starts with the rendering of a shorter one (ChatML, Llama, Mistral and most others). An assistant message counts
towards the loss (with its end-of-turn marker) unless its `weight` is 0.

Tools (OpenAI function tools) go to the template as its `tools` argument when the template shows them; a template
that ignores them (the embedded SmolLM2's ChatML) gets them described in the system message instead
(datasets/tool_text.py). Every local path renders through `_render`, so GRPO's training prompts and evaluate's
prompts of one case are the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model_customization.datasets.tool_text import with_tools_described
from model_customization.errors import UserError

# A tool no real conversation has: if its name shows in a rendering, the template renders `tools`.
_PROBE_TOOL = {"type": "function", "function": {"name": "probe_tool_4c1e9a", "description": "probe", "parameters": {"type": "object", "properties": {}}}}
_TEMPLATE_SHOWS_TOOLS: dict[str, bool] = {}  # chat template text -> whether it renders the `tools` argument


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]  # -100 where the loss is not computed
    truncated: bool

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != -100)


def template_shows_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders the tools passed as apply_chat_template(tools=...)."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return False
    if template not in _TEMPLATE_SHOWS_TOOLS:
        try:
            shown = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tools=[_PROBE_TOOL], tokenize=False, add_generation_prompt=True)
        except Exception:  # a template that fails on tools (jinja errors of any kind) does not show them
            shown = ""
        _TEMPLATE_SHOWS_TOOLS[template] = _PROBE_TOOL["function"]["name"] in shown
    return _TEMPLATE_SHOWS_TOOLS[template]


def _render(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = False, tools: list[dict[str, Any]] | None = None) -> str:
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    if tools and template_shows_tools(tokenizer):
        return tokenizer.apply_chat_template(clean, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt)
    return tokenizer.apply_chat_template(with_tools_described(clean, tools), tokenize=False, add_generation_prompt=add_generation_prompt)


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """The text a local model answers: the conversation and its tools through the model's chat template, ending
    with the assistant's generation prompt. GRPO's prompts, evaluate's and prompt_model's all come from here."""
    return _render(tokenizer, messages, add_generation_prompt=True, tools=tools)


def require_chat_template(tokenizer: Any, model_name: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{model_name} has no chat template in its tokenizer; a chat model is needed for local fine-tuning.")


def tokenize_chat(tokenizer: Any, messages: list[dict[str, Any]], max_length: int, tools: list[dict[str, Any]] | None = None) -> TokenizedExample:
    """Token ids and labels for one conversation (messages with role, content and optional weight), with its tools
    rendered as _render renders them."""
    input_ids: list[int] = []
    labels: list[int] = []
    rendered = ""
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            prompt = _render(tokenizer, messages[:index], add_generation_prompt=True, tools=tools) if index else ""
            full = _render(tokenizer, messages[: index + 1], tools=tools)
            segments = [(prompt[len(rendered):], False), (full[len(prompt):], message.get("weight", 1) != 0)]
        else:
            full = _render(tokenizer, messages[: index + 1], tools=tools)
            segments = [(full[len(rendered):], False)]
        if not full.startswith(rendered):
            raise UserError("The model's chat template does not render conversations prefix by prefix; cannot mask the loss.")
        for text, trained in segments:
            if not text:
                continue
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            input_ids.extend(ids)
            labels.extend(ids if trained else [-100] * len(ids))
        rendered = full
    truncated = len(input_ids) > max_length
    return TokenizedExample(input_ids[:max_length], labels[:max_length], truncated)


def prompt_ids(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> list[int]:
    """Token ids of a conversation (and its tools) followed by the assistant generation prompt (for inference)."""
    return tokenizer(render_prompt(tokenizer, messages, tools), add_special_tokens=False)["input_ids"]
