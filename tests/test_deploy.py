"""Deployment: the evaluation gate (refuses worse, accepts better), force recorded, rollback, agents://, prompt_model(agent=)."""

from __future__ import annotations

import json
import secrets

import pytest
from mcp import Client

from model_customization.deployments import agent_assignments, deploy_model, deployed_model, list_agents, rollback
from model_customization.errors import NotFoundError, UserError
from model_customization.evaluation.statistics import compare

# Cloud model names: deployments only resolve them, nothing is called, so the gate tests need no model at all.
CURRENT = "gpt-4o-mini"
CANDIDATE = "gpt-4.1-mini"
THIRD = "gpt-4.1-nano"


def record_evaluation(ws, per_model_scores: dict[str, list[float]], metric: str = "token_f1") -> str:
    """Store an evaluation the way evaluation.runner.evaluate does: report.json with comparisons, cases.jsonl, a ledger row."""
    eval_id = "ev-" + secrets.token_hex(6)
    models = list(per_model_scores)
    folder = ws.settings.evals_dir / eval_id
    folder.mkdir(parents=True)
    n_cases = len(next(iter(per_model_scores.values())))
    comparisons = [{**c, "metric": metric} for c in compare(per_model_scores, baseline=models[0], n_resamples=999)]
    report = {"id": eval_id, "models": models, "cases": n_cases, "primary_metric": metric, "comparisons": comparisons}
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    with (folder / "cases.jsonl").open("w", encoding="utf-8") as handle:
        for case in range(n_cases):
            outputs = {m: {"text": "", metric: scores[case]} for m, scores in per_model_scores.items()}
            handle.write(json.dumps({"case": case, "outputs": outputs}) + "\n")
    ws.store.evaluations.add({"id": eval_id, "dataset_id": "ds-test", "models": models, "status": "succeeded", "summary": {}, "path": str(folder)})
    return eval_id


LOW = [0.2, 0.25, 0.1, 0.3, 0.2, 0.15, 0.22, 0.18, 0.3, 0.1, 0.2, 0.25]
HIGH = [0.8, 0.7, 0.9, 0.75, 0.85, 0.8, 0.78, 0.9, 0.7, 0.88, 0.8, 0.82]
MIXED = [0.25, 0.2, 0.15, 0.25, 0.25, 0.1, 0.22, 0.2, 0.25, 0.15, 0.2, 0.2]  # as good as LOW: no significant difference


@pytest.fixture(autouse=True)
def default_gate(monkeypatch):
    monkeypatch.delenv("MODEL_CUSTOMIZATION_DEPLOY_GATE", raising=False)


def test_first_deployment_needs_no_evaluation(ws):
    change = deploy_model(ws, "support-bot", CURRENT)
    assert change["gate"] == "first" and change["model"] == CURRENT and not change["forced"]
    assert deployed_model(ws, "support-bot") == CURRENT


def test_gate_refuses_without_evaluation_and_names_evaluate_with_both_models(ws):
    deploy_model(ws, "support-bot", CURRENT)
    with pytest.raises(UserError) as refused:
        deploy_model(ws, "support-bot", CANDIDATE)
    assert "evaluate" in str(refused.value) and CURRENT in str(refused.value) and CANDIDATE in str(refused.value)
    assert deployed_model(ws, "support-bot") == CURRENT
    assert len(agent_assignments(ws, "support-bot")["history"]) == 1


def test_gate_refuses_a_worse_model_and_accepts_a_better_one(ws):
    deploy_model(ws, "support-bot", CURRENT)
    worse = record_evaluation(ws, {CURRENT: HIGH, CANDIDATE: LOW})
    with pytest.raises(UserError, match="significantly worse"):
        deploy_model(ws, "support-bot", CANDIDATE)
    assert deployed_model(ws, "support-bot") == CURRENT
    # The newest evaluation holding both decides; this one shows the candidate better.
    better = record_evaluation(ws, {CURRENT: LOW, CANDIDATE: HIGH})
    change = deploy_model(ws, "support-bot", CANDIDATE)
    assert change["eval_id"] == better and change["gate"] == "not_worse"
    assert change["comparison"]["mean_difference"] > 0 and change["comparison"]["significant"]
    assert deployed_model(ws, "support-bot") == CANDIDATE
    # Naming the older, worse evaluation explicitly is refused for the next swap the other way round too.
    with pytest.raises(UserError, match="significantly worse"):
        deploy_model(ws, "support-bot", CURRENT, eval_id=better)
    with pytest.raises(UserError, match="not both"):
        deploy_model(ws, "support-bot", THIRD, eval_id=worse)


