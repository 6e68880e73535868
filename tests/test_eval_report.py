"""Evaluation reports: the cases where models differ most, the Markdown report, the chart PNG, the files and the
evals:// resources that serve them.

Reports are built the way the runner builds them: intervals from statistics.mean_ci and comparisons from
statistics.compare on hand-made scores, or a real `evaluate` on a suite with fake Claude models (the runner's one
call into the providers is replaced), so no test reaches a network or loads a model.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from PIL import Image

from model_customization.errors import UserError
from model_customization.evaluation import runner
from model_customization.evaluation.report import (
    ANSWER_CHARS,
    CHART_DPI,
    CHART_HEIGHT_INCHES,
    CHART_WIDTH_INCHES,
    COLOURS,
    PROMPT_CHARS,
    chartable_metrics,
    differing_cases,
    last_user_turn,
    legend_names,
    report_chart_png,
    report_markdown,
    write_report_files,
)
from model_customization.evaluation.runner import evaluate
from model_customization.evaluation.statistics import compare, mean_ci
from model_customization.server.app import build_server

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHART_SIZE = (round(CHART_WIDTH_INCHES * CHART_DPI), round(CHART_HEIGHT_INCHES * CHART_DPI))
TERSE, THOROUGH = "anthropic:terse", "anthropic:thorough"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def build_report(
    per_case: list[dict[str, dict[str, Any]]],
    *,
    primary: str = "token_f1",
    metrics: tuple[str, ...] = ("token_f1", "exact_match"),
    eval_id: str = "ev-handmade",
    prompts: list[Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(report, cases) shaped as the runner writes them, from each case's {model: output} with metric values."""
    models = list(per_case[0])
    cases = []
    for index, outputs in enumerate(per_case):
        prompt = prompts[index] if prompts else [{"role": "user", "content": f"question {index}"}]
        cases.append({"case": index, "source": f"cases.jsonl:{index + 1}", "prompt": prompt, "reference": f"answer {index}", "outputs": outputs})
    every_metric = list(dict.fromkeys(k for o in per_case for out in o.values() for k in out if k not in ("text", "seconds")))
    intervals = {m: {name: mean_ci([c["outputs"][m][name] for c in cases if c["outputs"][m].get(name) is not None]) for name in every_metric} for m in models}
    summary = {m: {name: intervals[m][name]["mean"] for name in every_metric} for m in models}
    paired = [c for c in cases if all(c["outputs"][m].get(primary) is not None for m in models)]
    comparisons = [
        {"baseline": c["baseline"], "candidate": c["candidate"], "metric": primary, **c}
        for c in compare({m: [c["outputs"][m][primary] for c in paired] for m in models}, baseline=models[0])
    ]
    report = {
        "id": eval_id,
        "dataset_id": "ds-abc123",
        "suite": None,
        "split": "test",
        "models": models,
        "cases": len(cases),
        "summary": summary,
        "judge": None,
        "pairwise": None,
        "primary_metric": primary,
        "confidence_intervals": intervals,
        "comparisons": comparisons,
    }
    assert set(metrics) <= set(every_metric)
    return report, cases


def decode(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


def pixels_near(image: Image.Image, hex_colour: str, tolerance: int = 10) -> int:
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(np.asarray(image, dtype=int) - target) <= tolerance).all(axis=2).sum())


def table_blocks(markdown: str) -> list[list[str]]:
    blocks, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def out(text: str, f1: float | None, **extra: Any) -> dict[str, Any]:
    return {"text": text, "seconds": 0.1, **({"token_f1": f1} if f1 is not None else {}), **extra}


# --- differing cases ---------------------------------------------------------------------------------------------


