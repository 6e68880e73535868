"""Export a tuned local model so it runs outside this server: PEFT adapter, merged HF folder, GGUF, Ollama.

Formats (any combination, written together into one folder, `<home>/exports/<model_id>/` by default):
  adapter       the LoRA adapter as trained (PEFT: adapter_config.json, adapter_model.safetensors, training.json)
  merged        base + adapter merged into one Hugging Face model folder (safetensors, config, tokenizer)
  gguf-adapter  the adapter as a llama.cpp GGUF LoRA adapter, applied on top of a GGUF of the same base
  gguf-merged   the merged model as one GGUF file (F32 or F16), for llama.cpp, Ollama, LM Studio
  ollama        a Modelfile (FROM the exact base + ADAPTER, or FROM the merged GGUF; TEMPLATE; stop tokens)

The folder is built in a hidden sibling and renamed into place, so nobody ever sees a half-written export.

Facts about llama.cpp's formats this relies on (from its convert_hf_to_gguf.py, convert_lora_to_gguf.py and
src/llama-adapter.cpp):
- llama.cpp's RoPE rotates adjacent pairs of a head's dimensions, Hugging Face Llama rotates the two halves, so
  converters reorder the rows (output features) of q_proj and k_proj per head: reshape to (heads, 2, head_dim/2, -)
  and swap the middle axes. For a LoRA pair only B (the output side) is reordered, since P(BA) = (PB)A.
- A LoRA adapter GGUF has general.type "adapter", adapter.type "lora", adapter.lora.alpha (float32) and the base's
  general.architecture; each adapted weight `X` (llama.cpp name, e.g. blk.0.attn_q.weight) has `X.lora_a` of
  numpy shape (rank, in) and `X.lora_b` of shape (out, rank), like PEFT's A and B. llama.cpp scales B·A by
  alpha / rank, as PEFT does without rsLoRA.
- GGUF files store a tensor's numpy shape reversed (ne[0] is the innermost dimension); GGUFWriter handles that.

Heavy imports (numpy, gguf, torch, transformers, peft) happen inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.local.export_formats import FORMATS
from model_customization.providers.local.models import (
    EMBEDDED_MODEL,
    check_base_model,
    embedded_gguf_path,
    ensure_base_model,
)
from model_customization.storage import file_lock
from model_customization.workspace import Workspace

GGUF_TYPES = ("f32", "f16")
MANIFEST = "export.json"
GGUF_ARCHITECTURES = ("LlamaForCausalLM",)

Progress = Callable[[float, float | None, str], None]

_PEFT_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<side>[AB])\.weight$")


@dataclass
class LoraSettings:
    rank: int
    alpha: float  # written to adapter.lora.alpha: llama.cpp multiplies B·A by alpha / rank
    target_modules: list[str]


@dataclass
class _Written:
    path: Path  # relative to the export folder
    format: str
    purpose: str


# --- the entry point ---------------------------------------------------------------------------------------------
def export_model(
    ws: Workspace,
    model_id: str,
    formats: Iterable[str],
    output_dir: str | os.PathLike[str] | None = None,
    *,
    gguf_type: str = "f32",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the requested formats of a tuned local model into one folder and describe what was written."""
    started = time.perf_counter()
    requested = _parse_formats(formats)
    if gguf_type not in GGUF_TYPES:
        raise UserError(f"Unknown gguf_type {gguf_type!r}: use 'f32' (exact, twice the size) or 'f16'.")
    row = _tuned_model(ws, model_id)
    adapter_dir = Path(row["path"])
    lora = read_lora_settings(adapter_dir)
    try:
        base = check_base_model(row["base_model"])
    except UserError as error:
        raise NotFoundError(
            f"The base model of {model_id} ({row['base_model']}) is not available: {error} "
            "An export needs the exact base the adapter was trained on; restore it, or export format='adapter' only."
        ) from error
    embedded = base == EMBEDDED_MODEL

    notes: list[str] = []
    plan = list(requested)
    if "ollama" in plan:
        # Ollama needs a GGUF: the exact base + the adapter for the embedded model, the merged model otherwise.
        needed = "gguf-adapter" if embedded else "gguf-merged"
        if needed not in plan:
            plan.append(needed)
            notes.append(f"'ollama' also wrote '{needed}': the Modelfile needs it.")
    plan.sort(key=list(FORMATS).index)  # the Modelfile comes last: it names the GGUF files written before it

    # Everything that can be refused is checked before anything heavy runs or anything is written.
    base_dir = ensure_base_model(ws.settings, base) if plan != ["adapter"] else None
    config: dict[str, Any] | None = None
    if any(f in plan for f in ("gguf-adapter", "gguf-merged")):
        assert base_dir is not None
        config = llama_config(base_dir, base)
        if "gguf-merged" in plan:
            _check_gguf_merged_config(config, base)
    tokenizer = None
    if "gguf-merged" in plan or "ollama" in plan or "merged" in plan:
        tokenizer = _load_tokenizer(base_dir, adapter_dir)
    if "gguf-merged" in plan and not embedded:
        _smollm2_tokenizer_check(tokenizer, base_dir, base)
    chat = ollama_chat_format(tokenizer, base) if "ollama" in plan else None

    target = _target_dir(ws, model_id, output_dir)
    steps = len(plan) + 1
    report = progress or (lambda done, total, message: None)
    lock = ws.settings.home / "exports" / f".{hashlib.sha256(str(target).encode()).hexdigest()[:16]}.lock"
    with file_lock(lock):
        _check_replaceable(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; an export is meant to be shared like any other folder
        try:
            written: list[_Written] = []
            merged_model = None
            gguf_files: dict[str, str] = {}
            for done, fmt in enumerate(plan):
                report(done, steps, f"writing {fmt}")
                if fmt == "adapter":
                    shutil.copytree(adapter_dir, staging / "adapter")
                    written += [_Written(p.relative_to(staging), fmt, _adapter_file_purpose(p.name)) for p in sorted((staging / "adapter").rglob("*")) if p.is_file()]
                elif fmt == "merged":
                    if merged_model is None:
                        merged_model = merge_adapter(base_dir, adapter_dir)
                    written += _write_merged_folder(merged_model, tokenizer, staging / "merged", staging)
                elif fmt == "gguf-adapter":
                    name = f"adapter-{gguf_type}.gguf"
                    write_gguf_adapter(adapter_dir, config, lora, staging / name, gguf_type=gguf_type, name=model_id, base_name=base)
                    gguf_files[fmt] = name
                    written.append(_Written(Path(name), fmt, f"LoRA adapter for llama.cpp/Ollama ({gguf_type.upper()}); apply it to the base GGUF"))
                elif fmt == "gguf-merged":
                    if merged_model is None:
                        merged_model = merge_adapter(base_dir, adapter_dir)
                    name = f"model-{gguf_type}.gguf"
                    write_gguf_merged(merged_model, config, tokenizer, staging / name, gguf_type=gguf_type, embedded=embedded, name=model_id)
                    gguf_files[fmt] = name
                    written.append(_Written(Path(name), fmt, f"the merged model as one GGUF ({gguf_type.upper()}) for llama.cpp, Ollama, LM Studio"))
                elif fmt == "ollama":
                    assert chat is not None
                    from_line = str(embedded_gguf_path()) if embedded else f"./{gguf_files['gguf-merged']}"
                    adapter_line = f"./{gguf_files['gguf-adapter']}" if embedded else None
                    (staging / "Modelfile").write_text(
                        render_modelfile(model_id, base, from_line, adapter_line, chat, target / "Modelfile"), encoding="utf-8"
                    )
                    written.append(_Written(Path("Modelfile"), fmt, "Ollama Modelfile: run the ollama_command to create the model"))
            if merged_model is not None:
                del merged_model

            report(len(plan), steps, "finishing")
            ollama_command = _ollama_command(model_id, target) if "ollama" in plan else None
            if embedded and "ollama" in plan:
                notes.append(f"The Modelfile's FROM is the embedded base GGUF at {embedded_gguf_path()} (the exact weights "
                             "the adapter was trained on); copy it along if you move the export to another machine.")
                notes.append("llama.cpp (inside Ollama) multiplies the Q4_1 base with 8-bit activations, so greedy answers can "
                             "differ from prompt_model's where two tokens are nearly tied; for identical answers point the "
                             "Modelfile's FROM at a gguf-merged f32 export instead and drop the ADAPTER line.")
            if "gguf-adapter" in plan and not embedded:
                notes.append(f"gguf-adapter applies to a GGUF of {base} converted at F16/F32 with llama.cpp's convert_hf_to_gguf.py.")
            files = [
                {"path": str(w.path), "format": w.format, "bytes": (staging / w.path).stat().st_size, "purpose": w.purpose}
                for w in written
            ]
            summary = {
                "model_id": model_id,
                "base_model": base,
                "output_dir": str(target),
                "formats": plan,
                "gguf_type": gguf_type if any(f.startswith("gguf") for f in plan) else None,
                "files": files,
                "total_bytes": sum(f["bytes"] for f in files),
                "ollama_command": ollama_command,
                "notes": notes,
            }
            manifest = {**summary, "created_at": time.time(), "job_id": row.get("job_id"), "dataset_id": row.get("dataset_id")}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            _swap_in(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    report(steps, steps, "done")
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


# --- checks ------------------------------------------------------------------------------------------------------
def _parse_formats(formats: Iterable[str]) -> list[str]:
    if isinstance(formats, str):
        formats = [formats]
    chosen: list[str] = []
    for fmt in formats:
        name = str(fmt).strip().lower()
        if name not in FORMATS:
            raise UserError(f"Unknown export format {fmt!r}: choose from {', '.join(FORMATS)}.")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise UserError(f"No export format given: choose one or more of {', '.join(FORMATS)}.")
    return chosen


def _tuned_model(ws: Workspace, model_id: str) -> dict[str, Any]:
    row = ws.ledger.get_model(model_id) if model_id.startswith("ft-") else None
    if row is None:
        raise NotFoundError(
            f"Model {model_id!r} is not a tuned model of this server. check_job shows the model_id (ft-...) of a "
            "succeeded job; list_jobs lists jobs. Base models need no export: use their original files."
        )
    if row["provider"] != "local" or not row["path"]:
        raise UserError(f"{model_id} was tuned by {row['provider']}: only local models have weights to export.")
    adapter = Path(row["path"])
    if not (adapter / "adapter_config.json").is_file() or not (adapter / "adapter_model.safetensors").is_file():
        raise NotFoundError(f"The adapter of {model_id} is missing from {adapter}. Train it again with start_job.")
    return row


def read_lora_settings(adapter_dir: Path) -> LoraSettings:
    """The adapter's LoRA settings, refusing what llama.cpp's single alpha/rank scale cannot express."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type") != "LORA":
        raise UserError(f"The adapter in {adapter_dir} is {config.get('peft_type')}, not LoRA; only LoRA adapters can be exported.")
    unsupported = [
        key for key, present in (
            ("use_dora", bool(config.get("use_dora"))),
            ("rank_pattern", bool(config.get("rank_pattern"))),
            ("alpha_pattern", bool(config.get("alpha_pattern"))),
            ("modules_to_save", bool(config.get("modules_to_save"))),
            ("lora_bias", bool(config.get("lora_bias"))),
            ("fan_in_fan_out", bool(config.get("fan_in_fan_out"))),
        ) if present
    ]
    if unsupported:
        raise UserError(f"The adapter in {adapter_dir} uses {', '.join(unsupported)}, which the export cannot represent exactly.")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    if config.get("use_rslora"):
        alpha *= math.sqrt(rank)  # rsLoRA scales by alpha/sqrt(r); llama.cpp by alpha'/r, so alpha' = alpha*sqrt(r)
    targets = config.get("target_modules") or []
    return LoraSettings(rank=rank, alpha=alpha, target_modules=sorted(targets) if isinstance(targets, list) else [targets])


def llama_config(base_dir: Path, base_name: str) -> dict[str, Any]:
    """The base's config.json, if it is an architecture the GGUF writers here support (Llama)."""
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    if architectures != list(GGUF_ARCHITECTURES) or config.get("model_type") != "llama":
        raise UserError(
            f"GGUF export supports Llama-architecture bases ({', '.join(GGUF_ARCHITECTURES)}: SmolLM2, TinyLlama, "
            f"Llama 2/3 and the like); {base_name} is {architectures or 'of unknown architecture'}. Export 'adapter' or "
            "'merged' instead and convert them with llama.cpp's convert_lora_to_gguf.py / convert_hf_to_gguf.py."
        )
    return config


def _head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def _rope_theta(config: dict[str, Any]) -> float:
    rope = config.get("rope_parameters") or {}
    return float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))


