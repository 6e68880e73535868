"""An LLM judge as GRPO's reward (RULER-style): one request scores a group's answers 0-1 in JSON, a bad reply is asked
once more and then leaves the group unscored (advantage 0); the judge's score joins the checks with judge_weight; a
paid judge's calls are quoted and pass the spending guard before the job is queued, and the worker draws every call
from that approval. End to end with the embedded model and a scripted judge behind a real HTTP socket (the worker is
another process), every request and response checked against OpenAI's published spec; exact resume after kill -9."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from model_customization.errors import ConfirmationNeeded, UserError
from model_customization.evaluation.judges import DEFAULT_GROUP_RUBRIC, GROUP_SYSTEM, group_messages, judge_group, parse_group_scores
from model_customization.evaluation.participants import Participant
from model_customization.evaluation.rewards import JUDGE, reward, reward_weights
from model_customization.jobs.orchestrator import check_job, start_job, wait_for_job
from model_customization.providers.local.hyperparameters import for_method, parse_hyperparameters
from waiting import wait_for

JUDGE_MODEL = "judge-mini"  # priced in tests/conftest.py; served by the fake below
FAKE_KEY = "sk-judge-test-0123456789abcdef"


# --- parsing -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"scores": [{"answer": 1, "reason": "ok", "score": 0.7}, {"answer": 2, "score": 0.2}, {"answer": 3, "score": 1}]}', [0.7, 0.2, 1.0]),
        ('{"scores": [0.1, 0.5, 0]}', [0.1, 0.5, 0.0]),
        # Labels in another order, as strings, inside a code fence with words around it.
        ('Here you go:\n```json\n{"scores": [{"answer": "3", "score": 0.9}, {"answer": 1, "score": 0.3}, {"answer": 2, "score": 0.6}]}\n```', [0.3, 0.6, 0.9]),
        # A judge that corrects itself: its last object stands.
        ('{"scores": [0.1, 0.1, 0.1]} Sorry, corrected: {"scores": [0.2, 0.4, 0.8]}', [0.2, 0.4, 0.8]),
    ],
)
def test_group_scores_are_read_in_answer_order(reply, expected):
    assert parse_group_scores(reply, 3) == expected


@pytest.mark.parametrize(
    "reply, why",
    [
        ("", "empty"),
        ("Answer 2 is best.", "no JSON object"),
        ('{"ranking": [2, 1, 3]}', "no JSON object"),
        ('{"scores": [0.5, 0.5]}', "scored 2 answers, not the 3"),
        ('{"scores": [0.5, 0.5, 0.5, 0.5]}', "scored 4 answers, not the 3"),
        ('{"scores": [{"answer": 1, "score": 0.5}, {"answer": 1, "score": 0.2}, {"answer": 3, "score": 0.1}]}', "answer 1 twice"),
        ('{"scores": [{"answer": 4, "score": 0.5}, {"answer": 2, "score": 0.2}, {"answer": 3, "score": 0.1}]}', "answers are 1 to 3"),
        ('{"scores": [0.5, 1.5, 0.1]}', "outside 0-1"),
        ('{"scores": [0.5, -0.1, 0.1]}', "outside 0-1"),
        ('{"scores": [0.5, true, 0.1]}', "not a number"),
        ('{"scores": [0.5, "high", 0.1]}', "not a number"),
        ('{"scores": [0.5, NaN, 0.1]}', "not a number"),
        ('{"scores": "0.5, 0.2, 0.1"}', "not a list"),
    ],
)
def test_a_group_reply_that_cannot_be_trusted_is_refused_with_the_reason(reply, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_group_scores(reply, 3)


# --- one judge call per group, a bad reply asked once more ---------------------------------------------------------
class ScriptedJudge:
    """A chat call that answers from a script and keeps what it was sent (accepts the router's allowance)."""

    def __init__(self, replies: list[str]) -> None:
        self.replies, self.sent = list(replies), []

    def __call__(self, participant: Participant, messages: list[dict[str, Any]], max_tokens: int, allowance: Any = None) -> dict[str, Any]:
        self.sent.append((participant, messages, max_tokens))
        return {"text": self.replies.pop(0), "prompt_tokens": 10, "completion_tokens": 5}


CLOUD_JUDGE = Participant("openai:judge-mini", "openai", JUDGE_MODEL)
PROMPT = [{"role": "system", "content": "You file bug reports."}, {"role": "user", "content": "Summarise: the login page times out."}]


def test_one_request_shows_the_conversation_the_rubric_and_every_answer_labelled(ws):
    judge = ScriptedJudge(['{"scores": [0.9, 0.1, 0.5]}'])
    answers = ["Login times out.", "", {"text": "Filed it.", "tool_calls": [{"name": "file_bug", "arguments": {"title": "login timeout"}}]}]
    verdict = judge_group(ws, CLOUD_JUDGE, PROMPT, answers, rubric="Name the page and the symptom.", call=judge)
    assert verdict == {"scores": [0.9, 0.1, 0.5], "error": None, "replies": ['{"scores": [0.9, 0.1, 0.5]}'], "calls": 1}
    [(_, messages, max_tokens)] = judge.sent
    assert messages[0] == {"role": "system", "content": GROUP_SYSTEM}
    text = messages[1]["content"]
    assert "the login page times out" in text and "You file bug reports." in text
    assert "<rubric>\nName the page and the symptom.\n</rubric>" in text and DEFAULT_GROUP_RUBRIC not in text
    assert "<answer_1>\nLogin times out.\n</answer_1>" in text and "<answer_2>\n(empty)\n</answer_2>" in text
    # An episode's tool calls are shown to the judge with its text.
    assert '[tool call] {"arguments": {"title": "login timeout"}, "name": "file_bug"}\nFiled it.' in text
    assert "<answer_4>" not in text and max_tokens == 1024
    # Without a rubric the judge gets the default one.
    assert DEFAULT_GROUP_RUBRIC in group_messages(PROMPT, ["a", "b"])[1]["content"]


def test_a_bad_reply_is_asked_once_more_and_a_second_one_leaves_the_group_unscored(ws):
    retried = ScriptedJudge(["Answer 1 is best.", '{"scores": [1, 0]}'])
    verdict = judge_group(ws, CLOUD_JUDGE, PROMPT, ["a", "b"], call=retried)
    assert verdict["scores"] == [1.0, 0.0] and verdict["calls"] == 2 and verdict["error"] is None
    assert retried.sent[0][1] == retried.sent[1][1], "the same request, asked again"

    failing = ScriptedJudge(['{"scores": [1]}', '{"scores": [0.5, 2]}', "never asked"])
    verdict = judge_group(ws, CLOUD_JUDGE, PROMPT, ["a", "b"], call=failing)
    assert verdict["scores"] is None and verdict["calls"] == 2 and "outside 0-1" in verdict["error"]
    assert failing.replies == ["never asked"]


def test_a_refused_judge_call_is_raised_not_counted_as_a_judge_error(ws):
    def refusing(participant, messages, max_tokens):
        raise UserError("This openai call (at most $0.01) would pass the $0.00 approved for the operation")

    with pytest.raises(UserError, match="would pass"):
        judge_group(ws, CLOUD_JUDGE, PROMPT, ["a", "b"], call=refusing)


# --- the combined reward -------------------------------------------------------------------------------------------
def test_the_judge_is_one_more_weighted_check_and_rewards_a_case_with_no_check_alone():
    case = {"messages": PROMPT, "contains": ["login"], "regex": "times? out"}
    weights = reward_weights(judge_weight=2.0)
    # contains 1 + regex_match 1 (both hit) and the judge's 0.25 at weight 2: (1 + 1 + 2 x 0.25) / 4.
    value, scores = reward("The login page times out.", case, weights, judge_score=0.25)
    assert value == pytest.approx(2.5 / 4) and scores[JUDGE] == 0.25
    # No judge score (no judge, or its reply unreadable): the checks alone, as without a judge.
    assert reward("The login page times out.", case, weights)[0] == pytest.approx(1.0)
    assert JUDGE not in reward("The login page times out.", case, weights)[1]
    # A case with only a rubric: the judge is the whole reward.
    rubric_only = {"messages": PROMPT, "rubric": "Name the page."}
    assert reward("anything", rubric_only, weights, judge_score=0.6)[0] == pytest.approx(0.6)
    assert reward("anything", rubric_only, weights)[0] == 0.0
    with pytest.raises(UserError, match="from 0 to 100"):
        reward_weights(judge_weight=-1)


def test_judge_options_are_checked_before_anything_runs():
    assert parse_hyperparameters(for_method("grpo", {"judge_model": "gpt-4.1-mini", "judge_weight": 3})).judge_weight == 3
    for given, refused in [
        ({"judge_weight": 2}, "judge_weight apply only with judge_model"),
        ({"judge_rubric": "Be kind."}, "judge_rubric apply only with judge_model"),
        ({"judge_model": "  "}, "name a judge model"),
        ({"judge_model": "gpt-4.1-mini", "judge_weight": 0}, "judge_weight"),
        ({"reward_weights": {"judge": 1}}, "the judge's weight is judge_weight"),
    ]:
        with pytest.raises(UserError, match=re.escape(refused)):
            parse_hyperparameters(for_method("grpo", given))
    with pytest.raises(UserError, match="apply to method='grpo' only"):
        for_method("sft", {"judge_model": "gpt-4.1-mini"})
    # A stored job's hyperparameters (every field at its value) read back unchanged.
    stored = parse_hyperparameters(for_method("grpo", {})).model_dump()
    assert parse_hyperparameters(stored).judge_model is None


# --- suites, the quote and the spending guard ----------------------------------------------------------------------
def _rubric_suite(tmp_path: Path, count: int, *, checked: int = 0) -> Path:
    """Cases with only a rubric (the judge is their whole reward); the first `checked` also have a check."""
    cases = []
    for i in range(count):
        case: dict[str, Any] = {"id": f"r{i}", "messages": [{"role": "user", "content": f"Describe bug number {i} in one line."}], "rubric": "Names a page and a symptom."}
        if i < checked:
            case["contains"] = ["e"]
        cases.append(case)
    path = tmp_path / f"rubric-{count}-{checked}.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


@pytest.fixture
def judge_key(monkeypatch: pytest.MonkeyPatch):
    for name in ("OPENAI_BASE_URL", "MODEL_CUSTOMIZATION_OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)


def _spend_rows(ws) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from model_customization.store.schema import spend

    with ws.store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(spend))]


