"""The hf-jobs provider against a fake Hugging Face Hub (tests/hf_jobs_fake.py): the Jobs API and repository
storage over HTTP on 127.0.0.1, every job spec and job body checked with huggingface_hub's own types. A job there
really runs: our wheel is built, shipped through the repository, installed into the job's own folder, and its worker
trains the tiny model in a subprocess, so the adapter that comes back is a real one that prompt_model loads and
export_model turns into an Ollama model.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from mcp import Client, types

from hf_jobs_fake import SpecViolation, check_job_info, check_job_spec, serving
from model_customization.errors import UserError
from model_customization.jobs import orchestrator
from model_customization.server.app import build_server

TOKEN = "hf_test_SECRET_token_0123456789abcdef"
# One epoch of short examples: the remote worker trains the tiny model in well under a minute.
FAST = {"epochs": 1, "batch_size": 8, "learning_rate": 5e-3, "max_seq_length": 128, "flavor": "cpu-basic"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def hub(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS", "0")
    with serving(monkeypatch, TOKEN, tmp_path / "fake-hub") as fake:
        yield fake


@pytest.fixture
def dataset_id(ws, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, demo_paths).dataset_id


@pytest.fixture
def small_dataset_id(ws, demo_paths) -> str:
    """The demo's OpenAI-format half: few enough examples that a remote run takes a handful of steps."""
    from model_customization.datasets.build import build_dataset

    return build_dataset(ws, [p for p in demo_paths if p.name == "openai"]).dataset_id


@pytest.fixture
def held(hub):
    """The fake Hub with jobs that do not run: their stages are what the test scripts."""
    hub.execute = False
    return hub


def _events(ws, job_id: str) -> list[str]:
    return [e["message"] for e in ws.store.jobs.events(job_id, None)]


