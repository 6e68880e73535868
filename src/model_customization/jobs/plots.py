"""The loss curve of a job as a PNG: train loss per step, validation loss, learning rate, epoch boundaries.

Drawn from the ledger's metrics history with matplotlib's Agg canvas on a private `Figure` (no pyplot: its global
state is not safe in the server's worker threads). The PNG carries no timestamp or version text, so the same
metrics always give the same bytes.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.store.status import TERMINAL_STATUSES
from model_customization.workspace import Workspace

WIDTH_INCHES, HEIGHT_INCHES, DPI = 9.0, 5.0, 100  # 900 x 500 pixels
# Below this many train steps every point is drawn as it is; from here on a smoothed line is laid over a faint raw one.
SMOOTH_FROM_STEPS = 30

TRAIN_COLOUR, VALIDATION_COLOUR, LR_COLOUR, EPOCH_COLOUR = "#1f77b4", "#d62728", "#7f7f7f", "#bbbbbb"
REWARD_COLOUR = "#2ca02c"


def loss_curve_png(ws: Workspace, job_id: str) -> bytes:
    """Render the job's loss curve; NotFoundError for an unknown job, UserError while it has no metrics yet."""
    job = ws.store.jobs.get(job_id)
    if not job:
        raise NotFoundError(f"Job {job_id!r} not found. Call list_jobs to see known jobs.")
    # By step: a resumed job's rows after its checkpoint are dropped and written again, so id order may not be step order.
    rows = sorted(ws.store.jobs.metrics(job_id), key=lambda r: r["step"])
    train = [r for r in rows if r["train_loss"] is not None]
    validation = [r for r in rows if r["train_loss"] is None and (r["validation_loss"] is not None or r.get("validation_reward") is not None)]
    if not train and not validation:
        if job["status"] in TERMINAL_STATUSES:
            raise UserError(
                f"Job {job_id} ended ({job['status']}) before its first training step, so it has no loss curve. "
                "check_job shows its events and error."
            )
        raise UserError(
            f"Job {job_id} has no metrics yet (status {job['status']}): the first loss arrives after its first "
            "training step. Poll check_job and ask for the loss curve again once step is above 0."
        )
    return _render(job, train, validation)


def smooth(values: list[float], window: int) -> list[float]:
    """Centred moving average that shrinks at both ends (no lag, no padding artefacts); NaNs are skipped."""
    half = window // 2
    out = []
    for i in range(len(values)):
        chunk = [v for v in values[max(0, i - half) : i + half + 1] if not math.isnan(v)]
        out.append(sum(chunk) / len(chunk) if chunk else math.nan)
    return out


def epoch_boundaries(train: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(step, epoch number) where each epoch after the first begins: the last step whose epoch reached k ends epoch k."""
    boundaries = []
    last_epoch = max(r["epoch"] for r in train)
    k = 1
    for row in train:
        while k < last_epoch and row["epoch"] >= k - 1e-9:
            boundaries.append((row["step"], k + 1))
            k += 1
    return boundaries


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else math.nan


def _model_label(base_model: str) -> str:
    # A local folder can be a long absolute path; its last part names the model well enough in a title.
    return Path(base_model).name if ("/" in base_model or "\\" in base_model) and Path(base_model).name else base_model


def _render(job: dict[str, Any], train: list[dict[str, Any]], validation: list[dict[str, Any]]) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    handles = []

    steps = [r["step"] for r in train]
    losses = [_finite(r["train_loss"]) for r in train]
    if train:
        if len(train) >= SMOOTH_FROM_STEPS:
            window = max(5, len(train) // 20)
            ax.plot(steps, losses, color=TRAIN_COLOUR, alpha=0.25, linewidth=0.8)
            handles += ax.plot(steps, smooth(losses, window), color=TRAIN_COLOUR, linewidth=2.0, label=f"train loss (mean of {window} steps)")
        else:
            handles += ax.plot(steps, losses, color=TRAIN_COLOUR, linewidth=1.6, marker="o", markersize=3, label="train loss")
    validation_rewards = [(r["step"], r["validation_reward"]) for r in validation if r.get("validation_reward") is not None]
    validation = [r for r in validation if r["validation_loss"] is not None]
    if validation:
        v_steps = [r["step"] for r in validation]
        v_losses = [_finite(r["validation_loss"]) for r in validation]
        handles += ax.plot(v_steps, v_losses, color=VALIDATION_COLOUR, linewidth=1.4, marker="D", markersize=6, label="validation loss")
        ax.annotate(
            f"{v_losses[-1]:.3f}", (v_steps[-1], v_losses[-1]), textcoords="offset points", xytext=(6, 6), color=VALIDATION_COLOUR, fontsize=9
        )

    if train and len(train) > 1:
        transform = ax.get_xaxis_transform()  # x in data, y in axes fraction: labels sit at the top whatever the losses
        for step, epoch in epoch_boundaries(train):
            ax.axvline(step, color=EPOCH_COLOUR, linestyle=":", linewidth=1.0, zorder=0)
            ax.text(step, 0.98, f" epoch {epoch}", transform=transform, va="top", ha="left", fontsize=8, color="#666666")

    rewards = [(r["step"], r["reward_mean"], r.get("reward_std") or 0.0) for r in train if r.get("reward_mean") is not None]
    learning_rates = [(r["step"], r["learning_rate"]) for r in train if r["learning_rate"] is not None]
    if rewards:  # GRPO: what the job optimises is the reward; the learning rate is in its hyperparameters
        reward_ax = ax.twinx()
        r_steps = [s for s, _, _ in rewards]
        means = [m for _, m, _ in rewards]
        reward_ax.fill_between(r_steps, [m - d for _, m, d in rewards], [m + d for _, m, d in rewards], color=REWARD_COLOUR, alpha=0.12, linewidth=0)
        handles += reward_ax.plot(r_steps, means, color=REWARD_COLOUR, linewidth=1.6, label="reward (mean ± spread of the sampled answers)")
        if validation_rewards:
            handles += reward_ax.plot(
                [s for s, _ in validation_rewards], [v for _, v in validation_rewards], color=VALIDATION_COLOUR, linewidth=1.4, marker="D",
                markersize=6, label="validation reward (greedy answers)",
            )
        reward_ax.set_ylabel("reward", color=REWARD_COLOUR)
        reward_ax.tick_params(axis="y", colors=REWARD_COLOUR, labelsize=8)
        reward_ax.set_ylim(-0.02, 1.02)
    elif learning_rates:
        lr_ax = ax.twinx()
        handles += lr_ax.plot(
            [s for s, _ in learning_rates], [lr for _, lr in learning_rates], color=LR_COLOUR, linestyle="--", linewidth=1.0, label="learning rate"
        )
        lr_ax.set_ylabel("learning rate", color=LR_COLOUR)
        lr_ax.tick_params(axis="y", colors=LR_COLOUR, labelsize=8)
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        lr_ax.set_ylim(bottom=0)

    skipped = sum(math.isnan(v) for v in losses)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    progress = f"step {job['step'] or 0}/{job['total_steps'] or '?'}"
    title = f"{job['id']}  ·  {_model_label(job['base_model'])}  ·  {job['status']} ({progress})"
    fig.suptitle(title, fontsize=11)
    if skipped:
        ax.text(0.01, 0.02, f"{skipped} non-finite train losses not drawn", transform=ax.transAxes, fontsize=8, color=VALIDATION_COLOUR)
    # Outside the axes, so it never hides a curve or an epoch label whatever shape the losses take.
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)

    buffer = io.BytesIO()
    # No "Software" text chunk (it names the matplotlib version): equal data gives equal bytes.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