def test_a_rubric_only_suite_trains_with_a_judge_and_is_refused_without_one(ws, tmp_path, judge_key):
    suite = _rubric_suite(tmp_path, 4)
    with pytest.raises(UserError, match="a rubric alone needs a judge"):
        start_job(ws, method="grpo", suite=str(suite), hyperparameters={"holdout_fraction": 0, "validation_fraction": 0}, dry_run=True)
    dry = start_job(ws, method="grpo", suite=str(suite), dry_run=True, hyperparameters={"holdout_fraction": 0, "validation_fraction": 0, "judge_model": f"openai:{JUDGE_MODEL}"})
    assert dry["status"] == "dry_run" and dry["quote"]["prompts"] == 4


def test_the_quote_counts_one_judge_call_per_group_at_the_judge_models_prices(ws, tmp_path, judge_key, monkeypatch):
    suite = str(_rubric_suite(tmp_path, 6))
    hp = {"holdout_fraction": 0, "validation_fraction": 0, "batch_size": 2, "group_size": 4, "max_new_tokens": 16, "judge_model": f"openai:{JUDGE_MODEL}"}
    one = start_job(ws, method="grpo", suite=suite, dry_run=True, hyperparameters={**hp, "epochs": 1})["quote"]
    two = start_job(ws, method="grpo", suite=suite, dry_run=True, hyperparameters={**hp, "epochs": 2})["quote"]
    judge = one["judge"]
    assert judge["model"] == f"openai:{JUDGE_MODEL}" and judge["provider"] == "openai" and judge["paid"]
    # One call per group (each case once per epoch), and at most one more where a reply cannot be read.
    assert judge["calls"] == 6 and judge["calls_per_step"] == 2 and judge["max_calls"] == 12 and two["judge"]["calls"] == 12
    assert one["estimated_cost_usd"] == judge["cost_bound_usd"] > 0
    assert two["estimated_cost_usd"] == pytest.approx(2 * one["estimated_cost_usd"])
    # At the judge model's prices: three times the price, three times the quote.
    monkeypatch.setenv("MODEL_CUSTOMIZATION_CHAT_PRICES", json.dumps({JUDGE_MODEL: [9, 45]}))
    tripled = start_job(ws, method="grpo", suite=suite, dry_run=True, hyperparameters={**hp, "epochs": 1})["quote"]
    assert tripled["estimated_cost_usd"] == pytest.approx(3 * one["estimated_cost_usd"])
    # Longer answers make a longer judge prompt: the bound grows with max_new_tokens.
    longer = start_job(ws, method="grpo", suite=suite, dry_run=True, hyperparameters={**hp, "epochs": 1, "max_new_tokens": 64})["quote"]
    assert longer["estimated_cost_usd"] > tripled["estimated_cost_usd"]
    # Without a judge, a local GRPO job is free and its quote has no judge.
    free = start_job(ws, method="grpo", suite=str(_rubric_suite(tmp_path, 6, checked=6)), dry_run=True, hyperparameters={"holdout_fraction": 0, "validation_fraction": 0})["quote"]
    assert free["estimated_cost_usd"] == 0.0 and "judge" not in free


