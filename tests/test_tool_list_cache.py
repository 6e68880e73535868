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


def _templates_and_read(server, uri: str) -> tuple[list[dict], str]:
    async def go():
        async with Client(server) as client:
            templates = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in (await client.list_resource_templates()).resource_templates]
            return templates, (await client.read_resource(uri)).contents[0].text

    return anyio.run(go)


def test_resource_templates_are_built_on_first_use_and_list_as_the_sdk_builds_them(workspace):
    """The SDK builds an argument model and a JSON schema for each resource template at registration; the server
    defers that to the first listing or read, and clients see the same templates, in the same order."""
    from mcp.server.mcpserver import MCPServer

    from model_customization.resources import catalog

    eager = MCPServer(name="eager")
    catalog.register(eager, workspace)
    expected, _ = _templates_and_read(eager, "jobs://index")

    server = build_server(workspace)
    assert server._resource_manager._templates == {}, "no template is built before one is needed"
    assert len(server._resource_manager._pending_templates) == len(expected)
    listed, jobs_index = _templates_and_read(server, "jobs://index")
    assert listed == expected and json.loads(jobs_index) == []

    # A read before any listing builds them too: the URI reaches the template's function (which knows no such job),
    # rather than "Unknown resource".
    fresh = build_server(workspace)

    async def read_missing_job():
        async with Client(fresh) as client:
            return await client.read_resource("jobs://job-missing")

    with pytest.raises(BaseException) as raised:
        anyio.run(read_missing_job)
    said = repr(raised.value) + repr(getattr(raised.value, "exceptions", ""))
    assert "Job 'job-missing' not found" in said and "Unknown resource" not in said, said


def test_a_malformed_resource_template_still_fails_when_registered(workspace):
    from mcp.shared.uri_template import InvalidUriTemplate

    server = build_server(workspace)
    with pytest.raises(InvalidUriTemplate):
        server._resource_manager.add_template(lambda x: x, uri_template="broken://{x", name="broken")


def test_no_model_of_ours_is_built_when_the_server_starts():
    """Our pydantic models (DeferredModel) build their validators on first use, not while the server starts: the
    cold start goal leaves no room for eighty schema builds. Run in a fresh interpreter, so that nothing this test
    session did before has built them."""
    import subprocess
    import sys

    script = (
        "import pydantic, sys, tempfile\n"
        "from model_customization.server.app import build_server\n"
        "from model_customization.workspace import Workspace\n"
        "build_server(Workspace.open(tempfile.mkdtemp()), dispatch_at_start='soon')\n"
        "def every(cls):\n"
        "    for sub in cls.__subclasses__():\n"
        "        yield sub\n"
        "        yield from every(sub)\n"
        "ours = {c for c in every(pydantic.BaseModel) if c.__module__.startswith('model_customization')}\n"
        "print(len(ours), sorted(c.__qualname__ for c in ours if c.__pydantic_complete__))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert int(out[0]) > 40, "the server defines our request, result and hyperparameter models"
    assert out[1].strip() == "[]", f"built while the server started: {out[1]}"
