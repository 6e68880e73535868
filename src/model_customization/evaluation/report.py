"""An evaluation for people: a Markdown report, a PNG chart of each metric's mean with its 95% interval, and the
cases where the models differ most.

Everything here reads the two files an evaluation leaves in its folder, `report.json` (the summary, intervals and
comparisons) and `cases.jsonl` (one row per case with every model's answer and scores), so a report can be drawn
again from an old evaluation. Keys this module does not know (a new per-answer measurement, say) are carried along
or left out, never an error. matplotlib is imported inside the chart function, on a private Agg `Figure` (no pyplot:
its global state is not safe in the server's worker threads), as in jobs/plots.py.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from model_customization.datasets.redaction import redact_record
from model_customization.errors import NotFoundError, UserError
from model_customization.storage import atomic_folder, atomic_write

# How much of a prompt, reference or answer a differing case shows: enough to see what went wrong, small enough
# that a report with many cases stays readable and a resource stays small.
PROMPT_CHARS = 600
REFERENCE_CHARS = 600
ANSWER_CHARS = 600
DIFFERING_CASES = 5

CHART_WIDTH_INCHES, CHART_HEIGHT_INCHES, CHART_DPI = 10.0, 5.5, 100  # 1000 x 550 pixels
LEGEND_NAME_CHARS = 32
# Summary keys that count things rather than score them; they go to the judge section, not the metric table.
JUDGE_COUNTS = ("judged_cases", "judge_errors")
# Names of per-answer measurements that are not 0-1 scores (lengths, timings, money), kept off the chart even on an
# evaluation where their values happen to fall inside [0, 1].
NOT_SCORES = ("answer_chars", "answer_tokens", "seconds", "latency", "cost", "usd", "tokens", "chars", "_ms")
# tab10 then the rest of tab20: distinct colours for up to 20 models, always in the same order.
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
PRIMARY_SHADE = "#fff3c4"


# --- the cases where the models differ most ----------------------------------------------------------------------
def differing_cases(report: Mapping[str, Any], cases: Sequence[Mapping[str, Any]], limit: int = DIFFERING_CASES) -> list[dict[str, Any]]:
    """The `limit` cases with the widest spread (max - min across models) of the primary metric.

    Equal spreads are ordered by how much the answers' words differ (mean pairwise Jaccard distance of their word
    sets), then by case index. Cases where some model has no score for the metric come after every case where all
    have one. Each entry: case, source, prompt (the last user turn), reference, metric, spread, text_disagreement,
    and outputs {model: {text, score}}; texts are cut to a bounded length.
    """
    if limit <= 0:
        return []
    metric = report.get("primary_metric")
    models = _models(report, cases)
    ranked = []
    for position, row in enumerate(cases):
        outputs = row.get("outputs") or {}
        scores = {m: _score(outputs.get(m), metric) for m in models}
        present = [s for s in scores.values() if s is not None]
        complete = bool(models) and len(present) == len(models)
        spread = max(present) - min(present) if len(present) >= 2 else None
        disagreement = _text_disagreement([_text(outputs.get(m)) for m in models if isinstance(outputs.get(m), Mapping)])
        index = row.get("case", position)
        # Rounded, so spreads equal but for float noise (0.9 - 0.2 against 0.8 - 0.1) count as a tie.
        sort_key = (0 if complete else 1, -round(spread or 0.0, 9), -round(disagreement, 9), index if isinstance(index, (int, float)) else position)
        ranked.append((sort_key, row, index, scores, spread, disagreement))
    ranked.sort(key=lambda item: item[0])

    chosen = []
    for _, row, index, scores, spread, disagreement in ranked[:limit]:
        outputs = row.get("outputs") or {}
        reference = row.get("reference")
        chosen.append(
            {
                "case": index,
                "source": row.get("source"),
                "prompt": _cut(last_user_turn(row.get("prompt")), PROMPT_CHARS),
                "reference": _cut(reference, REFERENCE_CHARS) if isinstance(reference, str) else None,
                "metric": metric,
                "spread": round(spread, 4) if spread is not None else None,
                "text_disagreement": round(disagreement, 4),
                "outputs": {m: {"text": _cut(_text(outputs.get(m)), ANSWER_CHARS), "score": scores[m]} for m in models},
            }
        )
    return chosen


def last_user_turn(prompt: Any) -> str:
    """The text of the conversation's last user message (the question the models answered); the last message's
    text when no turn is the user's; a plain string prompt as it is."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, Sequence) or not prompt:
        return ""
    messages = [m for m in prompt if isinstance(m, Mapping)]
    users = [m for m in messages if m.get("role") == "user"]
    chosen = users[-1] if users else (messages[-1] if messages else {})
    return _content_text(chosen.get("content"))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # OpenAI-style content parts: keep the text ones
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping) and part.get("text"))
    return "" if content is None else str(content)


