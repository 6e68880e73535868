"""Answer-quality metrics for one answer: against a reference text, and against whatever else an evaluation case
asks for (a JSON Schema, a regex, required substrings, an expected tool call).

`METRICS` holds the reference-based text metrics, each fn(answer_text, reference_text) -> float in 0..1.
`score_case` applies everything a case provides and adds two measurements (answer length in characters and tokens),
which are counts, not 0..1 scores: their names are in `MEASUREMENTS`, so a report can keep them apart.

Nothing here downloads at run time. rouge-score's tokenizer is a regex and its Porter stemmer is plain code (NLTK's
`sent_tokenize`, which would need the punkt data, is only used for rougeLsum, which we do not compute). sacrebleu's
default BLEU tokenizer (13a) and chrF are regexes and character n-grams; only its spm/flores tokenizers download a
model, and we never select them. answer_tokens counts with OpenAI's o200k encoding from bpe-openai, which ships the
encoding inside the package. The library imports are inside the functions: NLTK alone takes about a second to
import, which the server should not pay at start-up.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from model_customization.datasets.tokens import count_text
from model_customization.errors import UserError

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed: the usual normalisation for answer matching."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(prediction.strip() == reference.strip())


def normalized_exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall over normalised tokens (multiset overlap)."""
    predicted, expected = normalize(prediction).split(), normalize(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


# --- ROUGE-L, chrF, BLEU -------------------------------------------------------------------------------------
# As token_f1 does, two texts with nothing to compare (both empty) agree fully; the libraries would say 0 there.


class _UnicodeRougeTokenizer:
    """rouge-score's default tokenization (lower case, runs of letters and digits, Porter stem on words longer than 3)
    but with Unicode letters: the default keeps only [a-z0-9], which scores every non-Latin answer 0. On ASCII text
    the tokens are the same as the default's, so scores stay comparable with published ROUGE-L figures."""

    _WORD = re.compile(r"[^\W_]+")

    def __init__(self) -> None:
        from nltk.stem.porter import PorterStemmer

        self._stemmer = PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        return [self._stemmer.stem(word) if len(word) > 3 else word for word in self._WORD.findall(text.lower())]


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    tokenizer = _UnicodeRougeTokenizer()
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=tokenizer), tokenizer


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: longest common subsequence of (stemmed) words, as precision and recall against the reference."""
    scorer, tokenizer = _rouge_scorer()
    if not tokenizer.tokenize(prediction) and not tokenizer.tokenize(reference):
        return 1.0
    return float(scorer.score(reference, prediction)["rougeL"].fmeasure)


@lru_cache(maxsize=1)
def _sacrebleu_metrics():
    from sacrebleu.metrics import BLEU, CHRF

    # effective_order: a short answer with no 4-gram is scored on the n-gram orders it has (sacrebleu's advice for
    # sentence-level BLEU) instead of collapsing to 0. Tokenizer 13a and exp smoothing are sacrebleu's defaults.
    return BLEU(effective_order=True), CHRF()


def _scaled(score: float) -> float:
    return min(max(score / 100.0, 0.0), 1.0)  # sacrebleu gives 0..100 and sometimes 100.00000000000004


def chrf(prediction: str, reference: str) -> float:
    """chrF (character 1-6-grams, beta 2, whitespace ignored), scaled to 0..1."""
    if not prediction.strip() and not reference.strip():
        return 1.0
    return _scaled(_sacrebleu_metrics()[1].sentence_score(prediction, [reference]).score)


def bleu(prediction: str, reference: str) -> float:
    """Sentence BLEU (13a tokens, exp smoothing, effective order), scaled to 0..1."""
    if not prediction.strip() and not reference.strip():
        return 1.0
    return _scaled(_sacrebleu_metrics()[0].sentence_score(prediction, [reference]).score)


METRICS = {
    "exact_match": exact_match,
    "normalized_exact_match": normalized_exact_match,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
    "chrf": chrf,
    "bleu": bleu,
}

# Values score_case returns that are counts, not 0..1 scores: averaging them is fine, reading them as quality is not.
MEASUREMENTS = ("answer_chars", "answer_tokens")


# --- JSON answers ----------------------------------------------------------------------------------------------
_FENCE = re.compile(r"```[ \t]*(?:json[ \t]*)?\r?\n(.*?)\r?\n?[ \t]*```", re.IGNORECASE | re.DOTALL)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN and Infinity; JSON does not


def parse_json_answer(text: str) -> Any:
    """The JSON value an answer holds: the whole answer, or the first ```json (or bare ```) fenced block in it.
    ValueError when neither parses."""
    stripped = text.strip()
    try:
        return json.loads(stripped, parse_constant=_reject_constant)
    except ValueError:
        pass
    fence = _FENCE.search(text)
    if fence is None:
        raise ValueError("the answer is not JSON and has no ```json block")
    return json.loads(fence.group(1), parse_constant=_reject_constant)


def json_valid(text: str) -> float:
    """1.0 when the answer is JSON (whole, or in a ```json fence), else 0.0."""
    try:
        parse_json_answer(text)
    except ValueError:
        return 0.0
    return 1.0


@lru_cache(maxsize=64)
def schema_validator(schema_json: str):
    import jsonschema
    from referencing import Registry

    schema = json.loads(schema_json)
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise UserError(f"The case's json_schema is not a valid JSON Schema: {error.message}. Fix the schema in the suite.") from error
    # An empty registry: a $ref to anything outside the schema fails instead of being fetched over the network.
    return validator_class(schema, registry=Registry(), format_checker=validator_class.FORMAT_CHECKER)


def schema_valid(text: str, schema: Mapping[str, Any] | bool) -> float:
    """1.0 when the answer is JSON that conforms to the JSON Schema, else 0.0 (answers that are not JSON included).
    UserError when the schema itself is broken, since no answer could be judged against it."""
    if not isinstance(schema, (Mapping, bool)):
        raise UserError(f"A case's json_schema must be a JSON object (or true/false), not {type(schema).__name__}.")
    validator = schema_validator(json.dumps(schema, sort_keys=True))
    try:
        value = parse_json_answer(text)
    except ValueError:
        return 0.0
    from referencing.exceptions import Unresolvable

    try:
        return float(validator.is_valid(value))
    except Unresolvable as error:
        raise UserError(
            f"The case's json_schema refers to {error.ref!r}, which is not inside the schema; remote references are not "
            "fetched. Put the referenced definition under $defs in the schema."
        ) from error


# --- regex and contains ----------------------------------------------------------------------------------------
def regex_match(text: str, pattern: str) -> float:
    """1.0 when the pattern is found anywhere in the answer (re.search; anchor with ^...$ for the whole answer)."""
    if not isinstance(pattern, str):
        raise UserError(f"A case's regex must be a string, not {type(pattern).__name__}.")
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise UserError(f"The case's regex {pattern!r} does not compile: {error}. Fix it in the suite (Python re syntax).") from error
    return float(compiled.search(text) is not None)


def contains(text: str, needles: str | list[str]) -> float:
    """The share of the required substrings found in the answer, case-sensitive: 1.0 when all are there."""
    wanted = [needles] if isinstance(needles, str) else needles
    if not isinstance(wanted, list) or not wanted or not all(isinstance(n, str) for n in wanted):
        raise UserError("A case's contains must be a string or a non-empty list of strings.")
    return sum(1 for needle in wanted if needle in text) / len(wanted)


# --- tool calls ------------------------------------------------------------------------------------------------
def _arguments(raw: Any) -> Any:
    """Arguments as a value: OpenAI sends them as a JSON string, other formats as an object."""
    if isinstance(raw, str):
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except ValueError:
            return raw  # unparseable arguments stay a string, which matches no expected object
    return {} if raw is None else raw


def _as_call(item: Any) -> dict[str, Any] | None:
    """{"name", "arguments"} from one call in any of the shapes models use, or None."""
    if not isinstance(item, Mapping):
        return None
    if isinstance(item.get("function"), Mapping):  # OpenAI: {"type": "function", "function": {"name", "arguments"}}
        item = item["function"]
    name = item.get("name")
    if not isinstance(name, str):
        return None
    # "parameters" (Llama-style) and "input" (Anthropic tool_use) are the same thing under other names.
    for key in ("arguments", "parameters", "input"):
        if key in item:
            return {"name": name, "arguments": _arguments(item[key])}
    return {"name": name, "arguments": {}}


_TOOL_CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def extract_tool_calls(answer: str | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tool calls in an answer, each {"name", "arguments"}: an OpenAI-style `tool_calls` list on an answer dict,
    else JSON in the answer text (one call object, a list of them, or {"tool_calls": [...]})."""
    if isinstance(answer, Mapping):
        listed = [call for item in answer.get("tool_calls") or [] if (call := _as_call(item))]
        if listed:
            return listed
        text = answer.get("text")
        if text is None:
            text = answer.get("content")
        text = text if isinstance(text, str) else ""
    else:
        text = answer
    # Our local chat rendering (datasets/examples.render_tool_calls) writes calls as <tool_call>{json}</tool_call>,
    # as Qwen/Hermes-style models do; a tuned local model answers in that form.
    tagged = _TOOL_CALL_TAG.findall(text)
    if tagged:
        calls = []
        for body in tagged:
            try:
                call = _as_call(json.loads(body, parse_constant=_reject_constant))
            except ValueError:
                call = None
            calls.append(call or {"name": None, "arguments": body})  # an unreadable call still counts, as a wrong one
        return calls
    try:
        value = parse_json_answer(text)
    except ValueError:
        return []
    if isinstance(value, Mapping) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    return [call for item in items if (call := _as_call(item))]


def _same_json(a: Any, b: Any) -> bool:
    """Equality of JSON values that, unlike ==, keeps true apart from 1 (1 and 1.0 are the same JSON number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _arguments_agreement(given: Any, expected: Any) -> float:
    """Share of argument names, over both sides, whose values agree: 1.0 only for the same arguments; a missing,
    extra or wrong argument each costs one name's share."""
    if isinstance(given, Mapping) and isinstance(expected, Mapping):
        names = set(given) | set(expected)
        if not names:
            return 1.0
        return sum(1 for n in names if n in given and n in expected and _same_json(given[n], expected[n])) / len(names)
    return float(_same_json(given, expected))


def tool_call_scores(answer: str | Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, float]:
    """tool_name_match, tool_arguments_match (share of argument names that agree) and tool_call_exact (both fully
    right) for the answer's call to the expected function, or its first call when none names it; 0s with no call."""
    if not isinstance(expected, Mapping) or not isinstance(expected.get("name"), str):
        raise UserError('A case\'s expected_tool_call must be an object like {"name": "get_weather", "arguments": {"city": "Oslo"}}.')
    expected_arguments = _arguments(expected.get("arguments"))
    if isinstance(expected.get("arguments"), str) and isinstance(expected_arguments, str):
        raise UserError(f"The arguments of expected_tool_call {expected['name']!r} are a string that is not JSON; give them as an object.")
    calls = extract_tool_calls(answer)
    if not calls:
        return {"tool_name_match": 0.0, "tool_arguments_match": 0.0, "tool_call_exact": 0.0}
    call = next((c for c in calls if c["name"] == expected["name"]), calls[0])
    name_match = float(call["name"] == expected["name"])
    arguments_match = _arguments_agreement(call["arguments"], expected_arguments)
    return {
        "tool_name_match": name_match,
        "tool_arguments_match": arguments_match,
        "tool_call_exact": float(name_match == 1.0 and arguments_match == 1.0),
    }


# --- length ----------------------------------------------------------------------------------------------------
def answer_tokens(text: str) -> int:
    """Tokens in the answer with OpenAI's o200k encoding: one yardstick for answers from any model."""
    return count_text(text, "o200k_base")


# --- one case --------------------------------------------------------------------------------------------------
def _answer_text(answer: str | Mapping[str, Any]) -> str:
    if isinstance(answer, str):
        return answer
    text = answer.get("text")
    if text is None:
        text = answer.get("content")  # an OpenAI-style message
    return text if isinstance(text, str) else ""


def score_case(answer: str | Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, float]:
    """Every metric the case provides for: "reference" -> METRICS; "json_schema" -> json_valid and schema_valid;
    "regex" -> regex_match; "contains" -> contains; "expected_tool_call" -> tool_name_match, tool_arguments_match,
    tool_call_exact. Always answer_chars and answer_tokens (see MEASUREMENTS). The answer is its text or a dict with
    "text" (or "content") and optionally "tool_calls". Other case keys (messages, rubric) are left to the caller."""
    text = _answer_text(answer)
    scores: dict[str, float] = {}
    reference = case.get("reference")
    if reference is not None:
        if not isinstance(reference, str):
            raise UserError(f"A case's reference must be text, not {type(reference).__name__}.")
        scores.update({name: fn(text, reference) for name, fn in METRICS.items()})
    if "json_schema" in case:
        scores["json_valid"] = json_valid(text)
        scores["schema_valid"] = schema_valid(text, case["json_schema"])
    if case.get("regex") is not None:
        scores["regex_match"] = regex_match(text, case["regex"])
    if case.get("contains") is not None:
        scores["contains"] = contains(text, case["contains"])
    if case.get("expected_tool_call") is not None:
        scores.update(tool_call_scores(answer, case["expected_tool_call"]))
    scores["answer_chars"] = float(len(text))
    scores["answer_tokens"] = float(answer_tokens(text))
    return scores
