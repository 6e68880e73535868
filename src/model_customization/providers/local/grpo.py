"""GRPO with verifiable rewards (Shao et al., 2024, DeepSeekMath): the local worker's loop for method='grpo'.

Each optimizer step takes `batch_size` prompts (suite cases from the job's dataset: see evaluation/rewards.py) and,
for each, samples `group_size` answers in one batched generate() call with the KV cache. Every answer is scored by
the case's own checks (the same scores `evaluate` gives it) into a reward in [0, 1]; within each group the rewards
become advantages (minus the group mean, divided by the group's standard deviation plus a small epsilon), so an
answer is pushed up or down only relative to its siblings. The loss per answer token is the clipped surrogate

    -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) + beta * KL_k3(policy || reference)

with ratio = pi / pi_old against the policy that sampled (one update per sample: it is 1 and the clip never bites,
but the gradient is the policy gradient and the code stays right if updates per sample are added), and KL_k3 the
unbiased, always positive estimator exp(r - p) - (r - p) - 1 of the DeepSeekMath paper and TRL. The reference is the
model the job started from: the base with the LoRA layers switched off (`disable_adapter`, no second copy), or, when
the job continues a tuned adapter, that adapter's weights swapped in for the reference pass (a copy of the LoRA
tensors only). Token losses are averaged per answer, then over the answers of the step.

Multi-turn with tools: when a case has `tool_results`, an answer that ends its turn with tool calls gets each call's
result (or NO_RESULT) back as a tool message and the model samples on, up to max_tool_turns times (sample_episodes).
Only the tokens the model generated are in the loss; the tool messages between turns are context only. The whole
episode is rewarded: the tool-call checks see every call it made, the text checks its last turn.

Exact resume: the prompts' order is a function of (seed, epoch) as in supervised training, and the sampling of each
step is seeded from (seed, step), so a run killed and resumed from a checkpoint samples the same answers, gets the
same rewards and takes the same steps as one that never stopped.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass
from typing import Any

from model_customization.datasets.build import read_split
from model_customization.datasets.examples import to_plain_chat
from model_customization.errors import UserError
from model_customization.evaluation.rewards import reward, reward_weights
from model_customization.providers.local.hyperparameters import LocalHyperparameters, parse_hyperparameters
from model_customization.providers.local.models import ensure_base_model
from model_customization.workspace import Workspace

ADVANTAGE_EPSILON = 1e-4  # added to a group's reward spread: a group whose answers all scored alike gets advantage 0


@dataclass
class GrpoPrompt:
    ids: list[int]  # the case's conversation rendered with the generation prompt
    case: dict[str, Any]  # messages and what the case expects (a suite case)


def group_advantages(rewards: list[float], epsilon: float = ADVANTAGE_EPSILON) -> list[float]:
    """(r - mean) / (std + epsilon) within one group: zero mean, unit spread, all zeros when the rewards agree.
    The population standard deviation, as in the DeepSeekMath paper's outcome supervision."""
    mean = sum(rewards) / len(rewards)
    spread = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
    return [(r - mean) / (spread + epsilon) for r in rewards]


def step_seed(seed: int, step: int) -> int:
    """The sampling seed of optimizer step `step` (0-based): the same in a resumed run as in an uninterrupted one."""
    return (seed * 1_000_003 + step * 7_919 + 17) % (2**63 - 1)


