"""Pairwise judging in both orders, and suite files (JSONL / YAML cases) for evaluate.

Candidates and judges are fake Claude models: the evaluation's one call into the providers (chat_with_provider, as
the runner imported it) is replaced by deterministic functions, so no test reaches a network or loads a model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from model_customization.errors import UserError
from model_customization.evaluation import runner
from model_customization.evaluation.runner import evaluate, load_suite, parse_pairwise_choice
from model_customization.server.app import build_server

TERSE, THOROUGH = "anthropic:terse", "anthropic:thorough"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _answer_a_b(messages: list[dict[str, Any]]) -> tuple[str, str]:
    text = messages[-1]["content"]
    a = re.search(r"<answer_a>\n(.*?)\n</answer_a>", text, re.S).group(1)
    b = re.search(r"<answer_b>\n(.*?)\n</answer_b>", text, re.S).group(1)
    return a, b


def _judges(messages: list[dict[str, Any]], name: str) -> str:
    """Deterministic judges, by name: each sees exactly what a real pairwise judge would be sent."""
    a, b = _answer_a_b(messages)
    if name == "first-judge":  # prefers whatever comes first: position bias, nothing else
        return "Winner: A"
    if name == "second-judge":
        return "**Winner:** B"
    if name == "longer-judge":  # prefers the longer (here: the correct) answer, in whichever position it is
        return "Winner: A" if len(a) > len(b) else "Winner: B" if len(b) > len(a) else "Winner: tie"
    if name == "muddled-judge":
        return "Both have merit." if "weather" in messages[-1]["content"] else ("Winner: A" if len(a) > len(b) else "Winner: B")
    raise AssertionError(f"unexpected judge {name}")


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[dict[str, Any]]]]:
    """terse answers 'no'; thorough answers what each case asks for (its reference, JSON, a tool call); *-judge judge."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
    calls: list[tuple[str, list[dict[str, Any]]]] = []

    def fake_chat(ws, provider, name, messages, *, max_tokens=256, temperature=0.0, seed=0, allowance=None):
        assert provider == "anthropic"
        calls.append((name, messages))
        question = messages[-1]["content"]
        if name.endswith("-judge"):
            assert messages[0]["content"] == runner.PAIRWISE_SYSTEM
            text = _judges(messages, name)
        elif name == "terse":
            text = "no"
        elif name == "thorough":
            if "weather" in question:
                text = json.dumps({"name": "get_weather", "arguments": {"city": "Oslo"}})
            elif "JSON" in question:
                text = '{"severity": "high", "component": "db"}'
            else:
                text = f"The capital is {question.split()[-1].rstrip('?')}ville, as you asked."
        else:
            raise AssertionError(f"unexpected model {name}")
        return {"text": text, "seconds": 0.01, "provider": provider}

    monkeypatch.setattr(runner, "chat_with_provider", fake_chat)
    return calls


def _write_jsonl(path: Path, cases: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


def _capital_cases(count: int) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"Capital of Land{i}?"}], "reference": f"The capital is Land{i}ville, as you asked."}
        for i in range(count)
    ]


# --- pairwise ----------------------------------------------------------------------------------------------------


def test_a_judge_biased_to_the_first_position_yields_ties_not_wins(ws, fake_models, tmp_path):
    suite = _write_jsonl(tmp_path / "capitals.jsonl", _capital_cases(8))
    for judge in ("anthropic:first-judge", "anthropic:second-judge"):
        report = evaluate(ws, None, [TERSE, THOROUGH], suite=suite, pairwise_judge=judge)
        [pair] = report["pairwise"]["comparisons"]
        assert (pair["wins"], pair["losses"], pair["ties"], pair["judge_errors"]) == (0, 0, 8, 0)
        assert pair["sign_test_p"] == 1.0 and pair["significant"] is False
        assert pair["verdict"].startswith("no significant difference")


