"""`eval ...`: run an evaluation, show one, list them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from model_customization.cli import common
from model_customization.cli.common import Output, Verbatim, command, console, text_console
from model_customization.errors import UserError
from model_customization.workspace import Workspace

eval_app = typer.Typer(help="Evaluate models against each other.", no_args_is_help=True)


def run_evaluation(ws: Workspace, dataset_id: str | None, models: list[str] | None, **options: Any) -> dict[str, Any]:
    from model_customization.evaluation.runner import evaluate
    from model_customization.jobs.spending import Consent

    def run(human_usd: float | None) -> dict[str, Any]:
        with common.progress() as progress:
            task = progress.add_task("evaluating", total=None, note="loading models")
            return evaluate(
                ws, dataset_id, models, progress=lambda done, total, note: progress.update(task, completed=done, total=total, note=note),
                consent=Consent(human_usd=human_usd, human_via="terminal"), **options,
            )

    # Cloud models' and judges' calls are quoted as a whole first; over the budgets the person at the terminal is asked.
    return common.with_terminal_consent(run, may_ask=common.interactive(), refused="Not evaluated")


# Summary entries that are counts or measurements, not 0-1 scores, even when they happen to lie in 0..1.
NOT_SCORES = frozenset({"answer_chars", "answer_tokens", "judged_cases", "judge_errors", "prompt_tokens", "completion_tokens", "perplexity"})


def show_scores(result: dict[str, Any]) -> None:
    """The primary metric and the other 0-1 metrics per model, then latency and cost, then the verdicts."""
    out = text_console()  # stderr while stdout carries --json (the demo shows scores on its way)
    summaries = result["summary"]
    primary = result.get("primary_metric")
    metrics = [m for m in dict.fromkeys([primary, *next(iter(summaries.values())).keys()]) if m]
    shown = [m for m in metrics if all(isinstance(s.get(m), (int, float)) and 0 <= s[m] <= 1 for s in summaries.values()) and m not in NOT_SCORES and not m.startswith(("latency", "cost"))]
    where = f"{result['dataset_id']} ({result['split']})" if result.get("dataset_id") else Path(result.get("suite") or "suite").name
    shown = shown[:4]  # the primary metric and three more fit a terminal; --json and eval show --markdown have all
    scores_table = Table("model", *shown, "latency s", "cost USD", title=f"{result['id']} on {where}, {result['cases']} cases")
    for model, scores in summaries.items():
        cost = scores.get("cost_usd")
        latency = scores.get("latency_seconds")
        scores_table.add_row(
            model,
            *[f"{scores[m]:.3f}" for m in shown],
            f"{latency:.2f}" if latency is not None else "—",
            f"{cost:.4f}" if cost is not None else "unknown",
        )
    out.print(scores_table)
    for comparison in result.get("comparisons") or []:  # the paired verdict an agent or a person acts on
        out.print(f"{comparison['metric']}: {comparison['verdict']}", markup=False, soft_wrap=True)
    for comparison in (result.get("pairwise") or {}).get("comparisons", []):
        out.print(f"pairwise judge: {comparison['verdict']} ({comparison['wins']} wins, {comparison['losses']} losses, {comparison['ties']} ties)", markup=False, soft_wrap=True)


def _write_chart(ws: Workspace, eval_id: str, target: Path) -> None:
    from model_customization.evaluation.report import stored_report_chart

    target.write_bytes(stored_report_chart(Path(ws.store.evaluations.get(eval_id)["path"])))


@command(eval_app, "run")
def eval_run(
    ws: Workspace,
    arguments: list[str] = typer.Argument(
        None, help="DATASET_ID MODEL MODEL... (or only the models with --suite or --resume): base names/paths, tuned ft-... ids, cloud models, JOB_ID@step-N checkpoints."
    ),
    suite: Optional[Path] = typer.Option(None, help="Evaluate on this .jsonl/.yaml file of cases instead of a dataset."),
    split: str = typer.Option("test"),
    max_tokens: int = typer.Option(64),
    limit: Optional[int] = typer.Option(None),
    judge: Optional[str] = typer.Option(None, help="A model that rates every answer from 1 to 10 (judge_score)."),
    pairwise_judge: Optional[str] = typer.Option(None, help="A model that compares each model with the first, in both answer orders."),
    primary_metric: Optional[str] = typer.Option(None, help="The metric the verdicts are on (default token_f1 when there is one)."),
    concurrency: int = typer.Option(8, help="Cloud calls in flight at once."),
    resume: Optional[str] = typer.Option(None, help="Continue the interrupted evaluation EVAL_ID with its own settings."),
    chart: Optional[Path] = typer.Option(None, help="Also write the chart of scores with 95% intervals to this PNG file."),
) -> Output:
    """Evaluate models on a dataset's held-out split or a suite: scores with 95% intervals and a paired verdict."""
    arguments = list(arguments or [])
    dataset_id = None
    if suite is None and resume is None:
        if len(arguments) < 3:
            raise UserError("Give DATASET_ID and at least two models (or --suite FILE and two models, or --resume EVAL_ID).")
        dataset_id, arguments = arguments[0], arguments[1:]
    result = run_evaluation(
        ws, dataset_id, arguments or None, split=split, max_tokens=max_tokens, limit=limit, judge=judge, pairwise_judge=pairwise_judge,
        primary_metric=primary_metric, suite=str(suite) if suite else None, concurrency=concurrency, resume=resume,
    )
    if chart is not None:
        _write_chart(ws, result["id"], chart)

    def show() -> None:
        show_scores(result)
        console.print(f"Report: evals://{result['id']}/report.md" + (f"; chart written to {chart}" if chart else ""), markup=False, soft_wrap=True)

    return Output(result, show)