def _check_gguf_merged_config(config: dict[str, Any], base_name: str) -> None:
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    problems = []
    if rope_type not in (None, "default"):
        problems.append(f"RoPE scaling '{rope_type}'")
    if config.get("attention_bias") or config.get("mlp_bias"):
        problems.append("bias terms")
    if config.get("head_dim") and int(config["head_dim"]) != config["hidden_size"] // config["num_attention_heads"]:
        problems.append("a head_dim other than hidden_size / heads")
    if problems:
        raise UserError(
            f"gguf-merged does not support {base_name}: it uses {', '.join(problems)}. Export 'merged' and convert it "
            "with llama.cpp's convert_hf_to_gguf.py, or export 'gguf-adapter' for a base GGUF converted by llama.cpp."
        )


def _smollm2_tokenizer_check(tokenizer: Any, base_dir: Path, base_name: str) -> None:
    """gguf-merged borrows the tokenizer metadata of the embedded GGUF, so the base must use that very tokenizer."""
    metadata = embedded_gguf_metadata()
    tokens = metadata.values["tokenizer.ggml.tokens"][0]
    same = len(tokenizer) == len(tokens) and tokenizer.convert_ids_to_tokens(list(range(len(tokens)))) == tokens
    if same:
        try:
            merges = json.loads((base_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"].get("merges", [])
        except (OSError, ValueError, KeyError):
            merges = None
        same = merges is not None and [m if isinstance(m, str) else " ".join(m) for m in merges] == metadata.values["tokenizer.ggml.merges"][0]
    if not same:
        raise UserError(
            f"gguf-merged for {base_name} is not supported: its tokenizer differs from SmolLM2's, the only tokenizer "
            "whose GGUF metadata this server carries (llama.cpp identifies pre-tokenizers by a table of its own). "
            "Export 'merged' and convert it with llama.cpp's convert_hf_to_gguf.py, or export 'gguf-adapter'."
        )


def _target_dir(ws: Workspace, model_id: str, output_dir: str | os.PathLike[str] | None) -> Path:
    if output_dir is None or str(output_dir).strip() == "":
        return (ws.settings.home / "exports" / model_id).resolve()
    from model_customization.paths import check_writable_dir

    # Written only inside the data home or an allowed root (paths.py): a caller cannot have files put anywhere.
    return check_writable_dir(output_dir, home=ws.settings.home, what="output_dir")


def _check_replaceable(target: Path) -> None:
    """An existing folder is replaced only if it is empty or an earlier export (never someone's other files)."""
    if target.is_file() or target.is_symlink():
        raise UserError(f"{target} exists and is not a folder; choose another output_dir.")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).is_file():
        raise UserError(
            f"{target} already contains files that are not an export; choose an empty or new output_dir "
            "(an earlier export of this tool is replaced, other folders never are)."
        )


def _swap_in(staging: Path, target: Path) -> None:
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "export")
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


