"""Unpaired examples for KTO: each conversation with an outcome signal becomes one example labelled desirable or not.

The stored shape is a chat example plus a label, `{"messages": [...], "tools"?: [...], "label": true|false}`: the
format LLaMA-Factory uses for KTO (our sharegpt importer reads it back), and TRL's conversational unpaired
preference rows (`prompt`, `completion`, `label`) split at the first trained assistant turn. The completion is every
assistant turn of the session, not only the last one, and the label applies to the whole trajectory: the signals
judge a session (a reward for the task, a verdict, an error or interruption somewhere in it, thumbs on the thread),
and in an agent's session the turn that went wrong is usually not the final one. Assistant turns with weight 0 are
context, as in SFT.

Which label a conversation gets: the first of these that the source recorded decides.

1. verdict: a judgement on the whole session given outside the transcript (cass-memory's outcome records: success
   is desirable; failure, mixed and partial are not).
2. rating: thumbs up or down (ChatGPT's message feedback, a KTO file's label).
3. reward: at or above `reward_threshold` desirable, below it undesirable (tau-bench rewards; ToolBench's answers
   count 1 or 0). The default threshold, 0.5, is the midpoint of the 0-to-1 rewards these sources give.
4. transcript signals (when `transcript_signals` is on, the default): a tool error, a rejected tool call or an
   interruption makes the session undesirable (the meaning `outcome="successful"` gives them everywhere); a session
   with none of them is desirable when it comes from an agent whose transcripts record such failures (Claude Code,
   Codex, Gemini CLI, Cline, Aider, OpenHands, ...), since there its clean run is itself a signal.

Anything else (a plain chat file, a trajectory without a reward) has no signal and is dropped as
`no_outcome_signal`. cass-memory's helpful/harmful counts judge a playbook rule, not a session, and are not
imported (memory/cass_memory.py), so they label nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from model_customization.memory.records import Conversation

DEFAULT_REWARD_THRESHOLD = 0.5
NO_SIGNAL = "no_outcome_signal"


def _records_failures(source_format: str) -> bool:
    """Whether this format's importer is an agent's transcript that records tool errors, rejections or interruptions."""
    from model_customization.memory.detect import FORMATS

    found = next((f for f in FORMATS if f.name == source_format), None)
    return found is not None and found.agent is not None and bool(found.outcome_signals)


@dataclass
class OutcomeLabeller:
    """Labels conversations for a KTO build and counts, per label, which signal decided it (for the card)."""

    reward_threshold: float = DEFAULT_REWARD_THRESHOLD
    transcript_signals: bool = True
    decided_by: dict[str, Counter[str]] = field(default_factory=lambda: {"desirable": Counter(), "undesirable": Counter()})
    _agent_formats: dict[str, bool] = field(default_factory=dict)

    def signal(self, conversation: Conversation) -> tuple[bool, str] | None:
        """(desirable?, the signal that decided it), or None when the conversation carries no outcome signal."""
        outcome = conversation.outcome
        if outcome.verdict is not None:
            return outcome.verdict, "verdict"
        if outcome.rating is not None and outcome.rating != 0:
            return outcome.rating > 0, "rating"
        if outcome.reward is not None:
            return outcome.reward >= self.reward_threshold, "reward"
        if not self.transcript_signals:
            return None
        if outcome.user_rejected:
            return False, "rejected"
        if outcome.interrupted:
            return False, "interrupted"
        if outcome.is_error:
            return False, "error"
        known = self._agent_formats.get(conversation.source_format)
        if known is None:
            known = self._agent_formats[conversation.source_format] = _records_failures(conversation.source_format)
        return (True, "clean_session") if known else None

    def kept(self, signal: tuple[bool, str]) -> None:
        """Count a labelled example that made it into the dataset (after the checks and dedupe)."""
        self.decided_by["desirable" if signal[0] else "undesirable"][signal[1]] += 1

    def card(self) -> dict[str, Any]:
        """The card's `kto` section: how many of each label, and which signals decided them."""
        desirable, undesirable = (sum(self.decided_by[k].values()) for k in ("desirable", "undesirable"))
        return {
            "desirable": desirable,
            "undesirable": undesirable,
            "decided_by": {k: dict(sorted(v.items())) for k, v in self.decided_by.items()},
            "reward_threshold": self.reward_threshold,
            "transcript_signals": self.transcript_signals,
        }


def labelled_example(example: dict[str, Any], label: bool) -> dict[str, Any]:
    return {**example, "label": label}


def is_unpaired(example: dict[str, Any]) -> bool:
    """A KTO example: chat messages with a desirable (true) or undesirable (false) label."""
    return "label" in example and "messages" in example


def card_markdown_lines(kto: dict[str, Any]) -> list[str]:
    """The card.md section of a KTO dataset."""
    def signals(counts: dict[str, int]) -> str:
        return ", ".join(f"{k}: {n}" for k, n in counts.items()) or "none"

    return [
        "",
        "## Labels (KTO)",
        "",
        f"- desirable: {kto['desirable']} ({signals(kto['decided_by']['desirable'])})",
        f"- undesirable: {kto['undesirable']} ({signals(kto['decided_by']['undesirable'])})",
        f"- reward threshold: {kto['reward_threshold']}; transcript signals: {'on' if kto['transcript_signals'] else 'off'}",
    ]


def unpaired_findings(row: dict[str, Any], message_findings: Any, example_keys: set[str]) -> list[tuple[str, str]]:
    """validate.py's checks of a KTO row: a chat example's, plus a label that is true or false."""
    problems = message_findings(row.get("messages"), "example")
    if not isinstance(row.get("label"), bool):
        problems.append(("invalid_label", f"'label' must be true (desirable) or false (undesirable), not {row.get('label')!r}"))
    extra = set(row) - example_keys - {"label"}
    if extra:
        problems.append(("unrecognized_key", f"unrecognised keys {sorted(extra)}"))
    return problems
