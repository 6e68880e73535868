"""The Anthropic provider: Claude through the Messages API, for prompts and judges. Chat only (the API has no
fine-tuning); paid; needs ANTHROPIC_API_KEY. The `anthropic` SDK loads on the first answer."""

from __future__ import annotations

import importlib
from typing import Any

from model_customization.providers.base import Provider
from model_customization.workspace import Workspace


class AnthropicProvider(Provider):
    name = "anthropic"
    title = "Anthropic"
    capabilities = frozenset({"chat"})
    paid = True
    sdk_packages = ("anthropic",)

    def claims_model(self, name: str) -> bool:
        return name.startswith("claude-")

    def check_chat_model(self, ws: Workspace, name: str) -> str:
        from model_customization.providers.anthropic.client import api_key

        api_key()  # no key: refused before any case of an evaluation runs
        return name

    def chat(self, ws: Workspace, model: str, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float, seed: int) -> dict[str, Any]:
        chat_module = importlib.import_module("model_customization.providers.anthropic.chat")  # the SDK loads here
        return chat_module.chat(ws, model, messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
