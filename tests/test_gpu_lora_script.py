"""The GPU benchmark script (benchmarks/gpu_lora.py) in its reduced CPU form, so it is known to run before a GPU is
lent: our trainer trains a tiny random Llama through the real job queue and worker, the loss falls, a job killed
right after a checkpoint and resumed by the queue ends with the same losses and adapter as one never stopped, and
the results carry the MFU formula and its inputs. The CUDA-only rows say why they did not run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reduced_form_on_cpu(tmp_path: Path, model_cache: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "MODEL_CUSTOMIZATION_MODEL_CACHE": str(model_cache),
        "CUDA_VISIBLE_DEVICES": "",
    }
    command = [
        sys.executable, str(ROOT / "benchmarks" / "gpu_lora.py"), str(out), "--work", str(tmp_path / "work"),
        "--models", "tiny", "--examples", "10", "--batch-size", "2", "--epochs", "1", "--max-length", "128",
        "--learning-rate", "1e-2", "--skip", "baseline,gc", "--run-timeout", "240", "--budget-s", "600",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "gpu_lora.json").read_text())

    assert results["device"] == "cpu"
    assert "4 * N" in results["mfu_formula"] and "activation gradients 2N" in results["mfu_formula"]
    assert results["peaks"]["measured_tflops"] > 0 and results["peaks"]["dtype"] == "float32"
    assert results["models"]["tiny"]["parameters"] > 1_000_000

    ours = [r for r in results["runs"] if r["trainer"] == "ours" and r["status"] == "ok"]
    assert len(ours) == 1, results["runs"]
    run = ours[0]
    assert (run["precision"], run["gradient_checkpointing"], run["steps"]) == ("float32", False, 5)
    assert run["loss_fell"] and run["last_loss"] < run["first_loss"], run["train_losses"]
    assert run["real_tokens_per_s"] > 0 and run["peak_rss_mb"] > 0
    # MFU is the stated formula applied to the measured numbers.
    flops = 4 * results["models"]["tiny"]["parameters"] * run["real_tokens_per_s"]
    assert abs(run["mfu_measured_peak"] - flops / (results["peaks"]["measured_tflops"] * 1e12)) < 1e-12
    assert run["mfu_nominal_peak"] is None  # no nominal peak for a CPU

    skipped = {(r["precision"], r["gradient_checkpointing"]): r["status"] for r in results["runs"] if r["status"] != "ok"}
    assert skipped[("4bit", False)] == "skipped: needs CUDA" and skipped[("4bit", True)] == "skipped: needs CUDA"

    resume = results["resume"]
    assert resume["status"] == "ok" and resume["stopped_after_step"] == 2 and resume["steps"] == 5
    assert resume["matches"] and resume["max_abs_train_loss_diff"] <= 1e-5, resume
    assert "resumed from checkpoint at step 2" in " ".join(resume["resumed_run"]["events"])

    table = (out / "gpu_lora.md").read_text()
    assert "| tiny (3M) | ours | float32 | off |" in table and "MATCHES" in table
