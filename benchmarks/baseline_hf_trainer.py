"""The baseline for the training-speed benchmark: LoRA fine-tuning as users typically write it with the
Hugging Face Trainer and PEFT, every example padded to the maximum length.

Usage: python benchmarks/baseline_hf_trainer.py MODEL_DIR DATA.jsonl OUT.json [--max-length 512] [--batch-size 4]
       [--learning-rate 1e-3] [--epochs 1] [--seed 0] [--gradient-checkpointing]

DATA.jsonl holds one chat per line ({"messages": [{"role", "content"}, ...]}). Each chat is rendered with the
tokenizer's chat template, tokenized (truncated at --max-length), labelled for the loss on all of its tokens, and
padded to --max-length by DataCollatorForSeq2Seq(padding="max_length") (labels padded with -100). LoRA r16 /
alpha 32 on q/k/v/o/gate/up/down, no dropout, AdamW (the Trainer's default, fused), linear schedule with 10%
warm-up, gradient clipping at 1.0, one epoch. The Trainer's defaults that would change the comparison are set
explicitly: float32 on CPU (bf16 on CUDA, the fast setting there: weights loaded in bf16 and the Trainer's bf16
autocast), gradient checkpointing only with --gradient-checkpointing (non-reentrant, as the Trainer recommends for
PEFT), no evaluation, no checkpoints, no reporting. Nothing here comes from the model-customization package, so the script is what a
user would run.

Only measuring is added: the collator is wrapped to count each batch's real (non-padding) tokens, and a callback
notes the time at the end of each optimizer step. OUT.json gets per-step times and token counts, the parameter
count, the peak RSS of this process and, on CUDA, the peak GPU memory; also the CPU seconds of each step (all
threads), for a speed figure that other load on a shared machine disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16 if cuda else torch.float32)
    base_parameters = sum(p.numel() for p in model.parameters())
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        ),
    )

    with open(args.data, encoding="utf-8") as handle:
        chats = [json.loads(line)["messages"] for line in handle if line.strip()]

    def tokenize(row):
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        encoded = tokenizer(text, truncation=True, max_length=args.max_length, add_special_tokens=False)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"], "labels": list(encoded["input_ids"])}

    dataset = [tokenize({"messages": m}) for m in chats]  # a list is a map-style dataset for the Trainer

    padder = DataCollatorForSeq2Seq(tokenizer, padding="max_length", max_length=args.max_length, label_pad_token_id=-100)
    real_tokens: list[int] = []  # per collated batch, in the order the Trainer asks for them
    padded_tokens: list[int] = []

    def collate(features):
        batch = padder(features)
        real_tokens.append(int(batch["attention_mask"].sum()))
        padded_tokens.append(int(batch["attention_mask"].numel()))
        return batch

    step_ends: list[float] = []
    step_cpu: list[float] = []  # CPU seconds of this process (all threads) at the same moments

    class StepTimes(TrainerCallback):
        def on_train_begin(self, *a, **k):
            step_ends.append(time.perf_counter())  # index 0: the start of step 1
            step_cpu.append(time.process_time())

        def on_step_end(self, *a, **k):
            if cuda:
                torch.cuda.synchronize()
            step_ends.append(time.perf_counter())
            step_cpu.append(time.process_time())

    training_args = TrainingArguments(
        output_dir=os.path.join(os.path.dirname(os.path.abspath(args.out)), "baseline-trainer-output"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        warmup_steps=0.1,
        max_grad_norm=1.0,
        bf16=cuda,
        fp16=False,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if args.gradient_checkpointing else None,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=args.seed,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collate, callbacks=[StepTimes()])
    load_seconds = time.perf_counter() - started
    result = trainer.train()

    steps = len(step_ends) - 1
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "device": "cuda" if cuda else "cpu",
                "dtype": "bfloat16" if cuda else "float32",
                "gradient_checkpointing": args.gradient_checkpointing,
                "threads": torch.get_num_threads(),
                "base_parameters": base_parameters,
                "examples": len(chats),
                "steps": steps,
                "step_seconds": [round(b - a, 4) for a, b in zip(step_ends, step_ends[1:], strict=False)],
                "step_cpu_seconds": [round(b - a, 4) for a, b in zip(step_cpu, step_cpu[1:], strict=False)],
                "step_real_tokens": real_tokens[:steps],
                "step_padded_tokens": padded_tokens[:steps],
                "load_seconds": round(load_seconds, 2),
                "train_loss": result.training_loss,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
            },
            handle,
        )


if __name__ == "__main__":
    main()
