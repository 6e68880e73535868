"""The judges: one that rates an answer against the reference from 1 to 10, and a pairwise one that picks the better
of two answers, asked in both orders so that a judge favouring a position cannot make a winner.

A reply the judge cannot be understood from, or a judge call the provider refuses, is recorded on the case and
counted, never dropped; a provider that is only unavailable for now (TransientError) stops the run so that a resumed
evaluation asks again.
"""

from __future__ import annotations

import math
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


# --- the group judge: a GRPO reward that ranks a group's answers against each other (as OpenPipe's RULER does) ---
# One request shows the conversation, the rubric and every answer of the group, labelled; the judge gives each a
# score from 0 to 1 in JSON. Seeing the answers side by side lets a judge grade relatively (which of these is better
# and by how much), which is what group advantages need: only the differences within a group move the policy.
GROUP_SYSTEM = (
    "You score several candidate answers given at the same point of a conversation, by comparing them with each "
    "other. Give each a score from 0 to 1: correct facts and decisions first, then progress towards what the user "
    "asked, then completeness and the expected format. When a rubric is shown, score by it; when a reference answer is "
    "shown, it is one good answer, not the only one. Spread the scores to reflect real differences: a clearly better "
    "answer scores clearly higher, answers of the same quality score the same. Their order, labels and length say "
    "nothing about their quality.\n"
    'Reply with JSON only, in this shape: {"scores": [{"answer": 1, "reason": "<a few words>", "score": 0.7}, ...]} '
    "with one entry per answer, in the order shown."
)
DEFAULT_GROUP_RUBRIC = (
    "An answer that does what the user asked, correctly and in the form asked for, scores high. One that makes "
    "progress but is incomplete or partly wrong scores in between. One that is wrong, off-topic, empty, or repeats "
    "itself scores low."
)
# A cloud judge gets room to give a short reason per answer (and for models that think first); a local judge, which
# would otherwise ramble on CPU, gets room for the JSON and little more.
GROUP_JUDGE_ASKS = 2  # a reply that cannot be read is asked for once more; the quote counts both asks
GROUP_JUDGE_TOKENS = {"local": (24, 24), "cloud": (1024, 64)}  # (base, per answer beyond eight)


def group_judge_max_tokens(judge: Participant, group_size: int) -> int:
    base, per_answer = GROUP_JUDGE_TOKENS["local" if judge.is_local else "cloud"]
    return base + per_answer * (group_size if judge.is_local else max(0, group_size - 8))


def answer_as_text(answer: str | dict[str, Any]) -> str:
    """What a judge is shown of an answer: its text, and the tool calls an episode made (one JSON line each)."""
    if isinstance(answer, str):
        return answer
    import json

    calls = [json.dumps(c, ensure_ascii=False, sort_keys=True) for c in answer.get("tool_calls") or []]
    text = answer.get("text") or ""
    return "\n".join([*(f"[tool call] {c}" for c in calls), text]).strip()


def group_messages(prompt: list[dict[str, Any]], answers: list[str], rubric: str | None = None, reference: str | None = None) -> list[dict[str, str]]:
    """The one request that asks a judge to score every answer of a group."""
    shown = "".join(f"<answer_{n}>\n{_cut(text) or '(empty)'}\n</answer_{n}>\n\n" for n, text in enumerate(answers, start=1))
    ask = f"Score each of the {len(answers)} answers from 0 to 1. Reply with the JSON object only."
    return _request(GROUP_SYSTEM, prompt, reference, rubric or DEFAULT_GROUP_RUBRIC, shown, ask)


def _json_objects(text: str) -> list[Any]:
    """Every JSON object that starts somewhere in `text` (a reply may wrap it in a code fence or a sentence)."""
    import json

    decoder, found, start = json.JSONDecoder(), [], text.find("{")
    while start >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        found.append(value)
        start = text.find("{", end)
    return found


def parse_group_scores(reply: str, count: int) -> list[float]:
    """The `count` scores (0-1, in answer order) in a group judge's reply; ValueError says what was wrong.

    Takes {"scores": [{"answer": n, "score": s}, ...]} (labels 1..count, each once, any order) or {"scores": [s, ...]}."""
    text = (reply or "").strip()
    if not text:
        raise ValueError("the judge's reply was empty")
    candidates = [value for value in _json_objects(text) if isinstance(value, dict) and "scores" in value]
    if not candidates:
        raise ValueError('the judge\'s reply has no JSON object with "scores"')
    entries = candidates[-1]["scores"]  # a judge that corrects itself: its last object stands
    if not isinstance(entries, list):
        raise ValueError('"scores" is not a list')
    if len(entries) != count:
        raise ValueError(f"the judge scored {len(entries)} answers, not the {count} it was shown")
    by_label: dict[int, Any] = {}
    for position, entry in enumerate(entries, start=1):
        if isinstance(entry, dict):
            label, value = entry.get("answer", position), entry.get("score")
        else:
            label, value = position, entry
        if isinstance(label, str) and label.strip().isdigit():
            label = int(label.strip())
        if not isinstance(label, int) or isinstance(label, bool) or not 1 <= label <= count:
            raise ValueError(f"the judge labelled a score {label!r}; the answers are 1 to {count}")
        if label in by_label:
            raise ValueError(f"the judge scored answer {label} twice")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"answer {label}'s score is {value!r}, not a number")
        if not 0 <= value <= 1:
            raise ValueError(f"answer {label}'s score {value} is outside 0-1")
        by_label[label] = float(value)
    return [by_label[n] for n in range(1, count + 1)]


def judge_group(
    ws: Workspace,
    judge: Participant,
    prompt: list[dict[str, Any]],
    answers: list[str | dict[str, Any]],
    *,
    rubric: str | None = None,
    reference: str | None = None,
    call: CallFn | None = None,
) -> dict[str, Any]:
    """{scores (0-1 per answer) | None, error | None, replies, calls} from one judge call for a whole group.

    A reply that cannot be read (no JSON, a missing or repeated answer, a score outside 0-1) is asked once more; a
    second bad reply gives scores None and the error, which the caller counts. A call the provider refuses (UserError,
    such as one that would pass the approved spending) or that fails for now (TransientError) is raised: the caller
    decides whether that stops its work."""
    texts = [answer_as_text(a) for a in answers]
    messages = group_messages(prompt, texts, rubric, reference)
    max_tokens = group_judge_max_tokens(judge, len(texts))
    replies: list[str] = []
    error = None
    for _ in range(GROUP_JUDGE_ASKS):
        reply = (call or direct_call(ws))(judge, messages, max_tokens)["text"]
        replies.append(reply)
        try:
            return {"scores": parse_group_scores(reply, len(texts)), "error": None, "replies": replies, "calls": len(replies)}
        except ValueError as bad:
            error = str(bad)
    return {"scores": None, "error": error, "replies": replies, "calls": len(replies)}
