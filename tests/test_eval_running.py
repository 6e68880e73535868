"""How an evaluation runs: bounded concurrency, retries of transient provider failures, per-provider rate limits,
pieces stored as they come, and resuming an interrupted run (after an error, an interrupt, or a killed process).

Cloud models are Claude models behind the Anthropic fake (tests/anthropic_fake.py) at the HTTP boundary; the
local-model tests use the tiny random Llama and kill a real evaluation process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from anthropic_fake import ApiErrorReply, FakeAnthropic

from model_customization.errors import TransientError, UserError
from model_customization.evaluation import runner
from model_customization.evaluation.runner import evaluate, get_evaluation

KEY = "sk-ant-test-running-0123456789"
FAST, SLOW = "anthropic:claude-fast", "anthropic:claude-slow"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    from model_customization.providers.anthropic.client import use_http_client

    fake_api = FakeAnthropic(api_key=KEY, responder=_capital_answers)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setattr(runner, "RETRY_BASE_SECONDS", 0.01)
    use_http_client(fake_api.http_client())
    yield fake_api
    use_http_client(None)


def _capital_answers(body: dict[str, Any]) -> str:
    """claude-fast knows every capital; claude-slow only the even ones."""
    question = body["messages"][-1]["content"]
    land = question.split()[-1].rstrip("?")
    number = int(land.removeprefix("Land"))
    if body["model"] == "claude-fast" or number % 2 == 0:
        return f"{land}ville"
    return "I do not know."


def _suite(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "capitals.jsonl"
    cases = [{"messages": [{"role": "user", "content": f"Capital of Land{i}?"}], "reference": f"Land{i}ville"} for i in range(count)]
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


def _answers(report_or_id: Any, ws) -> dict[tuple[int, str], str]:
    eval_id = report_or_id if isinstance(report_or_id, str) else report_or_id["id"]
    cases = get_evaluation(ws, eval_id, cases=10_000)["per_case"]
    return {(c["case"], m): o["text"] for c in cases for m, o in c["outputs"].items()}


def test_an_evaluation_stopped_by_an_error_resumes_with_only_the_missing_pieces(ws, fake, tmp_path):
    suite = _suite(tmp_path, 12)
    failed_once = threading.Event()

    def flaky(body: dict[str, Any]) -> str:
        if body["model"] == "claude-slow" and "Land7?" in body["messages"][-1]["content"] and not failed_once.is_set():
            failed_once.set()
            raise ApiErrorReply(400, "invalid_request_error", "this request is refused once")
        return _capital_answers(body)

    fake.responder = flaky
    with pytest.raises(UserError) as stopped:
        evaluate(ws, None, [FAST, SLOW], suite=suite, concurrency=3)
    message = str(stopped.value)
    assert "claude-slow could not answer case 7" in message and "refused once" in message
    [row] = ws.store.evaluations.all()
    eval_id = row["id"]
    assert row["status"] == "interrupted" and "case 7" in row["error"]
    assert f"resume={eval_id!r}" in message
    stored = ws.store.evaluations.results(eval_id)
    assert 0 < len(stored) < 24 and (7, "answer:anthropic:claude-slow") not in {(p["case_index"], p["unit"]) for p in stored}
    assert get_evaluation(ws, eval_id)["status"] == "interrupted"

    requests_before = len(fake.requests)
    resumed = evaluate(ws, resume=eval_id, concurrency=3)
    # Only the pieces not stored were asked for again, and the run finished as if it had never stopped.
    assert len(fake.requests) - requests_before == 24 - len(stored)
    assert resumed["id"] == eval_id and resumed["resumed"] is True and resumed["cases"] == 12
    assert ws.store.evaluations.get(eval_id)["status"] == "succeeded"
    assert resumed["summary"][FAST]["exact_match"] == 1.0 and resumed["summary"][SLOW]["exact_match"] == 0.5
    fresh = evaluate(ws, None, [FAST, SLOW], suite=suite)
    assert _answers(resumed, ws) == _answers(fresh, ws)
    def untimed(summary: dict[str, Any]) -> dict[str, Any]:
        return {m: {k: v for k, v in s.items() if not k.startswith("latency")} for m, s in summary.items()}

    assert untimed(fresh["summary"]) == untimed(resumed["summary"])
    # Resuming a finished evaluation asks nothing more and returns its report.
    requests_done = len(fake.requests)
    again = evaluate(ws, resume=eval_id)
    assert len(fake.requests) == requests_done and again["summary"] == resumed["summary"]


def test_resume_refuses_other_settings_and_a_changed_suite(ws, fake, tmp_path):
    suite = _suite(tmp_path, 4)
    fake.fail_next(400, "invalid_request_error", "no")
    with pytest.raises(UserError):
        evaluate(ws, None, [FAST, SLOW], suite=suite, concurrency=1)
    [row] = ws.store.evaluations.all()
    with pytest.raises(UserError, match="leave models out"):
        evaluate(ws, None, [FAST, "anthropic:claude-other"], resume=row["id"])
    suite.write_text(suite.read_text().replace("Land3", "Land33"), encoding="utf-8")
    with pytest.raises(UserError, match="cases of .* changed"):
        evaluate(ws, resume=row["id"])
    with pytest.raises(UserError, match="not found"):
        evaluate(ws, resume="ev-000000000000")


def test_transient_failures_are_retried_and_counted_until_the_retries_run_out(ws, fake, tmp_path, monkeypatch):
    suite = _suite(tmp_path, 6)
    # Each 529 (overloaded) comes back with retry-after 0, so the SDK's own retries and ours wait no time.
    fake.fail_next(529, "overloaded_error", "Overloaded", times=7, headers={"retry-after": "0"})
    report = evaluate(ws, None, [FAST, SLOW], suite=suite, concurrency=2)
    assert report["summary"][FAST]["exact_match"] == 1.0
    assert len(fake.requests) == 12 + 7  # every answer, plus one request per failure

    monkeypatch.setenv(runner.RETRIES_ENV, "0")
    fake.fail_next(529, "overloaded_error", "Overloaded", times=3, headers={"retry-after": "0"})  # the SDK's 3 tries of one call
    with pytest.raises(TransientError, match="overloaded"):
        evaluate(ws, None, [FAST, SLOW], suite=suite, concurrency=1)
    assert ws.store.evaluations.all()[0]["status"] == "interrupted"


def test_calls_are_bounded_by_concurrency_and_spaced_by_the_providers_rate_limit(ws, fake, tmp_path, monkeypatch):
    suite = _suite(tmp_path, 12)
    in_flight, peak, started = [0], [0], []
    lock = threading.Lock()

    def slow(body: dict[str, Any]) -> str:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            started.append(time.monotonic())
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return _capital_answers(body)

    fake.responder = slow
    evaluate(ws, None, [FAST, SLOW], suite=suite, concurrency=4)
    assert peak[0] == 4  # reached, never passed

    # 600 requests a minute: one every 0.1 s, whatever the concurrency.
    monkeypatch.setenv("MODEL_CUSTOMIZATION_RPM_ANTHROPIC", "600")
    started.clear()
    evaluate(ws, None, [FAST, SLOW], suite=_suite(tmp_path, 4), concurrency=8)
    gaps = [b - a for a, b in zip(started, started[1:])]
    assert len(started) == 8 and min(gaps) >= 0.09
    monkeypatch.setenv("MODEL_CUSTOMIZATION_RPM_ANTHROPIC", "fast")
    with pytest.raises(UserError, match="requests per minute"):
        evaluate(ws, None, [FAST, SLOW], suite=_suite(tmp_path, 4))


def test_progress_counts_every_piece_once_and_ends_at_the_total(ws, fake, tmp_path):
    seen: list[tuple[int, int]] = []
    evaluate(ws, None, [FAST, SLOW], suite=_suite(tmp_path, 10), concurrency=5, progress=lambda done, total, note: seen.append((done, total)))
    assert seen[-1] == (20, 20)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_killed_evaluation_process_resumes_to_the_same_result(ws, tiny_model, tmp_path):
    """A real crash: the evaluating process is killed; the ledger still says running; resume finishes the job."""
    from model_customization.datasets.build import store_examples

    twin = tmp_path / "tiny-twin"
    shutil.copytree(tiny_model, twin)
    examples = [("train", _example(0))] + [("test", _example(i)) for i in range(1, 17)]
    card = {"conversations_read": 17, "sources": [], "formats": {}, "dropped": {}, "unreadable": {"count": 0, "first": []}, "options": {}}
    dataset_id, _, _ = store_examples(ws, examples, name="lands", method="sft", card_fields=card)
    script = textwrap.dedent(
        f"""
        from model_customization.workspace import Workspace
        from model_customization.evaluation.runner import evaluate
        ws = Workspace.open({str(ws.settings.home)!r})
        evaluate(ws, {dataset_id!r}, [{str(tiny_model)!r}, {str(twin)!r}], batch_size=1, max_tokens=24)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        eval_id = None
        while time.monotonic() < deadline:
            rows = ws.store.evaluations.all()
            if rows and len(ws.store.evaluations.results(rows[0]["id"])) >= 4:
                eval_id = rows[0]["id"]
                break
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        assert eval_id, "the evaluation stored nothing within 2 minutes"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert ws.store.evaluations.get(eval_id)["status"] == "running"  # nobody lived to say otherwise
    stored = len(ws.store.evaluations.results(eval_id))
    total = 16 * 2 * 2  # an answer and a reference likelihood per case and model
    assert stored < total

    resumed = evaluate(ws, resume=eval_id)
    assert resumed["resumed"] is True and ws.store.evaluations.get(eval_id)["status"] == "succeeded"
    assert len(ws.store.evaluations.results(eval_id)) == total
    fresh = evaluate(ws, dataset_id, [str(tiny_model), str(twin)], batch_size=1, max_tokens=24)
    assert _answers(resumed, ws) == {(c, m): t for (c, m), t in _answers(fresh, ws).items()}
    for model in resumed["models"]:
        assert resumed["summary"][model]["perplexity"] == pytest.approx(fresh["summary"][model]["perplexity"], rel=1e-6)
        assert resumed["summary"][model]["token_f1"] == fresh["summary"][model]["token_f1"]


