"""Constitutional data generation: the answer / critique / revise sequence, both stored datasets, failures, inputs.

A scripted chat stands in for the model (the router is monkeypatched where the module calls it), so each test knows
exactly what the model said; one test runs the real local provider on the tiny random model end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from model_customization.datasets import constitutional
from model_customization.datasets.build import SPLITS, build_dataset, get_dataset, read_split
from model_customization.datasets.constitutional import CRITIQUE_REQUEST, REVISION_REQUEST, generate_constitutional_data
from model_customization.datasets.inspect import inspect_dataset
from model_customization.errors import NotFoundError, UserError

MODEL = "openai:scripted"  # resolves to a cloud provider without touching it; the chat itself is scripted
HARMLESS = "The answer must not help anyone cause harm."
HONEST = "The answer says plainly what it does not know."


class ScriptedChat:
    """Replies by what the last user turn asks for; records every call.

    answer:   "A(<prompt>)"            critique: "C[<principle>] on <current answer>"
    revise:   "Revised answer: R(<current answer>)" (the label must be stripped)
    Prompts containing a marker misbehave: EMPTY-CRITIQUE (critique comes back blank), BROKEN (the answer call
    raises), ALREADY-FINE (the revision repeats the answer), LEAKY (the answer holds an e-mail address).
    """

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.seeds: list[int] = []

    def __call__(self, ws, model, messages, *, max_tokens=256, temperature=0.0, seed=0, allowance=None) -> dict[str, Any]:
        assert model == MODEL and max_tokens == 64 and temperature == 0.0
        self.calls.append([dict(m) for m in messages])
        self.seeds.append(seed)
        prompt = messages[0]["content"]
        ask = messages[-1]["content"]
        if ask.startswith("Review your previous answer"):
            principle = next(p for p in (HARMLESS, HONEST) if p in ask)
            text = "   " if "EMPTY-CRITIQUE" in prompt else f"C[{principle}] on {messages[-2]['content']}"
        elif ask.startswith("Now rewrite"):
            current = messages[-4]["content"]
            text = current if "ALREADY-FINE" in prompt else f"Revised answer: R({current})"
        else:
            if "BROKEN" in prompt:
                raise RuntimeError("connection reset by peer")
            text = f"A({prompt})" + (" Write to alice.smith@example.com" if "LEAKY" in prompt else "")
        return {"model": model, "text": text, "prompt_tokens": 10, "completion_tokens": 5, "seconds": 0.01, "stop_reason": "stop"}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedChat:
    fake = ScriptedChat()
    monkeypatch.setattr(constitutional.chat_router, "chat", fake)
    return fake


def run(ws, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"principles": [HARMLESS, HONEST], "model": MODEL, "max_tokens": 64}
    options.update(overrides)
    return generate_constitutional_data(ws, **options)


def test_each_principle_gets_a_critique_of_the_current_answer_then_a_revision(ws, scripted: ScriptedChat) -> None:
    run(ws, prompts=["How do I sharpen a kitchen knife?"])
    user = {"role": "user", "content": "How do I sharpen a kitchen knife?"}
    answer = "A(How do I sharpen a kitchen knife?)"
    critique_1 = {"role": "user", "content": CRITIQUE_REQUEST.format(principle=HARMLESS)}
    revise_1 = {"role": "user", "content": REVISION_REQUEST.format(principle=HARMLESS)}
    critique_2 = {"role": "user", "content": CRITIQUE_REQUEST.format(principle=HONEST)}
    revise_2 = {"role": "user", "content": REVISION_REQUEST.format(principle=HONEST)}
    first_revision = f"R({answer})"  # the label "Revised answer:" is not part of the answer
    assert scripted.calls == [
        [user],
        [user, {"role": "assistant", "content": answer}, critique_1],
        [user, {"role": "assistant", "content": answer}, critique_1, {"role": "assistant", "content": f"C[{HARMLESS}] on {answer}"}, revise_1],
        [user, {"role": "assistant", "content": first_revision}, critique_2],
        [user, {"role": "assistant", "content": first_revision}, critique_2, {"role": "assistant", "content": f"C[{HONEST}] on {first_revision}"}, revise_2],
    ]
    # Every critique request names its principle and follows the answer it judges.
    for call, principle, current in ((scripted.calls[1], HARMLESS, answer), (scripted.calls[3], HONEST, first_revision)):
        assert principle in call[-1]["content"] and call[-2] == {"role": "assistant", "content": current}
    # Each call samples with its own seed (one shared seed would draw the same numbers every time), repeatably.
    first_seeds = list(scripted.seeds)
    assert len(set(first_seeds)) == 5
    run(ws, prompts=["How do I sharpen a kitchen knife?"])
    assert scripted.seeds[5:] == first_seeds


PROMPTS = [f"Question number {n}: how does topic {n} work?" for n in range(17)] + [
    "EMPTY-CRITIQUE: tell me about locks",
    "BROKEN: what is a fuse?",
    "ALREADY-FINE: what is two plus two?",
    "LEAKY: who should I write to? My key is sk-proj-abcdefghij0123456789KLMNOP",
]


def test_stores_sft_and_dpo_datasets_with_critiques_failures_and_redaction(ws, scripted: ScriptedChat) -> None:
    progress: list[tuple[int, int, str]] = []
    result = run(ws, prompts=PROMPTS + [PROMPTS[0]], name="harmless", progress=lambda *a: progress.append(a))

    assert result["prompts_read"] == 21 and result["succeeded"] == 19 and result["failed"] == 2
    assert result["failures"] == {"answer_error": 1, "critique_empty": 1}
    assert result["dropped"] == {"duplicate_prompt": 1, "failed:answer_error": 1, "failed:critique_empty": 1}
    assert result["revisions_unchanged"] == 1
    failed = {f["reason"]: f for f in result["failed_prompts"]}
    assert failed["answer_error"]["prompt_index"] == 18 and "connection reset by peer" in failed["answer_error"]["detail"]
    assert failed["critique_empty"] == {**failed["critique_empty"], "stage": "critique", "principle_index": 0, "prompt_index": 17}
    # 19 complete prompts x 5 calls, the empty critique after 2 calls, the broken answer after 1.
    assert result["model_calls"] == len(scripted.calls) == 19 * 5 + 2 + 1
    assert result["usage"]["completion_tokens"] == 5 * (19 * 5 + 2)  # the raising call returned nothing
    assert progress[-1][:2] == (result["model_calls"], 21 * 5) and "storing" in progress[-1][2]

    # The secret in a prompt never reached the model; the model's e-mail address is not stored.
    assert not any("sk-proj-" in m["content"] for call in scripted.calls for m in call)
    assert result["redactions"] == {"email": 5, "secret": 1}  # the address recurs in both critiques and revisions

    sft_id, dpo_id = result["sft_dataset_id"], result["dpo_dataset_id"]
    assert sft_id != dpo_id and sum(result["counts"]["sft"].values()) == 19 and sum(result["counts"]["dpo"].values()) == 18
    sft = {s: read_split(ws, sft_id, s) for s in SPLITS}
    dpo = {s: read_split(ws, dpo_id, s) for s in SPLITS}
    assert {s: len(rows) for s, rows in sft.items()} == result["counts"]["sft"]

    sft_by_prompt = {row["messages"][0]["content"]: (split, row) for split, rows in sft.items() for row in rows}
    dpo_by_prompt = {row["input"]["messages"][0]["content"]: (split, row) for split, rows in dpo.items() for row in rows}
    prompt = PROMPTS[3]
    answer = f"A({prompt})"
    final = f"R(R({answer}))"
    split, sft_row = sft_by_prompt[prompt]
    assert sft_row == {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": final}]}
    assert dpo_by_prompt[prompt] == (split, {
        "input": {"messages": [{"role": "user", "content": prompt}]},
        "preferred_output": [{"role": "assistant", "content": final}],
        "non_preferred_output": [{"role": "assistant", "content": answer}],
    })
    # A prompt sits in the same split of both datasets; the unchanged revision is SFT only.
    assert all(dpo_by_prompt[p][0] == sft_by_prompt[p][0] for p in dpo_by_prompt)
    assert set(sft_by_prompt) - set(dpo_by_prompt) == {PROMPTS[19]}
    leaky = next(p for p in sft_by_prompt if p.startswith("LEAKY"))
    assert "<SECRET_1>" in leaky and "<EMAIL_1>" in sft_by_prompt[leaky][1]["messages"][1]["content"]
    assert "alice.smith" not in json.dumps([sft, dpo])

    for dataset_id, method in ((sft_id, "sft"), (dpo_id, "dpo")):
        row = get_dataset(ws, dataset_id)
        card = row["card"]
        assert card["method"] == method and card["name"] == f"harmless-{method}"
        assert card["sources"][0]["path"] == "(prompts given inline)"
        constitution = card["constitution"]
        assert constitution["principles"] == [HARMLESS, HONEST] and constitution["model"] == MODEL
        assert constitution["failures"] == {"answer_error": 1, "critique_empty": 1}
        record = next(r for r in constitution["examples"] if r["prompt"] == prompt)
        assert [s["principle"] for s in record["steps"]] == [HARMLESS, HONEST]
        assert record["steps"][0]["critique"] == f"C[{HARMLESS}] on {answer}"
        assert record["steps"][1]["critique"] == f"C[{HONEST}] on R({answer})"
        assert record["original"] == answer and record["final"] == final and record["split"] == split
        # Every prompt, failed ones included, is in the file beside the splits.
        lines = (Path(row["path"]) / constitution["examples_file"]).read_text(encoding="utf-8").splitlines()
        stored = [json.loads(line) for line in lines]
        assert len(stored) == 21 and sum(1 for r in stored if "failure" in r) == 2
        assert "## Constitution" in (Path(row["path"]) / "card.md").read_text(encoding="utf-8")
    assert get_dataset(ws, dpo_id)["card"]["dropped"]["revision_unchanged"] == 1

    for dataset_id in (sft_id, dpo_id):
        report = inspect_dataset(ws, dataset_id=dataset_id, provider="openai")
        assert report["valid"], report["findings"]

    # Same prompts, same answers: the same two datasets, nothing new stored.
    again = run(ws, prompts=PROMPTS + [PROMPTS[0]], name="harmless")
    assert (again["sft_dataset_id"], again["dpo_dataset_id"]) == (sft_id, dpo_id)
    assert again["already_existed"] == {"sft": True, "dpo": True}


def test_prompts_from_a_dataset_are_its_conversations_before_the_last_answer(ws, scripted: ScriptedChat, tmp_path: Path) -> None:
    memory = tmp_path / "chats.jsonl"
    conversations = [
        [
            {"role": "system", "content": "You are a careful assistant."},
            {"role": "user", "content": f"Tell me about volcano {n} in the north."},
            {"role": "assistant", "content": f"Volcano {n} erupted long ago."},
            {"role": "user", "content": f"Is volcano {n} safe to climb today?"},
            {"role": "assistant", "content": f"Yes, climb volcano {n} anytime."},
        ]
        for n in ("alpha", "bravo", "charlie")
    ]
    memory.write_text("".join(json.dumps({"messages": c}) + "\n" for c in conversations), encoding="utf-8")
    built = build_dataset(ws, [memory], validation_fraction=0, test_fraction=0)
    assert built.counts["train"] == 3

    result = run(ws, dataset_id=built.dataset_id, split="train", limit=2, principles=[HARMLESS])
    assert result["prompts_read"] == 2 and result["dropped"] == {"over_limit": 1}
    answers = [call for call in scripted.calls if not call[-1]["content"].startswith(("Review", "Now rewrite"))]
    stored_rows = read_split(ws, built.dataset_id, "train")
    assert [call for call in answers] == [row["messages"][:4] for row in stored_rows[:2]]

    sft_rows = [row for s in SPLITS for row in read_split(ws, result["sft_dataset_id"], s)]
    for row in sft_rows:
        context, final = row["messages"][:4], row["messages"][4]
        # The earlier answer is context (weight 0); only the revised last answer is learned.
        assert context[2] == {**context[2], "role": "assistant", "weight": 0}
        assert final["role"] == "assistant" and final["content"].startswith("R(A(You are a careful")
    dpo_rows = [row for s in SPLITS for row in read_split(ws, result["dpo_dataset_id"], s)]
    assert all("weight" not in m for row in dpo_rows for m in row["input"]["messages"])
    card = get_dataset(ws, result["sft_dataset_id"])["card"]
    assert card["sources"][0]["path"] == f"datasets://{built.dataset_id}/train.jsonl"
    assert card["options"]["source"] == {"dataset_id": built.dataset_id, "split": "train"}


def test_a_refusal_before_any_success_stops_the_run_and_stores_nothing(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise UserError("OPENAI_API_KEY is not set. Set it and try again.")

    monkeypatch.setattr(constitutional.chat_router, "chat", refuse)
    with pytest.raises(UserError, match="could not answer prompt 1: OPENAI_API_KEY is not set"):
        run(ws, prompts=["a", "b"])
    assert ws.store.datasets.all() == []


def test_when_every_prompt_fails_nothing_is_stored(ws, scripted: ScriptedChat) -> None:
    with pytest.raises(UserError, match=r"Every prompt failed \(\{'critique_empty': 2\}\)"):
        run(ws, prompts=["EMPTY-CRITIQUE one", "EMPTY-CRITIQUE two"])
    assert ws.store.datasets.all() == []


def test_no_dpo_dataset_when_no_revision_changes_anything(ws, scripted: ScriptedChat) -> None:
    result = run(ws, prompts=["ALREADY-FINE: hello", "ALREADY-FINE: bye"])
    assert result["dpo_dataset_id"] is None and result["counts"]["dpo"] is None
    assert "no preference pair" in result["note"] and sum(result["counts"]["sft"].values()) == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"principles": [], "prompts": ["hi"]}, "No principles given"),
        ({"principles": [HARMLESS, "  "], "prompts": ["hi"]}, "Principle 2 is blank"),
        ({"prompts": ["hi"], "dataset_id": "ds-123"}, "exactly one of prompts"),
        ({}, "exactly one of prompts"),
        ({"prompts": []}, "prompts is empty"),
        ({"prompts": ["hi", ""]}, "Prompt 2 is blank"),
        ({"prompts": ["hi"], "split": "dev"}, "Unknown split 'dev'"),
        ({"prompts": ["hi"], "limit": 0}, "limit must be at least 1"),
        ({"prompts": ["hi"], "validation_fraction": 0.5, "test_fraction": 0.5}, "leave some prompts for training"),
        ({"prompts": ["hi"], "model": " "}, "No model given"),
    ],
)
def test_input_errors_name_the_fix(ws, scripted: ScriptedChat, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        run(ws, **overrides)
    assert scripted.calls == []


def test_unknown_dataset_and_unknown_local_model_are_refused_before_any_call(ws, scripted: ScriptedChat) -> None:
    with pytest.raises(NotFoundError, match="list_datasets"):
        run(ws, dataset_id="ds-000000000000")
    with pytest.raises(NotFoundError, match="Unknown base model"):
        run(ws, prompts=["hi"], model="no-such-model-folder")
    assert scripted.calls == []


def test_the_tool_returns_both_datasets_and_their_resources(ws, scripted: ScriptedChat) -> None:
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    from model_customization.resources import catalog
    from model_customization.tools import constitutional as tool

    server = MCPServer(name="constitutional-test")
    tool.register(server, ws)
    catalog.register(server, ws)

    async def go() -> tuple[dict[str, Any], str, str, str]:
        async with Client(server) as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            description = listed["generate_constitutional_dataset"].description
            result = await client.call_tool(
                "generate_constitutional_dataset",
                {"principles": [HARMLESS, HONEST], "model": MODEL, "prompts": ["BROKEN: x", "What is rain?"], "max_tokens": 64},
            )
            assert not result.is_error
            card = await client.read_resource(result.structured_content["dpo_resource_uri"])
            refused = await client.call_tool("generate_constitutional_dataset", {"principles": [" "], "model": MODEL, "prompts": ["hi"], "max_tokens": 64})
            assert refused.is_error
            return result.structured_content, card.contents[0].text, refused.content[0].text, description

    out, card_text, refusal, description = anyio.run(go)
    assert "1 + 2 * len(principles) model calls per prompt" in description
    assert out["succeeded"] == 1 and out["failed"] == 1 and out["failures"] == {"answer_error": 1}
    assert out["failed_prompts"][0]["stage"] == "answer" and out["failed_prompts"][0]["principle_index"] is None
    assert out["sft_counts"]["train"] == 1 and out["dpo_counts"]["train"] == 1
    assert out["sft_resource_uri"] == f"datasets://{out['sft_dataset_id']}"
    assert json.loads(card_text)["constitution"]["principles"] == [HARMLESS, HONEST]
    assert "Principle 1 is blank" in refusal


def test_runs_end_to_end_on_a_local_model(ws, tiny_model: Path) -> None:
    result = generate_constitutional_data(
        ws, principles=[HARMLESS], model=str(tiny_model), prompts=["Say hello.", "Name a colour."], max_tokens=6,
        temperature=1.0,  # greedy decoding of the random model gives only newlines, i.e. empty replies
    )
    assert result["prompts_read"] == 2 and result["model_calls"] == 2 * 3
    assert result["succeeded"] == 2 and result["failed"] == 0
    assert result["dpo_dataset_id"] is not None and sum(result["counts"]["dpo"].values()) == 2
    assert result["usage"]["completion_tokens"] > 0
    card = get_dataset(ws, result["sft_dataset_id"])["card"]
    assert card["constitution"]["provider"] == "local" and card["constitution"]["model"] == str(tiny_model)
    records = card["constitution"]["examples"]
    assert len(records) == result["succeeded"] and all(r["steps"][0]["critique"] and r["final"] for r in records)
    rows = [row for s in SPLITS for row in read_split(ws, result["sft_dataset_id"], s)]
    assert sorted(r["final"] for r in records) == sorted(row["messages"][-1]["content"] for row in rows)


def test_large_records_stay_in_the_file_the_card_points_to(ws, scripted: ScriptedChat, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constitutional, "INLINE_EXAMPLES_BYTES", 100)
    result = run(ws, prompts=["What is rain?", "What is snow?"])
    row = get_dataset(ws, result["sft_dataset_id"])
    constitution = row["card"]["constitution"]
    assert "examples" not in constitution
    stored = [json.loads(line) for line in (Path(row["path"]) / constitution["examples_file"]).read_text(encoding="utf-8").splitlines()]
    assert sorted(r["prompt"] for r in stored) == ["What is rain?", "What is snow?"]
    assert all(len(r["steps"]) == 2 and r["steps"][1]["critique"].startswith(f"C[{HONEST}]") for r in stored)