def _wait(ws, job_id: str, statuses: tuple[str, ...], timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = orchestrator.check_job(ws, job_id)
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, "\n".join(_events(ws, job_id))
        time.sleep(1.0)


def _structured(result: types.CallToolResult) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def _ledger_text(ws) -> str:
    jobs = ws.store.jobs.all()
    return json.dumps(
        [jobs, [ws.store.jobs.events(j["id"], None) for j in jobs], [ws.store.jobs.metrics(j["id"]) for j in jobs], ws.store.models.all()], default=str
    )


# --- the whole route, for real --------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.anyio
async def test_a_job_trains_remotely_and_comes_back_as_a_local_model_to_prompt_and_export(ws, hub, small_dataset_id, tiny_model):
    dataset_id = small_dataset_id
    from model_customization.providers.local.export import export_model

    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    assert job["remote_id"] and job["quote"]["flavor"] == "cpu-basic"
    done = _wait(ws, job["job_id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", "\n".join(_events(ws, job["job_id"]))

    # What ran there: our wheel, installed into the job's own folder; the token went as a secret, never in the environment.
    remote = hub.jobs[job["remote_id"]]
    pip_lines = (remote.workdir / "pip.txt").read_text()
    assert "model_customization-" in pip_lines and ".whl[local,hf-jobs]" in pip_lines
    assert (remote.workdir / "site" / "model_customization" / "providers" / "local" / "train.py").is_file()
    assert remote.spec["secrets"] == {"HF_TOKEN": TOKEN} and TOKEN not in json.dumps(remote.spec["environment"])
    assert remote.spec["labels"]["mc-idempotency-key"] == ws.store.jobs.get(job["job_id"])["idempotency_key"]

    # The worker's progress came back: metric rows, the remote events, the same step count as a local run takes.
    events = _events(ws, job["job_id"])
    assert any(m.startswith("remote: training ") for m in events) and any("remote: epoch 1/1 done" in m for m in events)
    metrics = ws.store.jobs.metrics(job["job_id"])
    assert [m["step"] for m in metrics if m["train_loss"] is not None] == list(range(1, done["total_steps"] + 1))
    has_validation = ws.store.datasets.get(dataset_id)["counts"].get("validation", 0) > 0
    assert (done["validation_loss"] is not None) == has_validation, "\n".join(events)
    assert done["spend"]["actual_usd"] is not None

    # A tuned local model with its lineage, whose adapter is the one the remote worker saved.
    model = ws.store.models.get(done["model_id"])
    assert (model["provider"], model["job_id"], model["dataset_id"], model["base_model"]) == ("local", job["job_id"], dataset_id, str(tiny_model))
    adapter = Path(model["path"])
    assert json.loads((adapter / "training.json").read_text())["job_id"] == job["job_id"]
    repo = hub.repos["tester/model-customization-jobs"]
    assert (adapter / "adapter_model.safetensors").read_bytes() == repo.files[f"runs/{job['job_id']}/adapter/adapter_model.safetensors"]
    assert repo.private

    async with Client(build_server(ws=ws)) as client:
        answer = _structured(await client.call_tool("prompt_model", {"model": done["model_id"], "prompt": "hello", "max_tokens": 4}))
    assert answer["model"] == done["model_id"] and answer["completion_tokens"] >= 1
    exported = export_model(ws, done["model_id"], ["ollama"])
    assert (Path(exported["output_dir"]) / "Modelfile").is_file() and exported["ollama_command"].startswith(f"ollama create {done['model_id']}")

    # The token is nowhere: not in the ledger, not in the files shipped, not in the job's log.
    assert TOKEN not in _ledger_text(ws)
    assert all(TOKEN.encode() not in data for data in repo.files.values())
    assert TOKEN not in "\n".join(remote.log)


@pytest.mark.slow
def test_pause_and_resume_continue_from_the_checkpoint_in_the_repository(ws, hub, small_dataset_id, tiny_model):
    dataset_id = small_dataset_id
    # The first remote run is frozen as soon as its first checkpoint reaches the repository.
    hub.on_commit = lambda paths: hub.suspend_running() if any("/checkpoints/step-" in p for p in paths) else None
    hp = {**FAST, "batch_size": 4, "checkpoint_interval_steps": 5}
    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=hp, confirm_cost_usd=100)
    # The first to arrive: step 5's, unless training (fast on this machine) pruned it before the supervisor, which
    # looks every quarter second, sent it; then a later one, and the run continues from that one.
    hub.wait_for(lambda: any("/checkpoints/step-" in p for p in hub.uploaded_paths()))
    step = min(int(p.split("/checkpoints/step-")[1][:7]) for p in hub.uploaded_paths() if "/checkpoints/step-" in p)
    assert step % 5 == 0
    first_remote = job["remote_id"]
    paused = orchestrator.pause_job(ws, job["job_id"])
    assert paused["status"] == "paused" and hub.jobs[first_remote].stage == "CANCELED"
    assert orchestrator.check_job(ws, job["job_id"])["status"] == "paused"  # the stopped remote job does not cancel ours

    hub.on_commit = None
    resumed = orchestrator.start_job(ws, resume=job["job_id"])
    assert resumed["remote_id"] != first_remote and resumed["status"] in ("queued", "running")
    done = _wait(ws, job["job_id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", "\n".join(_events(ws, job["job_id"]))
    events = _events(ws, job["job_id"])
    assert any("continuing from runs/" in m and f"step-{step:07d}" in m for m in events)
    assert f"remote: resumed from checkpoint at step {step} (epoch 1, batch {step})" in events
    steps = [m["step"] for m in ws.store.jobs.metrics(job["job_id"]) if m["train_loss"] is not None]
    assert steps == list(range(1, done["total_steps"] + 1))  # no step twice, none missing
    assert ws.store.models.get(done["model_id"])["job_id"] == job["job_id"]
    second = hub.jobs[resumed["remote_id"]]
    assert "--resume-from" in second.spec["command"][-1]
    # The checkpoints are listed from the repository and their weights are here too.
    from model_customization.providers.registry import get_provider

    kept = get_provider("hf-jobs").job_checkpoints(ws, job["job_id"])["checkpoints"]
    assert kept and all(Path(c["local_path"], "adapter.safetensors").is_file() and c["path"].startswith(f"runs/{job['job_id']}/checkpoints/") for c in kept)


# --- the fake's checker is a real check ---------------------------------------------------------------------------
def test_the_checker_rejects_bodies_huggingface_hub_would_not_send_or_read():
    from huggingface_hub._jobs_api import _create_job_spec

    good = _create_job_spec(image="python:3.12", command=["echo"], env={}, secrets={"HF_TOKEN": "x"}, flavor="a10g-small", timeout="5m", labels={"a": "b"})
    good["dockerImage"] = "python:3.12"
    check_job_spec(good)
    with pytest.raises(SpecViolation, match="flavor"):
        check_job_spec({**good, "flavor": "a100-huge"})
    with pytest.raises(SpecViolation, match="never sends"):
        check_job_spec({**good, "hardware": "a10g-small"})
    with pytest.raises(SpecViolation, match="strings"):
        check_job_spec({**good, "environment": {"N": 3}})
    with pytest.raises(SpecViolation, match="JobInfo cannot read"):
        check_job_info({"id": "1", "status": {"stage": "RUNNING"}})  # no owner


# --- refused before anything is uploaded or spent ----------------------------------------------------------------
def test_refused_before_any_upload_when_the_token_flavour_or_repository_will_not_do(ws, held, dataset_id, tiny_model, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(UserError, match="HF_TOKEN"):
        orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(UserError, match="unknown flavour 'h100'.*h200"):
        orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters={**FAST, "flavor": "h100"})
    with pytest.raises(UserError, match="cannot be created in 'someone-else'"):
        orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters={**FAST, "repository": "someone-else/runs"}, confirm_cost_usd=100)
    from hf_jobs_fake import Repo

    held.repos["tester/public-runs"] = Repo("tester/public-runs", private=False)
    with pytest.raises(UserError, match="is public"):
        orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters={**FAST, "repository": "tester/public-runs"}, confirm_cost_usd=100)
    with pytest.raises(UserError, match="hf download"):
        orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model="Qwen/Qwen2.5-7B-Instruct", hyperparameters=FAST, confirm_cost_usd=100)
    held.fail("GET", "whoami", 401)
    with pytest.raises(UserError, match="refused the token") as refused:
        orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    assert TOKEN not in str(refused.value)
    assert held.uploaded_paths() == [] and held.posts("run_job") == 0 and held.posts("create_repo") == 0
    assert ws.store.jobs.all() == [] and ws.store.spending.since(0) == 0


def test_the_quote_prices_the_flavour_by_the_minute_from_the_local_speed(ws, held, dataset_id, tiny_model):
    cpu = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, dry_run=True)["quote"]
    gpu = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters={**FAST, "flavor": "a10g"}, dry_run=True)["quote"]
    assert gpu["flavor"] == "a10g-small" and "hardware list" in gpu["prices_source"]  # the Hub's own price wins
    assert gpu["usd_per_minute"] == pytest.approx(0.016667)
    assert gpu["estimated_cost_usd"] == pytest.approx(gpu["estimated_minutes"] * gpu["usd_per_minute"], abs=1e-4)
    assert gpu["speed_factor"] > cpu["speed_factor"] and gpu["trained_tokens"] == cpu["trained_tokens"] > 0
    assert "local speed" in gpu["assumption"] and "minutes" in gpu["assumption"] and gpu["max_cost_usd"] >= gpu["estimated_cost_usd"]
    table = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters={**FAST, "flavor": "a100-large"}, dry_run=True)["quote"]
    assert table["usd_per_minute"] == pytest.approx(2.50 / 60, abs=1e-6) and "table read on" in table["prices_source"]
    # inspect_dataset measures with the same trainer's rules and prices the default flavour from the table.
    from model_customization.datasets.inspect import inspect_dataset

    inspected = inspect_dataset(ws, dataset_id=dataset_id, provider="hf-jobs", model=str(tiny_model), max_seq_length=128)
    assert inspected["quote"]["provider"] == "hf-jobs" and inspected["quote"]["flavor"] == "a10g-small" and inspected["quote"]["estimated_cost_usd"] > 0
    assert held.uploaded_paths() == [] and ws.store.jobs.all() == []