def test_differing_cases_rank_by_spread_then_wording_then_index_and_incomplete_last():
    per_case = [
        {"A": out("same", 0.5), "B": out("same", 0.5), "C": out("same", 0.5)},  # 0: spread 0
        {"A": out("paris", 0.2), "B": out("paris france", 0.9), "C": out("paris", 0.5)},  # 1: spread 0.7, words differ 1/3
        {"A": out("one", 1.0), "B": out("two", 0.0), "C": out("three", None)},  # 2: widest spread, but C has no score
        {"A": out("red", 0.1), "B": out("blue", 0.8), "C": out("green", 0.3)},  # 3: spread 0.7, no shared word
        {"A": out("x", 0.0), "B": out("x y", 0.4), "C": out("x y", 0.4)},  # 4: spread 0.4
        {"A": out("paris", 0.3), "B": out("paris france", 1.0), "C": out("paris", 0.6)},  # 5: as case 1, later index
    ]
    report, cases = build_report(per_case, metrics=("token_f1",))
    ranked = differing_cases(report, cases, limit=10)
    assert [c["case"] for c in ranked] == [3, 1, 5, 4, 0, 2]
    top = ranked[0]
    assert top["metric"] == "token_f1" and top["spread"] == pytest.approx(0.7) and top["text_disagreement"] == 1.0
    assert top["source"] == "cases.jsonl:4" and top["prompt"] == "question 3" and top["reference"] == "answer 3"
    assert top["outputs"] == {"A": {"text": "red", "score": 0.1}, "B": {"text": "blue", "score": 0.8}, "C": {"text": "green", "score": 0.3}}
    assert ranked[1]["text_disagreement"] == pytest.approx(1 / 3, abs=1e-4)
    assert ranked[-1]["outputs"]["C"]["score"] is None
    assert [c["case"] for c in differing_cases(report, cases, limit=2)] == [3, 1]
    assert [c["case"] for c in differing_cases(report, cases)] == [3, 1, 5, 4, 0]  # five by default
    assert differing_cases(report, cases, limit=0) == []


def test_differing_cases_show_the_last_user_turn_and_cut_long_texts():
    long_question = "why " * 400
    prompts = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": long_question}],
        [{"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "part two"}]}],
    ]
    per_case = [{"A": out("a" * 5000, 0.0), "B": out("b", 1.0)}, {"A": out("a", 0.0), "B": out("b", 0.5)}]
    report, cases = build_report(per_case, metrics=("token_f1",), prompts=prompts)
    first, second = differing_cases(report, cases)
    assert first["prompt"].startswith("why why") and len(first["prompt"]) <= PROMPT_CHARS + 10 and first["prompt"].endswith("[… cut]")
    assert len(first["outputs"]["A"]["text"]) <= ANSWER_CHARS + 10
    assert second["prompt"] == "part one\npart two"
    assert last_user_turn([{"role": "assistant", "content": "only me"}]) == "only me"
    assert last_user_turn("plain") == "plain" and last_user_turn(None) == ""


# --- Markdown ----------------------------------------------------------------------------------------------------


def _clear_win_report() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """twelve cases where the tuned model beats the base one on every case; latency and cost measured on the side."""
    per_case = []
    for i in range(12):
        base_f1, tuned_f1 = 0.1 + 0.02 * i, 0.7 + 0.02 * i
        per_case.append(
            {
                "base-model": out(f"base answer {i}", base_f1, exact_match=0.0, latency_seconds=1.5 + i, cost_usd=0.0001),
                "tuned-model": out(f"tuned | answer {i}\nsecond line <b>bold</b>" if i == 11 else f"tuned answer {i}", tuned_f1, exact_match=float(i % 2), latency_seconds=2.0 + i, cost_usd=0.0002),
            }
        )
    return build_report(per_case)


def test_markdown_has_the_cis_the_verdict_and_valid_tables():
    report, cases = _clear_win_report()
    text = report_markdown(report, cases)
    assert text.startswith("# Evaluation ev-handmade\n")
    assert "`ds-abc123`, split `test`" in text and "**Cases:** 12" in text and "`base-model` (baseline)" in text

    # Each metric's mean with the interval the statistics gave, primary metric first and marked.
    f1 = report["confidence_intervals"]["tuned-model"]["token_f1"]
    assert f1["low"] < f1["mean"] < f1["high"]
    assert f"{f1['mean']:.3f} [{f1['low']:.3f}, {f1['high']:.3f}]" in text
    scores_table = next(b for b in table_blocks(text) if b[0].startswith("| Metric"))
    assert scores_table[2].startswith("| **token_f1** (primary)")
    assert any(row.startswith("| latency_seconds") for row in scores_table)

    # The comparison: its verdict (significant, so bold), difference, interval, sign test and wins.
    [comparison] = report["comparisons"]
    assert comparison["significant"] and comparison["verdict"].startswith("tuned-model better than base-model at 95%")
    assert f"**{comparison['verdict']}**" in text
    row = next(line for line in text.splitlines() if line.startswith("| tuned-model vs base-model"))
    assert f"{comparison['mean_difference']:+.3f}" in row and f"[{comparison['low']:+.3f}, {comparison['high']:+.3f}]" in row
    assert f"{comparison['sign_test_p']:.1e}" in row and "12 / 0 / 0" in row

    # The answer with a pipe, a line break and HTML stays inside its cell.
    assert "tuned \\| answer 11<br>second line &lt;b&gt;bold&lt;/b&gt;" in text
    assert "<b>" not in text
    for block in table_blocks(text):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block}
        assert len(widths) == 1, block
    assert "## Where the models differ most" in text and "### Case 11 (cases.jsonl:12) — spread" in text