def test_a_judge_over_budget_is_refused_before_the_job_exists_and_passes_once_confirmed(ws, tmp_path, judge_key, monkeypatch):
    suite = str(_rubric_suite(tmp_path, 4))
    hp = {"holdout_fraction": 0, "validation_fraction": 0, "judge_model": f"openai:{JUDGE_MODEL}"}
    ws.settings = dataclasses.replace(ws.settings, budget_per_job_usd=0.0, budget_per_day_usd=0.0, allow_argument_confirmation=False)
    with pytest.raises(ConfirmationNeeded, match="above the per-job budget") as refused:
        start_job(ws, method="grpo", suite=suite, hyperparameters=hp)
    assert "GRPO job's judge calls" in refused.value.question
    assert ws.store.jobs.all() == [] and _spend_rows(ws) == []
    # An argument approves only where the operator allowed it.
    with pytest.raises(ConfirmationNeeded, match="confirm_cost_usd cannot approve"):
        start_job(ws, method="grpo", suite=suite, hyperparameters=hp, confirm_cost_usd=100.0)
    assert ws.store.jobs.all() == [] and _spend_rows(ws) == []
    # A person who saw the quote approves it: the approval is recorded before the job is queued.
    quote = start_job(ws, method="grpo", suite=suite, hyperparameters=hp, dry_run=True)["quote"]["estimated_cost_usd"]
    ws.settings = dataclasses.replace(ws.settings, max_local_jobs=1)
    monkeypatch.setattr("model_customization.jobs.orchestrator.dispatch", lambda ws: [])  # queued, not run: this test is about the money
    started = start_job(ws, method="grpo", suite=suite, hyperparameters=hp, human_usd=quote, human_via="terminal")
    assert started["status"] == "queued"
    [row] = _spend_rows(ws)
    assert row["job_id"] == f"{started['job_id']}-judge" and row["provider"] == "openai" and row["quoted_usd"] == quote and row["approved_by"] == "terminal"
    details = ws.store.jobs.get(started["job_id"])["details"]["judge_spending"]
    assert details["approved_usd"] == quote and details["drawn_usd"] == 0.0
    assert any("judge calls approved (terminal)" in e["message"] for e in check_job(ws, started["job_id"], events=20)["events"])
    # A free local job still refuses confirm_cost_usd: there is nothing to confirm.
    with pytest.raises(UserError, match="this local job is free"):
        start_job(ws, method="grpo", suite=str(_rubric_suite(tmp_path, 4, checked=4)), hyperparameters={"holdout_fraction": 0, "validation_fraction": 0}, confirm_cost_usd=1.0)