# --- the spending guard, through the MCP tools ------------------------------------------------------------------
@pytest.mark.anyio
async def test_over_budget_is_refused_with_nothing_uploaded(ws, held, dataset_id, tiny_model):
    ws.settings = replace(ws.settings, budget_per_job_usd=0.0, budget_per_day_usd=0.0)
    arguments = {"dataset_id": dataset_id, "provider": "hf-jobs", "base_model": str(tiny_model), "hyperparameters": {**FAST, "flavor": "a100-large"}}
    async with Client(build_server(ws=ws)) as client:
        refused = await client.call_tool("start_job", arguments)
    assert refused.is_error and "nothing spent" in refused.content[0].text and "above the per-job budget" in refused.content[0].text
    assert held.uploaded_paths() == [] and held.posts("run_job") == 0 and ws.store.jobs.all() == []


@pytest.mark.anyio
async def test_confirmed_by_argument_then_a_retry_returns_the_same_job(ws, held, dataset_id, tiny_model):
    ws.settings = replace(ws.settings, budget_per_job_usd=0.0, budget_per_day_usd=0.0, allow_argument_confirmation=True)
    arguments = {"dataset_id": dataset_id, "provider": "hf-jobs", "base_model": str(tiny_model), "hyperparameters": FAST}
    async with Client(build_server(ws=ws)) as client:
        cost = _structured(await client.call_tool("start_job", {**arguments, "dry_run": True}))["quote"]["estimated_cost_usd"]
        job = _structured(await client.call_tool("start_job", {**arguments, "confirm_cost_usd": cost}))
        again = _structured(await client.call_tool("start_job", {**arguments, "confirm_cost_usd": cost}))
    assert job["spend"]["approved_by"] == "argument" and again["job_id"] == job["job_id"]
    assert held.posts("run_job") == 1 and len(held.jobs) == 1