def _example(i: int) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": f"Capital of Land{i}?"}, {"role": "assistant", "content": f"Land{i}ville"}]}


def test_the_deploy_gate_takes_only_a_whole_evaluation_of_the_agents_cases_as_they_are_now(ws, fake, tmp_path):
    from model_customization.deployments import agent_assignments, deploy_model, set_agent_suite

    suite = _suite(tmp_path, 12)
    other = tmp_path / "other"
    other.mkdir()
    other_suite = _suite(other, 12)
    named = set_agent_suite(ws, "geo-bot", suite=suite)
    assert named["cases"] == 12 and named["suite"] == str(suite.resolve())
    assert agent_assignments(ws, "geo-bot")["suites"][0]["cases_sha256"] == named["cases_sha256"]
    deploy_model(ws, "geo-bot", SLOW)  # the first model needs no evidence

    # The better model, but judged on other cases, or on part of the agent's: refused, and told what to run.
    evaluate(ws, None, [SLOW, FAST], suite=other_suite)
    with pytest.raises(UserError, match="No finished evaluation .* on the agent's cases") as refused:
        deploy_model(ws, "geo-bot", FAST)
    assert f"suite={str(suite.resolve())!r}" in str(refused.value)
    partial = evaluate(ws, None, [SLOW, FAST], suite=suite, limit=6)
    with pytest.raises(UserError, match="not run on the whole of the agent's cases"):
        deploy_model(ws, "geo-bot", FAST, eval_id=partial["id"])

    whole = evaluate(ws, None, [SLOW, FAST], suite=suite)
    assert whole["comparisons"][0]["significant"] and whole["comparisons"][0]["mean_difference"] == 0.5
    change = deploy_model(ws, "geo-bot", FAST)
    assert change["eval_id"] == whole["id"] and change["gate"] == "not_worse"

    # Going back to the worse model is refused on the same evidence (significantly worse), and an edited suite
    # makes the old evaluation stale: it no longer describes the cases the agent is judged on.
    with pytest.raises(UserError):
        deploy_model(ws, "geo-bot", SLOW)
    suite.write_text(suite.read_text().replace("Land11", "Land12"), encoding="utf-8")
    with pytest.raises(UserError, match="No finished evaluation"):
        deploy_model(ws, "geo-bot", "anthropic:claude-other")