def test_gate_reads_the_comparison_whichever_way_round_the_models_were_listed(ws):
    deploy_model(ws, "bot", CURRENT)
    # The candidate is the evaluation's baseline here: its advantage shows as a negative mean_difference there.
    eval_id = record_evaluation(ws, {CANDIDATE: HIGH, CURRENT: LOW})
    change = deploy_model(ws, "bot", CANDIDATE)
    assert change["eval_id"] == eval_id and change["comparison"]["mean_difference"] > 0
    # A pair the report has no comparison for (neither is the first model) is compared from the per-case scores.
    record_evaluation(ws, {"gpt-4o": MIXED, CANDIDATE: HIGH, THIRD: LOW})
    with pytest.raises(UserError, match="significantly worse"):
        deploy_model(ws, "bot", THIRD)


def test_not_worse_accepts_no_significant_difference_but_better_gate_refuses_it(ws, monkeypatch):
    deploy_model(ws, "bot", CURRENT)
    record_evaluation(ws, {CURRENT: LOW, CANDIDATE: MIXED})
    monkeypatch.setenv("MODEL_CUSTOMIZATION_DEPLOY_GATE", "better")
    with pytest.raises(UserError, match="not significantly better"):
        deploy_model(ws, "bot", CANDIDATE)
    monkeypatch.setenv("MODEL_CUSTOMIZATION_DEPLOY_GATE", "not_worse")
    assert deploy_model(ws, "bot", CANDIDATE)["gate"] == "not_worse"
    monkeypatch.setenv("MODEL_CUSTOMIZATION_DEPLOY_GATE", "off")
    assert deploy_model(ws, "bot", THIRD)["gate"] == "off"  # no evaluation of THIRD exists
    monkeypatch.setenv("MODEL_CUSTOMIZATION_DEPLOY_GATE", "lenient")
    with pytest.raises(UserError, match="not_worse, better, off"):
        deploy_model(ws, "bot", CURRENT)


def test_force_skips_the_gate_and_is_recorded(ws):
    deploy_model(ws, "bot", CURRENT)
    record_evaluation(ws, {CURRENT: HIGH, CANDIDATE: LOW})
    with pytest.raises(UserError, match="reason"):
        deploy_model(ws, "bot", CANDIDATE, force=True)
    change = deploy_model(ws, "bot", CANDIDATE, force=True, reason="hotfix: current model leaks a path")
    assert change["forced"] and change["gate"] == "forced" and change["previous_model"] == CURRENT
    entry = agent_assignments(ws, "bot")["history"][-1]
    assert entry["forced"] and entry["reason"] == "hotfix: current model leaks a path" and entry["actor"]


def test_rollback_steps_back_through_history(ws):
    with pytest.raises(NotFoundError, match="deploy_model"):
        rollback(ws, "bot")
    deploy_model(ws, "bot", CURRENT)
    with pytest.raises(UserError, match="no earlier assignment"):
        rollback(ws, "bot")
    record_evaluation(ws, {CURRENT: LOW, CANDIDATE: HIGH})
    deploy_model(ws, "bot", CANDIDATE)
    record_evaluation(ws, {CANDIDATE: LOW, THIRD: HIGH})
    deploy_model(ws, "bot", THIRD)

    back = rollback(ws, "bot")
    assert back["action"] == "rollback" and back["model"] == CANDIDATE and back["previous_model"] == THIRD
    assert deployed_model(ws, "bot") == CANDIDATE
    assert rollback(ws, "bot")["model"] == CURRENT
    with pytest.raises(UserError, match="no earlier assignment"):
        rollback(ws, "bot")
    history = agent_assignments(ws, "bot")["history"]
    assert [(h["action"], h["model"]) for h in history] == [
        ("deploy", CURRENT), ("deploy", CANDIDATE), ("deploy", THIRD), ("rollback", CANDIDATE), ("rollback", CURRENT),
    ]  # fmt: skip


