"""The judges: one that rates an answer against the reference from 1 to 10, and a pairwise one that picks the better
of two answers, asked in both orders so that a judge favouring a position cannot make a winner.

A reply the judge cannot be understood from, or a judge call the provider refuses, is recorded on the case and
counted, never dropped; a provider that is only unavailable for now (TransientError) stops the run so that a resumed
evaluation asks again.
"""

from __future__ import annotations

import re
from typing import Any

from model_customization.errors import TransientError, UserError
from model_customization.evaluation.participants import CallFn, Participant, direct_call
from model_customization.evaluation.statistics import paired_difference
from model_customization.workspace import Workspace

# The judge sees the end of the conversation, the reference and the answer, each cut to a bounded size: the cost of
# a judge call should not grow with a long transcript.
JUDGE_CONTEXT_CHARS = 6000
JUDGE_ANSWER_CHARS = 3000
JUDGE_SYSTEM = (
    "You grade answers. You are shown the end of a conversation, the reference answer that was given at that point, "
    "and a candidate answer. Judge how well the candidate would serve the user in place of the reference: correct "
    "facts and decisions first, then completeness, then the expected format. Wording may differ from the reference.\n"
    "Reply with one line, exactly: Score: N\n"
    "where N is a whole number from 1 (wrong, unusable or empty) to 10 (as good as the reference)."
    " When a rubric is given, grade by it; when no reference is given, judge the answer on its own merits."
)
PAIRWISE_SYSTEM = (
    "You compare two answers given at the same point of a conversation: answer A and answer B. Decide which would "
    "serve the user better: correct facts and decisions first, then completeness, then the expected format. A "
    "reference answer or a rubric, when shown, says what a good answer is. Their order and length say nothing about "
    "their quality.\n"
    "Reply with one line, exactly: Winner: A, Winner: B, or Winner: tie"
)


def _cut(text: str) -> str:
    return text if len(text) <= JUDGE_ANSWER_CHARS else text[:JUDGE_ANSWER_CHARS] + " [... cut]"


def _conversation_and_guides(prompt: list[dict[str, Any]], reference: str | None, rubric: str | None) -> str:
    lines = [f"{m.get('role', 'user').capitalize()}: {m.get('content') or ''}" for m in prompt]
    conversation = "\n\n".join(lines)
    if len(conversation) > JUDGE_CONTEXT_CHARS:
        conversation = "[... earlier turns cut]\n" + conversation[-JUDGE_CONTEXT_CHARS:]
    text = f"<conversation>\n{conversation}\n</conversation>\n\n"
    if reference is not None:
        text += f"<reference_answer>\n{_cut(reference)}\n</reference_answer>\n\n"
    if rubric:
        text += f"<rubric>\n{_cut(rubric)}\n</rubric>\n\n"
    return text


def judge_messages(prompt: list[dict[str, Any]], reference: str | None, answer: str, rubric: str | None = None) -> list[dict[str, str]]:
    """The rubric conversation sent to the judge for one answer."""
    shown = f"<candidate_answer>\n{_cut(answer) or '(empty)'}\n</candidate_answer>\n\n"
    return _request(JUDGE_SYSTEM, prompt, reference, rubric, shown, "Rate the candidate answer. Reply with one line: Score: N (N from 1 to 10).")


def pairwise_messages(prompt: list[dict[str, Any]], reference: str | None, answer_a: str, answer_b: str, rubric: str | None = None) -> list[dict[str, str]]:
    """The conversation sent to a pairwise judge for one order of two answers."""
    shown = f"<answer_a>\n{_cut(answer_a) or '(empty)'}\n</answer_a>\n\n" + f"<answer_b>\n{_cut(answer_b) or '(empty)'}\n</answer_b>\n\n"
    return _request(PAIRWISE_SYSTEM, prompt, reference, rubric, shown, "Which answer is better? Reply with one line: Winner: A, Winner: B, or Winner: tie.")


