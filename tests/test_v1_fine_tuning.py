"""OpenAI's fine-tuning API served locally: the real `openai` SDK runs the seed CLI's four stages against the live
server (upload a dataset, create a job, list its events until it succeeds, prompt the fine-tuned model), and the
embedded model really trains. Also: cancel, pause and resume, pagination, a validation file, bad files and names.
Every response is validated against OpenAI's published spec (tests/v1_live.py)."""

from __future__ import annotations

import json
import time

import openai
import pytest

from v1_live import serving

pytestmark = pytest.mark.slow
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Delhi", "Sofia", "Accra"]
OTHER_CITIES = ["Bern", "Riga", "Doha", "Kyiv", "Baku", "Oran", "Pune", "Hue", "Nuuk", "Apia"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]  # fmt: skip


def _weather_file(cities: list[str] = CITIES) -> bytes:
    """Tool-calling examples in OpenAI's chat fine-tuning format: ask for a city's weather, call get_weather."""
    lines = []
    for city in cities:
        call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"What is the weather in {city}?"}, {"role": "assistant", "content": None, "tool_calls": [call]}], "tools": TOOLS}))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_cache, embedded_base):
    folder = tmp_path_factory.mktemp("v1-fine-tuning")
    with serving(folder / "home", folder / "server.log", env={"MODEL_CUSTOMIZATION_MODEL_CACHE": str(model_cache)}) as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def test_seed_cli_stages_upload_train_watch_prompt(server, client):
    # 1. upload the dataset
    data = _weather_file()
    uploaded = client.files.create(file=("weather.jsonl", data), purpose="fine-tune")
    assert uploaded.purpose == "fine-tune" and uploaded.bytes == len(data) and uploaded.status == "processed"
    assert client.files.retrieve(uploaded.id).filename == "weather.jsonl"
    assert client.files.content(uploaded.id).read() == data
    # 2. create the job, asking for an OpenAI model as an unchanged script would
    job = client.fine_tuning.jobs.create(
        training_file=uploaded.id, model="gpt-4o-mini-2024-07-18", suffix="weather", seed=3, metadata={"run": "seed-cli"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 5, "learning_rate_multiplier": 5}}},
    )  # fmt: skip
    assert job.status in ("queued", "running") and job.model == "gpt-4o-mini-2024-07-18" and job.seed == 3
    assert job.method.supervised.hyperparameters.n_epochs == 3
    # 3. list its events until it succeeds
    deadline = time.monotonic() + 1500
    while (current := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=50).data]
        client.fine_tuning.jobs.list_events(job.id, limit=5)
        time.sleep(3)
    events = client.fine_tuning.jobs.list_events(job.id, limit=200).data
    assert current.status == "succeeded", (current.error, [e.message for e in events])
    oldest = events[-1].message  # newest first, as OpenAI lists them: the last is the job's creation
    assert "gpt-4o-mini-2024-07-18" in oldest and "SmolLM2-135M-Instruct" in oldest
    assert any(e.type == "metrics" for e in events)
    assert current.fine_tuned_model and current.finished_at is not None
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].fine_tuned_model_checkpoint.startswith(job.id + "@step-")
    # 4. prompt the fine-tuned model: it learned to call the tool, which comes back as an OpenAI tool call
    assert current.fine_tuned_model in [m.id for m in client.models.list().data]
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    answer = client.chat.completions.create(model=current.fine_tuned_model, messages=ask, tools=TOOLS, max_tokens=48, temperature=0)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message.content
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    # the same through the stream: the call arrives as tool_call chunks, no <tool_call> text leaks as content
    streamed_args, streamed_name, content, finish = "", "", "", None
    for chunk in client.chat.completions.create(model=current.fine_tuned_model, messages=ask, tools=TOOLS, max_tokens=48, temperature=0, stream=True):
        for c in chunk.choices:
            content += c.delta.content or ""
            for part in c.delta.tool_calls or []:
                streamed_name += part.function.name or ""
                streamed_args += part.function.arguments or ""
            finish = c.finish_reason or finish
    assert (streamed_name, json.loads(streamed_args), finish) == ("get_weather", {"city": "Paris"}, "tool_calls")
    assert "<tool_call>" not in content and content == (choice.message.content or "")
    # the agent loop's next turn: the call and the tool's result go back, and the model is asked again
    follow_up = ask + [choice.message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}]
    assert client.chat.completions.create(model=current.fine_tuned_model, messages=follow_up, tools=TOOLS, max_tokens=16, temperature=0).choices


