"""Export a tuned local model so it runs outside this server: PEFT adapter, merged HF folder, GGUF, Ollama.

Formats (any combination, written together into one folder, `<home>/exports/<model_id>/` by default):
  adapter       the LoRA adapter as trained (PEFT: adapter_config.json, adapter_model.safetensors, training.json)
  merged        base + adapter merged into one Hugging Face model folder (safetensors, config, tokenizer)
  gguf-adapter  the adapter as a llama.cpp GGUF LoRA adapter, applied on top of a GGUF of the same base
  gguf-merged   the merged model as one GGUF file (F32 or F16), for llama.cpp, Ollama, LM Studio
  ollama        a Modelfile (FROM the exact base + ADAPTER, or FROM the merged GGUF; TEMPLATE; stop tokens)

Each format has a writer in WRITERS; the GGUF writers live in export_gguf.py and the Modelfile in export_ollama.py.
Everything that can be refused is checked before anything is written, and the folder is built in a hidden sibling
and renamed into place (storage.fenced_folder), so nobody ever sees a half-written export. Folders are created by
descriptor, so a link swapped into output_dir's path meanwhile cannot move the export outside the allowed roots; an
existing folder is replaced only when it holds nothing but an earlier export's files, and only those are deleted.

Heavy imports (numpy, gguf, torch, transformers, peft) happen inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.paths import check_writable_dir, may_write, writable_roots
from model_customization.providers.local.export_formats import FORMATS
from model_customization.providers.local.export_gguf import (
    GGUF_TYPES,
    LoraSettings,
    check_gguf_merged_config,
    check_smollm2_tokenizer,
    llama_config,
    read_lora_settings,
    write_gguf_adapter,
    write_gguf_merged,
)
from model_customization.providers.local.export_ollama import ChatFormat, ollama_chat_format, ollama_command, render_modelfile
from model_customization.providers.local.models import EMBEDDED_MODEL, check_base_model, embedded_gguf_path, ensure_base_model
from model_customization.storage import FolderRefused, fenced_folder, file_lock
from model_customization.workspace import Workspace

MANIFEST = "export.json"

Progress = Callable[[float, float | None, str], None]


@dataclass
class _Written:
    path: Path  # relative to the export folder
    format: str
    purpose: str


@dataclass
class _Export:
    """What the format writers share: the model, its base, what the checks loaded, and the folder being written."""

    model_id: str
    base: str  # the base model's name
    embedded: bool  # the base is the embedded model, whose GGUF ships with the server
    adapter_dir: Path
    base_dir: Path | None  # None when only the adapter is exported: no base is needed
    lora: LoraSettings
    gguf_type: str
    config: dict[str, Any] | None  # the base's config.json, for the GGUF formats
    tokenizer: Any
    chat: ChatFormat | None  # for the Modelfile
    target: Path
    staging: Path = Path()  # the folder being written, set once the checks have passed and the lock is held
    gguf_files: dict[str, str] = field(default_factory=dict)  # format -> file name, for the Modelfile
    merged: Any = None  # the merged model, built once for the formats that need it

    def merged_model(self) -> Any:
        if self.merged is None:
            assert self.base_dir is not None
            self.merged = merge_adapter(self.base_dir, self.adapter_dir)
        return self.merged


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
    base = _base_of(model_id, row)
    embedded = base == EMBEDDED_MODEL
    plan, notes = _plan(requested, embedded)
    target = _target_dir(ws, model_id, output_dir)
    export = _check_and_load(ws, model_id, base, embedded, adapter_dir, lora, gguf_type, plan, target)

    steps = len(plan) + 1
    report = progress or (lambda done, total, message: None)
    lock = ws.settings.home / "exports" / f".{hashlib.sha256(str(target).encode()).hexdigest()[:16]}.lock"
    home = ws.settings.home
    with file_lock(lock), _refusals_as_user_errors():
        _check_replaceable(target)
        # An export is meant to be shared like any other folder: 0755, not the staging folder's private 0700.
        within = next((root for root in writable_roots(home) if target.is_relative_to(root) and target != root), None)
        if within is None:  # the export is built beside its folder, which must itself be inside a root
            raise UserError(f"output_dir {target} is an allowed root itself; choose a new folder inside it.")
        with fenced_folder(target, within=within, allowed=lambda real: may_write(real, home), replaceable=_earlier_export_files, mode=0o755) as staging:
            export.staging = staging
            written: list[_Written] = []
            for done, fmt in enumerate(plan):
                report(done, steps, f"writing {fmt}")
                written += WRITERS[fmt](export)
            export.merged = None  # the merged weights can be large: let them go before the manifest
            report(len(plan), steps, "finishing")
            files = [{"path": str(w.path), "format": w.format, "bytes": (staging / w.path).stat().st_size, "purpose": w.purpose} for w in written]
            summary = {
                "model_id": model_id,
                "base_model": base,
                "output_dir": str(target),
                "formats": plan,
                "gguf_type": gguf_type if any(f.startswith("gguf") for f in plan) else None,
                "files": files,
                "total_bytes": sum(f["bytes"] for f in files),
                "ollama_command": ollama_command(model_id, target) if "ollama" in plan else None,
                "notes": notes + _closing_notes(plan, base, embedded),
            }
            manifest = {**summary, "created_at": time.time(), "job_id": row.get("job_id"), "dataset_id": row.get("dataset_id")}
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    report(steps, steps, "done")
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _plan(requested: list[str], embedded: bool) -> tuple[list[str], list[str]]:
    """The formats to write, in writing order, and a note for each one added because another needs it."""
    plan, notes = list(requested), []
    if "ollama" in plan:
        # Ollama needs a GGUF: the exact base + the adapter for the embedded model, the merged model otherwise.
        needed = "gguf-adapter" if embedded else "gguf-merged"
        if needed not in plan:
            plan.append(needed)
            notes.append(f"'ollama' also wrote '{needed}': the Modelfile needs it.")
    plan.sort(key=list(FORMATS).index)  # the Modelfile comes last: it names the GGUF files written before it
    return plan, notes


def _check_and_load(
    ws: Workspace, model_id: str, base: str, embedded: bool, adapter_dir: Path, lora: LoraSettings, gguf_type: str, plan: list[str], target: Path
) -> _Export:
    """Everything that can be refused, checked before anything heavy runs or anything is written."""
    base_dir = ensure_base_model(ws.settings, base) if plan != ["adapter"] else None
    config: dict[str, Any] | None = None
    if "gguf-adapter" in plan or "gguf-merged" in plan:
        assert base_dir is not None
        config = llama_config(base_dir, base)
        if "gguf-merged" in plan:
            check_gguf_merged_config(config, base)
    tokenizer = None
    if "gguf-merged" in plan or "ollama" in plan or "merged" in plan:
        tokenizer = _load_tokenizer(base_dir, adapter_dir)
    if "gguf-merged" in plan and not embedded:
        assert base_dir is not None
        check_smollm2_tokenizer(tokenizer, base_dir, base)
    chat = ollama_chat_format(tokenizer, base) if "ollama" in plan else None
    return _Export(model_id, base, embedded, adapter_dir, base_dir, lora, gguf_type, config, tokenizer, chat, target)


def _closing_notes(plan: list[str], base: str, embedded: bool) -> list[str]:
    notes = []
    if embedded and "ollama" in plan:
        notes.append(f"The Modelfile's FROM is the embedded base GGUF at {embedded_gguf_path()} (the exact weights "
                     "the adapter was trained on); copy it along if you move the export to another machine.")
        notes.append("llama.cpp (inside Ollama) multiplies the Q4_1 base with 8-bit activations, so greedy answers can "
                     "differ from prompt_model's where two tokens are nearly tied; for identical answers point the "
                     "Modelfile's FROM at a gguf-merged f32 export instead and drop the ADAPTER line.")
    if "gguf-adapter" in plan and not embedded:
        notes.append(f"gguf-adapter applies to a GGUF of {base} converted at F16/F32 with llama.cpp's convert_hf_to_gguf.py.")
    return notes


# --- the writers, one per format -----------------------------------------------------------------------------------
def _write_adapter(export: _Export) -> list[_Written]:
    folder = export.staging / "adapter"
    shutil.copytree(export.adapter_dir, folder)
    return [_Written(p.relative_to(export.staging), "adapter", _adapter_file_purpose(p.name)) for p in sorted(folder.rglob("*")) if p.is_file()]


def _write_merged(export: _Export) -> list[_Written]:
    return _write_merged_folder(export.merged_model(), export.tokenizer, export.staging / "merged", export.staging)


def _write_gguf_adapter(export: _Export) -> list[_Written]:
    assert export.config is not None
    name = f"adapter-{export.gguf_type}.gguf"
    write_gguf_adapter(
        export.adapter_dir, export.config, export.lora, export.staging / name, gguf_type=export.gguf_type, name=export.model_id, base_name=export.base
    )
    export.gguf_files["gguf-adapter"] = name
    return [_Written(Path(name), "gguf-adapter", f"LoRA adapter for llama.cpp/Ollama ({export.gguf_type.upper()}); apply it to the base GGUF")]


def _write_gguf_merged(export: _Export) -> list[_Written]:
    assert export.config is not None
    name = f"model-{export.gguf_type}.gguf"
    write_gguf_merged(
        export.merged_model(), export.config, export.tokenizer, export.staging / name,
        gguf_type=export.gguf_type, embedded=export.embedded, name=export.model_id,
    )
    export.gguf_files["gguf-merged"] = name
    return [_Written(Path(name), "gguf-merged", f"the merged model as one GGUF ({export.gguf_type.upper()}) for llama.cpp, Ollama, LM Studio")]


def _write_modelfile(export: _Export) -> list[_Written]:
    assert export.chat is not None
    from_line = str(embedded_gguf_path()) if export.embedded else f"./{export.gguf_files['gguf-merged']}"
    adapter_line = f"./{export.gguf_files['gguf-adapter']}" if export.embedded else None
    text = render_modelfile(export.model_id, export.base, from_line, adapter_line, export.chat, export.target / "Modelfile")
    (export.staging / "Modelfile").write_text(text, encoding="utf-8")
    return [_Written(Path("Modelfile"), "ollama", "Ollama Modelfile: run the ollama_command to create the model")]


WRITERS: dict[str, Callable[[_Export], list[_Written]]] = {
    "adapter": _write_adapter,
    "merged": _write_merged,
    "gguf-adapter": _write_gguf_adapter,
    "gguf-merged": _write_gguf_merged,
    "ollama": _write_modelfile,
}
# Every format export_formats.py describes has a writer, in the same order (the order formats are written in).
assert list(WRITERS) == list(FORMATS)


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
    row = ws.store.models.get(model_id) if model_id.startswith("ft-") else None
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


def _base_of(model_id: str, row: dict[str, Any]) -> str:
    try:
        return check_base_model(row["base_model"])
    except UserError as error:
        raise NotFoundError(
            f"The base model of {model_id} ({row['base_model']}) is not available: {error} "
            "An export needs the exact base the adapter was trained on; restore it, or export format='adapter' only."
        ) from error


def _target_dir(ws: Workspace, model_id: str, output_dir: str | os.PathLike[str] | None) -> Path:
    if output_dir is None or str(output_dir).strip() == "":
        return (ws.settings.home / "exports" / model_id).resolve()
    # Written only inside the data home or an allowed root (paths.py): a caller cannot have files put anywhere.
    return check_writable_dir(output_dir, home=ws.settings.home, what="output_dir")


def _check_replaceable(target: Path) -> None:
    """An existing folder is replaced only if it is empty or an earlier export holding nothing but the files that
    export wrote (never someone's other files); checked again when the new export is moved into place."""
    if target.is_file() or target.is_symlink():
        raise UserError(f"{target} exists and is not a folder; choose another output_dir.")
    try:
        if not target.is_dir() or not any(target.iterdir()):
            return
    except OSError:  # swapped or removed while being looked at: the folder is checked again, by descriptor, at the end
        return
    if not (target / MANIFEST).is_file():
        raise UserError(
            f"{target} already contains files that are not an export; choose an empty or new output_dir "
            "(an earlier export of this tool is replaced, other folders never are)."
        )
    owned = set(_earlier_export_files(target))
    try:
        others = sorted(str(p.relative_to(target)) for p in target.rglob("*") if not p.is_dir() and str(p.relative_to(target)) not in owned)
    except OSError:
        return  # changed while being looked at: checked again, by descriptor, when the export is moved into place
    if others:
        raise UserError(
            f"{target} holds an earlier export and files it did not write ({', '.join(others[:3])}{'...' if len(others) > 3 else ''}); "
            "an export never replaces or deletes those. Move them away, or choose an empty or new output_dir."
        )


def _earlier_export_files(folder: Path) -> list[str]:
    """The files an earlier export wrote into `folder` (its manifest and the files it lists); none when unreadable."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        listed = [str(Path(entry["path"])) for entry in manifest["files"]]
    except (OSError, ValueError, TypeError, KeyError):
        return []
    return [MANIFEST, *(path for path in listed if not Path(path).is_absolute() and ".." not in Path(path).parts)]


@contextmanager
def _refusals_as_user_errors() -> Iterator[None]:
    try:
        yield
    except FolderRefused as refused:
        raise UserError(f"output_dir refused: {refused}") from None


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
