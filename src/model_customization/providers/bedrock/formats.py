"""A stored example in each Bedrock family's training format, and that family's checks of it (pure functions).

Every format starts from the same fold of the stored conversation (datasets/render.py render_bedrock_claude):
system text apart, tool calls and results as text, user and assistant turns strictly alternating from the first
user turn to the last assistant turn. Then:
  bedrock-conversation-2024  {"schemaVersion", "system": [{"text"}], "messages": [{"role", "content": [{"text"}]}]}
                             (Nova, Llama 3.2)
  prompt-completion          {"prompt", "completion"}: the last assistant turn is the completion, everything before
                             it the prompt (system text, then earlier turns labelled by speaker) (Llama 3.1, Titan,
                             Cohere)
  claude-messages            {"system", "messages": [{"role", "content"}]} (Claude 3 Haiku)
A preference example trains on its preferred answer.
"""

from __future__ import annotations

from typing import Any

from model_customization.datasets.render import render_bedrock_claude
from model_customization.providers.bedrock.families import CLAUDE_MESSAGES, CONVERSATION, PROMPT_COMPLETION, Family

SPEAKERS = {"user": "User", "assistant": "Assistant"}


def render(family: Family, example: dict[str, Any]) -> dict[str, Any]:
    folded = render_bedrock_claude(example)
    system, turns = folded.get("system") or "", folded["messages"]
    if family.data_format == CONVERSATION:
        row: dict[str, Any] = {"schemaVersion": CONVERSATION}
        if system:
            row["system"] = [{"text": system}]
        row["messages"] = [{"role": turn["role"], "content": [{"text": turn["content"]}]} for turn in turns]
        return row
    if family.data_format == PROMPT_COMPLETION:
        if not turns:
            return {"prompt": "", "completion": ""}
        *earlier, last = turns
        if len(earlier) == 1:
            context = [earlier[0]["content"]]  # one question: the prompt is the question itself
        else:
            context = [f"{SPEAKERS[turn['role']]}: {turn['content']}" for turn in earlier]
        prompt = "\n\n".join(([system] if system else []) + context)
        return {"prompt": prompt, "completion": last["content"] if last["role"] == "assistant" else ""}
    if family.data_format == CLAUDE_MESSAGES:
        return ({"system": system} if system else {}) | {"messages": turns}
    raise ValueError(f"unknown training format {family.data_format!r}")


def texts(family: Family, row: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of every text in a rendered row, the system text first."""
    if family.data_format == PROMPT_COMPLETION:
        return [("user", row["prompt"]), ("assistant", row["completion"])]
    system = row.get("system")
    found = [("system", part["text"]) for part in system] if isinstance(system, list) else ([("system", system)] if system else [])
    for message in row["messages"]:
        content = message["content"]
        for text in [part["text"] for part in content] if isinstance(content, list) else [content]:
            found.append((message["role"], text))
    return found


def problem(family: Family, row: dict[str, Any], tokens: int | None = None, model_id: str = "") -> str | None:
    """Why the family's training would refuse this rendered row; None when it is fine."""
    if family.data_format == PROMPT_COMPLETION:
        if not row["prompt"].strip():
            return "no user turn before the answer remains after rendering to prompt/completion"
        if not row["completion"].strip():
            return "no assistant answer with text to use as the completion"
    else:
        turns = row.get("messages") or []
        if not turns:
            return "no user turn followed by an assistant turn remains after rendering"
        for index, turn in enumerate(turns):
            expected = "user" if index % 2 == 0 else "assistant"
            if turn["role"] != expected:
                return f"turn {index} is {turn['role']} where {expected} must come (turns must alternate, starting with user)"
        if turns[-1]["role"] != "assistant":
            return "the last turn is not an assistant turn"
        for role, text in texts(family, row):
            if role != "system" and not text.strip():
                return f"a {role} turn is empty"
    for role, text in texts(family, row):
        lowered = text.lower()
        hit = next((word for word in family.reserved if word.lower() in lowered), None)
        if hit:
            return f"the {role} text contains {hit!r}, which {family.title} reserves (its training fails on it); reword it or drop the example"
    limit = family.example_token_limit(model_id)
    if tokens is not None and limit is not None and tokens > limit:
        return f"about {tokens} tokens, over the {limit} {family.title} takes per example"
    return None


def row_tokens(family: Family, row: dict[str, Any], encoding: str) -> int:
    from model_customization.datasets.tokens import count_text

    return sum(count_text(text, encoding) for _role, text in texts(family, row))
