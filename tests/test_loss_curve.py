"""The loss curve: PNG from the ledger's metrics, the jobs://{id}/loss.png and /events resources, check_job's image, CLI.

Metrics are written straight into a ledger (as the training worker writes them), so no model trains here.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from PIL import Image

from model_customization.errors import NotFoundError, UserError
from model_customization.jobs.plots import (
    DPI,
    HEIGHT_INCHES,
    TRAIN_COLOUR,
    VALIDATION_COLOUR,
    WIDTH_INCHES,
    epoch_boundaries,
    loss_curve_png,
    smooth,
)
from model_customization.server.app import build_server
from model_customization.workspace import Workspace

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE = (round(WIDTH_INCHES * DPI), round(HEIGHT_INCHES * DPI))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- helpers ------------------------------------------------------------------------------------------------


def add_job(ws: Workspace, job_id: str = "job-plot", status: str = "running", base_model: str = "SmolLM2-135M-Instruct") -> str:
    if not ws.store.datasets.get("ds-plot"):
        ws.store.datasets.add({"id": "ds-plot", "name": "plot", "created_at": 0.0, "path": "/nowhere", "counts": {"train": 10}, "card": {}})
    ws.store.jobs.add(
        {"id": job_id, "provider": "local", "base_model": base_model, "dataset_id": "ds-plot", "method": "sft", "hyperparameters": {}, "status": status}
    )
    return job_id


def train(ws: Workspace, job_id: str, steps_per_epoch: int = 10, epochs: int = 2, validation: bool = True, bump: float = 0.0) -> None:
    """Write metrics the way the worker does: one row per step (fractional epoch), one validation row per epoch."""
    total = steps_per_epoch * epochs
    step = 0
    for epoch in range(epochs):
        for i in range(steps_per_epoch):
            step += 1
            fraction = epoch + (i + 1) / steps_per_epoch
            loss = 1.0 + 2.0 * math.exp(-step / (total / 3)) + 0.1 * math.sin(step) + (bump if step == 3 else 0.0)
            lr = 1e-3 * (1 - step / total)
            ws.store.jobs.record_step(
                job_id,
                {"step": step, "epoch": fraction, "train_loss": loss, "learning_rate": lr, "tokens_per_second": 150.0},
                step=step, epoch=fraction, train_loss=loss, total_steps=total,
            )
        if validation:
            ws.store.jobs.add_metric(job_id, step=step, epoch=float(epoch + 1), validation_loss=1.2 + 1.5 * math.exp(-step / (total / 3)))


def decode(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


def pixels_near(image: Image.Image, hex_colour: str, tolerance: int = 12) -> int:
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(np.asarray(image, dtype=int) - target) <= tolerance).all(axis=2).sum())


# --- the PNG ------------------------------------------------------------------------------------------------


def test_png_decodes_at_the_fixed_size_without_version_or_time_text(ws):
    job_id = add_job(ws)
    train(ws, job_id)
    png = loss_curve_png(ws, job_id)
    image = decode(png)
    assert image.size == SIZE
    # No tEXt chunk naming matplotlib's version, and no creation time: equal data must give equal bytes.
    assert b"Software" not in png and b"matplotlib" not in png.lower() and b"Creation Time" not in png
    assert pixels_near(image, TRAIN_COLOUR) > 200
    assert pixels_near(image, VALIDATION_COLOUR) > 50


def test_equal_data_gives_equal_bytes_and_different_data_different_bytes(ws, tmp_path):
    job_id = add_job(ws)
    train(ws, job_id)
    first = loss_curve_png(ws, job_id)
    assert loss_curve_png(ws, job_id) == first

    # Same metrics in another data home, written at other times: same bytes.
    other = Workspace.open(tmp_path / "other-home")
    try:
        train(other, add_job(other))
        assert loss_curve_png(other, job_id) == first
    finally:
        other.store.close()

    changed = add_job(ws, "job-bumped")
    train(ws, changed, bump=0.8)
    bumped = loss_curve_png(ws, changed)
    assert bumped != first
    # Not just the title: the drawing itself differs.
    a, b = decode(first), decode(bumped)
    assert int((np.asarray(a) != np.asarray(b)).any(axis=2).sum()) > 100


def test_validation_loss_is_drawn_only_when_recorded(ws):
    with_validation = add_job(ws, "job-val")
    train(ws, with_validation, validation=True)
    without = add_job(ws, "job-noval")
    train(ws, without, validation=False)
    assert pixels_near(decode(loss_curve_png(ws, with_validation)), VALIDATION_COLOUR) > 50
    assert pixels_near(decode(loss_curve_png(ws, without)), VALIDATION_COLOUR) == 0


def test_long_runs_are_smoothed_and_odd_values_do_not_break_the_plot(ws):
    long_job = add_job(ws, "job-long", base_model="/very/long/path/to/models/my-llama")
    train(ws, long_job, steps_per_epoch=150, epochs=2)
    ws.store.jobs.record_step(long_job, {"step": 301, "epoch": 2.01, "train_loss": float("nan"), "learning_rate": None}, step=301)
    ws.store.jobs.record_step(long_job, {"step": 302, "epoch": 2.02, "train_loss": float("inf"), "learning_rate": None}, step=302)
    image = decode(loss_curve_png(ws, long_job))
    assert image.size == SIZE
    single = add_job(ws, "job-one-step")
    ws.store.jobs.record_step(single, {"step": 1, "epoch": 0.1, "train_loss": 2.5, "learning_rate": 1e-4}, step=1)
    assert decode(loss_curve_png(ws, single)).size == SIZE


def test_smooth_is_a_centred_mean_that_shrinks_at_the_ends():
    assert smooth([1.0, 2.0, 3.0, 4.0, 5.0], 3) == [1.5, 2.0, 3.0, 4.0, 4.5]
    assert smooth([1.0, math.nan, 3.0], 3) == [1.0, 2.0, 3.0]
    assert smooth([], 5) == []


def test_epoch_boundaries_follow_the_fractional_epochs():
    rows = [{"step": s, "epoch": s / 4} for s in range(1, 13)]  # 4 steps per epoch, 3 epochs
    assert epoch_boundaries(rows) == [(4, 2), (8, 3)]
    in_progress = [{"step": s, "epoch": s / 4} for s in range(1, 7)]
    assert epoch_boundaries(in_progress) == [(4, 2)]
    assert epoch_boundaries([{"step": 1, "epoch": 0.5}]) == []


def test_no_metrics_and_unknown_job_are_user_errors(ws):
    queued = add_job(ws, "job-queued", status="queued")
    with pytest.raises(UserError, match="no metrics yet.*check_job"):
        loss_curve_png(ws, queued)
    failed = add_job(ws, "job-failed", status="failed")
    with pytest.raises(UserError, match="ended \\(failed\\) before its first training step"):
        loss_curve_png(ws, failed)
    with pytest.raises(NotFoundError, match="list_jobs"):
        loss_curve_png(ws, "job-nope")


# --- MCP: resources and check_job ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_loss_png_and_events_resources(ws):
    job_id = add_job(ws)
    train(ws, job_id)
    for i in range(30):  # more than check_job's window: the resource must hold every one
        ws.store.jobs.add_event(job_id, f"event {i}")
    async with Client(build_server(ws=ws)) as client:
        templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}
        assert templates["jobs://{job_id}/loss.png"].mime_type == "image/png"
        assert templates["jobs://{job_id}/events"].mime_type == "application/json"

        result = await client.read_resource(f"jobs://{job_id}/loss.png")
        assert len(result.contents) == 1
        blob = result.contents[0]
        assert blob.mime_type == "image/png"
        assert not hasattr(blob, "text")
        png = base64.b64decode(blob.blob)
        assert png == loss_curve_png(ws, job_id)
        assert decode(png).size == SIZE

        result = await client.read_resource(f"jobs://{job_id}/events")
        events = json.loads(result.contents[0].text)
        assert events["job_id"] == job_id
        messages = [e["message"] for e in events["events"]]
        assert messages == ["job created"] + [f"event {i}" for i in range(30)]
        assert all(e["at"].endswith("+00:00") and e["level"] == "info" for e in events["events"])

        # The plain job resource still answers as JSON (the longer templates did not shadow it).
        detail = json.loads((await client.read_resource(f"jobs://{job_id}")).contents[0].text)
        assert detail["job_id"] == job_id and len(detail["metrics"]) == 22


@pytest.mark.anyio
async def test_loss_png_resource_errors_say_what_to_do(ws):
    queued = add_job(ws, "job-queued", status="queued")
    async with Client(build_server(ws=ws)) as client:
        with pytest.raises(MCPError, match="no metrics yet.*check_job"):
            await client.read_resource(f"jobs://{queued}/loss.png")
        with pytest.raises(MCPError, match="list_jobs"):
            await client.read_resource("jobs://job-nope/loss.png")
        with pytest.raises(MCPError, match="list_jobs"):
            await client.read_resource("jobs://job-nope/events")


@pytest.mark.anyio
async def test_check_job_returns_the_curve_as_image_content_only_when_asked(ws):
    job_id = add_job(ws)
    train(ws, job_id)
    async with Client(build_server(ws=ws)) as client:
        plain = await client.call_tool("check_job", {"job_id": job_id})
        assert not plain.is_error
        assert [c.type for c in plain.content] == ["text"]
        assert json.loads(plain.content[0].text) == plain.structured_content
        assert plain.structured_content["job_id"] == job_id and plain.structured_content["step"] == 20

        with_curve = await client.call_tool("check_job", {"job_id": job_id, "include_loss_curve": True})
        assert not with_curve.is_error
        assert [c.type for c in with_curve.content] == ["text", "image"]
        image = with_curve.content[1]
        assert image.mime_type == "image/png"
        png = base64.b64decode(image.data)
        assert png == loss_curve_png(ws, job_id)
        assert decode(png).size == SIZE
        # Structured output is unchanged by the image.
        assert with_curve.structured_content == plain.structured_content
        assert json.loads(with_curve.content[0].text) == with_curve.structured_content


@pytest.mark.anyio
async def test_check_job_without_metrics_still_answers_and_unknown_job_names_list_jobs(ws):
    queued = add_job(ws, "job-queued", status="queued")
    async with Client(build_server(ws=ws)) as client:
        result = await client.call_tool("check_job", {"job_id": queued, "include_loss_curve": True})
        assert not result.is_error
        assert result.structured_content["status"] == "queued"
        assert [c.type for c in result.content] == ["text", "text"]
        assert "No loss curve" in result.content[1].text and "check_job" in result.content[1].text

        missing = await client.call_tool("check_job", {"job_id": "job-nope", "include_loss_curve": True})
        assert missing.is_error
        assert "list_jobs" in missing.content[0].text


# --- CLI ----------------------------------------------------------------------------------------------------


def test_cli_job_check_writes_the_png(ws, tmp_path):
    from typer.testing import CliRunner

    from model_customization.cli import app

    job_id = add_job(ws)
    train(ws, job_id)
    queued = add_job(ws, "job-queued", status="queued")
    out = tmp_path / "curve.png"
    runner = CliRunner()
    home = str(ws.settings.home)
    result = runner.invoke(app, ["job", "check", job_id, "--loss-png", str(out), "--home", home])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == loss_curve_png(ws, job_id)

    result = runner.invoke(app, ["job", "check", queued, "--loss-png", str(tmp_path / "none.png"), "--home", home])
    assert result.exit_code == 1
    assert "no metrics yet" in result.output
    assert not (tmp_path / "none.png").exists()


# --- start-up stays light -----------------------------------------------------------------------------------


def test_server_start_and_check_job_without_curve_do_not_import_matplotlib(tmp_path: Path):
    script = textwrap.dedent(
        """
        import sys
        import anyio
        from mcp import Client
        from model_customization.server.app import build_server

        async def main():
            async with Client(build_server(home=sys.argv[1])) as client:
                await client.list_tools()
                await client.list_resource_templates()
                result = await client.call_tool("check_job", {"job_id": "job-nope"})
                assert result.is_error
        anyio.run(main)
        print("HEAVY=" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("matplotlib", "PIL"))))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "MODEL_CUSTOMIZATION_HOME"}
    completed = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "home")], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stderr
    assert "HEAVY=\n" in completed.stdout, completed.stdout
