"""The config file's OpenAI-compatible endpoints as registry targets: "model_customization.providers.openai.configured:<name>".

The registry imports a provider class by "module:Class"; this module answers any attribute name with the provider
class of the config file's [openai_compatible.<name>] table (PEP 562 module __getattr__), so an endpoint added to the
file needs no code.
"""

from __future__ import annotations

from typing import Any

MODULE = __name__


def __getattr__(name: str) -> Any:
    from model_customization.providers.openai.endpoints import configured_names
    from model_customization.providers.openai.provider import configured_provider_class

    if name.startswith("__") or name not in configured_names():
        raise AttributeError(name)
    return configured_provider_class(name)


def provider_targets() -> dict[str, str]:
    """{name: "module:name"} for each endpoint the config file adds; a config file that cannot be read adds none (the
    settings loader reports it)."""
    from model_customization.config import ConfigError
    from model_customization.providers.openai.endpoints import configured_names

    try:
        return {name: f"{MODULE}:{name}" for name in configured_names()}
    except ConfigError:
        return {}
