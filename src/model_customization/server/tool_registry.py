"""Faster server start: tools and resource templates are built on first use, and the answer to tools/list is cached
between starts.

The MCP SDK turns each registered function into a `Tool` at registration: a pydantic model of its arguments and
two JSON schemas. For our 20-odd typed tools that is most of what the server does before it can answer its first
tools/list. Here registration only records the function; the SDK's `Tool` for it is built the first time it is
called (or listed), and the list of tool definitions a client receives is stored in the data home. The stored list
is used only while its key matches: the SDK, pydantic and Python versions and the source of every one of our
modules that was loaded when the server was built (the tool functions, their argument and result types, and what
those import), so editing a tool or upgrading a library rebuilds it.

A cache that cannot be read or written is ignored: the tools are then built as the SDK would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resources import ResourceManager, ResourceTemplate
from mcp.server.mcpserver.tools import Tool, ToolManager
from mcp.types import Tool as MCPTool

from model_customization.providers import registry as provider_registry
from model_customization.storage import atomic_write

logger = logging.getLogger(__name__)

CACHE_FOLDER = "cache"
CACHE_PREFIX = "tool-list-"
CACHE_FORMAT = 1  # bump when what is stored changes shape


class DeferredToolManager(ToolManager):
    """A ToolManager that keeps registered functions and builds each SDK `Tool` when it is first needed."""

    def __init__(self, warn_on_duplicate_tools: bool = True):
        super().__init__(warn_on_duplicate_tools=warn_on_duplicate_tools)
        self._pending: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}
        self._order: list[str] = []  # registration order, which tools/list keeps

    def add_tool(self, fn: Callable[..., Any], name: str | None = None, **options: Any) -> Tool | None:  # type: ignore[override]
        tool_name = name or fn.__name__
        if tool_name in self._order:
            if self.warn_on_duplicate_tools:
                logger.warning("Tool already exists: %s", tool_name)
            return self._tools.get(tool_name)
        self._pending[tool_name] = (fn, {"name": name, **options})
        self._order.append(tool_name)
        return None

    def _build(self, name: str) -> Tool | None:
        if name in self._pending:
            fn, options = self._pending.pop(name)
            self._tools[name] = Tool.from_function(fn, **options)
        return self._tools.get(name)

    def get_tool(self, name: str) -> Tool | None:
        return self._build(name)

    def list_tools(self) -> list[Tool]:
        return [tool for name in self._order if (tool := self._build(name)) is not None]

    def remove_tool(self, name: str) -> None:
        if name not in self._order:
            raise ToolError(f"Unknown tool: {name}")
        self._order.remove(name)
        self._pending.pop(name, None)
        self._tools.pop(name, None)

    def registrations(self) -> list[tuple[str, Callable[..., Any], dict[str, Any]]]:
        """What was registered, built or not: (name, function, options) in order; the cache key is made of it."""
        entries = []
        for name in self._order:
            if name in self._pending:
                fn, options = self._pending[name]
            else:
                tool = self._tools[name]
                fn = tool.fn
                options = {"title": tool.title, "description": tool.description, "annotations": tool.annotations, "meta": tool.meta}
            entries.append((name, fn, options))
        return entries


class DeferredResourceManager(ResourceManager):
    """A ResourceManager that keeps registered resource templates and builds them (the SDK makes a pydantic model of
    each function's arguments and its JSON schema) when a template is first listed or a resource is first read.

    The URI template is parsed at registration all the same, so a malformed one still fails when the server is built;
    templates are built in registration order, the order in which they are matched and listed."""

    def __init__(self, warn_on_duplicate_resources: bool = True):
        super().__init__(warn_on_duplicate_resources=warn_on_duplicate_resources)
        self._pending_templates: list[tuple[Callable[..., Any], dict[str, Any]]] = []

    def add_template(self, fn: Callable[..., Any], uri_template: str, **options: Any) -> ResourceTemplate | None:  # type: ignore[override]
        from mcp.shared.uri_template import UriTemplate

        UriTemplate.parse(uri_template)  # raises InvalidUriTemplate now, as the SDK's registration would
        self._pending_templates.append((fn, {"uri_template": uri_template, **options}))
        return None

    def _build_templates(self) -> None:
        while self._pending_templates:
            fn, options = self._pending_templates.pop(0)
            super().add_template(fn, **options)

    async def get_resource(self, uri: Any, context: Any) -> Any:
        self._build_templates()
        return await super().get_resource(uri, context)

    def list_templates(self) -> list[ResourceTemplate]:
        self._build_templates()
        return super().list_templates()


# The launchers (`model-customization serve` goes through the CLI package; `model-customization-server` may be
# imported by name or run as __main__): which of them is loaded says nothing about the tools.
ENTRY_MODULES = frozenset({"model_customization.cli", "model_customization.server.__main__", "model_customization.__main__"})


def _our_source_digest() -> str:
    """A digest of every model_customization module loaded now: at the end of build_server, these are the modules
    the tool definitions can depend on (anything a signature or a result type refers to is imported by then)."""
    digest = hashlib.sha256()
    for name in sorted(sys.modules):
        if name != "model_customization" and not name.startswith("model_customization."):
            continue
        if name in ENTRY_MODULES:  # how the server was launched defines no tool: every entry point shares one cache
            continue
        path = getattr(sys.modules[name], "__file__", None)
        if not path:
            continue
        try:
            digest.update(name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
        except OSError:
            digest.update(name.encode() + b"\0unreadable\0")
    return digest.hexdigest()


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "none"


def tool_list_key(manager: DeferredToolManager) -> str:
    """Changes whenever the tools/list answer could: library versions, our source, what was registered."""
    digest = hashlib.sha256()
    parts: list[Any] = [
        CACHE_FORMAT,
        sys.version,
        _version("mcp"),
        _version("pydantic"),
        _version("pydantic-core"),
        _our_source_digest(),
        # start_job's and inspect_dataset's schemas list the registered providers, which another package can add
        provider_registry.fingerprint(),
    ]
    for name, fn, options in manager.registrations():
        described = {key: (value.model_dump(mode="json") if hasattr(value, "model_dump") else value) for key, value in options.items()}
        parts.append([name, getattr(fn, "__module__", ""), getattr(fn, "__qualname__", ""), json.dumps(described, sort_keys=True, default=repr)])
    digest.update(json.dumps(parts, default=repr).encode())
    return digest.hexdigest()[:24]


class ToolListCache:
    """The stored tools/list answer, one file per key in <home>/cache; written atomically, older keys removed."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / f"{CACHE_PREFIX}{key}.json"

    def load(self, key: str) -> list[dict[str, Any]] | None:
        try:
            stored = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stored, dict) or stored.get("key") != key or not isinstance(stored.get("tools"), list):
            return None
        return stored["tools"]

    def store(self, key: str, tools: list[dict[str, Any]]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(self._path(key), json.dumps({"key": key, "tools": tools}).encode("utf-8"))
            for older in self.folder.glob(f"{CACHE_PREFIX}*.json"):
                if older.name != self._path(key).name:
                    older.unlink(missing_ok=True)
        except OSError as error:  # a read-only home: the next start builds the list again, nothing else changes
            logger.info("could not store the tool list cache in %s: %s", self.folder, error)


class DeferredToolsServer(MCPServer):
    """MCPServer whose tools and resource templates are built on first use and whose tools/list answer comes from a
    ToolListCache.

    Relies on MCPServer keeping its ToolManager in `_tool_manager` and its ResourceManager in `_resource_manager`
    (mcp 2.3, pinned <2.4 in pyproject)."""

    def __init__(self, *args: Any, tool_list_cache: ToolListCache | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._tool_manager = DeferredToolManager(warn_on_duplicate_tools=self.settings.warn_on_duplicate_tools)
        self._resource_manager = DeferredResourceManager(warn_on_duplicate_resources=self.settings.warn_on_duplicate_resources)
        self._tool_list_cache = tool_list_cache
        self._tool_list_key: str | None = None

    def seal_tool_list(self) -> None:
        """Called once every tool is registered: fixes the cache key while only start-up modules are loaded."""
        if self._tool_list_cache is not None:
            self._tool_list_key = tool_list_key(self._tool_manager)

    async def list_tools(self) -> list[MCPTool]:
        cache, key = self._tool_list_cache, self._tool_list_key
        if cache is None or key is None:
            return await super().list_tools()
        stored = cache.load(key)
        if stored is not None:
            try:
                return [MCPTool.model_validate(tool) for tool in stored]
            except ValueError:
                logger.info("ignoring an unreadable tool list cache")
        tools = await super().list_tools()
        cache.store(key, [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools])
        return tools