def test_hosted_trainers_refuse_a_judge_before_anything_is_stored(ws, tmp_path, judge_key):
    with pytest.raises(UserError, match="judge_model is called from a GRPO job trained on this machine"):
        start_job(ws, method="grpo", provider="hf-jobs", suite=str(_rubric_suite(tmp_path, 4)), hyperparameters={"judge_model": f"openai:{JUDGE_MODEL}"})
    assert ws.store.jobs.all() == [] and ws.store.datasets.all() == []


def test_a_judge_whose_key_is_missing_is_refused_before_anything_is_stored(ws, tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        start_job(ws, method="grpo", suite=str(_rubric_suite(tmp_path, 4)), hyperparameters={"judge_model": "anthropic:claude-haiku-4-5"})
    assert ws.store.jobs.all() == [] and ws.store.datasets.all() == []


# --- end to end: the worker (another process) calls a scripted judge over HTTP -------------------------------------
ANSWER_BLOCK = re.compile(r"<answer_(\d+)>\n(.*?)\n</answer_\1>", re.DOTALL)


def answers_shown(messages: list[dict[str, Any]]) -> list[str]:
    return [text for _, text in ANSWER_BLOCK.findall(messages[-1]["content"])]


def hashed_scores(answers: list[str]) -> list[float]:
    """A deterministic judge: each answer's score is a function of its text alone."""
    return [int(hashlib.sha256(a.encode()).hexdigest()[:4], 16) % 11 / 10 for a in answers]


class JudgeServer:
    """tests/openai_fake.py's FakeOpenAI (every request and response checked against OpenAI's published spec) behind a
    real socket on 127.0.0.1, so that a worker process reaches it through OPENAI_BASE_URL as it would reach OpenAI."""

    def __init__(self, script) -> None:
        from tests.openai_fake import FakeOpenAI

        self.fake = FakeOpenAI(FAKE_KEY)
        self.fake.add_model(JUDGE_MODEL)
        self.script, self.replies, self.lock = script, [], threading.Lock()

        def reply(model: str, messages: list[dict[str, Any]]) -> str:
            with self.lock:
                text = self.script(len(self.replies) + 1, answers_shown(messages))
                self.replies.append((answers_shown(messages), text))
                return text

        self.fake.chat_reply = reply
        fake = self.fake

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                import httpx2

                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                url = f"http://{self.headers.get('host')}{self.path}"
                response = fake.handler(httpx2.Request(self.command, url, headers=dict(self.headers.items()), content=body))
                content = response.content
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def chat_calls(self) -> int:
        return self.fake.count("POST", "/chat/completions")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        assert self.fake.violations == [], self.fake.violations


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch, judge_key):
    servers: list[JudgeServer] = []

    def start(script) -> JudgeServer:
        server = JudgeServer(script)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the worker inherits the environment
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _history(ws, job_id: str) -> list[tuple[int, float, float, float, float]]:
    rows = [m for m in ws.store.jobs.metrics(job_id) if m["train_loss"] is not None]
    return [(m["step"], m["train_loss"], m["reward_mean"], m["reward_std"], m["kl"]) for m in sorted(rows, key=lambda m: m["step"])]