def test_markdown_shows_missing_values_as_dashes_and_the_pairwise_judge():
    per_case = [
        {"A": out("x", 0.2), "B": out("y", 0.4, regex_match=1.0)},
        {"A": out("x", 0.3), "B": out("y", 0.5, regex_match=0.0)},
    ]
    report, cases = build_report(per_case, metrics=("token_f1",))
    report["suite"], report["dataset_id"], report["split"] = "/tmp/ops.jsonl", None, None
    report["confidence_intervals"]["A"].pop("regex_match")
    report["summary"]["A"]["regex_match"] = None
    report["pairwise"] = {
        "judge": "anthropic:judge",
        "provider": "anthropic",
        "rule": "each case judged in both orders",
        "comparisons": [
            {"baseline": "A", "candidate": "B", "wins": 2, "losses": 0, "ties": 0, "judge_errors": 1, "n": 2, "mean_difference": 1.0,
             "low": 1.0, "high": 1.0, "sign_test_p": 0.5, "significant": False, "verdict": "no significant difference between A and B at 95%"},
        ],
    }  # fmt: skip
    text = report_markdown(report, cases)
    assert "**Suite:** `/tmp/ops.jsonl`" in text and "Dataset" not in text
    regex_row = next(line for line in text.splitlines() if line.startswith("| regex_match"))
    assert regex_row.split("|")[2].strip() == "—" and regex_row.split("|")[3].strip().startswith("0.500 [")
    assert "## Pairwise judge" in text and "`anthropic:judge`" in text
    assert "| B vs A | 2 | 0 | 0 | 1 | 2 | +1.000 | [+1.000, +1.000] | 0.500 | no significant difference between A and B at 95% |" in text


# --- the chart ---------------------------------------------------------------------------------------------------


def test_chart_png_decodes_at_its_size_and_draws_every_model(tmp_path):
    report, _ = _clear_win_report()
    png = report_chart_png(report)
    image = decode(png)
    assert image.size == CHART_SIZE
    assert b"Software" not in png and b"matplotlib" not in png.lower()
    assert png == report_chart_png(report)  # same report, same bytes
    for colour in COLOURS[:2]:
        assert pixels_near(image, colour) > 500, colour  # the bars, not just the legend's swatches


