"""The Anthropic provider: Claude through the Messages API, for prompts and judges. Chat only (the API has no
fine-tuning); paid; needs ANTHROPIC_API_KEY. The `anthropic` SDK loads on the first answer."""

from __future__ import annotations


from model_customization.providers.base import Provider
from model_customization.workspace import Workspace


class AnthropicProvider(Provider):
    name = "anthropic"
    title = "Anthropic"
    capabilities = frozenset({"chat"})
    paid = True
    chat_module = "model_customization.providers.anthropic.chat"
    sdk_packages = ("anthropic",)

    def claims_model(self, name: str) -> bool:
        return name.startswith("claude-")

    def check_chat_model(self, ws: Workspace, name: str) -> str:
        from model_customization.providers.anthropic.client import api_key

        api_key()  # no key: refused before any case of an evaluation runs
        return name
