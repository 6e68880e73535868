"""What a local job minimises: supervised fine-tuning (SFT) on assistant tokens, DPO on preference pairs, or KTO on
sessions labelled desirable or undesirable.

All compute the language-model head only at the positions that carry a target, not at every position of the
padded batch: with a 49k-token vocabulary the head is a fifth of SmolLM2's compute and its logits the largest
activation, and most positions of a chat (system, user, tool text, padding) are never scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model_customization.datasets.examples import example_tools, to_plain_chat
from model_customization.errors import UserError
from model_customization.providers.local.chat import TokenizedExample, tokenize_chat
from model_customization.providers.local.hyperparameters import LocalHyperparameters


def _targets(example: TokenizedExample) -> int:
    """Tokens that are predicted and scored (the first token has nothing before it to predict it)."""
    return sum(1 for label in example.labels[1:] if label != -100)


def _collate(batch: list[TokenizedExample], pad_id: int, device: str):
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return ids.to(device), labels.to(device), mask.to(device)


def _scored_logits(model: Any, batch: list[TokenizedExample], pad_id: int, device: str):
    """(logits at scored positions [n, vocab] in float32, their targets [n], their row in the batch [n])."""
    import torch

    ids, labels, mask = _collate(batch, pad_id, device)
    targets = labels[:, 1:]
    scored = targets != -100
    rows = torch.arange(len(batch), device=ids.device).unsqueeze(1).expand_as(targets)[scored]
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        # Heads with extra scaling: let the model compute its own logits.
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1][scored]
    else:
        hidden = base.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = base.get_output_embeddings()(hidden[:, :-1][scored])
    return logits.float(), targets[scored], rows


class SupervisedObjective:
    """Mean cross-entropy over every assistant token of a batch (tokens weigh equally, not examples)."""

    unit = "examples"

    def __init__(self, tokenizer: Any, hp: LocalHyperparameters, device: str) -> None:
        self.tokenizer, self.hp, self.device = tokenizer, hp, device
        self.pad_id = tokenizer.pad_token_id

    def prepare(self, rows: list[dict[str, Any]]) -> tuple[list[TokenizedExample], int, int]:
        """(examples with at least one scored token, how many were truncated, how many were skipped)."""
        items, truncated, skipped = [], 0, 0
        for row in rows:
            example = tokenize_chat(self.tokenizer, to_plain_chat(row["messages"]), self.hp.max_seq_length, example_tools(row))
            truncated += example.truncated
            if _targets(example):
                items.append(example)
            else:
                skipped += 1
        return items, truncated, skipped

    def length(self, example: TokenizedExample) -> int:
        return len(example.input_ids)

    def weight(self, batch: list[TokenizedExample]) -> int:
        return sum(_targets(e) for e in batch)

    def prepare_reference(self, model: Any, items: list[Any], batch_size: int) -> None:
        """SFT needs no reference model."""

    def loss(self, model: Any, batch: list[TokenizedExample]):
        """(mean token loss, real tokens through the model)."""
        import torch.nn.functional as F

        logits, targets, _ = _scored_logits(model, batch, self.pad_id, self.device)
        return F.cross_entropy(logits, targets), sum(len(e.input_ids) for e in batch)

    def validation_loss(self, model: Any, items: list[TokenizedExample], batch_size: int) -> float:
        import torch

        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                loss, _ = self.loss(model, batch)
                n = self.weight(batch)
                total += loss.item() * n
                count += n
        model.train()
        return total / max(count, 1)


@dataclass
class PreferencePair:
    chosen: TokenizedExample
    rejected: TokenizedExample
    reference_chosen: float | None = None  # log-probability of each reply under the starting model
    reference_rejected: float | None = None


class PreferenceObjective:
    """Direct Preference Optimisation: raise the preferred reply's likelihood over the other one's, relative to the
    model the job started from (its log-probabilities are computed once, before the first step)."""

    unit = "preference pairs"

    def __init__(self, tokenizer: Any, hp: LocalHyperparameters, device: str) -> None:
        self.tokenizer, self.hp, self.device = tokenizer, hp, device
        self.pad_id = tokenizer.pad_token_id

    def _tokenize(self, context: list[dict[str, Any]], reply: dict[str, Any], tools: list[dict[str, Any]] | None = None) -> TokenizedExample:
        # Only the reply is scored: earlier assistant turns of the context get weight 0.
        messages = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in to_plain_chat(context)]
        messages += [{**m, "weight": 1} for m in to_plain_chat([reply])]
        return tokenize_chat(self.tokenizer, messages, self.hp.max_seq_length, tools)

    def prepare(self, rows: list[dict[str, Any]]) -> tuple[list[PreferencePair], int, int]:
        items, truncated, skipped = [], 0, 0
        for row in rows:
            if "preferred_output" not in row:
                raise UserError("DPO needs a preference dataset (input, preferred_output, non_preferred_output); build one with method='dpo'.")
            context, tools = row["input"]["messages"], example_tools(row["input"])
            pair = PreferencePair(self._tokenize(context, row["preferred_output"][0], tools), self._tokenize(context, row["non_preferred_output"][0], tools))
            truncated += pair.chosen.truncated or pair.rejected.truncated
            if _targets(pair.chosen) and _targets(pair.rejected):
                items.append(pair)
            else:
                skipped += 1
        return items, truncated, skipped

    def length(self, pair: PreferencePair) -> int:
        return max(len(pair.chosen.input_ids), len(pair.rejected.input_ids))

    def weight(self, batch: list[PreferencePair]) -> int:
        return len(batch)

    def _sequence_logps(self, model: Any, examples: list[TokenizedExample]):
        import torch
        import torch.nn.functional as F

        logits, targets, rows = _scored_logits(model, examples, self.pad_id, self.device)
        token_logps = -F.cross_entropy(logits, targets, reduction="none")
        return torch.zeros(len(examples), device=token_logps.device).index_add(0, rows, token_logps)

    def _scored_twice(self, item: PreferencePair) -> tuple[TokenizedExample, TokenizedExample]:
        """The two sequences of an item whose log-probabilities under the starting model the loss needs."""
        return item.chosen, item.rejected

    def _keep_reference(self, item: PreferencePair, first: float, second: float) -> None:
        item.reference_chosen, item.reference_rejected = first, second

    def prepare_reference(self, model: Any, items: list[Any], batch_size: int) -> None:
        """Score each item's two sequences once under the model the job starts from (the reference)."""
        import torch

        model.eval()
        with torch.no_grad():
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                pairs = [self._scored_twice(item) for item in batch]
                logps = self._sequence_logps(model, [first for first, _ in pairs] + [second for _, second in pairs]).tolist()
                for i, item in enumerate(batch):
                    self._keep_reference(item, logps[i], logps[len(batch) + i])
        model.train()

    def loss(self, model: Any, batch: list[PreferencePair]):
        import torch
        import torch.nn.functional as F

        logps = self._sequence_logps(model, [p.chosen for p in batch] + [p.rejected for p in batch])
        n = len(batch)
        reference = torch.tensor([p.reference_chosen - p.reference_rejected for p in batch], device=logps.device)
        margin = (logps[:n] - logps[n:]) - reference
        tokens = sum(len(p.chosen.input_ids) + len(p.rejected.input_ids) for p in batch)
        return -F.logsigmoid(self.hp.dpo_beta * margin).mean(), tokens

    def validation_loss(self, model: Any, items: list[PreferencePair], batch_size: int) -> float:
        import torch

        model.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                total += self.loss(model, batch)[0].item() * len(batch)
        model.train()
        return total / max(len(items), 1)