def quote_grpo(ws: Workspace, dataset_id: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Free on this machine, but for a paid judge's calls (judge_model: quoted by quote_judge, at most); the work is
    counted in answers sampled and tokens through the model (each sampled token is generated once and then scored by
    the policy and the reference)."""
    from model_customization.datasets.build import get_dataset

    from model_customization.datasets.quote import local_tokens_per_second

    hp = parse_hyperparameters(hyperparameters)
    dataset = get_dataset(ws, dataset_id)
    speed, basis = local_tokens_per_second([])
    prompts = dataset["counts"].get("train", 0)
    steps = math.ceil(prompts / hp.batch_size) * hp.epochs
    answers = prompts * hp.group_size * hp.epochs
    judge = None
    if hp.judge_model:  # the only part of a local GRPO job that may cost money
        from model_customization.providers.local.grpo_judge import quote_judge

        judge = quote_judge(ws, dataset_id, hp, (hp.epochs, steps))
    return {
        "provider": "local",
        "method": "grpo",
        "epochs": hp.epochs,
        "prompts": prompts,
        "held_out_cases": dataset["counts"].get("test", 0),
        "steps": steps,
        "sampled_answers": answers,
        "max_sampled_tokens": answers * hp.max_new_tokens,
        # hf-jobs prices its minutes from these two: tokens generated and scored, at the measured local speed.
        "trained_tokens": answers * hp.max_new_tokens * 3,
        "tokens_per_second": round(speed, 1),
        "speed_basis": f"{basis}; each sampled token counted three times (generated, scored by the policy and by the reference)",
        "estimated_cost_usd": 0.0 if judge is None else judge["cost_bound_usd"],
        **({"judge": judge} if judge is not None else {}),
    }


def _prompts(tokenizer: Any, rows: list[dict[str, Any]], hp: LocalHyperparameters) -> tuple[list[GrpoPrompt], int]:
    """(the cases whose prompt leaves room for max_new_tokens within max_seq_length, how many were too long)."""
    from model_customization.providers.local.chat import prompt_ids

    kept, too_long = [], 0
    for row in rows:
        if "expects" not in row:
            raise UserError("GRPO trains on suite cases: start the job with method='grpo' and suite=<file> (or agent=<name>), not on a supervised dataset.")
        # The case's tools are rendered as evaluate renders them (chat.render_prompt): the prompt trained on is the one scored.
        ids = prompt_ids(tokenizer, to_plain_chat(row["messages"]), row["expects"].get("tools"))
        if len(ids) + hp.max_new_tokens > hp.max_seq_length:
            too_long += 1
            continue
        kept.append(GrpoPrompt(ids, {"messages": row["messages"], **row["expects"]}))
    return kept, too_long


class _Reference:
    """Log-probabilities under the model the job started from, without a second copy of the model."""

    def __init__(self, model: Any, start_weights: dict[str, Any] | None) -> None:
        self.model, self.start_weights = model, start_weights

    def logps(self, ids: Any, mask: Any, prompt_length: int) -> Any:
        import torch

        from model_customization.providers.local.train import _trainable

        was_training = self.model.training
        self.model.eval()  # the reference is the model itself, without LoRA dropout
        try:
            with torch.no_grad():
                if self.start_weights is None:  # a fresh LoRA: the start is the base itself
                    with self.model.disable_adapter():
                        return completion_logps(self.model, ids, mask, prompt_length)
                params = _trainable(self.model)
                current = {name: p.detach().clone() for name, p in params.items()}
                try:
                    for name, p in params.items():
                        p.copy_(self.start_weights[name])
                    return completion_logps(self.model, ids, mask, prompt_length)
                finally:
                    for name, p in params.items():
                        p.copy_(current[name])
        finally:
            if was_training:
                self.model.train()


def completion_logps(model: Any, ids: Any, mask: Any, prompt_length: int) -> Any:
    """Log-probability of each completion token [group, completion length] (positions after an answer's end hold
    whatever the padding gives; the caller masks them)."""
    import torch.nn.functional as F

    # Only the positions that predict answer tokens go through the language-model head (a fifth of the compute of
    # a small model, and its largest activation): the prompt's own next-token logits are never needed.
    keep = ids.shape[1] - prompt_length + 1
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, -keep:-1].float()
    targets = ids[:, prompt_length:]
    return -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none").view(targets.shape)


def _sampling(hp: LocalHyperparameters, greedy: bool) -> dict[str, Any]:
    """generate()'s options: the policy's own distribution at hp.temperature, or its most likely tokens (validation)."""
    if greedy:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": hp.temperature, "top_p": 1.0, "top_k": 0}


def sample_group(
    model: Any, tokenizer: Any, prompt: list[int], hp: LocalHyperparameters, device: str, *, group_size: int | None = None, greedy: bool = False
) -> tuple[Any, Any, list[str]]:
    """group_size answers to one prompt in one batched generate() with the KV cache: (token ids [group, prompt +
    answer], attention mask that ends each answer at its end-of-turn token, the answers' texts)."""
    import torch

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    group = group_size or hp.group_size
    ids = torch.tensor([prompt] * group, device=device)
    was_training = model.training
    model.eval()  # no dropout while sampling: the answers come from the policy itself
    with torch.no_grad():
        output = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=hp.max_new_tokens,
            pad_token_id=pad, eos_token_id=eos, use_cache=True, **_sampling(hp, greedy),
        )
    if was_training:
        model.train()
    completion = output[:, len(prompt) :]
    # An answer runs to its first end-of-turn token (included: the model learns to stop) or to max_new_tokens.
    is_end = completion == eos
    ended = is_end.cumsum(dim=1)
    keep = (ended == 0) | (is_end & (ended == 1))
    mask = torch.cat([torch.ones((group, len(prompt)), dtype=torch.long, device=device), keep.long()], dim=1)
    texts = [tokenizer.decode(row[k.bool()].tolist(), skip_special_tokens=True).strip() for row, k in zip(completion, keep, strict=True)]
    return output, mask, texts


NO_RESULT = "error: this case has no result for a call to {name!r}; no tool was run."  # what a call without a result gets back


def tool_result(call: dict[str, Any], results: dict[str, str]) -> str:
    """The text a tool call gets back in an episode: the case's result for that tool name, else NO_RESULT."""
    name = call.get("name")
    return results[name] if isinstance(name, str) and name in results else NO_RESULT.format(name=name)


def _tool_turn_ids(tokenizer: Any, messages: list[dict[str, Any]], tool_messages: int, tools: list[dict[str, Any]] | None = None) -> list[int] | None:
    """The tokens that follow a sampled answer's end-of-turn token up to the next generation prompt: the rest of the
    assistant turn's rendering, the tool messages and the assistant prompt (None when the chat template does not
    render the conversation prefix by prefix or does not end turns with the eos token: the episode then ends). Both
    renderings carry the case's tools, as its prompt did."""
    from model_customization.providers.local.chat import _render, render_prompt

    before = _render(tokenizer, messages[:-tool_messages], tools=tools)
    after = render_prompt(tokenizer, messages, tools)
    end = before.rfind(tokenizer.eos_token) if tokenizer.eos_token else -1
    if end < 0 or not after.startswith(before):
        return None
    return tokenizer(before[end + len(tokenizer.eos_token) :] + after[len(before) :], add_special_tokens=False)["input_ids"]


def _continue(model: Any, tokenizer: Any, ids: list[int], hp: LocalHyperparameters, device: str, greedy: bool = False) -> list[int]:
    """One more assistant turn sampled after `ids`, up to and including its end-of-turn token."""
    import torch

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    was_training = model.training
    model.eval()
    with torch.no_grad():
        output = model.generate(
            input_ids=torch.tensor([ids], device=device), attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
            max_new_tokens=hp.max_new_tokens, pad_token_id=pad, eos_token_id=eos, use_cache=True, **_sampling(hp, greedy),
        )
    if was_training:
        model.train()
    new = output[0, len(ids) :].tolist()
    return new[: new.index(eos) + 1] if eos in new else new


def sample_episodes(
    model: Any, tokenizer: Any, prompt: GrpoPrompt, hp: LocalHyperparameters, device: str, *, group_size: int | None = None, greedy: bool = False
) -> tuple[Any, Any, Any, list[Any]]:
    """group_size episodes for one case: (token ids [group, prompt + episode], attention mask, loss mask over the
    positions after the prompt, the answers to score).

    Without tool_results in the case (or with max_tool_turns 0) an episode is one sampled answer (sample_group).
    With them, an answer that ends its turn with tool calls gets the assistant turn and one tool message per call
    (the case's result for that tool name, or NO_RESULT) appended, and the model samples its next turn, up to
    max_tool_turns times. The first turn is sampled for the whole group in one batch; the continuations one episode
    at a time, in the group's order, so the step's seed fixes them all. The loss mask covers the tokens the model
    generated and leaves out the tool-result and template tokens between turns. An episode that called tools is
    scored as {text: its last turn, tool_calls: every call it made}, as evaluate scores an answer with tool calls."""
    import torch

    from model_customization.evaluation.metrics import extract_tool_calls

    output, mask, texts = sample_group(model, tokenizer, prompt.ids, hp, device, group_size=group_size, greedy=greedy)
    length = len(prompt.ids)
    results = prompt.case.get("tool_results")
    if not results or hp.max_tool_turns == 0:
        return output, mask, mask[:, length:], list(texts)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    episodes: list[tuple[list[int], list[int]]] = []
    answers: list[Any] = []
    for row, keep, text in zip(output, mask, texts, strict=True):
        generated = row[length:][keep[length:].bool()].tolist()
        ids, trained = list(prompt.ids) + generated, [1] * len(generated)
        messages = to_plain_chat(prompt.case["messages"])
        made: list[dict[str, Any]] = []
        for _ in range(hp.max_tool_turns):
            calls = extract_tool_calls(text)
            if not calls or not generated or generated[-1] != eos:
                break
            messages = [*messages, {"role": "assistant", "content": text}, *({"role": "tool", "content": tool_result(c, results)} for c in calls)]
            bridge = _tool_turn_ids(tokenizer, messages, len(calls), prompt.case.get("tools"))
            if bridge is None or len(ids) + len(bridge) + hp.max_new_tokens > hp.max_seq_length:
                break
            made += calls
            ids += bridge
            trained += [0] * len(bridge)
            generated = _continue(model, tokenizer, ids, hp, device, greedy)
            ids += generated
            trained += [1] * len(generated)
            text = tokenizer.decode(generated, skip_special_tokens=True).strip()
        episodes.append((ids, trained))
        answers.append({"text": text, "tool_calls": made + extract_tool_calls(text)} if made else text)
    width = max(len(ids) for ids, _ in episodes)
    padded = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in episodes], device=device)
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in episodes], device=device)
    loss_mask = torch.tensor([trained + [0] * (width - length - len(trained)) for _, trained in episodes], device=device)
    return padded, attention, loss_mask, answers


