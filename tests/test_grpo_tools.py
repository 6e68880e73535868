"""Multi-turn GRPO with tools: a suite case's tool_results are returned to the tool calls a sampled answer makes and
the model samples on; the loss leaves the tool results out; an episode is rewarded as evaluate scores it; a case
with tool_results of the wrong shape is refused with its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_customization.errors import UserError
from model_customization.evaluation.suites import load_suite

WEATHER = "12 C, light rain"
CASE = {
    "messages": [{"role": "user", "content": "What is the weather in Oslo? Use the tool."}],
    "expected_tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}},
    "contains": "rain",
    "tool_results": {"get_weather": WEATHER},
}
# What the scripted first turn says, per answer of the group: a call the case has a result for, a call it has
# none for, and a plain answer.
FIRST_TURNS = [
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>',
    '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>',
    "It rains in Oslo.",
]


def test_tool_results_of_the_wrong_shape_are_refused_with_file_and_line(tmp_path: Path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(CASE) + "\n", encoding="utf-8")
    assert load_suite(good)[0]["tool_results"] == {"get_weather": WEATHER}
    for bad in ([{"name": "get_weather", "result": WEATHER}], {"get_weather": {"temp": 12}}, {}, "12 C"):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps(CASE) + "\n" + json.dumps({**CASE, "tool_results": bad}) + "\n", encoding="utf-8")
        with pytest.raises(UserError, match=rf"{path}:2: tool_results must map each tool name to the text"):
            load_suite(path)


@pytest.fixture
def episode_model(tiny_model: Path):
    import torch

    from model_customization.providers.local import train as sft
    from model_customization.providers.local.hyperparameters import parse_hyperparameters

    hp = parse_hyperparameters({"group_size": 3, "max_new_tokens": 8, "max_tool_turns": 2, "seed": 3, "grpo_beta": 0.5})
    tokenizer = sft.load_tokenizer(tiny_model, hp, "tiny")
    model = sft.load_for_training(tiny_model, hp, "cpu", torch.float32)
    real_generate = model.generate
    calls = []

    def scripted_first_turn(**kwargs):
        """The group's first turn is scripted (the random tiny model never writes a tool call); every later turn is
        the model's own sampling."""
        calls.append(kwargs["input_ids"].shape)
        if len(calls) > 1:
            return real_generate(**kwargs)
        prompt = kwargs["input_ids"][0].tolist()
        rows = [prompt + tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for text in FIRST_TURNS]
        width = max(map(len, rows))
        return torch.tensor([row + [tokenizer.eos_token_id] * (width - len(row)) for row in rows])

    model.generate = scripted_first_turn
    return model, tokenizer, hp, calls


def _episodes(model, tokenizer, hp):
    import torch

    from model_customization.datasets.examples import to_plain_chat
    from model_customization.providers.local.chat import prompt_ids
    from model_customization.providers.local.grpo import GrpoPrompt, sample_episodes

    prompt = GrpoPrompt(prompt_ids(tokenizer, to_plain_chat(CASE["messages"])), dict(CASE))
    torch.manual_seed(5)
    return prompt, sample_episodes(model, tokenizer, prompt, hp, "cpu")