def test_bad_files_are_refused_naming_the_line(client):
    broken = _weather_file().splitlines()
    broken[3] = b'{"messages": [{"role": "wizard", "content": "hi"}]}'
    broken[6] = b"not json at all"
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("broken.jsonl", b"\n".join(broken)), purpose="fine-tune")
    error = refused.value.body
    assert error["param"] == "file" and error["code"] == "invalid_file"
    assert "line 4" in error["message"] and "line 7" in error["message"]
    assert not any(f.filename == "broken.jsonl" for f in client.files.list().data)  # nothing was stored
    with pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=("weather.jsonl", _weather_file()), purpose="batch")
    assert purpose.value.body["param"] == "purpose"


def test_files_list_page_and_delete(client):
    ids = [client.files.create(file=(f"w{i}.jsonl", _weather_file(CITIES[i:] + CITIES[:i])), purpose="fine-tune").id for i in range(3)]
    first = client.files.list(limit=2, order="asc")
    assert len(first.data) == 2 and first.has_more
    every = [f.id for f in client.files.list(limit=2, order="asc")]  # the SDK follows the pages (after=last id)
    assert [i for i in every if i in ids] == ids
    assert client.files.delete(ids[0]).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(ids[0])


def test_jobs_cancel_pause_resume_and_pages(server, client):
    from model_customization.workspace import Workspace

    training = client.files.create(file=("train.jsonl", _weather_file()), purpose="fine-tune")
    validation = client.files.create(file=("valid.jsonl", _weather_file(OTHER_CITIES)), purpose="fine-tune")
    # a long job (many epochs) that is paused, resumed and cancelled, and two more queued behind it
    hyper = {"n_epochs": 50, "batch_size": 1}
    created = [
        client.fine_tuning.jobs.create(training_file=training.id, validation_file=validation.id if i == 0 else None, model="gpt-4o-mini",
                                       method={"type": "supervised", "supervised": {"hyperparameters": hyper}}, metadata={"batch": "pages", "n": str(i)})
        for i in range(3)
    ]  # fmt: skip
    ws = Workspace.open(server.home)
    try:
        dataset = ws.store.datasets.get(ws.store.jobs.get(created[0].id)["dataset_id"])
        assert dataset["counts"]["train"] == 10 and dataset["counts"]["validation"] == 10  # the validation file is the validation split
    finally:
        ws.store.close()
    assert created[0].validation_file == validation.id
    # pages, newest first: after=<last id of a page> gives the next one
    page = client.fine_tuning.jobs.list(limit=2, metadata={"batch": "pages"})
    assert [j.id for j in page.data] == [created[2].id, created[1].id] and page.has_more
    rest = client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id, metadata={"batch": "pages"})
    assert [j.id for j in rest.data] == [created[0].id] and not rest.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=1, metadata={"batch": "pages"})] == [j.id for j in reversed(created)]
    # pause, resume, cancel
    paused = client.fine_tuning.jobs.pause(created[0].id)
    assert paused.status == "paused"
    assert client.fine_tuning.jobs.retrieve(created[0].id).status == "paused"
    resumed = client.fine_tuning.jobs.resume(created[0].id)
    assert resumed.status in ("queued", "running")
    for job in created:
        assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(created[0].id)  # ended already
    events = client.fine_tuning.jobs.list_events(created[0].id, limit=100).data
    assert any("paused" in e.message for e in events) and any("resume" in e.message for e in events)
    # event pages: after=<an event id> gives the older ones
    first_two = client.fine_tuning.jobs.list_events(created[0].id, limit=2)
    older = client.fine_tuning.jobs.list_events(created[0].id, limit=100, after=first_two.data[-1].id)
    assert [e.id for e in first_two.data] + [e.id for e in older.data] == [e.id for e in events]


def test_job_requests_with_wrong_names_are_refused(client):
    training = client.files.create(file=("train.jsonl", _weather_file()), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as model:
        client.fine_tuning.jobs.create(training_file=training.id, model="gpt-imaginary-9")
    assert model.value.body["param"] == "model" and "MODEL_CUSTOMIZATION_OPENAI_BASE_MODELS" in model.value.body["message"]
    with pytest.raises(openai.BadRequestError) as missing:
        client.fine_tuning.jobs.create(training_file="file-000000000000000000000000", model="gpt-4o-mini")
    assert missing.value.body["param"] == "training_file"
    with pytest.raises(openai.BadRequestError) as method:
        client.fine_tuning.jobs.create(training_file=training.id, model="gpt-4o-mini", method={"type": "dpo"})
    assert method.value.body["param"] == "training_file"  # chat examples cannot train a DPO job
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("job-missing")
