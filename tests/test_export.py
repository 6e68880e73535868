"""export_model: PEFT adapter, merged HF folder, llama.cpp GGUF (adapter and merged), Ollama Modelfile.

The tuned models here are PEFT adapters made directly on the tiny random Llama (or the embedded model), with
random non-zero B matrices so that the adapter really changes the outputs, registered in the ledger the way a
finished job registers its model. The Ollama TEMPLATE is rendered with Go's own text/template (tests/go) and
compared byte for byte with the model's Jinja chat template.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mcp import Client

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.local import export as export_module
from model_customization.providers.local import export_gguf
from model_customization.providers.local.export import export_model
from model_customization.providers.local.export_gguf import llama_gguf_kvs, read_gguf_metadata, rope_permute
from model_customization.providers.local.export_ollama import chatml_render, ollama_chat_format, ollama_chatml_template
from model_customization.providers.local.models import EMBEDDED_MODEL, embedded_gguf_path
from model_customization.server.app import build_server

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
GGUF_PROJECTIONS = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
                    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
GO_HARNESS = Path(__file__).parent / "go" / "ollama_template" / "main.go"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


# --- helpers (test_export_llama_cpp.py uses them too) ----------------------------------------------------------
def make_tuned_model(ws, base_dir: Path, base_model: str, *, model_id: str = "ft-0a1b2c3d4e5f", rank: int = 4,
                     alpha: float = 8.0, std: float = 0.05, seed: int = 1, tokenizer=None) -> tuple[str, Path]:
    """A LoRA adapter with random non-zero B (a fresh one is a no-op), saved and registered like a job's result."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules=TARGETS, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, std)
    job_id = "job-" + model_id.removeprefix("ft-")
    adapter = ws.settings.jobs_dir / job_id / "adapter"
    peft_model.save_pretrained(adapter)
    if tokenizer is not None:  # what training does when it was given its own chat template
        tokenizer.save_pretrained(adapter)
    (adapter / "training.json").write_text(json.dumps({"job_id": job_id, "base_model": base_model, "dataset_id": "ds-test"}))
    ws.store.models.add({"id": model_id, "provider": "local", "kind": "tuned", "base_model": base_model,
                         "path": str(adapter), "job_id": job_id, "dataset_id": "ds-test"})
    return model_id, adapter


def gguf_tensor(path: Path, name: str):
    """A tensor of a GGUF file as float32 numpy (numpy order: rows = outputs), dequantised if needed."""
    import gguf
    import numpy as np

    info = next(t for t in read_gguf_metadata(path).tensors if t.name == name)
    qtype = gguf.GGMLQuantizationType(info.ggml_type)
    block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    rows = int(np.prod(info.shape[1:])) if len(info.shape) > 1 else 1
    raw = np.fromfile(path, dtype=np.uint8, count=rows * info.shape[0] // block * block_bytes, offset=info.offset)
    values = gguf.quants.dequantize(raw.reshape(rows, -1), qtype) if qtype not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) \
        else raw.view(np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16).astype(np.float32)
    return values.reshape(tuple(reversed(info.shape)))


