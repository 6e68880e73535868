"""An LLM judge in a GRPO job's reward: one call per group scores the group's answers against each other (0-1, as
OpenPipe's RULER does; evaluation/judges.py judge_group), and each score joins the case's checks in the reward with
the job's judge_weight (evaluation/rewards.py reward).

Money: a paid judge's calls were quoted (quote_grpo) and approved when the job started (jobs/orchestrator.py); the
approval is in the job's details as `judge_spending`. Every call draws its upper bound from that approval before it is
sent (the chat router's Allowance) and a call that would pass it is not sent: the job stops with that reason. What was
drawn and billed is written to the job's details after every step, so a resumed worker goes on from there, and the
bill replaces the approval in the daily budget when the job succeeds (until then the whole approval counts).

Exact resume: each group's verdict is kept in the job's folder (judge_verdicts.jsonl) with a hash of the answers it
scored; a resumed run that samples the same answers at the same step takes the stored verdict instead of asking (and
paying) again, so even a judge that does not answer the same way twice gives the resumed run the same rewards.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from model_customization.errors import TransientError, UserError
from model_customization.evaluation.judges import GROUP_JUDGE_ASKS, judge_group
from model_customization.evaluation.participants import Participant, resolve_participant
from model_customization.evaluation.pricing import chat_price
from model_customization.evaluation.rewards import reward
from model_customization.jobs.spending import Allowance, usd
from model_customization.providers.base import merge_details
from model_customization.providers.chat import chat_with_provider
from model_customization.providers.registry import is_paid
from model_customization.workspace import Workspace

# Transient failures (rate limits, timeouts, 5xx) of a judge call are retried this many times, 1, 2, 4 ... s apart
# (or what the provider asked for), before the job stops; a resumed job asks again.
JUDGE_RETRIES = 4
JUDGE_RETRY_BASE_SECONDS = 1.0
JUDGE_RETRY_MAX_SECONDS = 60.0
SPENDING_KEY = "judge_spending"  # in the job's details: the approval and what was drawn and billed from it


def verdicts_path(ws: Workspace, job_id: str) -> Path:
    return ws.settings.jobs_dir / job_id / "judge_verdicts.jsonl"


def answers_sha256(answers: list[Any]) -> str:
    return hashlib.sha256(json.dumps(answers, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()


class GroupJudge:
    """The judge of one GRPO job's worker: scores groups, counts calls and errors, keeps the spending up to date."""

    def __init__(self, ws: Workspace, job_id: str, judge: Participant, rubric: str | None, allowance: Allowance | None) -> None:
        self.ws, self.job_id, self.judge, self.rubric, self.allowance = ws, job_id, judge, rubric, allowance
        self.path = verdicts_path(ws, job_id)
        self.known: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    verdict = json.loads(line)
                    self.known[verdict["group"]] = verdict
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a kill: that group is asked again
        self.calls = self.errors = self.reused = 0

    @classmethod
    def open(cls, ws: Workspace, job: dict[str, Any]) -> GroupJudge | None:
        """The job's judge (None without judge_model). A paid judge needs the approval start_job recorded."""
        hp = job["hyperparameters"]
        if not hp.get("judge_model"):
            return None
        judge = resolve_participant(ws, hp["judge_model"])  # a key gone since the start is a UserError now
        allowance = None
        spending = (job.get("details") or {}).get(SPENDING_KEY)
        if spending is not None:
            approved = spending["approved_usd"]
            allowance = Allowance(
                ws, spending["spend_id"], math.inf if approved is None else float(approved), drawn_usd=float(spending.get("drawn_usd", 0.0)),
                billed_usd=float(spending.get("billed_usd", 0.0)), calls=int(spending.get("calls", 0)), unpriced_calls=int(spending.get("unpriced_calls", 0)),
            )
        elif is_paid(judge.provider) and chat_price(judge.provider, judge.name) != (0.0, 0.0):
            # start_job approves a paid judge before the job is queued; a row without it was not made by start_job.
            raise UserError(f"Job {job['id']} has a paid judge ({judge.model_id}) but no approved spending for it; start the job again with start_job.")
        return cls(ws, job["id"], judge, hp.get("judge_rubric"), allowance)

    # --- calls -------------------------------------------------------------------------------------------------
    def _call(self, participant: Participant, messages: list[dict[str, Any]], max_tokens: int) -> dict[str, Any]:
        for attempt in range(JUDGE_RETRIES + 1):
            try:
                self.calls += 1
                return chat_with_provider(
                    self.ws, participant.provider, participant.name, messages, max_tokens=max_tokens, temperature=0.0, seed=0, allowance=self.allowance
                )
            except TransientError as error:
                if attempt == JUDGE_RETRIES:
                    raise
                wait = error.retry_after if error.retry_after is not None else min(JUDGE_RETRY_MAX_SECONDS, JUDGE_RETRY_BASE_SECONDS * 2**attempt)
                self.ws.store.jobs.add_event(self.job_id, f"judge {participant.model_id} unavailable for now ({error}); asking again in {wait:.0f} s", "warning")
                time.sleep(wait * random.uniform(1.0, 1.25))
        raise AssertionError("unreachable")

    def rewards(self, step: int, index: int, case: dict[str, Any], answers: list[Any], weights: dict[str, float]) -> tuple[list[float], bool]:
        """(each answer's reward, whether the judge scored the group) for the group of prompt `index` at optimizer
        step `step` (1-based, the step being taken). Unscored (the judge's reply could not be read twice), the
        rewards are the checks' alone and the caller gives the group advantage 0: it teaches nothing this step."""
        group = f"{step}:{index}"
        digest = answers_sha256(answers)
        verdict = self.known.get(group)
        if verdict is not None and verdict.get("answers_sha256") == digest:
            self.reused += 1
        else:
            try:
                judged = judge_group(
                    self.ws, self.judge, case["messages"], answers, rubric=case.get("rubric") or self.rubric, reference=case.get("reference"), call=self._call
                )
            except UserError as error:
                raise UserError(f"The judge {self.judge.model_id} could not score step {step}'s answers: {error}") from error
            verdict = {"group": group, "answers_sha256": digest, "scores": judged["scores"], "error": judged["error"], "calls": judged["calls"]}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(verdict) + "\n")
            self.known[group] = verdict
        scores = verdict["scores"]
        if scores is None:
            self.errors += 1
            self.ws.store.jobs.add_event(
                self.job_id, f"judge error at step {step}: {verdict['error']} (asked twice); this group gives no update", "warning"
            )
            return [reward(answer, case, weights)[0] for answer in answers], False
        return [reward(answer, case, weights, judge_score=score)[0] for answer, score in zip(answers, scores, strict=True)], True

    # --- book-keeping ------------------------------------------------------------------------------------------
    def step_done(self) -> None:
        """Write what the approval has paid for so far (after every step: a killed worker's successor goes on from it)."""
        if self.allowance is None:
            return
        spending = dict((self.ws.store.jobs.get(self.job_id) or {}).get("details", {}).get(SPENDING_KEY) or {})
        a = self.allowance
        spending.update(drawn_usd=round(a.drawn_usd, 8), billed_usd=round(a.billed_usd, 8), calls=a.calls, unpriced_calls=a.unpriced_calls)
        merge_details(self.ws, self.job_id, **{SPENDING_KEY: spending})

    def summary(self) -> str:
        spent = f"; {usd(self.allowance.billed_usd)} billed of {usd(self.allowance.approved_usd)} approved" if self.allowance is not None else ""
        reused = f", {self.reused} verdicts kept from before a resume" if self.reused else ""
        return f"judge {self.judge.model_id}: {self.calls} calls this run, {self.errors} groups unscored{reused}{spent}"

    def finish(self) -> None:
        """The job succeeded: its bill replaces the approval in the daily budget."""
        self.step_done()
        if self.allowance is not None:
            self.allowance.close()
        self.ws.store.jobs.add_event(self.job_id, self.summary())