def test_chart_handles_many_models_and_metrics():
    names = [f"/very/long/path/to/checkpoints/run-{i}-with-a-rather-long-descriptive-name-indeed" for i in range(5)]
    metric_names = ("token_f1", "exact_match", "rouge_l", "chrf", "bleu", "contains", "regex_match")
    per_case = [{n: {"text": f"{n} {i}", **{m: ((i * (j + 1) + k) % 4) / 3 for k, m in enumerate(metric_names)}} for j, n in enumerate(names)} for i in range(6)]
    report, _ = build_report(per_case, primary="rouge_l", metrics=metric_names)
    assert chartable_metrics(report) == ["rouge_l", "token_f1", "exact_match", "chrf", "bleu", "contains", "regex_match"]
    image = decode(report_chart_png(report))
    assert image.size == CHART_SIZE
    for colour in COLOURS[:5]:
        assert pixels_near(image, colour) > 300, colour


def test_only_0_1_scores_are_charted_and_nothing_to_chart_is_a_clear_error():
    report, _ = _clear_win_report()
    # latency (seconds, above 1) and cost (dollars, inside [0, 1] but not a score) stay off the chart.
    assert chartable_metrics(report) == ["token_f1", "exact_match"]
    report["confidence_intervals"]["tuned-model"]["answer_chars"] = {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 12}
    report["confidence_intervals"]["base-model"]["answer_chars"] = {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 12}
    report["confidence_intervals"]["base-model"]["judge_score"] = {"mean": None, "low": None, "high": None, "n": 0}
    report["confidence_intervals"]["tuned-model"]["judge_score"] = {"mean": 0.8, "low": 0.7, "high": 0.9, "n": 12}
    assert chartable_metrics(report) == ["token_f1", "exact_match"]  # judge_score lacks a value for one model

    only_latency = {**report, "confidence_intervals": {m: {"latency_seconds": v["latency_seconds"]} for m, v in report["confidence_intervals"].items()}}
    with pytest.raises(UserError, match=r"nothing to chart|no chart.*evals://ev-handmade/report\.md"):
        report_chart_png(only_latency)


def test_legend_names_are_short_and_distinct():
    names = legend_names(["/home/me/models/tuned-v2", "openai:ft:gpt-4o-mini-2024-07-18:acme::Bx12Yz9q", "/a/x", "/b/x", "anthropic:claude"])
    assert names[0] == "tuned-v2"
    assert len(names[1]) <= 32 and names[1].startswith("openai:ft:") and names[1].endswith("Bx12Yz9q") and "…" in names[1]
    assert names[2:4] == ["x (#3)", "x (#4)"] and names[4] == "anthropic:claude"


# --- files -------------------------------------------------------------------------------------------------------


def test_write_report_files_writes_both_atomically(tmp_path):
    report, cases = _clear_win_report()
    folder = tmp_path / "ev-handmade"
    write_report_files(folder, report, cases)
    assert sorted(p.name for p in folder.iterdir()) == ["chart.png", "report.md"]  # no temporary file left behind
    assert (folder / "report.md").read_text(encoding="utf-8") == report_markdown(report, cases)
    assert (folder / "chart.png").read_bytes() == report_chart_png(report)

    nothing_to_chart = {**report, "confidence_intervals": {}}
    other = tmp_path / "ev-other"
    write_report_files(other, nothing_to_chart, cases)
    assert sorted(p.name for p in other.iterdir()) == ["report.md"]


# --- through the MCP server --------------------------------------------------------------------------------------


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """terse answers 'no'; thorough answers with the reference the capital cases expect."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")

    def fake_chat(ws, provider, name, messages, *, max_tokens=256, temperature=0.0, seed=0, allowance=None):
        question = messages[-1]["content"]
        text = "no" if name == "terse" else f"The capital is {question.split()[-1].rstrip('?')}ville, as you asked."
        return {"text": text, "seconds": 0.01, "provider": provider}

    monkeypatch.setattr(runner, "chat_with_provider", fake_chat)


def _suite(path: Path, count: int, *, reference: bool = True) -> Path:
    cases = [
        {"messages": [{"role": "user", "content": f"Capital of Land{i}?"}], **({"reference": f"The capital is Land{i}ville, as you asked."} if reference else {})}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


@pytest.fixture
def two_evaluations(ws, fake_models, tmp_path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A scored evaluation and one whose suite gives nothing to score; run here, outside the test's event loop
    (evaluate runs its own)."""
    first = evaluate(ws, None, [TERSE, THOROUGH], suite=_suite(tmp_path / "capitals.jsonl", 6))
    bare = evaluate(ws, None, [TERSE, THOROUGH], suite=_suite(tmp_path / "bare.jsonl", 2, reference=False))
    return first, bare