@pytest.mark.anyio
async def test_confirmed_by_elicitation(ws, held, dataset_id, tiny_model):
    ws.settings = replace(ws.settings, budget_per_job_usd=0.0, budget_per_day_usd=0.0)
    asked: list[str] = []

    async def accept(context, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"confirm": True})

    async with Client(build_server(ws=ws), elicitation_callback=accept) as client:
        job = _structured(await client.call_tool("start_job", {"dataset_id": dataset_id, "provider": "hf-jobs", "base_model": str(tiny_model), "hyperparameters": FAST}))
    assert len(asked) == 1 and "hf-jobs" in asked[0]
    assert job["spend"]["approved_by"] == "elicitation" and held.posts("run_job") == 1


# --- idempotency, statuses, cancel, an unreachable Hub ----------------------------------------------------------------
def test_a_lost_reply_is_retried_by_finding_the_job_not_creating_a_second(ws, held, dataset_id, tiny_model):
    held.lose_run_job_replies = 1
    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    assert held.posts("run_job") == 1 and len(held.jobs) == 1
    assert job["remote_id"] == next(iter(held.jobs))
    assert any("lost reply" in m for m in _events(ws, job["job_id"]))
    # A second start_job (the caller never saw the answer either) finds it too.
    again = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    assert again["job_id"] == job["job_id"] and held.posts("run_job") == 1


def test_an_unknown_stage_is_kept_verbatim_and_cancel_cancels(ws, held, dataset_id, tiny_model):
    held.stage_script = ["SCHEDULING", "DEFROSTING", "RUNNING"]
    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    seen = [job["status"]] + [orchestrator.check_job(ws, job["job_id"])["status"] for _ in range(2)]
    assert seen == ["queued", "DEFROSTING", "running"]
    assert any("'DEFROSTING'" in m and "does not know" in m for m in _events(ws, job["job_id"]))
    cancelled = orchestrator.cancel_job(ws, job["job_id"])
    assert cancelled["status"] == "cancelled" and cancelled["remote_status"] == "CANCELED"
    assert held.posts("cancel_job") == 1


def test_an_unreachable_hub_keeps_the_last_known_state(ws, held, dataset_id, tiny_model):
    held.stage_script = ["RUNNING"]
    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    assert orchestrator.check_job(ws, job["job_id"])["status"] == "running"
    held.fail("GET", "inspect_job", 503, times=50)
    checked = orchestrator.check_job(ws, job["job_id"])
    assert checked["status"] == "running"
    assert any("unreachable" in e["message"] and e["level"] == "warning" for e in checked["events"])
    assert TOKEN not in json.dumps(checked) and TOKEN not in _ledger_text(ws)


def test_the_cli_takes_the_local_flags_and_the_placement_for_an_hf_jobs_job(ws, held, dataset_id, tiny_model):
    from typer.testing import CliRunner

    from model_customization.cli import app

    result = CliRunner().invoke(app, [
        "job", "start", dataset_id, "--provider", "hf-jobs", "--base-model", str(tiny_model), "--epochs", "2", "--max-seq-length", "128",
        "--hp", "flavor=t4-small", "--hp", "repository=team-ml/runs", "--dry-run", "--json", "--home", str(ws.settings.home),
    ])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["hyperparameters"]["epochs"] == 2 and shown["hyperparameters"]["flavor"] == "t4-small"
    assert shown["quote"]["repository"] == "team-ml/runs" and shown["quote"]["repository_state"] == "will be created (private)"
    assert TOKEN not in result.output and held.uploaded_paths() == []