def test_a_tool_call_gets_the_case_result_and_the_episode_continues_with_results_masked(episode_model):
    from model_customization.providers.local.grpo import NO_RESULT

    model, tokenizer, hp, calls = episode_model
    prompt, (ids, attention, loss_mask, answers) = _episodes(model, tokenizer, hp)
    length = len(prompt.ids)
    assert ids.shape[0] == 3 and calls[0][0] == 3  # the first turn: the whole group in one batch
    assert len(calls) == 3  # one continuation for each of the two answers that called a tool, none for the plain one
    for row, first, result in ((0, FIRST_TURNS[0], WEATHER), (1, FIRST_TURNS[1], NO_RESULT.format(name="get_time"))):
        real = attention[row].bool()
        after = ids[row][real][length:].tolist()
        trained = loss_mask[row][real[length:]].bool().tolist()
        masked_text = tokenizer.decode([t for t, keep in zip(after, trained, strict=True) if not keep])
        trained_ids = [t for t, keep in zip(after, trained, strict=True) if keep]
        # The tool message with the result sits between the turns and is masked out of the loss ...
        assert result in masked_text and "<|im_start|>assistant" in masked_text
        assert result not in tokenizer.decode(trained_ids)
        # ... while the first turn (with its end-of-turn token) and the continuation the model sampled after the
        # result are trained on.
        first_ids = tokenizer(first, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert after[: len(first_ids)] == first_ids and all(trained[: len(first_ids)])
        assert trained[len(first_ids)] is False and trained.index(True, len(first_ids)) < len(trained)
        assert not any(loss_mask[row][~real[length:]].tolist())  # padding is never trained
    # The plain answer is a one-turn episode: its prompt and answer, nothing appended.
    plain = tokenizer(FIRST_TURNS[2], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert ids[2][attention[2].bool()].tolist() == prompt.ids + plain and answers[2] == FIRST_TURNS[2]
    assert answers[0]["tool_calls"][0] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert answers[1]["tool_calls"][0]["name"] == "get_time"


def test_an_episodes_reward_is_the_scorers_and_the_loss_counts_generated_tokens_only(episode_model):
    import torch

    from model_customization.evaluation.metrics import score_case
    from model_customization.evaluation.rewards import reward
    from model_customization.evaluation.suites import score_answer
    from model_customization.providers.local.grpo import _Reference, completion_logps, group_loss

    model, tokenizer, hp, _ = episode_model
    prompt, (ids, attention, loss_mask, answers) = _episodes(model, tokenizer, hp)
    expects = {k: v for k, v in CASE.items() if k != "messages"}
    for answer in answers:
        text = answer["text"] if isinstance(answer, dict) else answer
        # evaluate scores an answer {text, tool_calls} with score_answer; the reward is made of those very scores.
        evaluated = score_answer({"text": text, "seconds": 0.0, **({"tool_calls": answer["tool_calls"]} if isinstance(answer, dict) else {})}, {"expects": expects})
        value, scores = reward(answer, prompt.case)
        assert scores == score_case(answer, expects) and all(evaluated[k] == v for k, v in scores.items())
        weights = {"contains": 1.0, "tool_name_match": 0.25, "tool_arguments_match": 0.25, "tool_call_exact": 0.5}
        assert value == pytest.approx(sum(w * scores[k] for k, w in weights.items()) / 2)
    # The first episode called get_weather as expected: full marks on the tool call checks.
    assert reward(answers[0], prompt.case)[1]["tool_call_exact"] == 1.0

    # Move the policy away from the reference so that the KL term is not zero, then compare group_loss's KL with
    # the KL averaged over the generated tokens only, and over every position after the prompt.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and "lora_B" in name:
                p.add_(0.05 * torch.randn_like(p))
    length = len(prompt.ids)
    reference = _Reference(model, None)
    _, kl = group_loss(model, reference, ids, attention, length, [0.0, 0.0, 0.0], hp, loss_mask)
    with torch.no_grad():
        log_ratio = reference.logps(ids, attention, length) - completion_logps(model, ids, attention, length)
        per_token = torch.exp(log_ratio) - log_ratio - 1.0
    generated, everything = loss_mask.float(), attention[:, length:].float()
    only_generated = ((per_token * generated).sum(1) / generated.sum(1)).mean().item()
    with_results = ((per_token * everything).sum(1) / everything.sum(1)).mean().item()
    assert kl == pytest.approx(only_generated, rel=1e-4)
    assert abs(kl - with_results) > 1e-4 * abs(kl)  # the mask bites: tool-result tokens would change it


def test_a_grpo_job_keeps_the_cases_tool_results_for_its_worker(ws, tmp_path: Path):
    from model_customization.datasets.build import read_split
    from model_customization.jobs.orchestrator import start_job

    suite = tmp_path / "tools.jsonl"
    suite.write_text("".join(json.dumps({**CASE, "id": f"c{i}"}) + "\n" for i in range(3)), encoding="utf-8")
    dry = start_job(ws, method="grpo", suite=str(suite), hyperparameters={"holdout_fraction": 0.0, "max_tool_turns": 3}, dry_run=True)
    rows = read_split(ws, dry["dataset_id"], "train")
    assert len(rows) == 3 and all(row["expects"]["tool_results"] == {"get_weather": WEATHER} for row in rows)
    with pytest.raises(UserError, match="max_tool_turns"):
        start_job(ws, method="grpo", suite=str(suite), hyperparameters={"max_tool_turns": 9}, dry_run=True)
