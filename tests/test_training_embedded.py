"""Real training on the embedded SmolLM2-135M-Instruct, on CPU, through the README's main command.

One run of `model-customization demo` (build -> LoRA training in a detached worker -> evaluation -> prompt) serves
all assertions: it takes about 4 minutes on 2 cores. The tests then read that run's ledger and files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_customization.datasets.build import read_split
from model_customization.datasets.examples import prompt_and_reference
from model_customization.providers.local.models import EMBEDDED_MODEL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, model_cache):
    from model_customization.workspace import Workspace

    home = tmp_path_factory.mktemp("demo-home")
    env = {**os.environ, "MODEL_CUSTOMIZATION_MODEL_CACHE": str(model_cache)}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "model_customization", "demo", "--json", "--home", str(home)],
        capture_output=True, text=True, timeout=900, env=env,
    )
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    os.environ["MODEL_CUSTOMIZATION_MODEL_CACHE"] = str(model_cache)
    return Workspace.open(home), json.loads(run.stdout), seconds


@pytest.fixture(scope="module")
def trained(demo_run):
    ws, summary, _ = demo_run
    job = ws.store.jobs.get(summary["job_id"])
    built = ws.store.datasets.get(job["dataset_id"])
    from model_customization.jobs.orchestrator import check_job

    return ws, built, check_job(ws, summary["job_id"])


def test_demo_tuned_model_clearly_beats_the_base(demo_run):
    _, summary, seconds = demo_run
    base, tuned = summary["scores"][EMBEDDED_MODEL], summary["scores"][summary["model_id"]]
    assert tuned["token_f1"] >= base["token_f1"] + 0.5, summary["scores"]
    assert tuned["exact_match"] >= 0.5 > base["exact_match"], summary["scores"]
    assert summary["answers"][summary["model_id"]] == "TRIAGE severity=high component=search-indexer action=page"
    assert seconds < 600  # the hard limit on 2 cores (goal 300 s); timings proper live in BENCHMARKS.md


def test_job_succeeds_with_progress_recorded(trained):
    ws, built, summary = trained
    assert summary["status"] == "succeeded", summary
    assert summary["step"] == summary["total_steps"] == 2 * -(-built["counts"]["train"] // 8)
    assert summary["epoch"] == pytest.approx(2.0)
    assert summary["model_id"].startswith("ft-")
    assert summary["validation_loss"] is not None


def test_training_loss_goes_down(trained):
    ws, _, summary = trained
    losses = [m["train_loss"] for m in ws.store.jobs.metrics(summary["job_id"]) if m["train_loss"] is not None]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first * 0.5, losses
    validation = [m["validation_loss"] for m in ws.store.jobs.metrics(summary["job_id"]) if m["validation_loss"] is not None]
    assert len(validation) == 2 and validation[-1] < validation[0]


def test_adapter_is_safetensors_and_reloads_to_change_the_greedy_answer(trained):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model_customization.providers.local.chat import prompt_ids
    from model_customization.providers.local.models import ensure_base_model

    ws, built, summary = trained
    adapter = Path(ws.store.models.get(summary["model_id"])["path"])
    assert (adapter / "adapter_model.safetensors").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 16

    prompt, reference = prompt_and_reference(read_split(ws, built["id"], "train")[0])
    base_dir = ensure_base_model(ws.settings, EMBEDDED_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    ids = torch.tensor([prompt_ids(tokenizer, prompt)])

    def greedy(model) -> str:
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

    base_answer = greedy(AutoModelForCausalLM.from_pretrained(base_dir).eval())
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), adapter).eval()
    tuned_answer = greedy(tuned)
    assert tuned_answer != base_answer
    assert not base_answer.startswith("TRIAGE")
    # The learned format, with the component copied from this prompt's log line (16 steps teach the format and
    # the copying reliably; the severity mapping is measured by the demo's evaluation instead).
    component = re.search(r"component=(\S+)", reference).group(1)
    assert re.fullmatch(rf"TRIAGE severity=(high|medium|low) component={re.escape(component)} action=(page|ticket|ignore)", tuned_answer), (tuned_answer, reference)