VALIDATION_BATCH = 8  # validation cases answered in one left-padded generate() call


def validation_reward(model: Any, tokenizer: Any, prompts: list[GrpoPrompt], hp: LocalHyperparameters, device: str, weights: dict[str, float]) -> float:
    """The mean reward of the policy's greedy answers to the validation cases: what the job keeps the best adapter by.
    Greedy (not sampled) so that it measures the policy's most likely answer, the one evaluate and a deployment see,
    and so that it needs no random numbers (the sampling of the next step is unchanged by a validation). A case with
    tool_results plays its whole episode (sample_episodes, greedy); the others are answered in left-padded batches."""
    import torch

    rewards: list[float] = []
    plain = [p for p in prompts if not (p.case.get("tool_results") and hp.max_tool_turns)]
    for prompt in prompts:
        if prompt not in plain:
            _, _, _, [answer] = sample_episodes(model, tokenizer, prompt, hp, device, group_size=1, greedy=True)
            rewards.append(reward(answer, prompt.case, weights)[0])
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(plain), VALIDATION_BATCH):
            batch = plain[start : start + VALIDATION_BATCH]
            width = max(len(p.ids) for p in batch)
            ids = torch.tensor([[pad] * (width - len(p.ids)) + p.ids for p in batch], device=device)
            mask = torch.tensor([[0] * (width - len(p.ids)) + [1] * len(p.ids) for p in batch], device=device)
            with torch.no_grad():
                output = model.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=hp.max_new_tokens, pad_token_id=pad, eos_token_id=eos,
                    use_cache=True, **_sampling(hp, greedy=True),
                )
            for prompt, row in zip(batch, output[:, width:].tolist(), strict=True):
                answer = tokenizer.decode(row[: row.index(eos)] if eos in row else row, skip_special_tokens=True).strip()
                rewards.append(reward(answer, prompt.case, weights)[0])
    finally:
        if was_training:
            model.train()
    return sum(rewards) / len(rewards)