def test_a_judge_that_prefers_the_better_answer_in_both_orders_gives_significant_wins(ws, fake_models, tmp_path):
    suite = _write_jsonl(tmp_path / "capitals.jsonl", _capital_cases(8))
    report = evaluate(ws, None, [TERSE, THOROUGH], suite=suite, pairwise_judge="anthropic:longer-judge")
    [pair] = report["pairwise"]["comparisons"]
    assert (pair["baseline"], pair["candidate"]) == (TERSE, THOROUGH)
    assert (pair["wins"], pair["losses"], pair["ties"]) == (8, 0, 0)
    assert pair["sign_test_p"] == pytest.approx(2 / 2**8)  # binomial, two-sided, 8 of 8
    assert pair["significant"] is True and pair["verdict"].startswith(f"{THOROUGH} better than {TERSE} at 95%")
    # Listed the other way round, the same judge makes the baseline the winner: losses, not wins.
    reverse = evaluate(ws, None, [THOROUGH, TERSE], suite=suite, pairwise_judge="anthropic:longer-judge")
    [pair] = reverse["pairwise"]["comparisons"]
    assert (pair["wins"], pair["losses"]) == (0, 8) and pair["verdict"].startswith(f"{THOROUGH} better than {TERSE}")

    # The judge was asked twice per case, with the answers swapped, and both replies are kept with the case.
    judge_calls = [m for name, m in fake_models if name == "longer-judge"]
    assert len(judge_calls) == 2 * 8 * 2  # two orders x eight cases x two runs
    # Calls run concurrently, so they arrive in any order: the first run's two calls about case 0 are the two orders.
    first_run = judge_calls[: 2 * 8]
    about_case_0 = [m for m in first_run if "Capital of Land0?" in m[-1]["content"]]
    assert sorted(_answer_a_b(m) for m in about_case_0) == [("The capital is Land0ville, as you asked.", "no"), ("no", "The capital is Land0ville, as you asked.")]
    assert all("<reference_answer>\nThe capital is Land0ville" in m[-1]["content"] for m in about_case_0)
    cases = [json.loads(line) for line in (Path(ws.settings.evals_dir) / report["id"] / "cases.jsonl").read_text().splitlines()]
    stored = cases[0]["pairwise"][THOROUGH]
    assert stored["baseline_first"] == {"reply": "Winner: B", "choice": "B", "error": None}
    assert stored["candidate_first"] == {"reply": "Winner: A", "choice": "A", "error": None}
    assert stored["winner"] == "candidate"


def test_unusable_judge_replies_are_ties_and_counted(ws, fake_models, tmp_path):
    cases = _capital_cases(3) + [{"messages": [{"role": "user", "content": "What is the weather in Oslo?"}], "contains": "get_weather"}]
    suite = _write_jsonl(tmp_path / "mixed.jsonl", cases)
    report = evaluate(ws, None, [TERSE, THOROUGH], suite=suite, pairwise_judge="anthropic:muddled-judge")
    [pair] = report["pairwise"]["comparisons"]
    assert (pair["wins"], pair["losses"], pair["ties"], pair["judge_errors"]) == (3, 0, 1, 2)
    stored = json.loads((Path(ws.settings.evals_dir) / report["id"] / "cases.jsonl").read_text().splitlines()[3])["pairwise"][THOROUGH]
    assert stored["winner"] == "tie" and stored["baseline_first"]["reply"] == "Both have merit."
    assert "Winner: A" in stored["baseline_first"]["error"]


@pytest.mark.parametrize(
    ("reply", "choice"),
    [("Winner: A", "A"), ("**Winner:** b", "B"), ("winner - tie", "tie"), ("B", "B"), ("The better answer: A.", "A"), ("Verdict: equal", "tie")],
)
def test_pairwise_replies_that_parse(reply, choice):
    assert parse_pairwise_choice(reply) == choice


@pytest.mark.parametrize(("reply", "reason"), [("", "empty"), ("Both are fine.", "Winner: A"), ("Winner: A. On reflection, Winner: B", "more than one")])
def test_pairwise_replies_that_do_not_parse_say_why(reply, reason):
    with pytest.raises(ValueError, match=reason):
        parse_pairwise_choice(reply)


# --- suites ------------------------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"severity": {"enum": ["low", "high"]}}, "required": ["severity", "component"]}
SUITE_CASES = [
    {"id": "capital", "messages": [{"role": "user", "content": "Capital of Land1?"}], "reference": "The capital is Land1ville, as you asked."},
    {"messages": [{"role": "system", "content": "Reply in JSON."}, {"role": "user", "content": "Triage as JSON: db down"}], "json_schema": SCHEMA},
    {"messages": [{"role": "user", "content": "Capital of Land2?"}], "regex": r"Land2ville", "contains": ["capital", "Land2"]},
    {
        "messages": [{"role": "user", "content": "What is the weather in Oslo?"}],
        "expected_tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}},
        "rubric": "Calls get_weather for the city asked about.",
    },
]