def test_task_models_fall_back_to_the_default_and_are_gated_against_it(ws):
    deploy_model(ws, "bot", CURRENT)
    with pytest.raises(UserError, match="evaluate"):
        deploy_model(ws, "bot", CANDIDATE, task="sql")  # it replaces the default for that task: gated too
    eval_id = record_evaluation(ws, {CURRENT: LOW, CANDIDATE: HIGH})
    deploy_model(ws, "bot", CANDIDATE, task="sql")
    assert deployed_model(ws, "bot", "sql") == CANDIDATE
    assert deployed_model(ws, "bot", "email") == CURRENT
    assert deployed_model(ws, "bot") == CURRENT
    view = agent_assignments(ws, "bot")
    assert [(a["task"], a["model"], a["eval_id"]) for a in view["assignments"]] == [(None, CURRENT, None), ("sql", CANDIDATE, eval_id)]
    assert list_agents(ws) == [{"agent": "bot", "uri": "agents://bot", "models": {"(default)": CURRENT, "sql": CANDIDATE}}]
    with pytest.raises(NotFoundError, match="deploy_model"):
        deployed_model(ws, "nobody")
    with pytest.raises(UserError, match="Agent name"):
        deploy_model(ws, "bad name/", CURRENT)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _text(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


@pytest.mark.anyio
async def test_mcp_deploy_resource_and_prompt_by_agent(ws, tiny_model):
    from model_customization.server.app import build_server

    async with Client(build_server(ws=ws)) as client:
        missing = await client.call_tool("prompt_model", {"agent": "helper", "prompt": "hi"})
        assert missing.is_error and "deploy_model" in _text(missing)

        deployed = await client.call_tool("deploy_model", {"agent": "helper", "model": str(tiny_model)})
        assert not deployed.is_error, _text(deployed)
        assert deployed.structured_content["gate"] == "first"

        by_agent = await client.call_tool("prompt_model", {"agent": "helper", "prompt": "Say hi", "max_tokens": 4})
        assert not by_agent.is_error, _text(by_agent)
        direct = await client.call_tool("prompt_model", {"model": str(tiny_model), "prompt": "Say hi", "max_tokens": 4})
        assert by_agent.structured_content["model"] == direct.structured_content["model"]
        assert by_agent.structured_content["text"] == direct.structured_content["text"]  # greedy: the same model answers alike

        both = await client.call_tool("prompt_model", {"agent": "helper", "model": str(tiny_model), "prompt": "hi"})
        assert both.is_error and "not both" in _text(both)

        refused = await client.call_tool("deploy_model", {"agent": "helper", "model": CANDIDATE})
        assert refused.is_error and "evaluate" in _text(refused)
        forced = await client.call_tool("deploy_model", {"agent": "helper", "model": CANDIDATE, "force": True, "reason": "trial"})
        assert forced.structured_content["forced"] is True

        agent_view = json.loads((await client.read_resource("agents://helper")).contents[0].text)
        assert agent_view["assignments"][0]["model"] == CANDIDATE
        assert [h["gate"] for h in agent_view["history"]] == ["first", "forced"]
        index = json.loads((await client.read_resource("agents://index")).contents[0].text)
        assert index == [{"agent": "helper", "uri": "agents://helper", "models": {"(default)": CANDIDATE}}]

        rolled = await client.call_tool("rollback_deployment", {"agent": "helper"})
        assert not rolled.is_error and rolled.structured_content["model"] == direct.structured_content["model"]


def test_cli_deploys_refuses_and_rolls_back(ws, tmp_path):
    from typer.testing import CliRunner

    from model_customization.cli import app

    home = str(ws.settings.home)
    runner = CliRunner()
    first = runner.invoke(app, ["agent", "deploy", "opsbot", "claude-first", "--home", home, "--json"])
    assert first.exit_code == 0, first.output
    refused = runner.invoke(app, ["agent", "deploy", "opsbot", "claude-second", "--home", home])
    assert refused.exit_code == 1 and "evaluate" in refused.output
    forced = runner.invoke(app, ["agent", "deploy", "opsbot", "claude-second", "--force", "--reason", "incident 42", "--home", home, "--json"])
    assert forced.exit_code == 0, forced.output
    assert deployed_model(ws, "opsbot") == "claude-second"
    back = runner.invoke(app, ["agent", "rollback", "opsbot", "--home", home, "--json"])
    assert back.exit_code == 0, back.output
    assert deployed_model(ws, "opsbot") == "claude-first"
    shown = json.loads(runner.invoke(app, ["agent", "show", "opsbot", "--home", home]).output)
    assert shown["agent"] == "opsbot" and len(shown["history"]) == 3
