"""Every provider by name: the built-ins of this package, then those other installed packages declare.

A third party adds a provider without touching this repository: its package declares an entry point in the group
`model_customization.providers`, e.g. in its pyproject.toml

    [project.entry-points."model_customization.providers"]
    toy = "toy_provider:ToyProvider"

naming a subclass of providers.base.Provider. Classes are imported on first use ("module:Class"), so no SDK loads
at server start-up; a third-party entry point that fails to load, or does not name a Provider, is skipped with a
logged warning and never breaks the server. A third-party name equal to a built-in's is skipped the same way.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from importlib import metadata
from typing import Any

from model_customization.errors import UserError
from model_customization.providers.base import Provider
from model_customization.workspace import Workspace

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "model_customization.providers"
# The built-in providers, in the order lists, schemas and the reference show them.
BUILTIN_PROVIDERS: dict[str, str] = {
    "local": "model_customization.providers.local.provider:LocalProvider",
    "openai": "model_customization.providers.openai.provider:OpenAIProvider",
    "azure-openai": "model_customization.providers.openai.provider:AzureOpenAIProvider",
    "anthropic": "model_customization.providers.anthropic.provider:AnthropicProvider",
    "bedrock": "model_customization.providers.bedrock.provider:BedrockProvider",
    "together": "model_customization.providers.together.provider:TogetherProvider",
    "hf-jobs": "model_customization.providers.hf_jobs.provider:HfJobsProvider",
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_CONFIGURED_MODULE = "model_customization.providers.openai.configured:"

_targets: dict[str, str] | None = None  # name -> "module:Class", built-ins first
_versions: dict[str, str] = {}  # a third-party provider's name -> "distribution==version"
_instances: dict[str, Provider] = {}
_broken: set[str] = set()  # entry points that failed once: warned about once, then left out


_OUR_METADATA = re.compile(r"^model_customization[-.]")  # this package's own .dist-info / .egg-info folders


def _declared_by_another_package() -> bool:
    """Whether any installed package but this one declares a provider entry point.

    importlib.metadata's scan builds every installed distribution, about 50 ms at each server start; reading each
    package's entry_points.txt for the group's header answers the common case (no third-party provider) in a few.
    A zip or egg file on the path cannot be read this way: then the full scan decides."""
    header = f"[{ENTRY_POINT_GROUP}]"
    for entry in sys.path:
        folder = entry or "."
        if os.path.isfile(folder):
            return True
        try:
            children = os.scandir(folder)
        except OSError:
            continue
        with children:
            for child in children:
                if not child.name.endswith((".dist-info", ".egg-info")) or _OUR_METADATA.match(child.name):
                    continue
                try:
                    with open(os.path.join(child.path, "entry_points.txt"), encoding="utf-8", errors="replace") as declared:
                        if header in declared.read():
                            return True
                except OSError:
                    continue
    return False


def _entry_point_targets() -> tuple[dict[str, str], dict[str, str]]:
    """Third-party providers: ({name: "module:Class"}, {name: "distribution==version"})."""
    found: dict[str, str] = {}
    versions: dict[str, str] = {}
    if not _declared_by_another_package():
        return found, versions
    try:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as error:  # noqa: BLE001 - unreadable package metadata must not stop the server
        logger.warning("could not read the %s entry points: %s", ENTRY_POINT_GROUP, error)
        return found, versions
    for entry_point in sorted(entry_points, key=lambda e: e.name):
        name = entry_point.name
        if BUILTIN_PROVIDERS.get(name) == entry_point.value:
            continue  # this package's own declaration of a built-in (pyproject.toml)
        if name in BUILTIN_PROVIDERS or name in found:
            logger.warning("provider entry point %r (%s) skipped: the name is already taken", name, entry_point.value)
        elif not _NAME.match(name):
            logger.warning("provider entry point %r skipped: a provider name is lower case letters, digits, - and _", name)
        else:
            found[name] = entry_point.value
            dist = getattr(entry_point, "dist", None)
            versions[name] = f"{dist.name}=={dist.version}" if dist is not None else "?"
    return found, versions


def _configured_targets() -> dict[str, str]:
    """Providers the config file defines ([openai_compatible.<name>] endpoints); a name already taken is skipped."""
    from model_customization.providers.openai.configured import provider_targets

    found = {}
    for name, target in provider_targets().items():
        if name in BUILTIN_PROVIDERS:
            continue
        found[name] = target
    return found


def _all_targets() -> dict[str, str]:
    global _targets, _versions
    if _targets is None:
        third_party, _versions = _entry_point_targets()
        configured = {name: target for name, target in _configured_targets().items() if name not in third_party}
        _targets = {**BUILTIN_PROVIDERS, **configured, **third_party}
    return _targets


def clear_cache() -> None:
    """Forget the providers found so far (tests, and a package installed while the process runs)."""
    global _targets
    _targets = None
    _versions.clear()
    _instances.clear()
    _broken.clear()


def fingerprint() -> str:
    """Which providers are registered, and from where ("name=module:Class" each, with the version of the package
    that declares a third-party one): the tool-list cache key must change when a package adds or changes one,
    since start_job's schema is built from them."""
    targets = _all_targets()
    return ";".join(f"{name}={target}" + (f"@{_versions[name]}" if name in _versions else "") for name, target in targets.items())