def expected_rope_rows(weights, heads: int):
    """llama.cpp's row order written out index by index: its row h*d + 2j + k is Hugging Face's row h*d + k*d/2 + j."""
    import numpy as np

    head_dim = weights.shape[0] // heads
    out = np.empty_like(weights)
    for h in range(heads):
        for j in range(head_dim // 2):
            for k in range(2):
                out[h * head_dim + 2 * j + k] = weights[h * head_dim + k * head_dim // 2 + j]
    return out


def modelfile_template(text: str) -> str:
    """The TEMPLATE value as Ollama's Modelfile parser reads it (triple quotes, content verbatim)."""
    match = re.search(r'^TEMPLATE """(.*?)"""\n', text, re.S | re.M)
    assert match, text
    return match.group(1)


def render_with_go(template: str, conversations: list[list[dict[str, str]]]) -> list[str]:
    if shutil.which("go") is None:
        pytest.skip("Go is not installed (./dev.sh setup installs it); the Ollama template is rendered with Go's text/template")
    env = dict(os.environ)
    if "HOME" not in env and "XDG_CACHE_HOME" not in env:  # go needs somewhere for its build cache
        env.setdefault("GOCACHE", os.path.join(tempfile.gettempdir(), "model-customization-go-cache"))
    done = subprocess.run(["go", "run", str(GO_HARNESS)], input=json.dumps({"template": template, "conversations": conversations}),
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def jinja_reference(tokenizer, conversation: list[dict[str, str]]) -> str:
    # Ollama generates after the conversation: a final user turn gets the assistant prompt, a final assistant turn
    # is continued.
    if conversation[-1]["role"] == "assistant":
        return tokenizer.apply_chat_template(conversation, tokenize=False, continue_final_message=True)
    return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)


CONVERSATIONS = [
    [{"role": "user", "content": "Triage: [db] ERROR disk full"}],
    [{"role": "system", "content": "You are OpsBot."}, {"role": "user", "content": "Hello"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}, {"role": "user", "content": "three"}],
    [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}, {"role": "user", "content": "u3"}],
    [{"role": "user", "content": "Continue this"}, {"role": "assistant", "content": "TRIAGE severity="}],
    [{"role": "system", "content": "multi\nline\n\nsystem"}, {"role": "user", "content": "Go syntax {{ .Content }} and {{ end }}"}, {"role": "assistant", "content": 'quotes """ and \\ backslash'}],
    [{"role": "user", "content": "unicode: naïve café 日本語 🙂 tab\there"}],
    [{"role": "user", "content": "  leading and trailing spaces  "}, {"role": "assistant", "content": "\n"}, {"role": "user", "content": "<|im_start|> literal markers <|im_end|>"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "empty system"}],
    [{"role": "assistant", "content": "the assistant speaks first"}, {"role": "user", "content": "then the user"}],
    [{"role": "system", "content": "only a system message"}],
]


@pytest.fixture
def tuned(ws, tiny_model):
    return make_tuned_model(ws, tiny_model, str(tiny_model))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- merged -----------------------------------------------------------------------------------------------------
def test_merged_export_reloads_with_the_same_logits_as_the_peft_model(ws, tiny_model, tuned):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_id, adapter = tuned
    result = export_model(ws, model_id, ["merged"])
    folder = Path(result["output_dir"]) / "merged"
    assert result["output_dir"] == str(ws.settings.home / "exports" / model_id)
    ids = torch.tensor([[1, 504, 3458, 314, 253, 1345, 28, 2, 17, 9000]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
        base_logits = base(ids).logits
        peft_logits = PeftModel.from_pretrained(base, adapter).eval()(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(folder).eval()(ids).logits
    assert not torch.allclose(base_logits, peft_logits, atol=1e-3)  # the adapter matters
    assert torch.allclose(merged_logits, peft_logits, atol=1e-5), (merged_logits - peft_logits).abs().max()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_model).chat_template
    listed = {f["path"]: f["bytes"] for f in result["files"]}
    assert listed["merged/model.safetensors"] == (folder / "model.safetensors").stat().st_size
    manifest = json.loads((Path(result["output_dir"]) / "export.json").read_text())
    assert manifest["model_id"] == model_id and manifest["job_id"] == "job-" + model_id.removeprefix("ft-")


# --- GGUF adapter -----------------------------------------------------------------------------------------------
def test_gguf_adapter_has_llama_cpp_names_shapes_and_values(ws, tiny_model, tuned):
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    model_id, adapter = tuned
    result = export_model(ws, model_id, ["gguf-adapter"])
    path = Path(result["output_dir"]) / "adapter-f32.gguf"
    reader = gguf.GGUFReader(path)
    kv = {key: field.contents() for key, field in reader.fields.items()}
    assert kv["general.type"] == "adapter" and kv["adapter.type"] == "lora" and kv["general.architecture"] == "llama"
    assert kv["adapter.lora.alpha"] == 8.0
    peft = load_file(str(adapter / "adapter_model.safetensors"))
    config = json.loads((tiny_model / "config.json").read_text())
    tensors = {t.name: t for t in reader.tensors}
    expected_names = {f"blk.{layer}.{GGUF_PROJECTIONS[p]}.weight.lora_{side}" for layer in range(2) for p in TARGETS for side in "ab"}
    assert set(tensors) == expected_names
    for layer in range(2):
        for projection in TARGETS:
            section = "self_attn" if projection in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            prefix = f"base_model.model.model.layers.{layer}.{section}.{projection}"
            lora_a, lora_b = peft[f"{prefix}.lora_A.weight"], peft[f"{prefix}.lora_B.weight"]
            a = tensors[f"blk.{layer}.{GGUF_PROJECTIONS[projection]}.weight.lora_a"]
            b = tensors[f"blk.{layer}.{GGUF_PROJECTIONS[projection]}.weight.lora_b"]
            # llama-adapter.cpp: a.ne = [in, rank], b.ne = [rank, out]
            assert list(a.shape) == [lora_a.shape[1], 4] and list(b.shape) == [4, lora_b.shape[0]]
            assert a.tensor_type == gguf.GGMLQuantizationType.F32
            np.testing.assert_array_equal(a.data, lora_a)
            heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}.get(projection)
            np.testing.assert_array_equal(b.data, expected_rope_rows(lora_b, heads) if heads else lora_b)


def test_gguf_adapter_f16_halves_the_tensors(ws, tuned):
    import gguf

    model_id, _ = tuned
    result = export_model(ws, model_id, ["gguf-adapter"], gguf_type="f16")
    reader = gguf.GGUFReader(Path(result["output_dir"]) / "adapter-f16.gguf")
    assert {t.tensor_type for t in reader.tensors} == {gguf.GGMLQuantizationType.F16}
    assert result["gguf_type"] == "f16" and result["files"][0]["path"] == "adapter-f16.gguf"


# --- GGUF merged ------------------------------------------------------------------------------------------------
def test_gguf_merged_holds_the_merged_weights_in_llama_cpp_layout_and_agrees_with_the_adapter(ws, tiny_model, tuned):
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_id, adapter = tuned
    result = export_model(ws, model_id, ["merged", "gguf-merged", "gguf-adapter"])
    root = Path(result["output_dir"])
    merged_gguf, adapter_gguf = root / "model-f32.gguf", root / "adapter-f32.gguf"
    metadata = read_gguf_metadata(merged_gguf)
    values = {k: v[0] for k, v in metadata.values.items()}
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert values["general.architecture"] == "llama" and values["general.type"] == "model" and values["general.name"] == model_id
    assert (values["llama.block_count"], values["llama.embedding_length"], values["llama.feed_forward_length"]) == (2, 64, 128)
    assert (values["llama.attention.head_count"], values["llama.attention.head_count_kv"], values["llama.rope.dimension_count"]) == (4, 2, 16)
    assert values["tokenizer.ggml.tokens"] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert values["tokenizer.chat_template"] == tokenizer.chat_template
    assert values["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert "output.weight" not in metadata.tensor_names  # tied embeddings: llama.cpp reuses token_embd

    merged = AutoModelForCausalLM.from_pretrained(root / "merged").state_dict()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    np.testing.assert_array_equal(gguf_tensor(merged_gguf, "token_embd.weight"), merged["model.embed_tokens.weight"].numpy())
    np.testing.assert_array_equal(gguf_tensor(merged_gguf, "blk.1.attn_norm.weight"), merged["model.layers.1.input_layernorm.weight"].numpy())
    for layer in range(2):
        for projection, heads in (("q_proj", 4), ("k_proj", 2), ("v_proj", None), ("down_proj", None)):
            section = "mlp" if projection == "down_proj" else "self_attn"
            key = f"model.layers.{layer}.{section}.{projection}.weight"
            name = f"blk.{layer}.{GGUF_PROJECTIONS[projection]}.weight"
            hf = merged[key].numpy()
            in_gguf = gguf_tensor(merged_gguf, name)
            np.testing.assert_array_equal(in_gguf, expected_rope_rows(hf, heads) if heads else hf)
            # base (llama.cpp layout) + alpha/rank * B A from the GGUF adapter == the merged GGUF tensor
            base_w = base[key].numpy()
            delta = 2.0 * gguf_tensor(adapter_gguf, name + ".lora_b") @ gguf_tensor(adapter_gguf, name + ".lora_a")
            np.testing.assert_allclose((expected_rope_rows(base_w, heads) if heads else base_w) + delta, in_gguf, atol=1e-6)


def test_gguf_merged_f16_keeps_norms_in_f32(ws, tuned):
    import gguf

    model_id, _ = tuned
    result = export_model(ws, model_id, ["gguf-merged"], gguf_type="f16")
    metadata = read_gguf_metadata(Path(result["output_dir"]) / "model-f16.gguf")
    types = {t.name: gguf.GGMLQuantizationType(t.ggml_type) for t in metadata.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert types["blk.0.attn_norm.weight"] == types["output_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert metadata.values["general.file_type"][0] == int(gguf.LlamaFileType.MOSTLY_F16)


def test_rope_permutation_and_hyperparameters_match_the_embedded_gguf(embedded_base):
    """The embedded HF folder is the Q4_1 GGUF dequantised (and un-permuted by transformers): permuting it back must
    give the GGUF's tensors exactly, and the config must map to the GGUF's llama.* keys."""
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((embedded_base / "config.json").read_text())
    weights = load_file(str(embedded_base / "model.safetensors"))
    gguf_path = embedded_gguf_path()
    for layer in (0, 29):
        for projection, gguf_name, heads in (("q_proj", "attn_q", 9), ("k_proj", "attn_k", 3)):
            hf = weights[f"model.layers.{layer}.self_attn.{projection}.weight"]
            np.testing.assert_array_equal(rope_permute(hf, heads), gguf_tensor(gguf_path, f"blk.{layer}.{gguf_name}.weight"))
            np.testing.assert_array_equal(expected_rope_rows(hf, heads), rope_permute(hf, heads))
    metadata = read_gguf_metadata(gguf_path)
    for key, (value, _) in llama_gguf_kvs(config).items():
        assert metadata.values[key][0] == pytest.approx(value, rel=1e-7), key


# --- Ollama -----------------------------------------------------------------------------------------------------
def test_ollama_template_renders_exactly_what_the_jinja_chat_template_renders(ws, tiny_model, tuned):
    from transformers import AutoTokenizer

    model_id, _ = tuned
    result = export_model(ws, model_id, ["ollama"])
    root = Path(result["output_dir"])
    modelfile = (root / "Modelfile").read_text()
    # Not the embedded base: Ollama gets the merged GGUF (written for it), no separate adapter.
    assert result["formats"] == ["gguf-merged", "ollama"] and (root / "model-f32.gguf").is_file()
    assert re.search(r"^FROM \./model-f32\.gguf$", modelfile, re.M) and "ADAPTER" not in modelfile
    assert re.findall(r'^PARAMETER stop "(.*)"$', modelfile, re.M) == ["<|im_end|>", "<|im_start|>"]
    assert result["ollama_command"] == f"ollama create {model_id} -f {root / 'Modelfile'}"
    template = modelfile_template(modelfile)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rendered = render_with_go(template, CONVERSATIONS)
    for conversation, go_text in zip(CONVERSATIONS, rendered):
        assert go_text == jinja_reference(tokenizer, conversation), conversation
    # The default system prompt of SmolLM2's template is injected when there is no system message.
    assert rendered[0].startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n")


def test_ollama_template_quotes_a_default_system_prompt_go_or_the_modelfile_would_misread(tmp_path):
    tricky = 'Say "hi" {{ .Role }} """ \\ end\ttab\u2028sep 🙂'
    template = ollama_chatml_template(tricky)
    assert '"""' not in template and all(c in "\n\t" or c.isprintable() for c in template)
    conversations = [[{"role": "user", "content": "x"}], [{"role": "system", "content": "own"}, {"role": "user", "content": "y"}]]
    rendered = render_with_go(template, conversations)
    assert rendered == [chatml_render(c, tricky, add_generation_prompt=True) for c in conversations]


def test_ollama_uses_the_chat_template_the_adapter_was_trained_with(ws, tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    # A ChatML template without a default system prompt, saved with the adapter as training does.
    tokenizer.chat_template = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    model_id, _ = make_tuned_model(ws, tiny_model, str(tiny_model), tokenizer=tokenizer)
    result = export_model(ws, model_id, ["ollama"])
    template = modelfile_template((Path(result["output_dir"]) / "Modelfile").read_text())
    assert "SmolLM" not in template
    assert render_with_go(template, CONVERSATIONS[:4]) == [jinja_reference(tokenizer, c) for c in CONVERSATIONS[:4]]


def test_ollama_refuses_a_chat_template_it_cannot_translate(ws, tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}### assistant: {% endif %}"
    with pytest.raises(UserError, match="not ChatML"):
        ollama_chat_format(tokenizer, "odd-model")
    model_id, _ = make_tuned_model(ws, tiny_model, str(tiny_model), tokenizer=tokenizer)
    with pytest.raises(UserError, match="write the Modelfile's TEMPLATE by hand"):
        export_model(ws, model_id, ["ollama"])
    assert not (ws.settings.home / "exports" / model_id).exists()


def test_ollama_for_the_embedded_model_uses_its_exact_q4_gguf_and_an_adapter_that_fits_it(ws, embedded_base):
    model_id, _ = make_tuned_model(ws, embedded_base, EMBEDDED_MODEL, rank=8, alpha=16.0)
    result = export_model(ws, model_id, ["ollama", "gguf-adapter"])  # the Modelfile is written after the GGUF it names
    root = Path(result["output_dir"])
    modelfile = (root / "Modelfile").read_text()
    assert result["formats"] == ["gguf-adapter", "ollama"]
    assert re.search(rf"^FROM {re.escape(str(embedded_gguf_path()))}$", modelfile, re.M)
    assert re.search(r"^ADAPTER \./adapter-f32\.gguf$", modelfile, re.M)
    assert DEFAULT_SYSTEM in modelfile_template(modelfile)
    # Every adapter tensor names a base tensor with the shapes llama-adapter.cpp checks.
    base = {t.name: t.shape for t in read_gguf_metadata(embedded_gguf_path()).tensors}
    adapter = {t.name: t.shape for t in read_gguf_metadata(root / "adapter-f32.gguf").tensors}
    assert len(adapter) == 30 * 7 * 2
    for name, shape in adapter.items():
        if name.endswith(".lora_a"):
            weight = name.removesuffix(".lora_a")
            b_shape = adapter[weight + ".lora_b"]
            assert base[weight][0] == shape[0] and base[weight][1] == b_shape[1] and shape[1] == b_shape[0] == 8


# --- refusals, atomicity ----------------------------------------------------------------------------------------
def test_refusals_name_the_next_step(ws, tiny_model, tuned, tmp_path):
    model_id, adapter = tuned
    with pytest.raises(NotFoundError, match="check_job"):
        export_model(ws, "ft-doesnotexist", ["adapter"])
    with pytest.raises(NotFoundError, match="list_jobs"):
        export_model(ws, "SmolLM2-135M-Instruct", ["adapter"])
    with pytest.raises(UserError, match="choose from adapter, merged, gguf-adapter, gguf-merged, ollama"):
        export_model(ws, model_id, ["safetensors"])
    with pytest.raises(UserError, match="No export format"):
        export_model(ws, model_id, [])
    with pytest.raises(UserError, match="gguf_type"):
        export_model(ws, model_id, ["gguf-adapter"], gguf_type="q4_0")

    # A base model that is gone.
    gone = tmp_path / "gone-base"
    shutil.copytree(tiny_model, gone)
    lost_id, _ = make_tuned_model(ws, gone, str(gone), model_id="ft-aaaaaaaaaaaa")
    shutil.rmtree(gone)
    with pytest.raises(NotFoundError, match="exact base the adapter was trained on"):
        export_model(ws, lost_id, ["merged"])

    # Another architecture: GGUF refused, nothing written; the PEFT adapter still exports.
    other = tmp_path / "other-arch"
    shutil.copytree(tiny_model, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "architectures": ["MistralForCausalLM"], "model_type": "mistral"}))
    other_id, _ = make_tuned_model(ws, tiny_model, str(other), model_id="ft-bbbbbbbbbbbb")
    with pytest.raises(UserError, match="Llama-architecture"):
        export_model(ws, other_id, ["adapter", "gguf-adapter"])
    assert not (ws.settings.home / "exports" / other_id).exists()
    assert export_model(ws, other_id, ["adapter"])["formats"] == ["adapter"]

    # A folder with someone else's files is never replaced.
    foreign = tmp_path / "my-stuff"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not an export"):
        export_model(ws, model_id, ["adapter"], output_dir=foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_gguf_merged_refuses_a_tokenizer_other_than_smollm2s(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    export_gguf.check_smollm2_tokenizer(tokenizer, tiny_model, "tiny")  # the same tokenizer passes
    tokenizer.add_tokens(["<brand-new-token>"])
    with pytest.raises(UserError, match="tokenizer differs from SmolLM2's"):
        export_gguf.check_smollm2_tokenizer(tokenizer, tiny_model, "tiny")


def test_export_replaces_an_earlier_export_atomically_and_a_failure_leaves_it_intact(ws, tuned, tmp_path, monkeypatch):
    model_id, _ = tuned
    target = tmp_path / "out" / "export"
    first = export_model(ws, model_id, ["adapter"], output_dir=target)
    assert (target / "adapter" / "adapter_model.safetensors").is_file()
    second = export_model(ws, model_id, ["gguf-adapter"], output_dir=str(target))
    assert sorted(p.name for p in target.iterdir()) == ["adapter-f32.gguf", "export.json"]
    assert first["output_dir"] == second["output_dir"] == str(target)

    def explode(*args, **kwargs):
        (args[3]).write_bytes(b"half a file")  # leave something behind in the staging folder first
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module, "write_gguf_adapter", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(ws, model_id, ["adapter", "gguf-adapter"], output_dir=target)
    # The earlier export is untouched and no staging folder is left next to it.
    assert sorted(p.name for p in target.iterdir()) == ["adapter-f32.gguf", "export.json"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["export"]
    assert json.loads((target / "export.json").read_text())["formats"] == ["gguf-adapter"]


# --- MCP tool and CLI -------------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_export_model_tool(ws, tuned):
    model_id, _ = tuned
    async with Client(build_server(ws=ws)) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        schema = listed["export_model"].input_schema["properties"]["formats"]
        assert schema["items"]["enum"] == ["adapter", "merged", "gguf-adapter", "gguf-merged", "ollama"]
        assert listed["export_model"].annotations.read_only_hint is False

        result = await client.call_tool("export_model", {"model_id": model_id, "formats": ["adapter", "gguf-adapter"], "gguf_type": "f16"})
        assert not result.is_error, result.content
        out = result.structured_content
        root = Path(out["output_dir"])
        assert out["formats"] == ["adapter", "gguf-adapter"] and out["ollama_command"] is None
        for file in out["files"]:
            assert (root / file["path"]).stat().st_size == file["bytes"] and file["purpose"]
        assert out["total_bytes"] == sum(f["bytes"] for f in out["files"])

        missing = await client.call_tool("export_model", {"model_id": "ft-000000000000", "formats": ["adapter"]})
        assert missing.is_error and "check_job" in missing.content[0].text
        unknown = await client.call_tool("export_model", {"model_id": model_id, "formats": ["onnx"]})
        assert unknown.is_error and "gguf-merged" in unknown.content[0].text


def test_cli_model_export(ws, tuned, tmp_path):
    model_id, _ = tuned
    env = {**os.environ, "MODEL_CUSTOMIZATION_HOME": str(ws.settings.home)}
    out = tmp_path / "cli-export"
    done = subprocess.run(
        [sys.executable, "-m", "model_customization", "model", "export", model_id, "--format", "gguf-adapter", "--format", "adapter",
         "--output", str(out), "--json", "--home", str(ws.settings.home)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["output_dir"] == str(out) and payload["formats"] == ["adapter", "gguf-adapter"]
    assert (out / "adapter-f32.gguf").is_file()
    failed = subprocess.run(
        [sys.executable, "-m", "model_customization", "model", "export", "ft-nope", "--json", "--home", str(ws.settings.home)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert failed.returncode == 3 and "check_job" in failed.stderr
