"""Evaluation metrics of issue 6 on hand-checked cases: the expected numbers are worked out in the comments (or are
the libraries' documented examples), never produced by the code under test."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from model_customization.errors import UserError
from model_customization.evaluation.metrics import (
    MEASUREMENTS,
    METRICS,
    bleu,
    chrf,
    contains,
    extract_tool_calls,
    json_valid,
    regex_match,
    rouge_l,
    schema_valid,
    score_case,
    tool_call_scores,
)


# --- ROUGE-L ---------------------------------------------------------------------------------------------------
def test_rouge_l_on_the_rouge_score_readme_example():
    # Stemmed tokens. Reference: the quick brown fox jump over the lazi dog (9).
    # Answer: the quick brown dog jump on the log (8). LCS "the quick brown jump the" = 5.
    # P = 5/8, R = 5/9, F = 2PR/(P+R) = 10/17.
    assert rouge_l("The quick brown dog jumps on the log.", "The quick brown fox jumps over the lazy dog") == pytest.approx(10 / 17)


def test_rouge_l_word_order_matters_unlike_token_f1():
    # Same three words reversed: LCS is 1 word of 3, so P = R = F = 1/3, while token F1 sees the same bag of words.
    assert rouge_l("c b a", "a b c") == pytest.approx(1 / 3)
    assert METRICS["token_f1"]("c b a", "a b c") == 1.0


def test_rouge_l_scores_non_latin_text():
    # rouge-score's own tokenizer keeps only [a-z0-9] and would give 0 here. LCS "привет мир" = 2 of 2 and 2 of 3:
    # P = 1, R = 2/3, F = 2 * (2/3) / (5/3) = 0.8.
    assert rouge_l("привет мир", "Привет мир друг") == pytest.approx(0.8)


def test_rouge_l_stems_words():
    # "running" and "runs" both stem to "run"; "cats" and "cat" to "cat": full match.
    assert rouge_l("cats running", "cat runs") == 1.0


# --- chrF and BLEU ---------------------------------------------------------------------------------------------
def test_chrf_hand_computed():
    # Character n-grams, answer "ab" vs reference "abc". Order 1: P = 2/2, R = 2/3. Order 2: P = 1/1, R = 1/2.
    # Orders 3-6: the answer has none, so they are left out. Mean P = 1, mean R = 7/12.
    # chrF (beta 2) = 5 * P * R / (4P + R) = (35/12) / (55/12) = 7/11.
    assert chrf("ab", "abc") == pytest.approx(7 / 11)


def test_chrf_ignores_whitespace_and_is_one_for_the_same_text():
    assert chrf("a b c", "abc") == 1.0
    assert chrf("Das ist gut.", "Das ist gut.") == 1.0
    assert chrf("xyz", "abc") == 0.0


def test_sentence_bleu_hand_computed():
    # "the cat sat" vs "the cat sat on the mat": 1-, 2- and 3-gram precision all 1, no 4-gram in the answer
    # (effective order drops it), brevity penalty exp(1 - 6/3) = e^-1.
    assert bleu("the cat sat", "the cat sat on the mat") == pytest.approx(math.exp(-1))
    assert bleu("the cat sat on the mat", "the cat sat on the mat") == 1.0  # clamped: sacrebleu says 100.00000000000004


def test_text_metrics_stay_within_zero_and_one_and_agree_on_empty_texts():
    for name, fn in METRICS.items():
        assert fn("", "") == 1.0, name  # nothing to compare on either side: agreement, as token_f1 has always said
        assert fn("", "something") == 0.0, name
        value = fn("a partly right answer", "the right answer")
        assert 0.0 <= value <= 1.0, name


def test_existing_metric_names_are_kept():
    assert list(METRICS)[:3] == ["exact_match", "normalized_exact_match", "token_f1"]
    assert {"rouge_l", "chrf", "bleu"} <= set(METRICS)


# --- JSON and JSON Schema --------------------------------------------------------------------------------------
def test_json_valid_whole_answer_or_fenced_block():
    assert json_valid('{"a": 1}') == 1.0
    assert json_valid("  [1, 2]\n") == 1.0
    assert json_valid('Here you go:\n```json\n{"a": [1, 2]}\n```\nAnything else?') == 1.0
    assert json_valid('```\n{"a": 1}\n```') == 1.0
    assert json_valid('{"a": 1') == 0.0
    assert json_valid("Here you go: {\"a\": 1}") == 0.0  # JSON in prose without a fence does not count
    assert json_valid('```json\n{"a": }\n```') == 0.0
    assert json_valid('{"a": NaN}') == 0.0  # Python's json would accept it; JSON does not
    assert json_valid("") == 0.0


SCHEMA = {
    "type": "object",
    "properties": {"priority": {"enum": ["low", "high"]}, "count": {"type": "integer", "minimum": 0}},
    "required": ["priority"],
    "additionalProperties": False,
}


def test_schema_valid():
    assert schema_valid('{"priority": "high", "count": 3}', SCHEMA) == 1.0
    assert schema_valid('```json\n{"priority": "low"}\n```', SCHEMA) == 1.0
    assert schema_valid('{"priority": "urgent"}', SCHEMA) == 0.0  # not in the enum
    assert schema_valid('{"count": 3}', SCHEMA) == 0.0  # required missing
    assert schema_valid('{"priority": "low", "count": -1}', SCHEMA) == 0.0
    assert schema_valid('{"priority": "low", "extra": 1}', SCHEMA) == 0.0
    assert schema_valid("priority: high", SCHEMA) == 0.0  # not JSON at all


def test_schema_with_a_local_ref_and_formats():
    schema = {"$defs": {"day": {"type": "string", "format": "date"}}, "type": "array", "items": {"$ref": "#/$defs/day"}}
    assert schema_valid('["2024-05-01"]', schema) == 1.0
    assert schema_valid('["first of May"]', schema) == 0.0  # the date format is checked


def test_broken_schema_and_remote_refs_are_clear_errors():
    with pytest.raises(UserError, match="not a valid JSON Schema"):
        schema_valid("{}", {"type": "no-such-type"})
    with pytest.raises(UserError, match="remote references are not fetched"):
        schema_valid("{}", {"$ref": "https://example.com/schema.json"})


# --- regex and contains ----------------------------------------------------------------------------------------
def test_regex_and_contains():
    assert regex_match("Ticket OPS-123 opened", r"OPS-\d+") == 1.0
    assert regex_match("Ticket OPS-123 opened", r"^OPS-\d+$") == 0.0
    assert regex_match("ops-123", r"OPS-\d+") == 0.0  # case-sensitive unless the pattern says (?i)
    assert regex_match("ops-123", r"(?i)OPS-\d+") == 1.0
    with pytest.raises(UserError, match="does not compile"):
        regex_match("x", "(unclosed")
    assert contains("restart the db, then page on-call", ["restart", "page", "rollback"]) == pytest.approx(2 / 3)
    assert contains("restart the db", "restart") == 1.0
    assert contains("Restart the db", "restart") == 0.0
    with pytest.raises(UserError, match="non-empty list"):
        contains("x", [])


# --- tool calls ------------------------------------------------------------------------------------------------
EXPECTED_CALL = {"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}


def openai_call(name: str, arguments: dict) -> dict:
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def test_openai_tool_calls_list():
    answer = {"text": "", "tool_calls": [openai_call("get_weather", {"unit": "celsius", "city": "Oslo"})]}
    assert tool_call_scores(answer, EXPECTED_CALL) == {"tool_name_match": 1.0, "tool_arguments_match": 1.0, "tool_call_exact": 1.0}


def test_tool_call_as_json_in_the_text():
    text = 'I will look it up.\n```json\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "fahrenheit"}}\n```'
    # city agrees, unit does not: 1 of 2 argument names.
    assert tool_call_scores(text, EXPECTED_CALL) == {"tool_name_match": 1.0, "tool_arguments_match": 0.5, "tool_call_exact": 0.0}
    # Llama-style "parameters", and a {"tool_calls": [...]} wrapper, are read too.
    assert tool_call_scores('{"name": "get_weather", "parameters": {"city": "Oslo", "unit": "celsius"}}', EXPECTED_CALL)["tool_call_exact"] == 1.0
    wrapped = json.dumps({"tool_calls": [openai_call("get_weather", EXPECTED_CALL["arguments"])]})
    assert tool_call_scores(wrapped, EXPECTED_CALL)["tool_call_exact"] == 1.0


def test_tool_call_partial_scores():
    # Wrong function, same arguments: name 0, arguments 1, exact 0.
    wrong_name = {"tool_calls": [openai_call("get_forecast", {"city": "Oslo", "unit": "celsius"})]}
    assert tool_call_scores(wrong_name, EXPECTED_CALL) == {"tool_name_match": 0.0, "tool_arguments_match": 1.0, "tool_call_exact": 0.0}
    # Missing "unit" and an extra "days": names {city, unit, days}, only city agrees -> 1/3.
    answer = {"tool_calls": [openai_call("get_weather", {"city": "Oslo", "days": 3})]}
    assert tool_call_scores(answer, EXPECTED_CALL)["tool_arguments_match"] == pytest.approx(1 / 3)
    # true is not 1 in JSON, though Python says True == 1; 2 and 2.0 are the same JSON number.
    assert tool_call_scores('{"name": "f", "arguments": {"x": true}}', {"name": "f", "arguments": {"x": 1}})["tool_arguments_match"] == 0.0
    assert tool_call_scores('{"name": "f", "arguments": {"x": 2.0}}', {"name": "f", "arguments": {"x": 2}})["tool_call_exact"] == 1.0


def test_no_tool_call_scores_zero_and_the_expected_function_is_found_among_several():
    assert tool_call_scores("It is sunny in Oslo.", EXPECTED_CALL) == {"tool_name_match": 0.0, "tool_arguments_match": 0.0, "tool_call_exact": 0.0}
    answer = {"tool_calls": [openai_call("lookup_city", {"q": "Oslo"}), openai_call("get_weather", EXPECTED_CALL["arguments"])]}
    assert tool_call_scores(answer, EXPECTED_CALL)["tool_call_exact"] == 1.0
    assert [c["name"] for c in extract_tool_calls(answer)] == ["lookup_city", "get_weather"]
    # Arguments that are a string but not JSON stay a string and match nothing.
    assert tool_call_scores({"tool_calls": [{"function": {"name": "get_weather", "arguments": "city=Oslo"}}]}, EXPECTED_CALL)["tool_arguments_match"] == 0.0


def test_malformed_expected_tool_call_is_a_user_error():
    with pytest.raises(UserError, match="expected_tool_call"):
        tool_call_scores("{}", {"arguments": {}})


# --- score_case ------------------------------------------------------------------------------------------------
def test_score_case_applies_what_the_case_provides():
    scores = score_case("Paris", {"reference": "Paris"})
    assert {name: scores[name] for name in METRICS} == {name: 1.0 for name in METRICS}
    assert scores["answer_chars"] == 5.0
    assert scores["answer_tokens"] == 1.0  # "Paris" is one o200k token
    assert set(scores) == set(METRICS) | set(MEASUREMENTS)

    case = {
        "messages": [{"role": "user", "content": "Triage this."}],
        "json_schema": SCHEMA,
        "regex": r'"priority":\s*"high"',
        "contains": ["high", "count"],
        "rubric": "left to the judge",
    }
    scores = score_case('{"priority": "high"}', case)
    assert scores == {
        "json_valid": 1.0,
        "schema_valid": 1.0,
        "regex_match": 1.0,
        "contains": 0.5,
        "answer_chars": 20.0,
        "answer_tokens": scores["answer_tokens"],
    }
    assert 4 <= scores["answer_tokens"] <= 10  # {"priority": "high"} in o200k


def test_score_case_with_a_tool_call_answer_dict():
    answer = {"content": None, "tool_calls": [openai_call("get_weather", EXPECTED_CALL["arguments"])]}
    scores = score_case(answer, {"expected_tool_call": EXPECTED_CALL})
    assert scores == {"tool_name_match": 1.0, "tool_arguments_match": 1.0, "tool_call_exact": 1.0, "answer_chars": 0.0, "answer_tokens": 0.0}


def test_scores_are_within_zero_and_one_and_measurements_are_apart():
    case = {"reference": "x y", "json_schema": SCHEMA, "regex": "y", "contains": "x", "expected_tool_call": EXPECTED_CALL}
    scores = score_case("a much longer answer than the reference, with x and y " * 3, case)
    for name, value in scores.items():
        if name not in MEASUREMENTS:
            assert 0.0 <= value <= 1.0, name
    assert scores["answer_chars"] > 100


def test_score_case_rejects_a_reference_that_is_not_text():
    with pytest.raises(UserError, match="reference must be text"):
        score_case("x", {"reference": 3})


def test_importing_metrics_loads_no_metric_library():
    # The libraries load on first use, so the server does not pay NLTK's import time at start-up.
    code = "import sys, model_customization.evaluation.metrics; print(sorted(m for m in ('nltk', 'rouge_score', 'sacrebleu', 'jsonschema') if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "[]"


def test_tool_calls_in_the_tagged_form_our_local_rendering_uses_are_read():
    from model_customization.evaluation.metrics import extract_tool_calls, tool_call_scores

    expected = {"name": "deploy", "arguments": {"env": "prod", "version": "v1.2.0"}}
    tagged = 'Deploying now.\n<tool_call>{"name": "deploy", "arguments": {"version": "v1.2.0", "env": "prod"}}</tool_call>'
    assert tool_call_scores(tagged, expected) == {"tool_name_match": 1.0, "tool_arguments_match": 1.0, "tool_call_exact": 1.0}
    wrong_argument = '<tool_call>{"name": "deploy", "arguments": {"env": "staging", "version": "v1.2.0"}}</tool_call>'
    assert tool_call_scores(wrong_argument, expected) == {"tool_name_match": 1.0, "tool_arguments_match": 0.5, "tool_call_exact": 0.0}
    # A tag whose body is not JSON is a call, and a wrong one; it is not skipped in favour of a later call.
    assert extract_tool_calls("<tool_call>deploy(prod)</tool_call>") == [{"name": None, "arguments": "deploy(prod)"}]
    assert tool_call_scores("<tool_call>deploy(prod)</tool_call>", expected)["tool_call_exact"] == 0.0
    two = tagged + '\n<tool_call>{"name": "notify", "arguments": {"channel": "ops"}}</tool_call>'
    assert [c["name"] for c in extract_tool_calls(two)] == ["deploy", "notify"]