def _check_suite_report(report: dict[str, Any], suite_name: str, lines: list[int]) -> None:
    assert report["dataset_id"] is None and report["suite"].endswith(suite_name) and report["cases"] == 4
    terse, thorough = report["summary"][TERSE], report["summary"][THOROUGH]
    # Means over the cases that ask for each metric: one case each here.
    assert (thorough["exact_match"], thorough["schema_valid"], thorough["json_valid"]) == (1.0, 1.0, 1.0)
    assert (thorough["regex_match"], thorough["contains"], thorough["tool_call_exact"]) == (1.0, 1.0, 1.0)
    assert (terse["exact_match"], terse["schema_valid"], terse["regex_match"], terse["contains"], terse["tool_call_exact"]) == (0.0,) * 5
    assert terse["answer_chars"] == 2.0 and thorough["answer_chars"] > 2
    assert report["primary_metric"] == "token_f1"
    [comparison] = report["comparisons"]
    assert comparison["n"] == 1  # token_f1 exists only for the case with a reference
    cases = [json.loads(line) for line in (Path(report["_dir"]) / "cases.jsonl").read_text().splitlines()]
    assert [c["source"] for c in cases] == [f"{suite_name}:{n}" for n in lines]
    assert cases[3]["expects"]["rubric"] == "Calls get_weather for the city asked about."
    assert set(cases[1]["outputs"][THOROUGH]) >= {"json_valid", "schema_valid", "answer_tokens"} and "token_f1" not in cases[1]["outputs"][THOROUGH]


def test_a_jsonl_suite_scores_each_case_by_what_it_asks_for(ws, fake_models, tmp_path):
    suite = _write_jsonl(tmp_path / "ops.jsonl", SUITE_CASES)
    report = evaluate(ws, None, [TERSE, THOROUGH], suite=str(suite))
    report["_dir"] = str(Path(ws.settings.evals_dir) / report["id"])
    _check_suite_report(report, "ops.jsonl", [1, 2, 3, 4])
    [stored] = ws.store.evaluations.all()
    assert stored["dataset_id"] == f"suite:{suite.resolve()}"
    # The system message went to the model as part of the case's conversation.
    json_call = next(m for name, m in fake_models if name == "thorough" and "JSON" in m[-1]["content"])
    assert json_call[0] == {"role": "system", "content": "Reply in JSON."}


def test_a_yaml_suite_gives_the_same_cases_with_their_lines(ws, fake_models, tmp_path):
    yaml = pytest.importorskip("yaml")
    suite = tmp_path / "ops.yaml"
    suite.write_text("# ops checks\ncases:\n" + yaml.safe_dump(SUITE_CASES, sort_keys=False), encoding="utf-8")
    loaded = load_suite(suite)
    assert [{k: v for k, v in c.items() if k != "source"} for c in loaded] == SUITE_CASES
    lines = [int(c["source"].split(":")[1]) for c in loaded]
    text_lines = suite.read_text().splitlines()
    assert [text_lines[n - 1].lstrip("- ").split(":")[0] for n in lines] == ["id", "messages", "messages", "messages"]
    report = evaluate(ws, None, [TERSE, THOROUGH], suite=suite)
    report["_dir"] = str(Path(ws.settings.evals_dir) / report["id"])
    _check_suite_report(report, "ops.yaml", lines)