def _secret_free(ws, job_id: str) -> None:
    """The judge's key is in none of what the job leaves: events, details, the worker's log, the verdicts."""
    events = " ".join(e["message"] for e in ws.store.jobs.events(job_id, limit=None))
    folder = ws.settings.jobs_dir / job_id
    files = " ".join(p.read_text(encoding="utf-8", errors="replace") for p in (folder / "worker.log", folder / "judge_verdicts.jsonl") if p.is_file())
    for text in (events, json.dumps(ws.store.jobs.get(job_id)["details"]), files):
        assert FAKE_KEY not in text


def test_a_grpo_job_learns_from_the_judge_alone_and_pays_from_its_approval(ws, tmp_path, judge_server):
    def script(call: int, answers: list[str]) -> str:
        if call in (1, 4, 5):  # the first group's first reply, and both replies for the third group, are unreadable
            return "I think answer 2 is the best one."
        return json.dumps({"scores": [{"answer": n, "reason": "scripted", "score": s} for n, s in enumerate(hashed_scores(answers), start=1)]})

    server = judge_server(script)
    suite = _rubric_suite(tmp_path, 4)
    hp = {"epochs": 1, "batch_size": 2, "group_size": 3, "max_new_tokens": 6, "holdout_fraction": 0, "validation_fraction": 0, "seed": 3,
          "judge_model": f"openai:{JUDGE_MODEL}", "judge_rubric": "unused: every case has its own"}  # fmt: skip
    started = start_job(ws, method="grpo", suite=str(suite), hyperparameters=hp)
    done = wait_for_job(ws, started["job_id"], timeout=900, poll=0.2)
    assert done["status"] == "succeeded", (done["error"], [e["message"] for e in ws.store.jobs.events(done["job_id"], limit=None)])
    job_id = done["job_id"]

    # One call per group, and one more for each unreadable reply: 4 groups, 3 bad replies.
    assert server.chat_calls() == 6 and len(server.replies) == 6
    # The requests came from the worker with the key, to the judge model, greedy; validated against the spec.
    body = next(b for m, t, b in server.fake.request_bodies if t == "/chat/completions")
    assert body["model"] == JUDGE_MODEL and body["temperature"] == 0.0
    assert {h.get("authorization") for h in server.fake.auth_headers} == {f"Bearer {FAKE_KEY}"}
    # Each group's answers were shown together; the case's own rubric, not the job's.
    assert all(len(answers) == 3 for answers, _ in server.replies)
    assert "Names a page and a symptom." in next(b for m, t, b in server.fake.request_bodies if t == "/chat/completions")["messages"][1]["content"]

    # A rubric-only suite: each answer's reward is the judge's score; the unscored group's rewards are 0.
    scored = [hashed_scores(answers) for answers, text in server.replies if text.startswith("{")]
    history = _history(ws, job_id)
    assert [h[0] for h in history] == [1, 2]
    assert history[0][2] == pytest.approx(sum(scored[0] + scored[1]) / 6)
    assert history[1][2] == pytest.approx(sum([0.0] * 3 + scored[2]) / 6)
    assert all(math.isfinite(h[1]) and h[4] >= 0 for h in history)

    messages = [e["message"] for e in check_job(ws, job_id, events=80)["events"]]
    assert any(m.startswith("judge calls approved (budget)") for m in messages)
    assert any(m.startswith("judge error at step 2:") and "this group gives no update" in m for m in messages)
    assert any("judge 1" in m and m.startswith("GRPO on 4 prompts") for m in messages)
    [summary] = [m for m in messages if m.startswith(f"judge openai:{JUDGE_MODEL}: ")]
    assert "6 calls this run, 1 groups unscored" in summary

    # The money: every call drew from the approval, and the bill (the fake's reported tokens at the judge's price)
    # replaced the approval in the daily budget when the job succeeded; no more than was approved.
    spending = ws.store.jobs.get(job_id)["details"]["judge_spending"]
    [row] = [r for r in _spend_rows(ws) if r["job_id"] == f"{job_id}-judge"]
    assert spending["calls"] == 6 and 0 < spending["billed_usd"] <= spending["drawn_usd"] <= spending["approved_usd"] == row["committed_usd"]
    assert row["actual_usd"] == pytest.approx(spending["billed_usd"])
    assert row["quoted_usd"] == start_job(ws, method="grpo", suite=str(suite), hyperparameters=hp, dry_run=True)["quote"]["estimated_cost_usd"]
    _secret_free(ws, job_id)


