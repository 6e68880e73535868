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


def _tiny_llama(folder: Path, tokenizer) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_gradient_checkpointing_recomputes_and_gives_the_same_loss_and_gradients(ws, tmp_path: Path) -> None:
    """The trainer's gradient checkpointing (non-reentrant, LoRA on a frozen base) really recomputes the layers in
    the backward pass, and the loss and every LoRA gradient equal those of a pass that keeps its activations."""
    import torch
    from transformers import AutoTokenizer

    from model_customization.providers.local import objectives
    from model_customization.providers.local.hyperparameters import parse_hyperparameters
    from model_customization.providers.local.models import EMBEDDED_MODEL, ensure_base_model
    from model_customization.providers.local.train import load_for_training

    tokenizer = AutoTokenizer.from_pretrained(ensure_base_model(ws.settings, EMBEDDED_MODEL))
    folder = _tiny_llama(tmp_path / "tiny", tokenizer)
    rows = [
        {"messages": [{"role": "user", "content": f"Restart service {i} in staging"}, {"role": "assistant", "content": f"Restarting service {i} in staging now."}]}
        for i in range(3)
    ]
    results = {}
    for checkpointing in (False, True):
        hp = parse_hyperparameters({"gradient_checkpointing": checkpointing, "device": "cpu", "max_seq_length": 64})
        torch.manual_seed(0)
        model = load_for_training(folder, hp, "cpu", torch.float32)
        with torch.no_grad():  # LoRA B starts at zero, which would leave A without gradient: give both values
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))) * 0.02)
        model.train()
        objective = objectives.for_method("sft", tokenizer, hp, "cpu")
        items, _, _ = objective.prepare(rows)
        calls = []
        # Count the runs of a part inside the first layer (module hooks do not fire when torch recomputes).
        inner = model.get_base_model().model.layers[0].mlp
        inner_forward = inner.forward

        def counted(*args, calls=calls, inner_forward=inner_forward, **kwargs):
            calls.append(1)
            return inner_forward(*args, **kwargs)

        inner.forward = counted
        loss, _ = objective.loss(model, items)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results[checkpointing] = (loss.item(), grads, len(calls))

    (loss_off, grads_off, calls_off), (loss_on, grads_on, calls_on) = results[False], results[True]
    assert (calls_off, calls_on) == (1, 2)  # with checkpointing the layer ran again in the backward pass
    assert loss_on == loss_off
    assert grads_on.keys() == grads_off.keys() and len(grads_on) == 2 * 7 * 2  # A and B, 7 targets, 2 layers
    for name, grad in grads_off.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(grads_on[name], grad, rtol=1e-5, atol=1e-7)