# --- merged model ------------------------------------------------------------------------------------------------
def _load_tokenizer(base_dir: Path | None, adapter_dir: Path) -> Any:
    """The tokenizer the adapter was trained with: its own copy when training was given a chat template."""
    from transformers import AutoTokenizer

    own = (adapter_dir / "tokenizer_config.json").is_file()
    return AutoTokenizer.from_pretrained(adapter_dir if own else base_dir)


def merge_adapter(base_dir: Path, adapter_dir: Path) -> Any:
    """The base with the adapter merged into its weights (float32), as a plain transformers model."""
    import warnings

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    model.eval()
    return model


def _write_merged_folder(model: Any, tokenizer: Any, folder: Path, root: Path) -> list[_Written]:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    purposes = {
        "config.json": "model configuration",
        "generation_config.json": "default generation settings",
        "tokenizer.json": "tokenizer",
        "tokenizer_config.json": "tokenizer settings and special tokens",
        "chat_template.jinja": "the chat template the model was trained with",
    }
    return [
        _Written(p.relative_to(root), "merged", "merged weights (safetensors, float32)" if p.suffix == ".safetensors" else purposes.get(p.name, "model file"))
        for p in sorted(folder.rglob("*")) if p.is_file()
    ]


def _adapter_file_purpose(name: str) -> str:
    return {
        "adapter_config.json": "PEFT LoRA configuration (rank, alpha, target modules)",
        "adapter_model.safetensors": "LoRA weights (A and B per adapted projection)",
        "training.json": "how it was trained: job, base model, dataset, hyperparameters",
        "README.md": "PEFT model card",
    }.get(name, "tokenizer (with the chat template the adapter was trained with)" if name.startswith(("tokenizer", "chat_template", "special_tokens")) else "adapter file")