def test_a_judge_call_beyond_the_approval_is_not_sent_and_stops_the_job(ws, tiny_model, tmp_path, judge_server, monkeypatch):
    server = judge_server(lambda call, answers: json.dumps({"scores": hashed_scores(answers)}))
    suite = _rubric_suite(tmp_path, 4)
    hp = {"epochs": 1, "batch_size": 2, "group_size": 2, "max_new_tokens": 4, "holdout_fraction": 0, "validation_fraction": 0, "judge_model": f"openai:{JUDGE_MODEL}"}
    monkeypatch.setattr("model_customization.jobs.orchestrator.dispatch", lambda ws: [])
    job_id = start_job(ws, method="grpo", suite=str(suite), base_model=str(tiny_model), hyperparameters=hp)["job_id"]
    # The approval shrinks after the start (as if its quote had been short): the first call no longer fits.
    job = ws.store.jobs.get(job_id)
    ws.store.jobs.update(job_id, details={**job["details"], "judge_spending": {**job["details"]["judge_spending"], "approved_usd": 1e-9}})
    monkeypatch.undo()
    from model_customization.jobs.orchestrator import dispatch

    dispatch(ws)
    done = wait_for_job(ws, job_id, timeout=600, poll=0.2)
    assert done["status"] == "failed"
    assert f"The judge openai:{JUDGE_MODEL} could not score step 1's answers" in done["error"] and "would pass the" in done["error"]
    assert server.chat_calls() == 0, "a call that does not fit the approval is never sent"
    _secret_free(ws, job_id)