def _load(name: str, target: str) -> Provider:
    module_name, _, class_name = target.partition(":")
    cls: Any = importlib.import_module(module_name)
    for part in class_name.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{target} is not a subclass of model_customization.providers.base.Provider")
    if getattr(cls, "name", None) != name:
        raise TypeError(f"{target} declares name {getattr(cls, 'name', None)!r}, but its entry point is {name!r}")
    return cls()


def _instance(name: str) -> Provider | None:
    """The provider, or None for a third-party one that cannot be loaded (warned about once)."""
    if name in _instances:
        return _instances[name]
    if name in _broken:
        return None
    target = _all_targets()[name]
    if name in BUILTIN_PROVIDERS or target.startswith(_CONFIGURED_MODULE):
        provider = _load(name, target)  # a broken built-in is a bug of ours, a configured one was checked: let it raise
    else:
        try:
            provider = _load(name, target)
        except Exception as error:  # noqa: BLE001 - a third party's broken package must not break the server
            logger.warning("provider %r from entry point %s skipped: %s: %s", name, target, type(error).__name__, error)
            _broken.add(name)
            return None
    _instances[name] = provider
    return provider


def providers(capability: str | None = None) -> list[Provider]:
    """Every provider that loads, built-ins first, optionally only those with a capability."""
    loaded = [p for name in _all_targets() if (p := _instance(name)) is not None]
    return [p for p in loaded if capability is None or p.can(capability)]


def provider_names(capability: str | None = None) -> list[str]:
    """Every registered name, built-ins first then entry points, optionally only those with a capability."""
    return [p.name for p in providers(capability)]


def find_provider(name: str | None) -> Provider | None:
    """The provider of that name, or None (e.g. a ledger row written by a provider no longer installed)."""
    if not name or name not in _all_targets():
        return None
    return _instance(name)


def runs_locally(name: str | None) -> bool:
    """True for a provider that runs on this machine (its jobs use the local worker queue, its models are folders
    here, the evaluation runs its models one at a time); False for any other, and for a name not installed."""
    provider = find_provider(name)
    return provider is not None and provider.runs_locally


def is_paid(name: str | None) -> bool:
    """True unless the provider is known to be free (an unknown provider is treated as one that may cost money)."""
    provider = find_provider(name)
    return provider is None or provider.paid


def get_provider(name: str, capability: str | None = None) -> Provider:
    """The provider for a name (one instance per process); UserError naming the known providers.

    With a capability, a provider without it is refused too, naming the providers that have it."""
    provider = find_provider(name)
    if provider is None or (capability and not provider.can(capability)):
        known = provider_names(capability)
        what = f"Unknown provider {name!r}" if provider is None else f"Provider {name!r} cannot {capability}"
        raise UserError(f"{what}; use one of {', '.join(known)}.")
    return provider


def describe_choices(capability: str) -> str:
    """'local' (LoRA training on this machine, free), 'openai' (OpenAI fine-tuning, paid) or ... for messages."""
    shown = [f"'{p.name}'" + (f" ({p.training_summary})" if p.training_summary else "") for p in providers(capability)]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


# --- which provider a model name means ------------------------------------------------------------------------------
def resolve_chat_model(ws: Workspace, model: str) -> tuple[str, str]:
    """(provider, model name for that provider) for what a caller typed. First match wins:

      "<provider>:<model>"         that provider (any provider that can chat), the rest is the model
      a model in the registry      the provider it was registered with (tuned models)
      a name a provider claims     that provider (claims_model: "gpt-…", "ft:…" OpenAI, "claude-…" Anthropic,
                                   Bedrock model ids and ARNs ...); built-ins are asked first
      anything else                the provider that answers unclaimed names (local: the embedded model, a tuned
                                   ft-… id, a model folder)
    """
    name = (model or "").strip()
    if not name:
        raise UserError("No model given. Name a local model (SmolLM2-135M-Instruct, a tuned ft-… id, a folder) or a cloud model such as claude-sonnet-5 or gpt-4o-mini.")
    chatting = providers("chat")
    for provider in chatting:
        if name.startswith(provider.name + ":"):
            rest = name[len(provider.name) + 1 :].strip()
            if not rest:
                raise UserError(f"{name!r} names the provider but no model; write it as {provider.name}:<model>.")
            return provider.name, rest
    row = ws.store.models.get(name)
    if row:
        if row["provider"] not in {p.name for p in chatting}:
            raise UserError(f"Model {name!r} is registered for provider {row['provider']!r}, which cannot be prompted here; providers: {', '.join(p.name for p in chatting)}.")
        return row["provider"], name
    for provider in chatting:
        if provider.claims_model(name):
            return provider.name, name
    fallback = next((p for p in chatting if p.answers_unclaimed_names), None)
    if fallback is None:
        raise UserError(f"No provider claims the model {name!r}; write it as <provider>:<model> with one of {', '.join(p.name for p in chatting)}.")
    return fallback.name, name
