"""Deferred tool building and the cached tools/list answer (server/tool_registry.py): what a client sees is the same
with or without the cache, calls still validate their arguments, and any change to the tools rebuilds the list."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client

from model_customization.server import tool_registry
from model_customization.server.app import build_server
from model_customization.workspace import Workspace


def _listed(server) -> list[dict]:
    async def go():
        async with Client(server) as client:
            return [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in (await client.list_tools()).tools]

    return anyio.run(go)


def _call(server, name: str, arguments: dict):
    async def go():
        async with Client(server) as client:
            return await client.call_tool(name, arguments)

    return anyio.run(go)


def _cache_files(home) -> list:
    return sorted((home / tool_registry.CACHE_FOLDER).glob(f"{tool_registry.CACHE_PREFIX}*.json"))


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace.open(tmp_path / "home")


def test_cached_list_is_what_the_sdk_builds(workspace):
    home = workspace.settings.home
    uncached = build_server(workspace)
    uncached._tool_list_cache = None
    expected = _listed(uncached)

    first = build_server(workspace)
    assert _listed(first) == expected
    assert len(_cache_files(home)) == 1

    second = build_server(workspace)
    assert _listed(second) == expected
    # Served from the file: no tool was built for the listing.
    assert set(second._tool_manager._pending) == {tool["name"] for tool in expected}


def test_calls_on_a_cached_server_validate_and_run(workspace):
    _listed(build_server(workspace))  # writes the cache
    server = build_server(workspace)
    assert _listed(server)
    good = _call(server, "list_jobs", {})
    assert not good.is_error and json.loads(good.content[0].text)["jobs"] == []
    bad = _call(server, "list_jobs", {"limit": "many"})
    assert bad.is_error and "limit" in bad.content[0].text
    unknown = _call(server, "no_such_tool", {})
    assert unknown.is_error and "no_such_tool" in unknown.content[0].text


def test_a_changed_tool_or_source_rebuilds_the_list(workspace, monkeypatch):
    home = workspace.settings.home
    _listed(build_server(workspace))
    [old_file] = _cache_files(home)

    # A new tool registered: a new key, and the listing shows it.
    server = build_server(workspace)

    def echo_words(words: str) -> str:
        """Echo the words back."""
        return words

    server.add_tool(echo_words)
    server.seal_tool_list()
    names = [tool["name"] for tool in _listed(server)]
    assert names[-1] == "echo_words"
    [new_file] = _cache_files(home)
    assert new_file != old_file  # the older key's file is removed

    # Our source changed (an edited tool module): the key changes too.
    monkeypatch.setattr(tool_registry, "_our_source_digest", lambda: "edited")
    edited = build_server(workspace)
    assert "echo_words" not in [tool["name"] for tool in _listed(edited)]
    assert _cache_files(home) != [new_file]


def test_an_unreadable_or_unwritable_cache_is_ignored(workspace):
    home = workspace.settings.home
    expected = _listed(build_server(workspace))
    [cache_file] = _cache_files(home)

    cache_file.write_text("{not json", encoding="utf-8")
    assert _listed(build_server(workspace)) == expected
    assert json.loads(cache_file.read_text(encoding="utf-8"))["tools"] == expected  # rewritten

    cache_file.write_text(json.dumps({"key": "someone else's", "tools": []}), encoding="utf-8")
    assert _listed(build_server(workspace)) == expected

    # The cache folder cannot be created (a file is in the way): the list is built each time, nothing fails.
    for path in _cache_files(home):
        path.unlink()
    (home / tool_registry.CACHE_FOLDER).rmdir()
    (home / tool_registry.CACHE_FOLDER).write_text("in the way", encoding="utf-8")
    assert _listed(build_server(workspace)) == expected


def test_deferred_manager_keeps_sdk_semantics():
    manager = tool_registry.DeferredToolManager()

    def first(text: str) -> str:
        """First."""
        return text

    def second(count: int) -> int:
        """Second."""
        return count

    manager.add_tool(first)
    manager.add_tool(second, name="renamed")
    manager.add_tool(first)  # a duplicate is ignored, as in the SDK
    assert manager.get_tool("missing") is None
    assert [tool.name for tool in manager.list_tools()] == ["first", "renamed"]
    assert manager.get_tool("renamed").parameters["properties"]["count"]["type"] == "integer"
    manager.remove_tool("first")
    assert [tool.name for tool in manager.list_tools()] == ["renamed"]
    with pytest.raises(Exception, match="Unknown tool"):
        manager.remove_tool("first")


def test_every_entry_point_shares_the_cache(monkeypatch):
    """`model-customization serve` loads the CLI package and `model-customization-server` loads server.__main__:
    neither defines a tool, so both find the list the other stored (with different keys they would evict each
    other's file and every start would rebuild the tools)."""
    import sys

    import model_customization.cli  # noqa: F401
    import model_customization.server.__main__  # noqa: F401

    with_launchers = tool_registry._our_source_digest()
    for name in tool_registry.ENTRY_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert tool_registry._our_source_digest() == with_launchers
