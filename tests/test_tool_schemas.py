"""A suite case's `tools` (OpenAI function tools): checked with file, line and tool; stored with GRPO's cases; shown
to a local model through one rendering (its chat template's `tools`, or a system message when the template ignores
them), so that GRPO trains on exactly the prompt evaluate scores; sent to a hosted model as the API's `tools`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from model_customization.errors import UserError
from model_customization.evaluation.suites import load_suite

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Today's weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "description": "The time now in a city."}}
CASE = {
    "messages": [{"role": "user", "content": "What is the weather in Oslo?"}],
    "tools": [WEATHER_TOOL, TIME_TOOL],
    "expected_tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}},
    "tool_results": {"get_weather": "12 C, light rain"},
    "contains": "rain",
}
# A template that renders `tools` itself (as Qwen's and Llama 3's do), for the native path.
NATIVE_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTOOLS:{% for t in tools %} {{ t['function']['name'] }}{% endfor %}<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _write(path: Path, cases: list[dict]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


# --- 1. the suite format ----------------------------------------------------------------------------------------------
def test_a_case_keeps_its_tools(tmp_path: Path):
    [case] = load_suite(_write(tmp_path / "s.jsonl", [CASE]))
    assert case["tools"] == [WEATHER_TOOL, TIME_TOOL]
    # The YAML form too (a mapping with cases), as the other keys.
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"cases": [CASE]}), encoding="utf-8")
    assert load_suite(path)[0]["tools"] == [WEATHER_TOOL, TIME_TOOL]


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ("get_weather", r"tools must be a non-empty list of function tools"),
        ([], r"tools must be a non-empty list of function tools"),
        ([WEATHER_TOOL, {"type": "custom", "function": {"name": "x"}}], r"tools\[1\] \('x'\) must be a function tool"),
        ([WEATHER_TOOL, {"type": "function", "name": "lookup"}], r"tools\[1\] must be a function tool"),
        ([WEATHER_TOOL, {"type": "function", "function": {"description": "no name"}}], r"tools\[1\] needs a name of 1 to 64 letters.*got None"),
        ([WEATHER_TOOL, {"type": "function", "function": {"name": "get weather"}}], r"tools\[1\] \('get weather'\) needs a name of 1 to 64 letters"),
        ([WEATHER_TOOL, {"type": "function", "function": {"name": "x" * 65}}], r"tools\[1\] .* needs a name of 1 to 64"),
        ([WEATHER_TOOL, WEATHER_TOOL], r"tools\[1\] \('get_weather'\): two tools are named 'get_weather'"),
        ([WEATHER_TOOL, {"type": "function", "function": {"name": "t", "description": 3}}], r"tools\[1\] \('t'\): description must be text"),
        ([WEATHER_TOOL, {"type": "function", "function": {"name": "t", "parameters": "city"}}], r"tools\[1\] \('t'\): parameters must be a JSON Schema object"),
        ([WEATHER_TOOL, {"type": "function", "function": {"name": "t", "parameters": {"type": 5}}}], r"tools\[1\] \('t'\): parameters is not a valid JSON Schema"),
        ([WEATHER_TOOL, {"type": "function", "function": {"name": "t", "args": {}}}], r"tools\[1\] \('t'\) has unknown key\(s\) 'args'"),
    ],
)
def test_a_bad_tool_is_refused_with_file_line_case_and_tool(tmp_path: Path, tools, message):
    path = _write(tmp_path / "bad.jsonl", [CASE, {**CASE, "tools": tools}])
    with pytest.raises(UserError, match=rf"{path}:2: {message}"):
        load_suite(path)


def test_calls_and_results_must_name_the_cases_tools(tmp_path: Path):
    path = _write(tmp_path / "bad.jsonl", [{**CASE, "expected_tool_call": {"name": "get_forecast", "arguments": {}}}])
    with pytest.raises(UserError, match=rf"{path}:1: expected_tool_call names 'get_forecast', which is not among the case's tools \(get_weather, get_time\)"):
        load_suite(path)
    path = _write(tmp_path / "bad.jsonl", [{**CASE, "tool_results": {"get_weather": "rain", "get_news": "none"}}])
    with pytest.raises(UserError, match=rf"{path}:1: tool_results has a result for 'get_news'"):
        load_suite(path)


def test_tools_are_stored_with_grpo_cases_and_change_the_dataset_id(ws, tmp_path: Path):
    from model_customization.datasets.build import read_split
    from model_customization.evaluation.rewards import suite_dataset

    def dataset(cases: list[dict]) -> str:
        return suite_dataset(ws, suite=str(_write(tmp_path / "s.jsonl", cases)), agent=None, holdout_fraction=0.0, seed=1, weights=None)

    with_tools = dataset([CASE])
    [row] = read_split(ws, with_tools, "train")
    assert row["expects"]["tools"] == [WEATHER_TOOL, TIME_TOOL]
    assert dataset([CASE]) == with_tools  # content-addressed: the same cases, the same id
    assert dataset([{**CASE, "tools": [WEATHER_TOOL]}]) != with_tools  # a changed tool list is other cases
    without = {k: v for k, v in CASE.items() if k not in ("tools",)}
    plain = dataset([without])
    assert plain != with_tools and "tools" not in read_split(ws, plain, "train")[0]["expects"]


# --- 2. local rendering -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer(embedded_base: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_base)


def test_rendering_without_tools_is_the_templates_own(tokenizer):
    from model_customization.providers.local.chat import prompt_ids, render_prompt

    messages = CASE["messages"]
    assert render_prompt(tokenizer, messages) == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert render_prompt(tokenizer, messages, []) == render_prompt(tokenizer, messages, None)
    assert prompt_ids(tokenizer, messages) == tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def test_smollm2s_template_ignores_tools_so_they_are_described_in_the_system_message(tokenizer):
    from model_customization.datasets.tool_text import TOOLS_PREAMBLE
    from model_customization.providers.local.chat import render_prompt, template_shows_tools

    assert not template_shows_tools(tokenizer)
    text = render_prompt(tokenizer, CASE["messages"], CASE["tools"])
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\n" + TOOLS_PREAMBLE)
    for tool in CASE["tools"]:
        assert json.dumps(tool, sort_keys=True) in system  # each tool's whole definition, parameters included
    assert text.endswith("<|im_start|>user\nWhat is the weather in Oslo?<|im_end|>\n<|im_start|>assistant\n")
    # A conversation with its own system message keeps it, the tools follow it.
    with_system = render_prompt(tokenizer, [{"role": "system", "content": "Be brief."}, *CASE["messages"]], CASE["tools"])
    assert with_system.startswith("<|im_start|>system\nBe brief.\n\n" + TOOLS_PREAMBLE) and with_system.count("<|im_start|>system") == 1


def test_a_template_that_renders_tools_gets_them_as_its_tools_argument(tokenizer):
    import copy

    from model_customization.datasets.tool_text import TOOLS_PREAMBLE
    from model_customization.providers.local.chat import render_prompt, template_shows_tools

    native = copy.deepcopy(tokenizer)
    native.chat_template = NATIVE_TEMPLATE
    assert template_shows_tools(native)
    text = render_prompt(native, CASE["messages"], CASE["tools"])
    assert text.startswith("<|im_start|>system\nTOOLS: get_weather get_time<|im_end|>\n") and TOOLS_PREAMBLE not in text


# --- 2 and 3: GRPO's prompt is evaluate's prompt --------------------------------------------------------------------------
def test_a_grpo_training_prompt_and_evaluates_prompt_of_a_case_are_the_same_tokens(ws, tiny_model: Path, tmp_path: Path, monkeypatch):
    from model_customization.datasets.build import read_split
    from model_customization.evaluation.rewards import suite_dataset
    from model_customization.evaluation.runner import evaluate
    from model_customization.providers.local import inference
    from model_customization.providers.local.grpo import _prompts
    from model_customization.providers.local.hyperparameters import parse_hyperparameters

    plain = {"messages": [{"role": "system", "content": "You answer weather questions."}, {"role": "user", "content": "And in Bergen?"}], "regex": "rain"}
    suite = _write(tmp_path / "tools.jsonl", [CASE, plain])
    # What the model is given to generate from in evaluate: the unpadded rows of each generate() call.
    seen: list[list[int]] = []
    real_load = inference._load

    def spying_load(ws_, resolved):
        model, tok = real_load(ws_, resolved)
        real_generate = model.generate

        def generate(**kwargs):
            for row, mask in zip(kwargs["input_ids"].tolist(), kwargs["attention_mask"].tolist(), strict=True):
                seen.append([t for t, m in zip(row, mask, strict=True) if m])
            return real_generate(**kwargs)

        monkeypatch.setattr(model, "generate", generate)
        return model, tok

    monkeypatch.setattr(inference, "_load", spying_load)
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(tiny_model, twin)
    evaluate(ws, None, [str(tiny_model), str(twin)], suite=str(suite), max_tokens=2, batch_size=2)
    assert len(seen) == 4  # two cases, each answered by both models

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    dataset_id = suite_dataset(ws, suite=str(suite), agent=None, holdout_fraction=0.0, seed=1, weights=None)
    rows = read_split(ws, dataset_id, "train")
    prompts, too_long = _prompts(tokenizer, rows, parse_hyperparameters({"max_new_tokens": 8}))
    assert too_long == 0
    by_first_message = {p.case["messages"][-1]["content"]: p.ids for p in prompts}
    assert sorted(seen) == sorted([*by_first_message.values()] * 2)
    with_tools = by_first_message[CASE["messages"][-1]["content"]]
    assert "get_weather" in tokenizer.decode(with_tools) and "get_weather" not in tokenizer.decode(by_first_message["And in Bergen?"])


# --- 3. a GRPO step on the embedded model with tools and tool results ---------------------------------------------------
def test_a_grpo_step_on_the_embedded_model_shows_the_tools_and_plays_the_tool_turn(ws, embedded_base: Path, tmp_path: Path):
    import torch

    from model_customization.datasets.build import read_split
    from model_customization.datasets.tool_text import TOOLS_PREAMBLE
    from model_customization.evaluation.rewards import reward, suite_dataset
    from model_customization.providers.local import train as sft
    from model_customization.providers.local.grpo import _prompts, _Reference, group_advantages, group_loss, sample_episodes
    from model_customization.providers.local.hyperparameters import parse_hyperparameters

    hp = parse_hyperparameters({"group_size": 2, "max_new_tokens": 6, "max_tool_turns": 1, "seed": 3, "learning_rate": 1e-3})
    tokenizer = sft.load_tokenizer(embedded_base, hp, "embedded")
    model = sft.load_for_training(embedded_base, hp, "cpu", torch.float32)
    dataset_id = suite_dataset(ws, suite=str(_write(tmp_path / "s.jsonl", [CASE])), agent=None, holdout_fraction=0.0, seed=1, weights=None)
    [prompt], _ = _prompts(tokenizer, read_split(ws, dataset_id, "train"), hp)
    assert TOOLS_PREAMBLE in tokenizer.decode(prompt.ids) and prompt.case["tools"] == CASE["tools"]

    # The first turn is scripted (the base model rarely calls a tool in 6 tokens): one answer calls get_weather,
    # the other answers in text. The turn after the tool result is the model's own.
    first_turns = ['<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>', "No idea."]
    real_generate = model.generate
    calls = []

    def scripted(**kwargs):
        calls.append(kwargs["input_ids"][0].tolist())
        if len(calls) > 1:
            return real_generate(**kwargs)
        rows = [prompt.ids + tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in first_turns]
        width = max(map(len, rows))
        return torch.tensor([r + [tokenizer.eos_token_id] * (width - len(r)) for r in rows])

    model.generate = scripted
    torch.manual_seed(0)
    ids, attention, loss_mask, answers = sample_episodes(model, tokenizer, prompt, hp, "cpu")
    # The continuation is generated after the prompt (tools included), the call, and the tool message with the result.
    assert len(calls) == 2 and calls[1][: len(prompt.ids)] == prompt.ids
    bridge = tokenizer.decode(calls[1][len(prompt.ids) :])
    assert "<|im_start|>tool\n12 C, light rain<|im_end|>" in bridge and bridge.endswith("<|im_start|>assistant\n")
    assert TOOLS_PREAMBLE not in bridge  # the tools are described once, in the system message
    assert answers[0]["tool_calls"][0] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    rewards = [reward(answer, prompt.case)[0] for answer in answers]
    assert rewards[0] > rewards[1]

    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hp.learning_rate)
    loss, kl = group_loss(model, _Reference(model, None), ids, attention, len(prompt.ids), group_advantages(rewards), hp, loss_mask)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and kl >= 0.0
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)


# --- 2 and 3: a hosted model gets the tools as the API's `tools` ---------------------------------------------------------
def _weather_reply(model: str, messages: list[dict]) -> str | dict:
    """A hosted model that calls get_weather for Oslo's weather question and says "rain" to anything else."""
    if "weather in Oslo" in messages[-1]["content"]:
        return {"content": None, "tool_calls": [{"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}]}
    return "rain"


def test_evaluate_sends_a_cases_tools_to_a_hosted_model_and_scores_its_native_tool_calls(ws, tmp_path: Path, monkeypatch):
    from openai_fake import serving

    from model_customization.evaluation.runner import evaluate
    from model_customization.jobs.spending import Consent
    from model_customization.providers.chat import chat_quote_usd

    # The tools are prompt tokens too: a call's price bound counts them.
    bound = chat_quote_usd("openai", "gpt-4.1-mini-2025-04-14", CASE["messages"], 16, CASE["tools"])
    assert bound > chat_quote_usd("openai", "gpt-4.1-mini-2025-04-14", CASE["messages"], 16)
    plain = {"messages": [{"role": "user", "content": "Say rain."}], "contains": "rain"}
    suite = _write(tmp_path / "tools.jsonl", [CASE, plain])

    with serving(monkeypatch, "sk-test-tools-0123456789abcdef", ws=ws) as fake:
        fake.chat_reply = _weather_reply
        # The fake's budgets are 0: a person approves the run (as elicitation would ask them).
        report = evaluate(ws, None, ["openai:gpt-4.1-mini-2025-04-14", "openai:gpt-4.1-2025-04-14"], suite=str(suite), max_tokens=16, consent=Consent(human_usd=1.0))
        bodies = [body for _, template, body in fake.request_bodies if template == "/chat/completions"]
    assert not fake.violations  # every request and response matched OpenAI's published schema
    assert len(bodies) == 4
    for body in bodies:
        if body["messages"][-1]["content"] == "What is the weather in Oslo?":
            assert body["tools"] == CASE["tools"]
        else:
            assert "tools" not in body  # a case without tools sends none
    for model in ("openai:gpt-4.1-mini-2025-04-14", "openai:gpt-4.1-2025-04-14"):
        # The native call was scored as evaluate scores a tool call (one case of two has one).
        assert report["summary"][model]["tool_call_exact"] == 1.0 and report["summary"][model]["contains"] == 0.5


def test_a_provider_without_native_tools_gets_them_described(ws, monkeypatch):
    """chat_with_provider: a provider whose chat takes no tools is shown them in the system message."""
    from model_customization.datasets.tool_text import describe_tools
    from model_customization.providers import chat as router
    from model_customization.providers.registry import get_provider

    answering = get_provider("anthropic", "chat")
    assert not answering.chat_tools
    sent = {}

    def fake_chat(ws_, name, messages, **kwargs):
        sent.update(messages=messages, kwargs=kwargs)
        return {"model": name, "text": "ok", "prompt_tokens": 1, "completion_tokens": 1, "seconds": 0.0}

    monkeypatch.setattr(type(answering), "paid", False)
    monkeypatch.setattr(type(answering), "chat", lambda self, ws_, name, messages, **kwargs: fake_chat(ws_, name, messages, **kwargs))
    router.chat_with_provider(ws, "anthropic", "claude-x", CASE["messages"], max_tokens=4, tools=CASE["tools"])
    assert sent["messages"][0] == {"role": "system", "content": describe_tools(CASE["tools"])} and "tools" not in sent["kwargs"]


def test_a_together_model_gets_the_tools_as_its_apis_tools_and_its_calls_come_back(ws, monkeypatch):
    import dataclasses

    from together_fake import serving

    from model_customization.evaluation.metrics import extract_tool_calls
    from model_customization.providers.chat import chat

    model = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    with serving(monkeypatch, "together-test-key-0123456789abcdef", ws=ws) as fake:
        ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=1.0, budget_per_day_usd=1000.0)
        monkeypatch.setenv("MODEL_CUSTOMIZATION_CHAT_PRICES", json.dumps({model: [0.88, 0.88]}))
        fake.chat_reply = lambda name, messages: {"content": "", "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Oslo"}'}]}
        answer = chat(ws, model, CASE["messages"], max_tokens=20, tools=CASE["tools"])
        (sent,) = fake.bodies("POST", "/chat/completions")
    assert sent["tools"] == CASE["tools"] and sent["messages"] == CASE["messages"]  # native: no description added
    assert answer["stop_reason"] == "tool_calls"
    assert extract_tool_calls(answer) == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]


# --- 4. a training example's tools: trained with, counted and evaluated as they are asked ------------------------------
TOOL_EXAMPLE = {
    "messages": [
        {"role": "user", "content": "What is the weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
    ],
    "tools": [WEATHER_TOOL, TIME_TOOL],
}


def _hyperparameters(**values):
    from model_customization.providers.local.hyperparameters import parse_hyperparameters

    return parse_hyperparameters({"max_seq_length": 4096, **values})


def test_sft_trains_an_example_on_the_prompt_inference_gives_with_its_tools(tokenizer):
    from model_customization.datasets.examples import to_plain_chat
    from model_customization.providers.local.chat import prompt_ids
    from model_customization.providers.local.objectives import SupervisedObjective

    objective = SupervisedObjective(tokenizer, _hyperparameters(), "cpu")
    (with_tools, without), truncated, skipped = objective.prepare([TOOL_EXAMPLE, {"messages": TOOL_EXAMPLE["messages"]}])
    assert (truncated, skipped) == (0, 0)
    asked = prompt_ids(tokenizer, to_plain_chat(TOOL_EXAMPLE["messages"][:1]), TOOL_EXAMPLE["tools"])
    # The untrained part is exactly what the model is later asked (tools described the same way), then the answer.
    assert with_tools.input_ids[: len(asked)] == asked and set(with_tools.labels[: len(asked)]) == {-100}
    assert "get_weather" in tokenizer.decode(with_tools.input_ids[: len(asked)])
    assert without.input_ids[: len(prompt_ids(tokenizer, to_plain_chat(TOOL_EXAMPLE["messages"][:1])))] == prompt_ids(tokenizer, to_plain_chat(TOOL_EXAMPLE["messages"][:1]))
    assert "get_time" not in tokenizer.decode(without.input_ids)
    # The answer itself is what is learnt, with or without the tools in the prompt.
    trained = [t for t, label in zip(with_tools.input_ids, with_tools.labels, strict=True) if label != -100]
    assert trained == [t for t, label in zip(without.input_ids, without.labels, strict=True) if label != -100]


def test_dpo_and_kto_rows_are_tokenized_with_their_tools(tokenizer):
    from model_customization.providers.local.objectives import PreferenceObjective, UnpairedPreferenceObjective

    answer = TOOL_EXAMPLE["messages"][1]
    pair_row = {"input": {"messages": TOOL_EXAMPLE["messages"][:1], "tools": TOOL_EXAMPLE["tools"]}, "preferred_output": [answer], "non_preferred_output": [{"role": "assistant", "content": "I cannot tell."}]}
    (pair,), _, _ = PreferenceObjective(tokenizer, _hyperparameters(), "cpu").prepare([pair_row])
    assert "get_time" in tokenizer.decode(pair.chosen.input_ids) and "get_time" in tokenizer.decode(pair.rejected.input_ids)
    sessions = [{**TOOL_EXAMPLE, "label": True}, {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}], "label": False}]
    examples, _, _ = UnpairedPreferenceObjective(tokenizer, _hyperparameters(), "cpu").prepare(sessions)
    by_label = {e.desirable: e for e in examples}
    assert "get_time" in tokenizer.decode(by_label[True].session.input_ids)
    assert "get_time" not in tokenizer.decode(by_label[False].session.input_ids)
    # A mismatched pair keeps its prompt's tools: the other session's completion is the only change.
    assert "get_time" in tokenizer.decode(by_label[True].mismatched.input_ids)
    assert "get_time" not in tokenizer.decode(by_label[False].mismatched.input_ids)


