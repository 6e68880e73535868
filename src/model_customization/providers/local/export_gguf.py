"""The GGUF side of an export: a LoRA adapter as a llama.cpp GGUF adapter, a merged Llama model as one GGUF file,
and reading a GGUF file's metadata.

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

numpy, gguf and safetensors are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_customization.errors import UserError
from model_customization.providers.local.models import embedded_gguf_path

GGUF_TYPES = ("f32", "f16")
GGUF_ARCHITECTURES = ("LlamaForCausalLM",)

_PEFT_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<side>[AB])\.weight$")


@dataclass
class LoraSettings:
    rank: int
    alpha: float  # written to adapter.lora.alpha: llama.cpp multiplies B·A by alpha / rank


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
    return LoraSettings(rank=rank, alpha=alpha)


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


def check_gguf_merged_config(config: dict[str, Any], base_name: str) -> None:
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


def check_smollm2_tokenizer(tokenizer: Any, base_dir: Path, base_name: str) -> None:
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