def group_loss(
    model: Any, reference: _Reference, ids: Any, mask: Any, prompt_length: int, advantages: list[float], hp: LocalHyperparameters, loss_mask: Any = None
) -> tuple[Any, float]:
    """(the clipped-surrogate loss with the KL penalty, averaged per answer then over the group; the mean KL per
    answer token) for one group. `loss_mask` [group, positions after the prompt] picks the tokens the model generated
    (default: every attended position after the prompt); tool results and padding are left out."""
    import torch

    # The reference first: scoring it may swap the LoRA weights in place, which must not happen between the
    # policy's forward pass and its backward pass.
    reference_logps = reference.logps(ids, mask, prompt_length)
    policy = completion_logps(model, ids, mask, prompt_length)
    old = policy.detach()  # the policy that sampled: one update per sample
    token_mask = (mask[:, prompt_length:] if loss_mask is None else loss_mask).float()
    lengths = token_mask.sum(dim=1).clamp(min=1.0)
    advantage = torch.tensor(advantages, device=policy.device, dtype=policy.dtype).unsqueeze(1)
    ratio = torch.exp(policy - old)
    clipped = torch.clamp(ratio, 1.0 - hp.clip_epsilon, 1.0 + hp.clip_epsilon)
    surrogate = torch.minimum(ratio * advantage, clipped * advantage)
    log_ratio = reference_logps - policy
    kl = torch.exp(log_ratio) - log_ratio - 1.0
    per_token = -(surrogate - hp.grpo_beta * kl)
    per_answer = (per_token * token_mask).sum(dim=1) / lengths
    mean_kl = ((kl.detach() * token_mask).sum(dim=1) / lengths).mean().item()
    return per_answer.mean(), mean_kl