def test_evaluating_a_dataset_offers_each_example_its_tools(ws, monkeypatch):
    from openai_fake import serving

    from model_customization.datasets.build import store_examples
    from model_customization.evaluation.runner import evaluate
    from model_customization.evaluation.suites import case_rows, cases_sha256
    from model_customization.jobs.spending import Consent

    plain = {"messages": [{"role": "user", "content": "Say rain."}, {"role": "assistant", "content": "rain"}]}
    card = {"conversations_read": 2, "sources": [], "formats": {}, "dropped": {}, "unreadable": {"count": 0, "first": []}, "options": {}}
    dataset_id, _, _ = store_examples(ws, [("test", TOOL_EXAMPLE), ("test", plain)], name="tools", method="sft", card_fields=card)
    rows = case_rows(ws, dataset_id, "test", None, None)
    assert sorted(bool(row.get("tools")) for row in rows) == [False, True]
    # Cases without tools hash as before (the hash that names an evaluation's cases); tools change it.
    def hash_before_tools(cases: list[dict]) -> str:
        return hashlib.sha256(json.dumps([[r["prompt"], r["reference"], r.get("expects")] for r in cases], sort_keys=True).encode()).hexdigest()

    without_tools = [r for r in rows if not r.get("tools")]
    assert cases_sha256(without_tools) == hash_before_tools(without_tools)
    assert cases_sha256(rows) != hash_before_tools(rows)

    with serving(monkeypatch, "sk-test-tools-0123456789abcdef", ws=ws) as fake:
        fake.chat_reply = _weather_reply
        evaluate(ws, dataset_id, ["openai:gpt-4.1-mini-2025-04-14", "openai:gpt-4.1-2025-04-14"], max_tokens=16, consent=Consent(human_usd=1.0))
        bodies = [body for _, template, body in fake.request_bodies if template == "/chat/completions"]
    assert not fake.violations
    assert len(bodies) == 4
    for body in bodies:
        if body["messages"][-1]["content"] == "What is the weather in Oslo?":
            assert body["tools"] == TOOL_EXAMPLE["tools"]
        else:
            assert "tools" not in body


def test_the_local_gate_counts_an_examples_tools_as_training_will(ws, embedded_base: Path, tmp_path: Path):
    from model_customization.datasets.inspect import inspect_dataset

    plain = {"messages": TOOL_EXAMPLE["messages"]}
    reports = {}
    for name, example in (("with", TOOL_EXAMPLE), ("without", plain)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(json.dumps(example) for _ in range(10)) + "\n")
        reports[name] = inspect_dataset(ws, path=str(path), provider="local", model=str(embedded_base), max_seq_length=4096, epochs=1)
    # The tools' description is part of every example's prompt, as SFT will train on it.
    assert reports["with"]["token_stats"]["train"]["total"] > reports["without"]["token_stats"]["train"]["total"] + 10 * 50