@dataclass
class LabelledExample:
    session: TokenizedExample  # the whole session, its assistant turns scored
    mismatched: TokenizedExample  # its prompt followed by another example's completion: for the KL estimate
    desirable: bool
    reference: float | None = None  # log-probability of the scored tokens under the starting model
    reference_mismatched: float | None = None


def _split_at_completion(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(prompt, completion): the completion starts at the first assistant turn that is trained (weight not 0)."""
    first = next((i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1) != 0), len(messages))
    return messages[:first], messages[first:]


class UnpairedPreferenceObjective(PreferenceObjective):
    """Kahneman-Tversky Optimisation (Ethayarajh et al., 2024) on sessions labelled desirable or undesirable.

    The implied reward of an example is r = log pi(y|x) - log pi_ref(y|x), summed over its trained assistant tokens,
    where pi_ref is the model the job started from (scored once, before the first step, as for DPO). The reference
    point z0 estimates KL(pi || pi_ref) from mismatched pairs: each example's prompt followed by another example's
    completion (a fixed, seeded pairing, so that their reference log-probabilities too are computed once), averaged
    over the batch under the current model without gradient, and clamped at 0. The loss of an example is
    desirable_weight * (1 - sigmoid(beta (r - z0))) or undesirable_weight * (1 - sigmoid(beta (z0 - r))), averaged
    over the batch, as in TRL's KTOTrainer. While the model equals the reference every term is half its weight.
    """

    unit = "labelled sessions"

    def prepare(self, rows: list[dict[str, Any]]) -> tuple[list[LabelledExample], int, int]:  # type: ignore[override]
        import random

        kept: list[tuple[list[dict[str, Any]], list[dict[str, Any]], TokenizedExample, bool, list[dict[str, Any]] | None]] = []
        truncated, skipped = 0, 0
        for row in rows:
            if not isinstance(row.get("label"), bool) or "messages" not in row:
                raise UserError("KTO needs sessions labelled desirable or undesirable (messages and a true/false label); build a dataset with method='kto'.")
            messages, tools = to_plain_chat(row["messages"]), example_tools(row)
            session = tokenize_chat(self.tokenizer, messages, self.hp.max_seq_length, tools)
            truncated += session.truncated
            if _targets(session):
                kept.append((*_split_at_completion(messages), session, row["label"], tools))
            else:
                skipped += 1
        # Pair each prompt with the completion of the next example in a seeded shuffle (a derangement for n > 1).
        order = list(range(len(kept)))
        random.Random(self.hp.seed).shuffle(order)
        partner = {order[k]: order[(k + 1) % len(order)] for k in range(len(order))}
        items = []
        for index, (prompt, _, session, desirable, tools) in enumerate(kept):
            other_completion = kept[partner[index]][1]
            # The prompt keeps its own tools: the mismatch is only in the completion.
            mismatched = tokenize_chat(self.tokenizer, prompt + other_completion, self.hp.max_seq_length, tools)
            items.append(LabelledExample(session, mismatched, desirable))
        return items, truncated, skipped

    def describe(self, items: list[LabelledExample]) -> str:
        """A note on the balance of labels: the paper advises desirable_weight x desirable between 1 and 4/3 times
        undesirable_weight x undesirable."""
        desirable = sum(1 for e in items if e.desirable)
        undesirable = len(items) - desirable
        note = f"{desirable} desirable and {undesirable} undesirable sessions (weights {self.hp.desirable_weight:g} and {self.hp.undesirable_weight:g})"
        if desirable and undesirable:
            ratio = desirable * self.hp.desirable_weight / (undesirable * self.hp.undesirable_weight)
            if not 1 <= ratio <= 4 / 3:
                note += (
                    f"; weighted they stand {ratio:.2f} to 1, outside the 1 to 4/3 the KTO paper advises: e.g. "
                    f"undesirable_weight={desirable * self.hp.desirable_weight / undesirable:.3g} balances them"
                )
        else:
            note += "; with one kind only, KTO learns from that kind alone"
        return note

    def length(self, example: LabelledExample) -> int:
        return max(len(example.session.input_ids), len(example.mismatched.input_ids))

    def weight(self, batch: list[LabelledExample]) -> int:
        return len(batch)

    def _scored_twice(self, item: LabelledExample) -> tuple[TokenizedExample, TokenizedExample]:  # type: ignore[override]
        return item.session, item.mismatched

    def _keep_reference(self, item: LabelledExample, first: float, second: float) -> None:  # type: ignore[override]
        item.reference, item.reference_mismatched = first, second

    def loss(self, model: Any, batch: list[LabelledExample]):
        import torch

        logps = self._sequence_logps(model, [e.session for e in batch])
        with torch.no_grad():
            mismatched = self._sequence_logps(model, [e.mismatched for e in batch])
        device = logps.device
        rewards = logps - torch.tensor([e.reference for e in batch], device=device)
        scored = torch.tensor([_targets(e.mismatched) > 0 for e in batch], device=device)  # a prompt may fill the window
        kl = (mismatched - torch.tensor([e.reference_mismatched for e in batch], device=device))[scored]
        z0 = (kl.mean() if len(kl) else torch.zeros((), device=device)).clamp(min=0)
        desirable = torch.tensor([e.desirable for e in batch], device=device)
        beta = self.hp.kto_beta
        losses = torch.where(
            desirable,
            self.hp.desirable_weight * (1 - torch.sigmoid(beta * (rewards - z0))),
            self.hp.undesirable_weight * (1 - torch.sigmoid(beta * (z0 - rewards))),
        )
        tokens = sum(len(e.session.input_ids) + len(e.mismatched.input_ids) for e in batch)
        return losses.mean(), tokens


def for_method(method: str, tokenizer: Any, hp: LocalHyperparameters, device: str):
    if method == "sft":
        return SupervisedObjective(tokenizer, hp, device)
    if method == "dpo":
        return PreferenceObjective(tokenizer, hp, device)
    if method == "kto":
        return UnpairedPreferenceObjective(tokenizer, hp, device)
    raise UserError(f"Unknown training method {method!r}; use 'sft', 'dpo' or 'kto'.")