@pytest.mark.anyio
async def test_eval_resources_serve_index_report_chart_and_differing_cases(ws, two_evaluations, tmp_path):
    first, bare = two_evaluations
    folder = Path(ws.settings.evals_dir) / first["id"]
    stored_report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    stored_cases = [json.loads(line) for line in (folder / "cases.jsonl").read_text(encoding="utf-8").splitlines()]

    async with Client(build_server(ws=ws)) as client:
        templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}
        assert templates["evals://{eval_id}/report.md"].mime_type == "text/markdown"
        assert templates["evals://{eval_id}/chart.png"].mime_type == "image/png"

        index = json.loads((await client.read_resource("evals://index")).contents[0].text)
        assert {e["eval_id"] for e in index} == {first["id"], bare["id"]}
        entry = next(e for e in index if e["eval_id"] == first["id"])
        assert entry["suite"] == str((tmp_path / "capitals.jsonl").resolve()) and entry["dataset_id"] is None
        assert entry["models"] == [TERSE, THOROUGH] and entry["status"] == "succeeded"
        assert entry["uri"] == f"evals://{first['id']}" and entry["created_at"].endswith("+00:00")

        # The JSON view now names the cases where the models differ most: all six, terse scoring 0 on each.
        detail = json.loads((await client.read_resource(f"evals://{first['id']}")).contents[0].text)
        assert len(detail["per_case"]) == 6
        assert [c["case"] for c in detail["differing_cases"]] == [0, 1, 2, 3, 4]
        assert detail["differing_cases"][0]["outputs"][TERSE] == {"text": "no", "score": 0.0}

        # An evaluation stored without them (an older one): drawn from report.json and cases.jsonl.
        for name in ("report.md", "chart.png"):
            (folder / name).unlink(missing_ok=True)
        markdown = (await client.read_resource(f"evals://{first['id']}/report.md")).contents[0]
        assert markdown.mime_type == "text/markdown"
        assert markdown.text == report_markdown(stored_report, stored_cases)
        assert f"{THOROUGH} better than {TERSE} at 95%" in markdown.text

        blob = (await client.read_resource(f"evals://{first['id']}/chart.png")).contents[0]
        assert blob.mime_type == "image/png" and not hasattr(blob, "text")
        png = base64.b64decode(blob.blob)
        assert png == report_chart_png(stored_report) and decode(png).size == CHART_SIZE

        # Once written, the stored files are what is served.
        write_report_files(folder, stored_report, stored_cases)
        (folder / "report.md").write_text("# stored copy\n", encoding="utf-8")
        assert (await client.read_resource(f"evals://{first['id']}/report.md")).contents[0].text == "# stored copy\n"

        # An evaluation that scored nothing still has a report, but no chart, and says why.
        bare_markdown = (await client.read_resource(f"evals://{bare['id']}/report.md")).contents[0].text
        assert "**Primary metric:** none" in bare_markdown and "| answer_chars | 2.000 |" in bare_markdown
        assert "chart.png" not in bare_markdown and "the cases whose answers differ most in wording" in bare_markdown
        with pytest.raises(MCPError, match=f"no 0-1 metric.*evals://{bare['id']}/report.md"):
            await client.read_resource(f"evals://{bare['id']}/chart.png")
        for uri in ("evals://ev-nope/report.md", "evals://ev-nope/chart.png"):
            with pytest.raises(MCPError, match="evals://index"):
                await client.read_resource(uri)
        with pytest.raises(MCPError):
            await client.read_resource("evals://ev-nope")