def _models(report: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> list[str]:
    models = list(report.get("models") or [])
    if models:
        return models
    seen: dict[str, None] = {}
    for row in cases:
        seen.update(dict.fromkeys(row.get("outputs") or {}))
    return list(seen)


def _score(output: Any, metric: str | None) -> float | None:
    if metric is None or not isinstance(output, Mapping):
        return None
    value = output.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _text(output: Any) -> str:
    if not isinstance(output, Mapping):
        return ""
    value = output.get("text")
    return value if isinstance(value, str) else ""


def _text_disagreement(texts: list[str]) -> float:
    """0 when every answer has the same words, up to 1 when no two share a word: the mean over pairs of answers."""
    words = [set(t.lower().split()) for t in texts]
    distances = []
    for i in range(len(words)):
        for j in range(i + 1, len(words)):
            union = words[i] | words[j]
            distances.append(1.0 - len(words[i] & words[j]) / len(union) if union else 0.0)
    return math.fsum(distances) / len(distances) if distances else 0.0


def _cut(text: str | None, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit].rstrip() + " [… cut]"


# --- Markdown ----------------------------------------------------------------------------------------------------
def report_markdown(report: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> str:
    """The evaluation as a Markdown document: what was compared, each metric's mean and 95% interval per model, the
    paired comparisons with their verdicts, the pairwise judge, and the cases where the models differ most."""
    eval_id = report.get("id") or "evaluation"
    models = _models(report, cases)
    primary = report.get("primary_metric")
    lines = [f"# Evaluation {eval_id}", ""]

    if report.get("dataset_id"):
        lines.append(f"- **Dataset:** `{report['dataset_id']}`, split `{report.get('split') or 'test'}`")
    if report.get("suite"):
        lines.append(f"- **Suite:** `{report['suite']}`")
    case_count = report.get("cases")
    lines.append(f"- **Cases:** {case_count if isinstance(case_count, int) else len(cases)}")
    if models:
        named = [f"`{m}`" + (" (baseline)" if i == 0 and len(models) > 1 else "") for i, m in enumerate(models)]
        lines.append(f"- **Models:** {', '.join(named)}")
    lines.append(f"- **Primary metric:** `{primary}`" if primary else "- **Primary metric:** none (nothing was scored)")
    judge = report.get("judge")
    if isinstance(judge, Mapping) and judge.get("model"):
        lines.append(f"- **Judge:** `{judge['model']}` ({judge.get('provider', '?')}), scale {judge.get('scale', '?')}")
    if chartable_metrics(report):
        lines.append(f"- **Chart:** `evals://{eval_id}/chart.png`")
    lines.append("")

    lines += _scores_section(report, models, primary)
    lines += _comparisons_section(report)
    lines += _judge_section(report, models)
    lines += _differing_section(report, cases, primary)
    return "\n".join(lines).rstrip() + "\n"


def _scores_section(report: Mapping[str, Any], models: list[str], primary: str | None) -> list[str]:
    summary = report.get("summary") or {}
    intervals = report.get("confidence_intervals") or {}
    names: dict[str, None] = {}
    for model in models:
        names.update(dict.fromkeys(k for k in (intervals.get(model) or {}) if k not in JUDGE_COUNTS))
        names.update(dict.fromkeys(k for k in (summary.get(model) or {}) if k not in JUDGE_COUNTS))
    if primary in names:
        names = {primary: None, **names}
    if not names or not models:
        return ["## Scores", "", "No metric was recorded.", ""]
    case_count = report.get("cases")
    lines = [
        "## Scores",
        "",
        "Mean per model with its 95% bootstrap interval [low, high] over the cases that have the metric"
        " (n is shown where that is not every case); — means no value.",
        "",
        "| Metric | " + " | ".join(_cell(m) for m in models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for name in names:
        label = f"**{_cell(name)}** (primary)" if name == primary else _cell(name)
        cells = [_score_cell((intervals.get(m) or {}).get(name), (summary.get(m) or {}).get(name), case_count) for m in models]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _score_cell(interval: Any, mean: Any, case_count: Any) -> str:
    if isinstance(interval, Mapping) and _is_number(interval.get("mean")):
        text = _number(interval["mean"])
        if _is_number(interval.get("low")) and _is_number(interval.get("high")):
            text += f" [{_number(interval['low'])}, {_number(interval['high'])}]"
        n = interval.get("n")
        if isinstance(n, int) and n != case_count:
            text += f" (n={n})"
        return text
    return _number(mean) if _is_number(mean) else "—"


def _comparisons_section(report: Mapping[str, Any]) -> list[str]:
    comparisons = [c for c in report.get("comparisons") or [] if isinstance(c, Mapping)]
    if not comparisons:
        return []
    metric = comparisons[0].get("metric") or report.get("primary_metric")
    lines = [
        f"## Comparisons on `{metric}`",
        "",
        "Each model against the baseline, case by case: the mean difference (candidate − baseline) with its 95%"
        " paired bootstrap interval, the sign test on the cases either wins, and the verdict (significant only when"
        " the interval excludes 0 and the sign test agrees).",
        "",
        "| Candidate vs baseline | Difference | 95% CI | Sign test p | Wilcoxon p | Wins / losses / ties | n | Verdict |",
        "|---|---:|---|---:|---:|---|---:|---|",
    ]
    for c in comparisons:
        verdict = _verdict_cell(c)
        lines.append(
            f"| {_cell(c.get('candidate'))} vs {_cell(c.get('baseline'))} | {_signed(c.get('mean_difference'))} | {_interval(c)} "
            f"| {_p(c.get('sign_test_p'))} | {_p(c.get('wilcoxon_p'))} | {c.get('wins_b', '—')} / {c.get('wins_a', '—')} / {c.get('ties', '—')} "
            f"| {c.get('n', '—')} | {verdict} |"
        )
    return [*lines, ""]


def _judge_section(report: Mapping[str, Any], models: list[str]) -> list[str]:
    lines: list[str] = []
    summary = report.get("summary") or {}
    judge = report.get("judge")
    if isinstance(judge, Mapping) and judge.get("model"):
        lines += ["## Judge", "", f"`{judge['model']}` rated every answer against the reference ({judge.get('scale', '')}).", ""]
        lines += ["| Model | Judged cases | Judge errors |", "|---|---:|---:|"]
        for model in models:
            counts = summary.get(model) or {}
            lines.append(f"| {_cell(model)} | {counts.get('judged_cases', '—')} | {counts.get('judge_errors', '—')} |")
        lines.append("")
    pairwise = report.get("pairwise")
    if isinstance(pairwise, Mapping) and pairwise.get("comparisons"):
        lines += ["## Pairwise judge", "", f"Judge `{pairwise.get('judge', '?')}` ({pairwise.get('provider', '?')}): {pairwise.get('rule', '')}.", ""]
        lines += [
            "| Candidate vs baseline | Wins | Losses | Ties | Judge errors | n | Difference | 95% CI | Sign test p | Verdict |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
        ]
        for c in pairwise["comparisons"]:
            verdict = _verdict_cell(c)
            lines.append(
                f"| {_cell(c.get('candidate'))} vs {_cell(c.get('baseline'))} | {c.get('wins', '—')} | {c.get('losses', '—')} | {c.get('ties', '—')} "
                f"| {c.get('judge_errors', '—')} | {c.get('n', '—')} | {_signed(c.get('mean_difference'))} | {_interval(c)} | {_p(c.get('sign_test_p'))} | {verdict} |"
            )
        lines.append("")
    return lines


def _differing_section(report: Mapping[str, Any], cases: Sequence[Mapping[str, Any]], primary: str | None) -> list[str]:
    lines = ["## Where the models differ most", ""]
    chosen = differing_cases(report, cases)
    if not chosen:
        return [*lines, "No cases were stored with this evaluation.", ""]
    if primary:
        lines += [f"The cases with the widest spread of `{primary}` across the models (then the most different answers).", ""]
    else:
        lines += ["No metric was scored: the cases whose answers differ most in wording.", ""]
    for entry in chosen:
        heading = f"### Case {entry['case']}"
        if entry.get("source"):
            heading += f" ({_inline(entry['source'])})"
        if entry.get("spread") is not None:
            heading += f" — spread {_number(entry['spread'])}"
        lines += [heading, "", "**Prompt** (last user turn):", "", _quote(entry["prompt"]), ""]
        if entry.get("reference") is not None:
            lines += ["**Reference:**", "", _quote(entry["reference"]), ""]
        lines += [f"| Model | {_cell(primary or 'score')} | Answer |", "|---|---:|---|"]
        for model, output in entry["outputs"].items():
            score = _number(output["score"]) if output["score"] is not None else "—"
            lines.append(f"| {_cell(model)} | {score} | {_cell(output['text']) or '*(empty)*'} |")
        lines.append("")
    return lines


def _verdict_cell(comparison: Mapping[str, Any]) -> str:
    verdict = _cell(comparison.get("verdict") or "")
    return f"**{verdict}**" if comparison.get("significant") else verdict


def _cell(value: Any) -> str:
    """Text made safe for one Markdown table cell: no raw HTML, pipes escaped, line breaks as <br>."""
    text = html.escape("" if value is None else str(value), quote=False)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def _inline(value: Any) -> str:
    return html.escape(str(value), quote=False).replace("\n", " ")


def _quote(text: str) -> str:
    if not text:
        return "> *(empty)*"
    escaped = html.escape(text, quote=False).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(f"> {line}" if line else ">" for line in escaped.split("\n"))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> str:
    if not _is_number(value):
        return "—"
    if isinstance(value, int):
        return str(value)
    magnitude = abs(value)
    if value == 0:
        return "0.000"
    if magnitude < 0.001:
        return f"{value:.2e}"  # a cost per answer in dollars, say
    if magnitude < 10:
        return f"{value:.3f}"
    if magnitude < 1000:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _signed(value: Any) -> str:
    return f"{value:+.3f}" if _is_number(value) else "—"


def _interval(row: Mapping[str, Any]) -> str:
    low, high = row.get("low"), row.get("high")
    return f"[{low:+.3f}, {high:+.3f}]" if _is_number(low) and _is_number(high) else "—"


def _p(value: Any) -> str:
    if not _is_number(value):
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


# --- the chart ---------------------------------------------------------------------------------------------------
def chartable_metrics(report: Mapping[str, Any]) -> list[str]:
    """The 0-1 metrics with a 95% interval for every model, primary first: what report_chart_png draws."""
    models = list(report.get("models") or [])
    intervals = report.get("confidence_intervals") or {}
    if not models or not all(isinstance(intervals.get(m), Mapping) for m in models):
        return []
    names: dict[str, None] = {}
    for model in models:
        names.update(dict.fromkeys(intervals[model]))
    primary = report.get("primary_metric")
    if primary in names:
        names = {primary: None, **names}
    chosen = []
    for name in names:
        if any(marker in name.lower() for marker in NOT_SCORES):
            continue
        bounds = [intervals[m].get(name) for m in models]
        if all(isinstance(b, Mapping) and all(_is_number(b.get(k)) and -1e-9 <= b[k] <= 1 + 1e-9 for k in ("mean", "low", "high")) for b in bounds):
            chosen.append(name)
    return chosen


def legend_names(models: Sequence[str], limit: int = LEGEND_NAME_CHARS) -> list[str]:
    """Short, distinct names for a legend: a local folder by its last part, a long name cut in the middle."""
    short = []
    for model in models:
        name = model
        if ("/" in name or "\\" in name) and ":" not in name.split("/")[0]:
            name = Path(name).name or name  # a local model folder: its last part names it
        if len(name) > limit:
            keep = limit - 1
            name = name[: keep - keep // 2] + "…" + name[len(name) - keep // 2 :]
        short.append(name)
    counts: dict[str, int] = {}
    for name in short:
        counts[name] = counts.get(name, 0) + 1
    # Two models that shorten to the same name keep their position in the list to tell them apart.
    return [f"{name} (#{i + 1})" if counts[name] > 1 else name for i, name in enumerate(short)]


def report_chart_png(report: Mapping[str, Any]) -> bytes:
    """Each 0-1 metric's mean per model as bars with 95% interval error bars, grouped by metric, the primary metric
    first and shaded. UserError when no metric has an interval for every model."""
    metrics = chartable_metrics(report)
    eval_id = report.get("id") or "evaluation"
    if not metrics:
        raise UserError(
            f"Evaluation {eval_id} has no 0-1 metric with a confidence interval for every model, so there is no chart "
            f"to draw. Read evals://{eval_id}/report.md for its results."
        )
    models = list(report["models"])
    intervals = report["confidence_intervals"]
    primary = report.get("primary_metric")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(CHART_WIDTH_INCHES, CHART_HEIGHT_INCHES), dpi=CHART_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    group_width = 0.8
    bar_width = group_width / len(models)
    label_values = len(metrics) * len(models) <= 24  # beyond that the numbers would overlap
    for position, metric in enumerate(metrics):
        if metric == primary:
            ax.axvspan(position - 0.5, position + 0.5, color=PRIMARY_SHADE, zorder=0)
    for index, (model, label) in enumerate(zip(models, legend_names(models))):
        offsets = [p - group_width / 2 + bar_width * (index + 0.5) for p in range(len(metrics))]
        means = [intervals[model][m]["mean"] for m in metrics]
        # Rounded bounds can sit a hair on the wrong side of the mean; an error bar cannot be negative.
        below = [max(0.0, intervals[model][m]["mean"] - intervals[model][m]["low"]) for m in metrics]
        above = [max(0.0, intervals[model][m]["high"] - intervals[model][m]["mean"]) for m in metrics]
        colour = COLOURS[index % len(COLOURS)]
        ax.bar(offsets, means, bar_width * 0.9, color=colour, label=label, zorder=2)
        ax.errorbar(offsets, means, yerr=[below, above], fmt="none", ecolor="#222222", elinewidth=1.1, capsize=3, zorder=3)
        if label_values:
            for x, mean, top in zip(offsets, means, above):
                ax.text(x, mean + top + 0.015, f"{mean:.2f}", ha="center", va="bottom", fontsize=7, color="#333333", zorder=4)

    ax.set_xticks(range(len(metrics)))
    tick_labels = ax.set_xticklabels([f"{m}\n(primary)" if m == primary else m for m in metrics], fontsize=9)
    for metric, tick in zip(metrics, tick_labels):
        if metric == primary:
            tick.set_fontweight("bold")
    if len(metrics) > 5:
        for tick in tick_labels:
            tick.set_rotation(30)
            tick.set_horizontalalignment("right")
    ax.set_xlim(-0.5, len(metrics) - 0.5)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("mean score (95% CI)")
    ax.grid(True, axis="y", alpha=0.3, zorder=1)
    what = report.get("dataset_id") or (Path(str(report["suite"])).name if report.get("suite") else None)
    parts = [str(eval_id), *([str(what)] if what else []), f"{report.get('cases', '?')} cases", "mean and 95% CI per model"]
    fig.suptitle("  ·  ".join(parts), fontsize=11)
    # Outside the axes, so it never hides a bar whatever the scores.
    # As many columns as fit across the figure at the longest name's width (about 7 px a character, plus the swatch).
    column_pixels = 7 * max(len(name) for name in legend_names(models)) + 50
    columns = max(1, min(len(models), int(CHART_WIDTH_INCHES * CHART_DPI * 0.95) // column_pixels))
    fig.legend(loc="outside lower center", ncols=columns, fontsize=9, frameon=False)

    buffer = io.BytesIO()
    # No "Software" text chunk (it names the matplotlib version): equal reports give equal bytes.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


# --- files -------------------------------------------------------------------------------------------------------
def write_report_files(folder: Path, report: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> None:
    """Write report.md and chart.png into an evaluation's folder, each atomically (a reader never sees half a file).
    An evaluation with nothing to chart gets report.md only."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "report.md", report_markdown(report, cases).encode("utf-8"))
    if chartable_metrics(report):
        atomic_write(folder / "chart.png", report_chart_png(report))


def compared_model_ids(report: Mapping[str, Any]) -> list[str]:
    """The ids of the models an evaluation compares and judges with: other records (the deployment gate, the
    lineage) look them up by these exact strings, so redaction leaves them as they are."""
    ids = [str(m) for m in report.get("models") or []]
    for role in ("judge", "pairwise"):
        part = report.get(role) or {}
        if isinstance(part, Mapping):
            ids += [str(part[k]) for k in ("model", "judge") if part.get(k)]
    return ids


def redact_evaluation(report: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An evaluation as it may be stored or shown: the report redacted as one record and each case (its prompt,
    reference, every model's answer and the judges' reasons) as one record, so a value keeps one placeholder within
    a case. Suites and answers can quote secrets as readily as memory can."""
    keep = compared_model_ids(report)
    redacted_report = redact_record(dict(report), keep)[0]
    return redacted_report, [redact_record(dict(row), keep)[0] for row in cases]


def write_evaluation_folder(folder: Path, report: Mapping[str, Any], cases: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Publish an evaluation's folder whole (report.json, cases.jsonl, report.md, chart.png), replacing any older one:
    a reader sees the old folder or the new one, never half of one. A chart that cannot be drawn (a suite with no 0-1
    metric) must not lose the evaluation: the Markdown and JSON still stand. Everything written is redacted first
    (redact_evaluation); the redacted report is returned, for the caller to show."""
    report, cases = redact_evaluation(report, cases)
    with atomic_folder(Path(folder)) as staging:
        (staging / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        with (staging / "cases.jsonl").open("w", encoding="utf-8") as handle:
            for row in cases:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        try:
            write_report_files(staging, report, cases)
        except UserError:
            pass
    return report


def read_evaluation_folder(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(report, cases) as stored in an evaluation's folder; NotFoundError when its files are gone."""
    folder = Path(folder)
    report_path, cases_path = folder / "report.json", folder / "cases.jsonl"
    if not report_path.is_file():
        raise NotFoundError(f"The evaluation's report {report_path} is missing; run evaluate again to recreate it.")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    cases = []
    if cases_path.is_file():
        with cases_path.open(encoding="utf-8") as handle:
            cases = [json.loads(line) for line in handle if line.strip()]
    return report, cases


def stored_report_markdown(folder: Path) -> str:
    """report.md from the folder, or drawn from report.json and cases.jsonl when it was never written."""
    stored = Path(folder) / "report.md"
    if stored.is_file():
        return stored.read_text(encoding="utf-8")
    return report_markdown(*read_evaluation_folder(folder))


def stored_report_chart(folder: Path) -> bytes:
    """chart.png from the folder, or drawn from report.json when it was never written."""
    stored = Path(folder) / "chart.png"
    if stored.is_file():
        return stored.read_bytes()
    report, _ = read_evaluation_folder(folder)
    return report_chart_png(report)