def _request(system: str, prompt: list[dict[str, Any]], reference: str | None, rubric: str | None, answers: str, ask: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": _conversation_and_guides(prompt, reference, rubric) + answers + ask}]


_LABELLED = re.compile(r"\b(?:score|rating|grade)\b[^0-9\n]{0,12}?(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_OUT_OF_TEN = re.compile(r"(?<![\d.])(-?\d+(?:\.\d+)?)\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\W*(-?\d+(?:\.\d+)?)\W*$")


def parse_judge_rating(reply: str) -> int:
    """The 1-10 rating in a judge's reply ("Score: 8", "**Score:** 8/10", "7 out of 10", "9"); ValueError says why not."""
    text = (reply or "").strip()
    if not text:
        raise ValueError("the judge's reply was empty")
    found = [m.group(1) for m in _LABELLED.finditer(text)] or [m.group(1) for m in _OUT_OF_TEN.finditer(text)]
    if not found and (bare := _BARE_NUMBER.match(text)):
        found = [bare.group(1)]
    if not found:
        raise ValueError("the judge's reply has no 'Score: N'")
    values = {float(v) for v in found}
    if len(values) > 1:
        raise ValueError(f"the judge's reply gives conflicting scores ({', '.join(dict.fromkeys(found))})")
    value = values.pop()
    if not value.is_integer():
        raise ValueError(f"the judge gave {found[0]}, not a whole number from 1 to 10")
    if not 1 <= value <= 10:
        raise ValueError(f"the judge gave {int(value)}, outside 1-10")
    return int(value)


def judge_answer(
    ws: Workspace,
    judge: Participant,
    prompt: list[dict[str, Any]],
    reference: str | None,
    answer: str,
    *,
    rubric: str | None = None,
    call: CallFn | None = None,
) -> dict[str, Any]:
    """{judge_score (0-1) | None, judge_rating (1-10) | None, judge_reply, judge_error} for one answer.

    A judge that refuses the request is recorded on the case; one that is only unavailable for now (TransientError,
    after the caller's retries) stops the run, so that a resumed evaluation asks again rather than count an error."""
    max_tokens = judge.judge_max_tokens
    messages = judge_messages(prompt, reference, answer, rubric)
    try:
        reply = (call or direct_call(ws))(judge, messages, max_tokens)
    except TransientError:
        raise
    except UserError as error:
        return {"judge_score": None, "judge_rating": None, "judge_reply": None, "judge_error": f"judge call failed: {error}"}
    try:
        rating = parse_judge_rating(reply["text"])
    except ValueError as error:
        return {"judge_score": None, "judge_rating": None, "judge_reply": reply["text"], "judge_error": str(error)}
    return {"judge_score": round((rating - 1) / 9, 4), "judge_rating": rating, "judge_reply": reply["text"], "judge_error": None}


_WINNER = re.compile(r"\b(?:winner|better(?: answer)?|choice|verdict)\b\W{0,6}(A|B|tie|neither|equal)\b", re.IGNORECASE)
_BARE_CHOICE = re.compile(r"^\W*(A|B|tie)\W*$", re.IGNORECASE)


def parse_pairwise_choice(reply: str) -> str:
    """"A", "B" or "tie" from a pairwise judge's reply ("Winner: B", "**Winner:** A", "tie"); ValueError says why not."""
    text = (reply or "").strip()
    if not text:
        raise ValueError("the judge's reply was empty")
    found = [m.group(1) for m in _WINNER.finditer(text)]
    if not found and (bare := _BARE_CHOICE.match(text)):
        found = [bare.group(1)]
    if not found:
        raise ValueError("the judge's reply has no 'Winner: A', 'Winner: B' or 'Winner: tie'")
    choices = {c.upper() if len(c) == 1 else "tie" for c in found}
    if len(choices) > 1:
        raise ValueError(f"the judge's reply names more than one winner ({', '.join(dict.fromkeys(found))})")
    return choices.pop()


def judge_pair(
    ws: Workspace,
    judge: Participant,
    prompt: list[dict[str, Any]],
    reference: str | None,
    baseline_answer: str,
    candidate_answer: str,
    *,
    rubric: str | None = None,
    call: CallFn | None = None,
) -> dict[str, Any]:
    """Ask the judge twice, baseline first then candidate first. Returns each order's reply, parsed choice and error,
    and the winner ("baseline", "candidate" or "tie"): a model wins only when it is chosen in both orders."""
    max_tokens = judge.judge_max_tokens
    orders = {"baseline_first": (baseline_answer, candidate_answer, "baseline", "candidate"), "candidate_first": (candidate_answer, baseline_answer, "candidate", "baseline")}
    record: dict[str, Any] = {}
    picks = []
    for order, (answer_a, answer_b, model_a, model_b) in orders.items():
        messages = pairwise_messages(prompt, reference, answer_a, answer_b, rubric)
        entry: dict[str, Any] = {"reply": None, "choice": None, "error": None}
        try:
            entry["reply"] = (call or direct_call(ws))(judge, messages, max_tokens)["text"]
            entry["choice"] = parse_pairwise_choice(entry["reply"])
        except TransientError:
            raise
        except UserError as error:
            entry["error"] = f"judge call failed: {error}"
        except ValueError as error:
            entry["error"] = str(error)
        record[order] = entry
        picks.append({"A": model_a, "B": model_b, "tie": "tie"}.get(entry["choice"] or "", None))
    record["winner"] = picks[0] if picks[0] == picks[1] and picks[0] in ("baseline", "candidate") else "tie"
    return record


def pairwise_summary(results: list[dict[str, Any]], baseline: str, candidate: str) -> dict[str, Any]:
    """Wins, losses and ties of the candidate against the baseline, with a sign test and a verdict on them."""
    winners = [r["pairwise"][candidate]["winner"] for r in results]
    errors = sum(1 for r in results for order in ("baseline_first", "candidate_first") if r["pairwise"][candidate][order]["error"])
    # A win is 1 for its model and 0 for the other; a tie 0 for both: the paired difference is then +1, -1 or 0.
    baseline_points = [1.0 if w == "baseline" else 0.0 for w in winners]
    candidate_points = [1.0 if w == "candidate" else 0.0 for w in winners]
    test = paired_difference(baseline_points, candidate_points, name_a=baseline, name_b=candidate)
    return {
        "baseline": baseline,
        "candidate": candidate,
        "wins": test["wins_b"],
        "losses": test["wins_a"],
        "ties": test["ties"],
        "judge_errors": errors,
        "n": test["n"],
        "mean_difference": test["mean_difference"],
        "low": test["low"],
        "high": test["high"],
        "sign_test_p": test["sign_test_p"],
        "significant": test["significant"],
        "verdict": test["verdict"],
    }