def with_checks(ws: Workspace, job_id: str, prompts: list[Any], weights: dict[str, float]) -> list[Any]:
    """The validation cases that have a weighted check, with an event about the choice.

    A job with a judge validates by the checks alone: the group judge's scores are relative to the answers it saw
    side by side, so they cannot compare one step's greedy answer with another step's, and judging every validation
    would add paid calls whose noise would then pick the adapter kept. A case with no check would score 0 at every
    step and is left out; with none left, the job keeps its last step (the usual event says so)."""
    from model_customization.evaluation.metrics import score_case
    from model_customization.evaluation.rewards import case_expectations

    kept = [p for p in prompts if any(weights.get(name, 0.0) > 0 for name in score_case("", case_expectations(p.case)) if name != "judge")]
    if prompts:
        left_out = f"; {len(prompts) - len(kept)} of its {len(prompts)} cases have no check and are left out" if len(kept) < len(prompts) else ""
        ws.store.jobs.add_event(job_id, f"validation scores the suite's checks only, not the judge (its scores are relative to a group){left_out}")
    return kept


def quote_judge(ws: Workspace, dataset_id: str, hp: Any, epochs_steps: tuple[int, int]) -> dict[str, Any]:
    """What a job's judge calls can cost at most: one call per group (each training case once per epoch) and one more
    where its reply cannot be read (judge_group asks twice at most), each at its upper bound (the prompt as the judge
    sees it with every answer at its longest, and the judge's whole reply allowance) at the judge model's prices
    (evaluation/pricing.py). A call the provider fails is not billed and draws nothing. None: the price is unknown."""
    from model_customization.datasets.build import read_split
    from model_customization.evaluation.judges import JUDGE_ANSWER_CHARS, group_judge_max_tokens, group_messages
    from model_customization.providers.chat import chat_quote_usd

    judge = resolve_participant(ws, hp.judge_model)  # an unknown model or a missing key is refused here, before anything
    epochs, steps = epochs_steps
    max_tokens = group_judge_max_tokens(judge, hp.group_size)
    total: float | None = 0.0
    groups = 0
    for row in read_split(ws, dataset_id, "train"):
        expects = row.get("expects") or {}
        turns = 1 + (hp.max_tool_turns if expects.get("tool_results") else 0)
        # An answer shown to the judge is cut at JUDGE_ANSWER_CHARS; a sampled token is taken at 8 bytes at most.
        longest = "x" * min(turns * hp.max_new_tokens * 8, JUDGE_ANSWER_CHARS + 16)
        messages = group_messages(row["messages"], [longest] * hp.group_size, expects.get("rubric") or hp.judge_rubric, expects.get("reference"))
        bound = chat_quote_usd(judge.provider, judge.name, messages, max_tokens)
        groups += epochs
        total = None if total is None or bound is None else total + bound * epochs * GROUP_JUDGE_ASKS
    return {
        "model": judge.model_id,
        "provider": judge.provider,
        "paid": is_paid(judge.provider),
        "calls": groups,
        "calls_per_step": round(groups / steps, 2) if steps else 0,
        "max_calls": groups * GROUP_JUDGE_ASKS,
        "max_tokens_per_call": max_tokens,
        "cost_bound_usd": None if total is None else round(total, 6),
        "basis": "one call per group of answers and one more if its reply cannot be read, each at its upper bound (the judge's prompt with every "
        "answer at its longest, and its whole reply); the bill, usually far less, replaces this in the daily budget when the job succeeds",
    }