def test_the_cli_runs_a_suite_resumes_it_lists_and_shows_the_markdown_report(ws, fake, tmp_path):
    from typer.testing import CliRunner

    from model_customization.cli import app

    def cli(*args: str):
        result = CliRunner().invoke(app, [*args, "--home", str(ws.settings.home)])
        assert KEY not in result.output
        return result

    suite = _suite(tmp_path, 12)
    fake.fail_next(400, "invalid_request_error", "refused for now")
    stopped = cli("eval", "run", "--suite", str(suite), FAST, SLOW, "--concurrency", "2")
    assert stopped.exit_code == 1 and "resume=" in " ".join(stopped.output.split())
    [row] = ws.store.evaluations.all()
    listed = cli("eval", "list", "--json")
    assert json.loads(listed.output)[0] | {"models": None} == {"eval_id": row["id"], "status": "interrupted", "source": f"suite:{suite.resolve()}", "models": None, "error": row["error"]}

    chart = tmp_path / "scores.png"
    done = cli("eval", "run", "--resume", row["id"], "--chart", str(chart))
    assert done.exit_code == 0, done.output
    flat = " ".join(done.output.split())
    assert "anthropic:claude-fast better than anthropic:claude-slow at 95%" in flat and f"evals://{row['id']}/report.md" in flat
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    markdown = cli("eval", "show", row["id"], "--markdown")
    assert markdown.exit_code == 0 and row["id"] in markdown.output and "differ most" in markdown.output
    assert cli("eval", "run", FAST, SLOW).exit_code == 1  # neither a dataset nor a suite


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_evaluate_tool_resumes_and_returns_the_chart_as_an_image(ws, fake, tmp_path, monkeypatch):
    from mcp import Client
    from mcp.types import ElicitResult

    from model_customization.server.app import build_server

    # claude-fast without a price: the user is asked about an unknown cost (and accepts), which stays unknown.
    monkeypatch.setenv("MODEL_CUSTOMIZATION_CHAT_PRICES", json.dumps({"claude-slow": [3, 15]}))

    async def accept(context, params):
        return ElicitResult(action="accept", content={"confirm": True})

    suite = _suite(tmp_path, 12)
    fake.fail_next(400, "invalid_request_error", "refused for now")
    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        stopped = await client.call_tool("evaluate", {"models": [FAST, SLOW], "suite": str(suite), "concurrency": 2})
        assert stopped.is_error and "resume=" in stopped.content[0].text
        [row] = ws.store.evaluations.all()
        resumed = await client.call_tool("evaluate", {"resume": row["id"], "include_chart": True})
        assert not resumed.is_error, resumed.content
        result = resumed.structured_content
        assert result["eval_id"] == row["id"] and result["resumed"] is True and result["cases"] == 12
        assert result["comparisons"][0]["verdict"].startswith("anthropic:claude-fast better than")
        assert result["scores"][FAST]["cost_usd"] is None  # no price known for this made-up model: unknown, not 0
        images = [c for c in resumed.content if c.type == "image"]
        assert len(images) == 1 and images[0].mime_type == "image/png"
        assert json.loads(resumed.content[0].text)["eval_id"] == row["id"]
        index = json.loads((await client.read_resource("evals://index")).contents[0].text)
        assert [e["eval_id"] for e in index] == [row["id"]] and index[0]["status"] == "succeeded"


@pytest.mark.anyio
async def test_a_bug_inside_the_evaluation_reaches_the_agent_as_an_error_id_not_a_traceback(ws, monkeypatch, caplog):
    from mcp import Client

    from model_customization.server.app import build_server

    async def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise KeyError("summary")

    monkeypatch.setattr(runner, "evaluate_async", broken)
    async with Client(build_server(ws=ws)) as client:
        result = await client.call_tool("evaluate", {"models": [FAST, SLOW], "suite": "cases.jsonl"})
    text = result.content[0].text
    assert result.is_error and "Internal error " in text and "KeyError" not in text and "Traceback" not in text
    error_id = text.split("Internal error ", 1)[1].split()[0]
    assert any(error_id in record.getMessage() and record.exc_info for record in caplog.records)