# --- GGUF --------------------------------------------------------------------------------------------------------
def rope_permute(weights: Any, heads: int) -> Any:
    """Reorder the rows of a Hugging Face q/k projection (or a LoRA B) into llama.cpp's RoPE layout."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _rope_heads(gguf_name: str, config: dict[str, Any]) -> int | None:
    if ".attn_q." in gguf_name:
        return int(config["num_attention_heads"])
    if ".attn_k." in gguf_name:
        return int(config.get("num_key_value_heads") or config["num_attention_heads"])
    return None


def _name_map(config: dict[str, Any]) -> Any:
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config["num_hidden_layers"]))


def gguf_lora_tensors(adapter_dir: Path, config: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(llama.cpp base tensor name, lora_a, lora_b) for every adapted weight, in llama.cpp's layout (float32)."""
    import numpy as np
    from safetensors.numpy import load_file

    name_map = _name_map(config)
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in load_file(str(adapter_dir / "adapter_model.safetensors")).items():
        match = _PEFT_KEY.match(key)
        if not match:
            raise UserError(f"The adapter has a tensor {key!r} that is not a LoRA A/B weight; it cannot be exported to GGUF.")
        gguf_name = name_map.get_name(match["module"] + ".weight", try_suffixes=(".weight",))
        if gguf_name is None or (gguf_name == "output.weight" and config.get("tie_word_embeddings")):
            # A tied lm_head has no tensor of its own in llama.cpp (it reuses token_embd), so nothing to adapt there.
            raise UserError(f"The adapter targets {match['module']!r}, which has no llama.cpp counterpart; it cannot be exported to GGUF.")
        pairs.setdefault(gguf_name, {})[match["side"]] = np.ascontiguousarray(value, dtype=np.float32)
    result = []
    for gguf_name in sorted(pairs, key=_tensor_order):
        pair = pairs[gguf_name]
        if set(pair) != {"A", "B"}:
            raise UserError(f"The adapter's LoRA pair for {gguf_name} is incomplete; it cannot be exported.")
        lora_b = pair["B"]
        heads = _rope_heads(gguf_name, config)
        if heads:
            lora_b = np.ascontiguousarray(rope_permute(lora_b, heads))
        result.append((gguf_name, pair["A"], lora_b))
    return result