def train_grpo(ws: Workspace, job_id: str) -> None:
    """The worker's loop for a GRPO job: claim, load, sample, score, step, checkpoint, save (see the module doc)."""
    import torch
    from transformers import get_scheduler

    from model_customization.providers.local import train as sft

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("GRPO jobs run in one process; start them without a multi-process launcher.")
    jobs = ws.store.jobs
    job = jobs.get(job_id)
    assert job is not None, job_id
    hp = parse_hyperparameters(job["hyperparameters"])
    if not sft.claim_for_worker(jobs, job_id):
        return
    device, dtype = sft.pick_device(hp)
    jobs.add_event(job_id, f"worker started (pid {os.getpid()}, {device}, {str(dtype).removeprefix('torch.')}, {torch.get_num_threads()} threads)")
    torch.manual_seed(hp.seed)
    base_dir = ensure_base_model(ws.settings, job["base_model"])
    tokenizer = sft.load_tokenizer(base_dir, hp, job["base_model"])
    # An LLM judge, when the job has one, scores each group's answers beside the checks (providers/local/grpo_judge.py).
    from model_customization.providers.local.grpo_judge import GroupJudge, with_checks

    judge = GroupJudge.open(ws, job)
    weights = reward_weights(hp.reward_weights, judge_weight=hp.judge_weight if judge else None)
    prompts, too_long = _prompts(tokenizer, read_split(ws, job["dataset_id"], "train"), hp)
    if too_long:
        jobs.add_event(job_id, f"{too_long} cases skipped: prompt plus max_new_tokens={hp.max_new_tokens} exceeds max_seq_length={hp.max_seq_length}", "warning")
    if not prompts:
        raise UserError(f"No training case fits: every prompt plus max_new_tokens={hp.max_new_tokens} exceeds max_seq_length={hp.max_seq_length}. Raise max_seq_length or lower max_new_tokens.")
    from model_customization.datasets.build import get_dataset

    has_validation = get_dataset(ws, job["dataset_id"])["counts"].get("validation", 0) > 0
    validation_prompts = _prompts(tokenizer, read_split(ws, job["dataset_id"], "validation"), hp)[0] if has_validation else []
    if judge is not None:  # validation is by the checks alone (see with_checks): cases without one cannot tell steps apart
        validation_prompts = with_checks(ws, job_id, validation_prompts, weights)

    model = sft.load_for_training(base_dir, hp, device, dtype)
    start_weights = None
    if job.get("continue_from"):
        sft._continue_from(ws, model, job["continue_from"])
        start_weights = {name: p.detach().clone() for name, p in sft._trainable(model).items()}
        jobs.add_event(job_id, f"starting from the adapter of {job['continue_from']}, which is also the KL reference")
    reference = _Reference(model, start_weights)

    steps_per_epoch = math.ceil(len(prompts) / hp.batch_size)
    total_steps = steps_per_epoch * hp.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hp.learning_rate, weight_decay=0.0)
    schedule = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[hp.lr_scheduler]
    scheduler = get_scheduler(schedule, optimizer, num_warmup_steps=int(total_steps * hp.warmup_fraction), num_training_steps=total_steps)

    position, best = sft.Position(), None
    checkpoint = sft.latest_checkpoint(ws, job_id)
    if checkpoint is not None:
        position, best = sft._restore_checkpoint(checkpoint, model, optimizer, scheduler)
        jobs.drop_metrics_after(job_id, position.step)
        jobs.add_event(job_id, f"resumed from checkpoint at step {position.step} (epoch {position.epoch + 1}, batch {position.batch_index})")
    jobs.update(job_id, total_steps=total_steps, step=position.step, epoch=position.epoch + position.batch_index / steps_per_epoch)
    jobs.add_event(
        job_id,
        f"GRPO on {len(prompts)} prompts x {hp.group_size} answers, {hp.epochs} epochs, {total_steps} steps on {device}; "
        f"reward: the suite's checks, weighted {', '.join(f'{k} {v:g}' for k, v in weights.items() if v > 0)}",
    )
    # The guard against a policy that collapses (RL on few prompts can, suddenly): the validation cases are answered
    # greedily at the start and every `interval` steps, and the adapter of the best validation step is the one kept.
    interval = hp.eval_interval_steps or max(1, round(total_steps / 10))
    if validation_prompts and position.step == 0:
        jobs.add_event(job_id, f"validation: {len(validation_prompts)} held cases answered greedily at the start and every {interval} steps; the adapter of the best step is kept")
    elif not validation_prompts and position.step == 0:
        jobs.add_event(job_id, "no validation cases (validation_fraction is 0 or the suite is small): nothing guards against a collapse, and the last step's adapter is kept", "warning")

    def validate() -> bool:
        """Score the validation cases, remember the best step's adapter; True when early stopping says stop."""
        nonlocal best
        value = validation_reward(model, tokenizer, validation_prompts, hp, device, weights)
        jobs.add_metric(job_id, step=position.step, epoch=position.epoch + position.batch_index / steps_per_epoch, validation_reward=value)
        improved = position.best_validation_reward is None or value > position.best_validation_reward
        if position.best_validation_reward is None or value >= position.best_validation_reward:  # a tie goes to the later step
            position.best_validation_reward, position.best_step = value, position.step
            best = {k: v.detach().cpu().clone() for k, v in sft._trainable(model).items()}
        position.validations_without_improvement = 0 if improved else position.validations_without_improvement + 1
        return bool(hp.early_stopping_patience and position.validations_without_improvement >= hp.early_stopping_patience)

    if validation_prompts and position.step == 0:
        validate()

    model.train()
    started, steps_this_run = time.time(), 0
    mean = spread = None
    order = list(range(len(prompts)))
    while position.epoch < hp.epochs:
        batches = sft.epoch_batches(order, hp.batch_size, hp.seed, position.epoch, lambda i: len(prompts[i].ids))
        while position.batch_index < len(batches):
            batch = batches[position.batch_index]
            step_started = time.perf_counter()
            torch.manual_seed(step_seed(hp.seed, position.step))
            all_rewards: list[float] = []
            loss_sum = kl_sum = 0.0
            tokens = 0
            for index in batch:
                prompt = prompts[index]
                ids, mask, loss_mask, answers = sample_episodes(model, tokenizer, prompt, hp, device)
                if judge is None:
                    rewards, judged = [reward(answer, prompt.case, weights)[0] for answer in answers], True
                else:
                    rewards, judged = judge.rewards(position.step + 1, index, prompt.case, answers, weights)
                advantages = group_advantages(rewards) if judged else [0.0] * len(rewards)  # an unscored group teaches nothing
                loss, kl = group_loss(model, reference, ids, mask, len(prompt.ids), advantages, hp, loss_mask)
                (loss / len(batch)).backward()
                loss_sum += loss.item()
                kl_sum += kl
                all_rewards += rewards
                tokens += int(mask.sum().item())
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if judge is not None:
                judge.step_done()
            position.step += 1
            position.batch_index += 1
            steps_this_run += 1
            mean = sum(all_rewards) / len(all_rewards)
            spread = math.sqrt(sum((r - mean) ** 2 for r in all_rewards) / len(all_rewards))
            train_loss = loss_sum / len(batch)
            fractional_epoch = position.epoch + position.batch_index / len(batches)
            elapsed = time.time() - started
            jobs.record_step(
                job_id,
                {
                    "step": position.step, "epoch": fractional_epoch, "train_loss": train_loss, "learning_rate": scheduler.get_last_lr()[0],
                    "tokens_per_second": tokens / (time.perf_counter() - step_started), "reward_mean": mean, "reward_std": spread, "kl": kl_sum / len(batch),
                },
                step=position.step, epoch=fractional_epoch, train_loss=train_loss, eta_seconds=elapsed / steps_this_run * (total_steps - position.step),
            )
            at_epoch_end = position.batch_index >= len(batches)
            if validation_prompts and (position.step % interval == 0 or position.step == total_steps):
                position.stopped_early = validate()
                if position.stopped_early:
                    break
            if position.step % hp.checkpoint_interval_steps == 0 and not at_epoch_end:
                sft._save_checkpoint(ws, job_id, model, optimizer, scheduler, position, best)
        if position.stopped_early:
            jobs.add_event(
                job_id, f"early stopping at step {position.step}: {hp.early_stopping_patience} validations without a better reward "
                f"(best {position.best_validation_reward:.3f} at step {position.best_step})",
            )
            break
        last = f": reward {mean:.3f} (spread {spread:.3f}) at its last step" if mean is not None and spread is not None else ""
        jobs.add_event(job_id, f"epoch {position.epoch + 1}/{hp.epochs} done{last}")
        position.epoch += 1
        position.batch_index = 0
        if position.epoch < hp.epochs:
            sft._save_checkpoint(ws, job_id, model, optimizer, scheduler, position, best, epoch_end=True)

    if best is not None and position.best_step is not None and position.best_step != position.step:
        with torch.no_grad():
            for name, param in sft._trainable(model).items():
                param.copy_(best[name].to(param.device))
        what = "the starting adapter" if position.best_step == 0 else f"the adapter of step {position.best_step}"
        jobs.add_event(
            job_id, f"keeping {what}: its validation reward {position.best_validation_reward:.3f} is the best seen "
            f"(step {position.step} scored lower)",
        )
    elif best is not None:
        jobs.add_event(job_id, f"keeping the last step's adapter: its validation reward {position.best_validation_reward:.3f} is the best seen")
    model_id = sft._save_adapter(ws, job, model, tokenizer, hp)
    jobs.add_event(job_id, f"peak memory of the worker: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if jobs.finish(job_id, "succeeded", model_id=model_id, eta_seconds=0.0):
        from model_customization.datasets.build import get_dataset

        if judge is not None:
            judge.finish()

        cases = get_dataset(ws, job["dataset_id"])["counts"].get("test", 0)
        advice = f"; evaluate(dataset_id={job['dataset_id']!r}, split='test', models=[base, {model_id!r}]) scores the {cases} held-out cases" if cases else ""
        jobs.add_event(job_id, f"succeeded in {time.time() - started:.0f} s: model {model_id}{advice}")
        sft._keep_epoch_adapters_only(sft.checkpoints_dir(ws, job_id), keep_newest=0)