def _show_evaluation(eval_id: str, report: dict[str, Any]) -> None:
    if report.get("status") != "succeeded":
        console.print(f"{eval_id}: {report['status']}. {report.get('error') or ''} {report['pieces_stored']} pieces stored; {report['next_step']}.", markup=False, soft_wrap=True)
        return
    show_scores(report)
    for case in report["per_case"]:
        console.print(f"[bold]case {case['case']}[/bold] reference: {escape(str(case.get('reference')))}")
        for model, output in case["outputs"].items():
            console.print(f"  {model}: {output['text']!r}", markup=False, soft_wrap=True)


@command(eval_app, "show")
def eval_show(
    ws: Workspace,
    eval_id: str,
    cases: int = typer.Option(5, help="Per-case outputs to show."),
    markdown: bool = typer.Option(False, "--markdown", help="Print the Markdown report (scores, intervals, verdicts, the cases where the models differ most)."),
) -> Any:
    """Show a stored evaluation with some per-case outputs."""
    from model_customization.evaluation.runner import get_evaluation

    report = get_evaluation(ws, eval_id, cases)
    if markdown and report.get("status") == "succeeded":
        from model_customization.evaluation.report import stored_report_markdown

        return Verbatim(stored_report_markdown(Path(ws.store.evaluations.get(eval_id)["path"])))
    return Output(report, lambda: _show_evaluation(eval_id, report))


def _show_evaluations(rows: list[dict[str, Any]]) -> None:
    shown = Table("eval", "status", "on", "models")
    for row in rows:
        shown.add_row(row["eval_id"], row["status"], row["source"], ", ".join(row["models"]))
    console.print(shown)


@command(eval_app, "list", render=_show_evaluations)
def eval_list(ws: Workspace) -> list[dict[str, Any]]:
    """Every stored evaluation, newest first, with its status (interrupted ones can be resumed)."""
    return [
        {"eval_id": r["id"], "status": r["status"], "source": r["dataset_id"], "models": r["models"], "error": r.get("error")}
        for r in ws.store.evaluations.all()
    ]