@pytest.mark.parametrize(
    ("lines", "bad_line", "message"),
    [
        (['{"messages": [{"role": "user", "content": "hi"}], "reference": "x"}', "", '{"messages": [ oops'], 3, "not valid JSON"),
        (['{"messages": [{"role": "user", "content": "hi"}], "refrence": "x"}'], 1, "unknown key.*'refrence'"),
        (['{"messages": []}'], 1, "needs messages"),
        (['{"messages": [{"role": "robot", "content": "hi"}]}'], 1, "message 0 must be"),
        (['{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'], 1, "last message is the assistant"),
        (['{"messages": [{"role": "user", "content": "hi"}], "regex": "("}'], 1, "does not compile"),
        (['{"messages": [{"role": "user", "content": "hi"}], "json_schema": {"type": 5}}'], 1, "not a valid JSON Schema"),
        (['{"messages": [{"role": "user", "content": "hi"}], "expected_tool_call": {"arguments": {}}}'], 1, "expected_tool_call must be"),
        (['[1, 2]'], 1, "must be an object"),
    ],
)
def test_a_bad_suite_line_is_reported_with_file_and_line(ws, fake_models, tmp_path, lines, bad_line, message):
    suite = tmp_path / "bad.jsonl"
    suite.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=f"bad.jsonl:{bad_line}: .*{message}"):
        evaluate(ws, None, [TERSE, THOROUGH], suite=suite)
    assert fake_models == [] and ws.store.evaluations.all() == []  # refused before any model was asked


def test_bad_yaml_cases_and_files_say_where_and_what(ws, tmp_path):
    pytest.importorskip("yaml")
    suite = tmp_path / "bad.yaml"
    suite.write_text("- messages:\n  - {role: user, content: hi}\n  reference: ok\n- messages: hello\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.yaml:4: the case needs messages"):
        load_suite(suite)
    suite.write_text("- messages: [\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.yaml:2: not valid YAML"):
        load_suite(suite)
    with pytest.raises(UserError, match="not found"):
        load_suite(tmp_path / "missing.jsonl")
    (tmp_path / "cases.txt").write_text("{}", encoding="utf-8")
    with pytest.raises(UserError, match=r"\.jsonl or \.yaml"):
        load_suite(tmp_path / "cases.txt")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="has no cases"):
        load_suite(tmp_path / "empty.jsonl")


def test_evaluate_needs_exactly_one_of_dataset_and_suite(ws, fake_models, tmp_path):
    suite = _write_jsonl(tmp_path / "s.jsonl", _capital_cases(1))
    with pytest.raises(UserError, match="either dataset_id .* or suite"):
        evaluate(ws, None, [TERSE, THOROUGH])
    with pytest.raises(UserError, match="either dataset_id .* or suite"):
        evaluate(ws, "ds-x", [TERSE, THOROUGH], suite=suite)
    regex_only = _write_jsonl(tmp_path / "r.jsonl", [{"messages": [{"role": "user", "content": "hi"}], "regex": "h"}])
    with pytest.raises(UserError, match="Unknown primary_metric 'token_f1'; use one of regex_match"):
        evaluate(ws, None, [TERSE, THOROUGH], suite=regex_only, primary_metric="token_f1")
    assert evaluate(ws, None, [TERSE, THOROUGH], suite=regex_only)["primary_metric"] == "regex_match"


@pytest.mark.anyio
async def test_the_evaluate_tool_takes_a_suite_and_a_pairwise_judge(ws, fake_models, tmp_path):
    suite = _write_jsonl(tmp_path / "ops.jsonl", SUITE_CASES + _capital_cases(6))
    async with Client(build_server(ws=ws)) as client:
        result = await client.call_tool("evaluate", {"models": [TERSE, THOROUGH], "suite": str(suite), "pairwise_judge": "anthropic:longer-judge"})
        assert not result.is_error, result.content
        output = result.structured_content
        evaluation = json.loads((await client.read_resource(output["resource_uri"])).contents[0].text)
        refused = await client.call_tool("evaluate", {"models": [TERSE, THOROUGH]})
        assert refused.is_error and "dataset_id" in refused.content[0].text

    assert output["suite"] == str(suite.resolve()) and output["dataset_id"] is None and output["cases"] == 10
    assert output["scores"][THOROUGH]["schema_valid"] == 1.0 and output["scores"][TERSE]["tool_call_exact"] == 0.0
    [pair] = output["pairwise"]
    assert (pair["wins"], pair["losses"], pair["ties"]) == (10, 0, 0) and pair["significant"] is True
    assert evaluation["pairwise"]["comparisons"][0]["verdict"] == pair["verdict"]
    assert evaluation["per_case"][0]["pairwise"][THOROUGH]["winner"] == "candidate"
