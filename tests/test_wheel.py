"""`uvx model-customization serve` from the built wheel, as a user without a clone runs it.

The wheel is built from a copy of the sources (the repository's build/ stays untouched), listed to check that the
package data is in it (demo memory, ledger migrations), then run with `uvx --from <wheel>`: uv makes a fresh
environment with the core dependencies from PyPI (torch is not one of them) and the test speaks MCP to it over
stdio. Needs `uv` (the test extra installs it) and PyPI; without uv the test is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import MCP_TOOLS
from test_client_configs import StdioServer, server_env

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / "model_customization"


def find_uvx() -> str | None:
    beside_python = Path(sys.executable).parent / "uvx"
    return str(beside_python) if beside_python.exists() else shutil.which("uvx")


@pytest.fixture(scope="module")
def uvx() -> str:
    found = find_uvx()
    if found is None:
        message = "uvx is not installed: pip install uv (it is in the test extra: pip install -e '.[test]')"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + "; CI must run this test")
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("source")
    shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, copy / name)
    out = tmp_path_factory.mktemp("wheel")
    # --no-build-isolation: the test environment's setuptools builds it, with no download.
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(copy)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    (built,) = out.glob("model_customization-*.whl")
    return built


def test_wheel_holds_every_source_file_and_the_package_data(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    expected = {
        "model_customization/" + path.relative_to(SOURCE).as_posix()
        for path in SOURCE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected - names == set(), "files of the package missing from the wheel (package-data in pyproject.toml)"
    # The demo memory (both formats) and the ledger's migrations, which the server needs at run time.
    assert any(n.startswith("model_customization/demo_data/claude_code/") and n.endswith(".jsonl") for n in names)
    assert any(n.startswith("model_customization/demo_data/openai/") and n.endswith(".jsonl") for n in names)
    for needed in ("store/migrations/alembic.ini", "store/migrations/env.py", "store/migrations/script.py.mako", "store/migrations/versions/0001_baseline.py"):
        assert f"model_customization/{needed}" in names, needed
    assert "model-customization = model_customization.cli:main" in entry_points
    assert "model-customization-server = model_customization.server.__main__:main" in entry_points


def uvx_env(home: Path) -> dict[str, str]:
    env = server_env(home)
    env.pop("PYTHONPATH", None)
    env["UV_PYTHON"] = sys.executable  # the same Python version; uv makes its own environment from it
    return env


def test_uvx_serves_from_the_wheel_without_torch(uvx, wheel, tmp_path):
    env = uvx_env(tmp_path / "home")
    # uvx's environment has no torch: whatever serves below imported none.
    probe = subprocess.run(
        [uvx, "--from", str(wheel), "python", "-c",
         "import importlib.util, json; from model_customization.demo_data import demo_memory_paths; "
         "print(json.dumps({'torch': importlib.util.find_spec('torch') is not None, 'demo': [str(p) for p in demo_memory_paths()]}))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert probe.returncode == 0, f"uvx could not install the wheel (it needs PyPI for the dependencies):\n{probe.stderr[-4000:]}"
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["torch"] is False, "torch is not a core dependency"
    assert all(str(REPO) not in path for path in found["demo"]), "the demo data must come from the installed wheel"

    # A stand-in torch first on the path records any attempt to import it (one caught by an `except ImportError`
    # too): serving and building a dataset must not try.
    tripwire = tmp_path / "tripwire"
    (tripwire / "torch").mkdir(parents=True)
    attempted = tmp_path / "torch-imported"
    (tripwire / "torch" / "__init__.py").write_text(
        f"import pathlib, traceback\npathlib.Path({str(attempted)!r}).write_text(''.join(traceback.format_stack()))\n"
        "raise ImportError('torch is not installed here')\n"
    )
    server = StdioServer([uvx, "--from", str(wheel), "model-customization", "serve"], cwd=tmp_path, env={**env, "PYTHONPATH": str(tripwire)})
    try:
        info = server.initialize(timeout=180)
        assert info["serverInfo"]["name"] == "model-customization"
        assert MCP_TOOLS <= server.tool_names()
        # A real call: the ledger opens (migrations from the wheel) and the wheel's demo memory becomes a dataset.
        result = server.request("tools/call", {"name": "build_dataset_from_memory", "arguments": {"paths": found["demo"], "name": "demo"}}, timeout=120)
        assert not result.get("isError"), result
        counts = result["structuredContent"]["counts"]
        assert counts["train"] >= 10 and counts["test"] > 0
        prompts = {prompt["name"] for prompt in server.request("prompts/list")["prompts"]}
        assert {"specialize_agent", "review_dataset"} <= prompts
    finally:
        code = server.close()
    assert code == 0, "".join(server.stderr)[-4000:]
    assert not attempted.exists(), f"the server imported torch:\n{attempted.read_text() if attempted.exists() else ''}"