def test_a_transient_failure_while_shipping_is_retried(ws, held, dataset_id, tiny_model):
    held.fail("POST", "commit", 503, times=1)
    held.fail("POST", "run_job", 503, times=1)  # refused before anything was created: looked for, then tried again
    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    assert job["remote_id"] and len(held.jobs) == 1 and held.posts("run_job") == 2
    assert any(p.startswith(f"datasets/{dataset_id}/") for p in held.uploaded_paths())
    assert any("attempt 1 of 3" in m for m in _events(ws, job["job_id"]))


def test_the_log_comes_back_once_scrubbed_and_its_progress_lines_become_metrics(ws, held, dataset_id, tiny_model):
    held.stage_script = ["RUNNING"] * 5
    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    remote = held.jobs[job["remote_id"]]
    remote.log += [
        f"pip said something with {TOKEN} in it",
        'MC-PROGRESS {"kind":"progress","status":"running","step":2,"total_steps":16,"eta_seconds":42.0}',
        'MC-PROGRESS {"kind":"metric","step":1,"epoch":0.06,"train_loss":10.9,"validation_loss":null,"learning_rate":0.001,"tokens_per_second":900.0}',
        'MC-PROGRESS {"kind":"metric","step":2,"epoch":0.12,"train_loss":10.7,"validation_loss":null,"learning_rate":0.002,"tokens_per_second":950.0}',
        'MC-PROGRESS {"kind":"event","level":"warning","message":"3 train examples truncated to 128 tokens"}',
    ]
    first = orchestrator.check_job(ws, job["job_id"])
    again = orchestrator.check_job(ws, job["job_id"])
    assert (first["step"], first["total_steps"], first["train_loss"]) == (2, 16, 10.7) and again["step"] == 2
    assert first["eta_seconds"] == 42.0
    assert [(m["step"], m["train_loss"]) for m in ws.store.jobs.metrics(job["job_id"])] == [(1, 10.9), (2, 10.7)]
    events = _events(ws, job["job_id"])
    assert events.count("log: pip said something with [HF_TOKEN] in it") == 1
    assert events.count("remote: 3 train examples truncated to 128 tokens") == 1
    assert TOKEN not in _ledger_text(ws)


def test_a_paused_job_can_be_cancelled(ws, held, dataset_id, tiny_model):
    held.stage_script = ["RUNNING", "RUNNING"]
    job = orchestrator.start_job(ws, dataset_id, provider="hf-jobs", base_model=str(tiny_model), hyperparameters=FAST, confirm_cost_usd=100)
    assert orchestrator.pause_job(ws, job["job_id"])["status"] == "paused"
    assert held.jobs[job["remote_id"]].stage == "CANCELED"
    cancelled = orchestrator.cancel_job(ws, job["job_id"])
    assert cancelled["status"] == "cancelled" and held.posts("cancel_job") == 1
    with pytest.raises(UserError, match="already ended"):
        orchestrator.cancel_job(ws, job["job_id"])


def test_a_checkpoint_pruned_while_it_is_sent_still_arrives_whole(tmp_path):
    """The remote supervisor sends each checkpoint from hard links made when it found it: training pruning the folder
    meanwhile (it keeps only its newest checkpoints) leaves what is being sent whole."""
    from model_customization.providers.hf_jobs import remote

    checkpoint = tmp_path / "job-1" / "checkpoints" / "step-0000005"  # where the supervisor of job-1 looks
    checkpoint.mkdir(parents=True)
    files = {"state.json": b'{"step": 5}', "adapter.safetensors": bytes(range(256)) * 64, "optimizer.pt": b"\x00\x01" * 1000}
    for name, data in files.items():
        (checkpoint / name).write_bytes(data)
    sent: dict[str, bytes] = {}

    class Api:
        def upload_folder(self, repo_id, folder_path, path_in_repo, commit_message):
            shutil.rmtree(checkpoint)  # pruned by training while the upload runs
            sent.update({p.name: p.read_bytes() for p in Path(folder_path).iterdir()})

    class Ws:
        class settings:
            jobs_dir = tmp_path

    supervisor = remote.Supervisor(Ws, Api(), "tester/runs", "runs/job-1", "job-1")
    supervisor.upload_checkpoints()
    assert sent == files and supervisor.uploaded == {"step-0000005"}
    assert list((tmp_path / "job-1" / "checkpoints").iterdir()) == []  # the links went with the upload