def _tensor_order(name: str) -> tuple[int, str]:
    match = re.match(r"blk\.(\d+)\.", name)
    return (int(match.group(1)) if match else -1, name)


def _gguf_array(array: Any, gguf_type: str) -> Any:
    import numpy as np

    # Norms and other vectors stay float32, as llama.cpp's converter keeps them.
    if gguf_type == "f16" and array.ndim > 1:
        return np.ascontiguousarray(array, dtype=np.float16)
    return np.ascontiguousarray(array, dtype=np.float32)


def write_gguf_adapter(
    adapter_dir: Path, config: dict[str, Any], lora: LoraSettings, path: Path, *, gguf_type: str, name: str, base_name: str
) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, lora.alpha)
    writer.add_name(name)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, base_name)
    for tensor_name, lora_a, lora_b in gguf_lora_tensors(adapter_dir, config):
        writer.add_tensor(tensor_name + ".lora_a", _gguf_array(lora_a, gguf_type))
        writer.add_tensor(tensor_name + ".lora_b", _gguf_array(lora_b, gguf_type))
    _finish(writer)


def _finish(writer: Any) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def gguf_model_tensors(state_dict: dict[str, Any], config: dict[str, Any]) -> list[tuple[str, Any]]:
    """(llama.cpp name, float32 array) for a Llama state dict, q/k rows in llama.cpp's RoPE layout."""
    name_map = _name_map(config)
    tied = bool(config.get("tie_word_embeddings"))
    tensors = []
    for key, value in state_dict.items():
        if key.endswith("rotary_emb.inv_freq") or (tied and key == "lm_head.weight"):
            continue  # recomputed by llama.cpp / the same tensor as token_embd
        gguf_name = name_map.get_name(key, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise UserError(f"The base has a tensor {key!r} that gguf-merged cannot place in a llama.cpp model.")
        array = value.detach().to("cpu").float().numpy()
        heads = _rope_heads(gguf_name, config)
        tensors.append((gguf_name, rope_permute(array, heads) if heads else array))
    return tensors


def llama_gguf_kvs(config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The llama.* hyperparameter keys of a GGUF, derived from a Hugging Face Llama config."""
    import gguf

    u32, f32 = gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT32
    return {
        "llama.block_count": (int(config["num_hidden_layers"]), u32),
        "llama.context_length": (int(config["max_position_embeddings"]), u32),
        "llama.embedding_length": (int(config["hidden_size"]), u32),
        "llama.feed_forward_length": (int(config["intermediate_size"]), u32),
        "llama.attention.head_count": (int(config["num_attention_heads"]), u32),
        "llama.attention.head_count_kv": (int(config.get("num_key_value_heads") or config["num_attention_heads"]), u32),
        "llama.rope.freq_base": (_rope_theta(config), f32),
        "llama.attention.layer_norm_rms_epsilon": (float(config["rms_norm_eps"]), f32),
        "llama.vocab_size": (int(config["vocab_size"]), u32),
        "llama.rope.dimension_count": (_head_dim(config), u32),
    }


def write_gguf_merged(model: Any, config: dict[str, Any], tokenizer: Any, path: Path, *, gguf_type: str, embedded: bool, name: str) -> None:
    """The merged model as GGUF: hyperparameters and tokenizer metadata from the embedded GGUF (or the config)."""
    import gguf

    metadata = embedded_gguf_metadata()
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    own_tokens = {  # another base's own chat template and special tokens replace the embedded model's
        "tokenizer.chat_template": tokenizer.chat_template,
        "tokenizer.ggml.bos_token_id": tokenizer.bos_token_id,
        "tokenizer.ggml.eos_token_id": tokenizer.eos_token_id,
        "tokenizer.ggml.padding_token_id": tokenizer.pad_token_id,
        "tokenizer.ggml.unknown_token_id": tokenizer.unk_token_id,
    }
    skip = {"general.architecture", "general.file_type", "general.quantization_version", "general.name"}
    for key, (value, vtype, sub_type) in metadata.values.items():
        if key in skip or (not embedded and (not key.startswith("tokenizer.") or key in own_tokens)):
            continue  # for another base only the (identical, checked) tokenizer comes from the embedded GGUF
        writer.add_key_value(key, value, gguf.GGUFValueType(vtype), gguf.GGUFValueType(sub_type) if sub_type is not None else None)
    if not embedded:
        writer.add_type(gguf.GGUFType.MODEL)
        for key, (value, vtype) in llama_gguf_kvs(config).items():
            writer.add_key_value(key, value, vtype)
        for key, value in own_tokens.items():
            if value is None:
                continue
            if key == "tokenizer.chat_template":
                writer.add_chat_template(value)
            else:
                writer.add_uint32(key, int(value))
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if gguf_type == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    tensors = gguf_model_tensors(model.state_dict(), config)
    if embedded and {n for n, _ in tensors} != set(metadata.tensor_names):
        raise RuntimeError("the merged tensors do not match the embedded GGUF's tensor set")
    for tensor_name, array in tensors:
        writer.add_tensor(tensor_name, _gguf_array(array, gguf_type))
    _finish(writer)


@dataclass
class GGUFTensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF order: ne[0] (the innermost, contiguous dimension) first
    ggml_type: int  # GGMLQuantizationType
    offset: int  # absolute position of the data in the file


@dataclass
class GGUFMetadata:
    values: dict[str, tuple[Any, int, int | None]]  # key -> (value, GGUFValueType, array element type)
    tensors: list[GGUFTensorInfo]

    @property
    def tensor_names(self) -> list[str]:
        return [t.name for t in self.tensors]


# GGUF value type codes (GGUFValueType) of fixed-size scalars, as struct formats.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def read_gguf_metadata(path: Path) -> GGUFMetadata:
    """The key/value metadata and tensor names of a GGUF file (little-endian, version 2 or 3).

    gguf.GGUFReader builds a numpy view per array element and takes many seconds over a 49k-token vocabulary;
    walking the header with struct takes a fraction of a second.
    """
    import mmap
    import struct

    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        magic, version, tensor_count, kv_count = struct.unpack_from("<4sIQQ", data, 0)
        if magic != b"GGUF" or version not in (2, 3):
            raise UserError(f"{path} is not a GGUF v2/v3 file.")
        offset = 24

        def read(fmt: str) -> Any:
            nonlocal offset
            values = struct.unpack_from("<" + fmt, data, offset)
            offset += struct.calcsize("<" + fmt)
            return values[0] if len(values) == 1 else list(values)

        def read_string() -> str:
            nonlocal offset
            length = read("Q")
            text = bytes(data[offset: offset + length]).decode("utf-8")
            offset += length
            return text

        def read_value(vtype: int) -> Any:
            if vtype == _GGUF_STRING:
                return read_string()
            return read(_GGUF_SCALARS[vtype])

        values: dict[str, tuple[Any, int, int | None]] = {}
        for _ in range(kv_count):
            key = read_string()
            vtype = read("I")
            if vtype == _GGUF_ARRAY:
                sub_type, count = read("I"), read("Q")
                if sub_type == _GGUF_STRING:
                    items = [read_string() for _ in range(count)]
                else:
                    items = read(f"{count}{_GGUF_SCALARS[sub_type]}") if count else []
                    items = items if isinstance(items, list) else [items]
                values[key] = (items, vtype, sub_type)
            else:
                values[key] = (read_value(vtype), vtype, None)
        infos = []
        for _ in range(tensor_count):
            name = read_string()
            dims = read("I")
            shape = tuple(read(f"{dims}Q")) if dims > 1 else (read("Q"),)
            infos.append((name, shape, read("I"), read("Q")))
        # Tensor data starts at the next multiple of general.alignment (32 unless the file says otherwise).
        alignment = int(values.get("general.alignment", (32,))[0])
        start = -(-offset // alignment) * alignment
    return GGUFMetadata(values, [GGUFTensorInfo(n, shape, t, start + o) for n, shape, t, o in infos])


_embedded_metadata: dict[tuple[str, float], GGUFMetadata] = {}


def embedded_gguf_metadata() -> GGUFMetadata:
    path = embedded_gguf_path()
    key = (str(path), path.stat().st_mtime)
    if key not in _embedded_metadata:
        _embedded_metadata.clear()
        _embedded_metadata[key] = read_gguf_metadata(path)
    return _embedded_metadata[key]


# --- Ollama ------------------------------------------------------------------------------------------------------
CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"


@dataclass(frozen=True)
class ChatFormat:
    default_system: str | None  # what the template puts first when a conversation has no system message
    template: str  # Ollama TEMPLATE (Go text/template)
    stops: tuple[str, ...]


def chatml_render(messages: list[dict[str, str]], default_system: str | None, *, add_generation_prompt: bool) -> str:
    """ChatML as SmolLM2's (and Qwen's) Jinja templates render plain system/user/assistant conversations."""
    parts = []
    for index, message in enumerate(messages):
        if index == 0 and message["role"] != "system" and default_system is not None:
            parts.append(f"{CHATML_START}system\n{default_system}{CHATML_END}\n")
        parts.append(f"{CHATML_START}{message['role']}\n{message['content']}{CHATML_END}\n")
    if add_generation_prompt:
        parts.append(f"{CHATML_START}assistant\n")
    return "".join(parts)


# Conversations on which a template must agree with chatml_render before we translate it.
_PROBES: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "c {{ d }}"}, {"role": "user", "content": " e "}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}],
    [{"role": "assistant", "content": "first"}, {"role": "user", "content": "second"}],
]


def _render_jinja(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def ollama_chat_format(tokenizer: Any, base_name: str) -> ChatFormat:
    """Translate the tokenizer's chat template into an Ollama TEMPLATE that renders the same text.

    Supported: ChatML templates (<|im_start|>role ... <|im_end|>), with or without a default system prompt; we
    recognise one by rendering probe conversations through the real Jinja template and comparing.
    """
    refusal = (
        f"The chat template of {base_name} is not ChatML, the template family the Ollama export can translate "
        "exactly (SmolLM2, Qwen and the like). Export 'gguf-merged' or 'gguf-adapter' and write the Modelfile's "
        "TEMPLATE by hand, checking it against the model's chat template."
    )
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{base_name} has no chat template, so there is nothing to translate into an Ollama TEMPLATE.")
    try:
        rendered = _render_jinja(tokenizer, [{"role": "user", "content": "Hi"}], False)
    except Exception as error:  # noqa: BLE001 - any template failure means we cannot translate it
        raise UserError(refusal) from error
    plain = f"{CHATML_START}user\nHi{CHATML_END}\n"
    head = f"{CHATML_START}system\n"
    if rendered == plain:
        default_system = None
    elif rendered.startswith(head) and rendered.endswith(CHATML_END + "\n" + plain):
        default_system = rendered[len(head): -len(CHATML_END + "\n" + plain)]
    else:
        raise UserError(refusal)
    for messages in _PROBES:
        for generation in (False, True):
            try:
                same = _render_jinja(tokenizer, messages, generation) == chatml_render(messages, default_system, add_generation_prompt=generation)
            except Exception:  # noqa: BLE001
                same = False
            if not same:
                raise UserError(refusal)
    return ChatFormat(default_system, ollama_chatml_template(default_system), (CHATML_END, CHATML_START))


def ollama_chatml_template(default_system: str | None) -> str:
    """The Ollama TEMPLATE for ChatML, byte for byte what the Jinja template renders.

    Ollama hands the template `.Messages` (consecutive messages of one role already joined by a blank line) and
    then generates. A conversation that ends with a user (or system) message gets the assistant generation
    prompt, as with add_generation_prompt=True; one that ends with an assistant message is left open so that
    the model continues it, as with continue_final_message=True. No whitespace-trimming markers: every
    character outside the actions is output.
    """
    head = ""
    if default_system is not None:
        head = f'{{{{ if and (eq $i 0) (ne $m.Role "system") }}}}{CHATML_START}system\n{_go_text(default_system)}{CHATML_END}\n{{{{ end }}}}'
    return (
        '{{ $last := "" }}{{ range $i, $m := .Messages }}' + head
        + CHATML_START + "{{ $m.Role }}\n{{ $m.Content }}"
        + '{{ if or (ne $m.Role "assistant") (gt (len (slice $.Messages $i)) 1) }}' + CHATML_END + "\n{{ end }}"
        + "{{ $last = $m.Role }}{{ end }}"
        + '{{ if ne $last "assistant" }}' + CHATML_START + "assistant\n{{ end }}"
    )


def _go_text(text: str) -> str:
    """Text placed verbatim in a Go template, or as a quoted Go string where it could be misread.

    Text is misread when it holds an action delimiter, the Modelfile's triple quote, or characters the Modelfile
    parser drops (it keeps printable characters, tabs and newlines only).
    """
    if "{{" not in text and '"""' not in text and all(c in "\n\t" or c.isprintable() for c in text):
        return text
    quoted = []
    for char in text:
        if char in '"\\':
            quoted.append("\\" + char)
        elif char == "\n":
            quoted.append("\\n")
        elif char.isprintable() and char != "\t":
            quoted.append(char)
        else:
            quoted.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
    return '{{ "' + "".join(quoted) + '" }}'


def render_modelfile(model_id: str, base_name: str, from_line: str, adapter_line: str | None, chat: ChatFormat, modelfile_path: Path) -> str:
    for value in (from_line, adapter_line or "", str(modelfile_path)):
        if "\n" in value or "\r" in value:
            raise UserError(f"The path {value!r} contains a line break, which a Modelfile cannot hold.")
    lines = [
        f"# Ollama Modelfile for {model_id}: a LoRA fine-tune of {base_name}, exported by model-customization.",
        f"# Create the model with: {_ollama_command(model_id, modelfile_path.parent)}",
        f"FROM {from_line}",
    ]
    if adapter_line:
        lines.append(f"ADAPTER {adapter_line}")
    lines.append(f'TEMPLATE """{chat.template}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in chat.stops]
    return "\n".join(lines) + "\n"


def _ollama_command(model_id: str, target: Path) -> str:
    return f"ollama create {model_id.lower()} -f {shlex.quote(str(target / 'Modelfile'))}"