def test_a_judged_grpo_run_resumed_after_kill_9_repeats_the_uninterrupted_one_without_paying_twice(ws, tiny_model, tmp_path, judge_server):
    import os
    import signal

    from model_customization.jobs.processes import worker_alive
    from model_customization.providers.local.train import latest_checkpoint

    # 3 training cases in batches of 2: steps of 2 and 1 groups, 4 steps, 6 judge calls a run. The interrupted job's
    # 5th call (the 11th in all, in the second epoch) is held until the test has killed its worker: the kill lands
    # after a verdict newer than the checkpoint at step 2 was kept, whatever the machine's speed (a kill after polling
    # for a step lands wherever the worker has got to by then, past the next checkpoint on a fast machine).
    held, released = threading.Event(), threading.Event()

    def script(call: int, answers: list[str]) -> str:
        if call == 11 and not released.is_set():
            held.set()
            released.wait(120)
        return json.dumps({"scores": hashed_scores(answers)})  # deterministic

    server = judge_server(script)
    suite = _rubric_suite(tmp_path, 5, checked=4)  # checks and the judge together; one case has the judge alone
    hp = {
        "epochs": 2, "batch_size": 2, "group_size": 4, "max_new_tokens": 6, "holdout_fraction": 0.0, "validation_fraction": 0.4, "seed": 5,
        "checkpoint_interval_steps": 2, "lora_dropout": 0.1, "learning_rate": 5e-3, "judge_model": f"openai:{JUDGE_MODEL}", "judge_weight": 2,
    }
    reference = start_job(ws, method="grpo", suite=str(suite), base_model=str(tiny_model), hyperparameters=hp)
    interrupted = start_job(ws, method="grpo", suite=str(suite), base_model=str(tiny_model), hyperparameters=hp)
    reference_done = wait_for_job(ws, reference["job_id"], timeout=600, poll=0.2)
    assert reference_done["status"] == "succeeded", reference_done["error"]
    total = reference_done["total_steps"]
    assert total == 4
    calls_reference = server.chat_calls()
    assert calls_reference == 6, "one judge call per group: 3 cases x 2 epochs"

    job_id = interrupted["job_id"]
    try:
        wait_for(held.is_set, 300, "the interrupted job's fifth judge call")
        assert ws.store.jobs.get(job_id)["step"] < total, "the kill must land mid-training"
        pid = ws.store.jobs.get(job_id)["worker_pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not worker_alive(pid, job_id), 30, "the killed worker to go")
    finally:
        released.set()
    checkpoint = latest_checkpoint(ws, job_id)
    assert checkpoint is not None
    check_job(ws, job_id)  # notices the dead worker and resumes the job from its checkpoint
    done = wait_for_job(ws, job_id, timeout=600, poll=0.2)
    assert done["status"] == "succeeded", done["error"]

    a, b = _history(ws, reference["job_id"]), _history(ws, job_id)
    assert [h[0] for h in b] == list(range(1, total + 1))
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a[1:], row_b[1:], strict=True):
            assert abs(x - y) <= 1e-5 * max(1.0, abs(x)), (row_a, row_b)
    assert any(h[3] > 0 for h in a), "the judge's scores spread the rewards within a group"
    # The groups judged before the kill were not asked (or paid for) again: their verdicts were kept.
    assert server.chat_calls() - calls_reference <= calls_reference + 1
    events = [e["message"] for e in ws.store.jobs.events(job_id, limit=None)]
    assert any("verdicts kept from before a resume" in m for m in events), events
    # Validation scores the checks only: the judge's scores are relative to a group.
    assert any(m.startswith("validation scores the suite's checks only") for m in events)

    def kept(job):
        return [e["message"] for e in ws.store.jobs.events(job, limit=None) if e["message"].startswith("keeping ")]

    assert kept(job_id) == kept(reference["job_id"]) and len(kept(job_id)) == 1
    spending = ws.store.jobs.get(job_id)["details"]["judge_spending"]
    assert 0 < spending["billed_usd"] <= spending["approved_usd"]
    _secret_free(ws, job_id)
