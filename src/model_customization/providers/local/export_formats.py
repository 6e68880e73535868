"""The export formats and what each one is for: a light module, so the export_model tool can describe them
without importing the exporter (which the server would otherwise load at start-up)."""

FORMATS: dict[str, str] = {
    "adapter": "the LoRA adapter as trained (PEFT format), for transformers/peft or another trainer",
    "merged": "base + adapter merged into a Hugging Face model folder (AutoModelForCausalLM.from_pretrained)",
    "gguf-adapter": "the adapter as a llama.cpp GGUF LoRA adapter (llama.cpp --lora, Ollama ADAPTER) over the base GGUF",
    "gguf-merged": "the merged model as a single GGUF file for llama.cpp, Ollama or LM Studio",
    "ollama": "an Ollama Modelfile (base + adapter or merged GGUF, chat TEMPLATE, stop tokens) and the ollama create command",
}
