"""Together AI fine-tuning jobs (the work behind provider.TogetherProvider): availability, quote, upload, creation,
and following the job into the ledger.

Availability, before anything is uploaded: the key (TOGETHER_API_KEY), the base model among the models Together
fine-tunes (GET /fine-tunes/models/supported), and at quote time the hyperparameters against that model's limits
(GET /fine-tunes/models/limits). All three are read-only calls.

Idempotency: Together's jobs carry no metadata, so the idempotency key travels in the one free-text field a job keeps
and GET /fine-tunes returns: its `suffix`. We append a short tag derived from the key ("mc-" + 8 hex digits of its
sha256) to the caller's suffix; the tag also ends up in the tuned model's name, which is how a person can tell our
jobs apart on Together's dashboard. A retried start after a lost reply lists the jobs and adopts the one whose suffix
(or output name) carries the tag, instead of creating a second. The other fields a listed job carries (training file,
model, hyperparameters) would not tell two jobs on the same data with different settings apart reliably: Together
rewrites some of them ('max' batch size becomes a number).

Events: Together lists a job's events oldest first, without ids and without paging; the number already recorded is
kept in the job's details, and only the ones after it become job events. Metrics come from GET /fine-tunes/{id}/metrics
(W&B-style keys such as train/global_step, train/loss, eval/loss). Prices on a job are nanodollars.
"""

from __future__ import annotations

import hashlib
from typing import Any

from model_customization.errors import NotFoundError, UserError
from model_customization.providers.base import apply_remote_status, idempotency_key, merge_details, record_metrics, register_tuned_model
from model_customization.providers.send_once import NoReply, send_at_most_once
from model_customization.providers.together.client import api_message, refusal, retry_delay, retryable_errors, sdk, together_client
from model_customization.providers.together.files import UploadResult, ensure_uploaded, known_upload, render_split
from model_customization.providers.together.hyperparameters import METHODS, parse_together_hyperparameters
from model_customization.providers.together.pricing import PRICES_READ_ON, PRICES_SOURCE, usd_per_million_tokens
from model_customization.providers.together.provider import DEFAULT_BASE_MODEL, TOKEN_ENCODING, TogetherProvider
from model_customization.workspace import Workspace

TAG_PREFIX = "mc-"
MAX_SUFFIX = 40  # Together's limit on a job's suffix
MAX_CREATE_ATTEMPTS = 4
POLL_TIMEOUT_SECONDS = 20.0
NANODOLLARS = 1_000_000_000
EVENT_LEVELS = {"warning": "warning", "error": "error", "legacy_iwarning": "warning", "legacy_ierror": "error"}
NOT_STARTED = ("pending", "queued")


def key_tag(key: str) -> str:
    """The short tag of an idempotency key that a job's suffix carries."""
    return TAG_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:8]


def _output_name(remote: Any) -> str | None:
    """The tuned model's name on a job (the SDK names the field x_model_output_name: pydantic reserves model_)."""
    return getattr(remote, "x_model_output_name", None) or getattr(remote, "model_output_name", None)


def _job_suffix(user_suffix: str | None, key: str) -> str:
    tag = key_tag(key)
    return f"{user_suffix}-{tag}" if user_suffix else tag


def _carries_tag(remote: Any, tag: str) -> bool:
    suffix = getattr(remote, "suffix", None) or ""
    output = _output_name(remote) or ""
    return suffix == tag or suffix.endswith("-" + tag) or f"-{tag}" in output or output.endswith(tag)


# --- provider options (suffix, seed, use_validation) ------------------------------------------------------------------
def _options(job: dict[str, Any]) -> dict[str, Any]:
    raw = dict(((job.get("details") or {}).get("options")) or {})
    options: dict[str, Any] = {"use_validation": raw.get("use_validation", True)}
    if not isinstance(options["use_validation"], bool):
        raise UserError("use_validation must be true or false.")
    longest = MAX_SUFFIX - len(TAG_PREFIX) - 9  # "-" + the tag
    suffix = raw.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not 1 <= len(suffix) <= longest or not suffix.replace("-", "").replace("_", "").isalnum()):
        raise UserError(
            f"suffix must be 1 to {longest} letters, digits, '-' or '_' on Together (it becomes part of the tuned model's name, "
            f"followed by a tag of ours that makes a retried start find its job); got {suffix!r}."
        )
    options["suffix"] = suffix
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2_147_483_647):
        raise UserError(f"seed must be a whole number from 0 to 2147483647; got {seed!r}.")
    options["seed"] = seed
    for name in ("metadata", "integrations"):
        if raw.get(name):
            raise UserError(f"Together jobs take no {name}; drop it (Together takes suffix, seed and use_validation).")
    return options


# --- the body of POST /fine-tunes ---------------------------------------------------------------------------------------
def training_method(method: str, hp: dict[str, Any]) -> dict[str, Any]:
    if method == "sft":
        return {"method": "sft", "train_on_inputs": hp.get("train_on_inputs", "auto")}
    body: dict[str, Any] = {"method": "dpo", "dpo_beta": hp.get("dpo_beta") or 0.1}
    for name in ("rpo_alpha", "simpo_gamma"):
        if hp.get(name) is not None:
            body[name] = hp[name]
    return body


def training_type(hp: dict[str, Any], limits: Any | None) -> dict[str, Any]:
    if not hp.get("lora", True):
        return {"type": "Full"}
    rank = hp.get("lora_r") or _limit(limits, "lora_training", "max_rank") or 8
    return {
        "type": "Lora",
        "lora_r": int(rank),
        "lora_alpha": int(hp.get("lora_alpha") or 2 * rank),
        "lora_dropout": float(hp.get("lora_dropout") or 0.0),
        "lora_trainable_modules": hp.get("lora_trainable_modules") or "all-linear",
    }


def _lr_scheduler(hp: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"min_lr_ratio": hp.get("min_lr_ratio", 0.0)}
    if hp.get("lr_scheduler") == "cosine":
        args["num_cycles"] = hp.get("scheduler_num_cycles", 0.5)
    return {"lr_scheduler_type": hp.get("lr_scheduler", "linear"), "lr_scheduler_args": args}


def _limit(limits: Any | None, group: str, name: str) -> Any:
    section = getattr(limits, group, None) if limits is not None else None
    return getattr(section, name, None) if section is not None else None


def check_limits(base_model: str, method: str, hp: dict[str, Any], limits: Any) -> None:
    """Refuse hyperparameters outside the base model's published limits (GET /fine-tunes/models/limits)."""
    problems = []
    if hp["n_epochs"] > limits.max_num_epochs:
        problems.append(f"n_epochs {hp['n_epochs']} is above its maximum {limits.max_num_epochs}")
    if not limits.min_learning_rate <= hp["learning_rate"] <= limits.max_learning_rate:
        problems.append(f"learning_rate {hp['learning_rate']} is outside {limits.min_learning_rate}-{limits.max_learning_rate}")
    if hp["n_evals"] > limits.max_num_evals:
        problems.append(f"n_evals {hp['n_evals']} is above its maximum {limits.max_num_evals}")
    group = "lora_training" if hp["lora"] else "full_training"
    section = getattr(limits, group, None)
    if section is None:
        kind = "LoRA" if hp["lora"] else "full"
        other = "lora false (full fine-tuning)" if hp["lora"] else "lora true"
        raise UserError(f"Together does not offer {kind} fine-tuning of {base_model}; set {other}, or choose another base model.")
    largest = section.max_batch_size_dpo if method == "dpo" else section.max_batch_size
    if hp["batch_size"] != "max" and not section.min_batch_size <= hp["batch_size"] <= largest:
        problems.append(f"batch_size {hp['batch_size']} is outside {section.min_batch_size}-{largest} for {method} {'LoRA' if hp['lora'] else 'full'} training")
    if hp["lora"]:
        if hp.get("lora_r") and hp["lora_r"] > section.max_rank:
            problems.append(f"lora_r {hp['lora_r']} is above its maximum rank {section.max_rank}")
        modules = [m.strip() for m in hp.get("lora_trainable_modules", "all-linear").split(",") if m.strip()]
        unknown = [m for m in modules if m != "all-linear" and section.target_modules and m not in section.target_modules]
        if unknown:
            problems.append(f"lora_trainable_modules {', '.join(unknown)} are not among {', '.join(section.target_modules)} (or 'all-linear')")
    if problems:
        raise UserError(f"Together's limits for {base_model} (GET /fine-tunes/models/limits): {'; '.join(problems)}. Change those hyperparameters and start again.")


def _error_text(remote: Any) -> str | None:
    for event in reversed(list(getattr(remote, "events", None) or [])):
        if getattr(event, "type", None) == "job_error" or getattr(event, "level", None) == "error":
            return event.message
    return None


def _number(row: dict[str, Any], *names: str) -> float | None:
    for name in names:
        value = row.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def metric_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """One of Together's metric records as our metric row (None without a step)."""
    step = _number(row, "train/global_step", "global_step", "step")
    if step is None:
        return None
    return {
        "step": int(step),
        "epoch": _number(row, "train/epoch", "epoch"),
        "train_loss": _number(row, "train/loss", "train_loss", "loss"),
        "validation_loss": _number(row, "eval/loss", "eval_loss", "valid_loss", "validation_loss"),
        "learning_rate": _number(row, "train/learning_rate", "learning_rate", "lr"),
    }


class TogetherJobs:
    """A fine-tuning job's life cycle at Together, in the order providers/base.py gives."""

    name = TogetherProvider.name
    STATUS_MAP = TogetherProvider.STATUS_MAP

    # --- before any spending --------------------------------------------------------------------------------------
    def check_available(self, ws: Workspace, base_model: str | None, method: str) -> str:
        together = sdk()  # a missing SDK is a UserError naming the extra

        if method not in METHODS:
            raise UserError(f"Together jobs take method 'sft' or 'dpo'; got {method!r}.")
        client = together_client()  # a missing key (or SDK) is refused here, first
        model = (base_model or DEFAULT_BASE_MODEL).strip()
        try:
            supported = client.get("/fine-tunes/models/supported", cast_to=object)
        except together.APIError as error:
            raise refusal("list the models Together fine-tunes", error) from None
        names = [str(name) for name in (supported or {}).get("models", [])] if isinstance(supported, dict) else []
        exact = {name.lower(): name for name in names}
        if model.lower() in exact:
            return exact[model.lower()]
        import difflib

        close = difflib.get_close_matches(model, names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(name) for name in close)}?" if close else ""
        raise UserError(
            f"Together does not fine-tune {model!r} (it is not in GET /fine-tunes/models/supported, which lists {len(names)} models).{hint} "
            f"Use one of those as base_model (e.g. {DEFAULT_BASE_MODEL!r}), or provider 'local'."
        )

    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        return parse_together_hyperparameters(method, raw)

    def model_limits(self, client: Any, base_model: str) -> Any:
        together = sdk()  # a missing SDK is a UserError naming the extra

        try:
            return client.fine_tuning.model_limits(model_name=base_model)
        except together.NotFoundError:
            raise UserError(f"Together publishes no fine-tuning limits for {base_model!r}: it cannot be fine-tuned now. Choose another base model, or provider 'local'.") from None
        except together.APIError as error:
            raise refusal(f"read the fine-tuning limits of {base_model}", error) from None

    def quote(self, ws: Workspace, dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        together = sdk()  # a missing SDK is a UserError naming the extra

        from model_customization.datasets.build import get_dataset, read_split
        from model_customization.datasets.tokens import count_chat_tokens

        client = together_client()
        hp = parse_together_hyperparameters(method, hyperparameters)
        check_limits(base_model, method, hp, self.model_limits(client, base_model))
        train_bytes, train_examples = render_split(ws, dataset_id, "train", method)  # Together's rules, by line

        def tokens(split: str) -> int:
            total = 0
            for row in read_split(ws, dataset_id, split):
                messages = list(row["input"]["messages"]) + list(row["preferred_output"]) + list(row["non_preferred_output"]) if "preferred_output" in row else list(row["messages"])
                total += count_chat_tokens(messages, TOKEN_ENCODING, (row.get("input") or row).get("tools"))
            return total

        train_tokens = tokens("train")
        has_validation = (get_dataset(ws, dataset_id).get("counts") or {}).get("validation", 0) > 0
        validation_tokens = tokens("validation") if has_validation and hp["n_evals"] else 0
        billed = hp["n_epochs"] * train_tokens + hp["n_evals"] * validation_tokens
        rate = usd_per_million_tokens(base_model, method, hp["lora"])
        quote: dict[str, Any] = {
            "provider": "together",
            "model": base_model,
            "method": method,
            "training_type": "LoRA" if hp["lora"] else "full",
            "epochs": hp["n_epochs"],
            "n_evals": hp["n_evals"],
            "train_examples": train_examples,
            "tokens_per_epoch": train_tokens,
            "billed_tokens": billed,
            "tokenizer": f"{TOKEN_ENCODING} (approximate: Together counts with the model's own tokenizer)",
            "usd_per_million_tokens": rate,
            "estimated_cost_usd": round(billed * rate / 1_000_000, 4) if rate is not None else None,
            "prices_read_on": PRICES_READ_ON,
            "prices_source": PRICES_SOURCE,
        }
        if rate is None:
            quote["note"] = f"No price is known for {base_model!r} (its size is not in its name, or it is above 100B): the cost is unknown, and a person must accept it."
        # The same content already on Together: its own estimate is free and read-only, and better than our table.
        file_id = known_upload(ws, client, train_bytes)
        if file_id is not None:
            try:
                estimate = client.fine_tuning.estimate_price(
                    training_file=file_id, model=base_model, n_epochs=hp["n_epochs"], n_evals=hp["n_evals"],
                    training_method=training_method(method, hp), training_type=training_type(hp, None),
                )
            except together.APIError as error:
                quote["together_estimate"] = f"not available ({api_message(error)})"
            else:
                if getattr(estimate, "estimation_available", False):
                    quote["together_estimate"] = {
                        "estimated_total_price": estimate.estimated_total_price,
                        "estimated_train_token_count": estimate.estimated_train_token_count,
                        "allowed_to_proceed": estimate.allowed_to_proceed,
                    }
                    if estimate.allowed_to_proceed is False:
                        raise UserError(
                            f"Together estimates this job at ${estimate.estimated_total_price:.2f}, which this account may not spend "
                            f"(its limit is ${estimate.user_limit:.2f}). Add credit at api.together.ai, or train with provider 'local'."
                        )
                    quote["estimated_cost_usd"] = round(float(estimate.estimated_total_price), 4)
                    quote["billed_tokens"] = int(estimate.estimated_train_token_count or billed)
                    quote["note"] = "Together's own estimate (POST /fine-tunes/estimate-price) for the training file already uploaded."
        return quote

    # --- creating the job -------------------------------------------------------------------------------------------
    def find_existing(self, ws: Workspace, key: str) -> dict[str, Any] | None:
        together = sdk()  # a missing SDK is a UserError naming the extra

        try:
            remote = self._find_by_tag(together_client(), key_tag(key))
        except together.APIError as error:
            raise refusal("list fine-tuning jobs (looking for one made with the same idempotency key)", error) from None
        return self._as_submitted(remote) if remote is not None else None

    @staticmethod
    def _find_by_tag(client: Any, tag: str) -> Any | None:
        """The newest job whose suffix carries this tag and that did not fail or get cancelled; SDK errors pass."""
        candidates = [remote for remote in client.fine_tuning.list().data if _carries_tag(remote, tag)]
        candidates = [remote for remote in candidates if remote.status not in ("error", "cancelled", "cancel_requested")]
        candidates.sort(key=lambda remote: str(remote.created_at or ""), reverse=True)
        return candidates[0] if candidates else None

    @staticmethod
    def _as_submitted(remote: Any) -> dict[str, Any]:
        return {
            "remote_id": remote.id,
            "remote_status": remote.status,
            "details": {"training_file": remote.training_file, "validation_file": remote.validation_file, "suffix": remote.suffix},
        }

    def submit(self, ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
        options = _options(job)  # bad options are refused before anything is uploaded
        method = job["method"]
        if method not in METHODS:
            raise UserError(f"Together jobs take method 'sft' or 'dpo'; got {method!r}.")
        hp = parse_together_hyperparameters(method, job["hyperparameters"] or {})
        client = together_client()
        dataset_id = job["dataset_id"]
        key = job.get("idempotency_key") or idempotency_key(dataset_id, job["base_model"], method, job["hyperparameters"] or {})
        limits = self.model_limits(client, job["base_model"])

        from model_customization.datasets.build import get_dataset

        has_validation = (get_dataset(ws, dataset_id).get("counts") or {}).get("validation", 0) > 0
        if hp["n_evals"] and not (options["use_validation"] and has_validation):
            raise UserError(f"n_evals {hp['n_evals']} needs the dataset's validation split, and {'use_validation is off' if has_validation else f'dataset {dataset_id} has none'}; set n_evals to 0, or rebuild the dataset with a validation split.")
        # Both files are rendered (and checked) before the first byte is sent.
        train_bytes, train_examples = render_split(ws, dataset_id, "train", method)
        validation_rendered = render_split(ws, dataset_id, "validation", method) if options["use_validation"] and has_validation else None

        train = ensure_uploaded(ws, client, train_bytes, f"{dataset_id}-train")
        ws.store.jobs.add_event(job["id"], _upload_event("train", train, train_examples))
        validation: UploadResult | None = None
        if validation_rendered is not None:
            validation = ensure_uploaded(ws, client, validation_rendered[0], f"{dataset_id}-validation")
            ws.store.jobs.add_event(job["id"], _upload_event("validation", validation, validation_rendered[1]))

        suffix = _job_suffix(options["suffix"], key)
        request: dict[str, Any] = {
            "model": job["base_model"],
            "training_file": train.file_id,
            "n_epochs": hp["n_epochs"],
            "learning_rate": hp["learning_rate"],
            "batch_size": hp["batch_size"],
            "lr_scheduler": _lr_scheduler(hp),
            "warmup_ratio": hp["warmup_ratio"],
            "max_grad_norm": hp["max_grad_norm"],
            "weight_decay": hp["weight_decay"],
            "n_checkpoints": hp["n_checkpoints"],
            "n_evals": hp["n_evals"],
            "packing": hp["packing"],
            "suffix": suffix,
            "training_method": training_method(method, hp),
            "training_type": training_type(hp, limits),
        }
        if validation is not None:
            request["validation_file"] = validation.file_id
        if hp.get("max_seq_length"):
            request["max_seq_length"] = hp["max_seq_length"]
        if options["seed"] is not None:
            request["random_seed"] = options["seed"]
        remote = self._create(ws, client, job, request, key_tag(key))
        ws.store.jobs.add_event(job["id"], f"Together job {remote.id} created ({remote.status}); its suffix {suffix!r} carries the idempotency tag")
        return {
            "remote_id": remote.id,
            "remote_status": remote.status,
            "details": {
                "training_file": train.file_id,
                "validation_file": validation.file_id if validation else None,
                "suffix": suffix,
                "training_type": request["training_type"],
            },
        }

    def _create(self, ws: Workspace, client: Any, job: dict[str, Any], request: dict[str, Any], tag: str) -> Any:
        together = sdk()  # a missing SDK is a UserError naming the extra
        from together.types.fine_tuning_list_response import Data as TruncatedJob

        creator = client.with_options(max_retries=0)  # a lost reply may hide a created job: look before asking again
        transient = retryable_errors()

        def send() -> Any:
            try:
                return creator.post("/fine-tunes", body=request, cast_to=TruncatedJob)
            except transient:
                raise
            except together.APIError as error:
                raise refusal("create the fine-tuning job", error) from None

        def look() -> Any | None:
            try:
                return self._find_by_tag(client, tag)
            except transient:
                raise
            except together.APIError as error:
                raise refusal("list fine-tuning jobs (looking for one made by the interrupted try)", error) from None

        def failed_try(error: BaseException, wait: float) -> None:
            ws.store.jobs.add_event(job["id"], f"creating the Together job failed ({api_message(error)}); trying again in {wait:.1f}s", "warning")

        try:
            remote, found_earlier = send_at_most_once(send, look, attempts=MAX_CREATE_ATTEMPTS, transient=transient, delay=retry_delay, on_transient=failed_try)
        except NoReply as failure:
            raise UserError(
                f"Could not create the Together job after {MAX_CREATE_ATTEMPTS} tries "
                f"({api_message(failure.last_error) if failure.last_error else 'no reply'}). "
                "No duplicate was made: check_job or a repeated start_job finds the job if one of the tries arrived."
            ) from None
        if found_earlier:
            ws.store.jobs.add_event(job["id"], f"found Together job {remote.id}, created by an earlier try whose reply was lost")
        return remote

    # --- following the job ------------------------------------------------------------------------------------------
    def refresh(self, ws: Workspace, job: dict[str, Any]) -> None:
        together = sdk()  # a missing SDK is a UserError naming the extra

        remote_id = job.get("remote_id")
        if not remote_id:
            raise UserError(f"Job {job['id']} has no Together job id yet: it was not submitted.")
        # One quick SDK retry and a short timeout: a poll that still fails is retried by the orchestrator with
        # back-off (TransientError), and the job keeps its last known state meanwhile.
        client = together_client().with_options(max_retries=1, timeout=POLL_TIMEOUT_SECONDS)
        try:
            remote = client.fine_tuning.retrieve(remote_id)
            events = list(client.fine_tuning.list_events(remote_id).data or [])
            started = remote.status not in NOT_STARTED
            metrics = list(client.fine_tuning.list_metrics(remote_id).metrics or []) if started else []
            checkpoints = list(client.fine_tuning.list_checkpoints(remote_id).data or []) if started else None
        except together.NotFoundError:
            raise NotFoundError(f"Together has no job {remote_id} for this key (another account?).") from None
        except together.APIError as error:
            raise refusal(f"read job {remote_id}", error) from None
        # Every read happens before the first write: a poll that fails half-way records nothing twice.
        details = dict(job.get("details") or {})
        seen = int(details.get("events_seen") or 0)
        total_steps = job.get("total_steps")
        for event in events[seen:]:
            ws.store.jobs.add_event(job["id"], f"Together: {event.message}", EVENT_LEVELS.get(str(getattr(event, "level", None)), "info"))
            if getattr(event, "total_steps", None):
                total_steps = int(event.total_steps)
        if total_steps and total_steps != job.get("total_steps"):
            ws.store.jobs.update(job["id"], total_steps=int(total_steps))
        rows = [row for row in (metric_row(record) for record in metrics) if row]
        record_metrics(ws, job["id"], rows)

        values: dict[str, Any] = {
            "events_seen": max(seen, len(events)),
            "token_count": remote.token_count,
            "model_output_name": _output_name(remote),
            "epochs_completed": remote.epochs_completed,
        }
        if checkpoints is not None:
            values["checkpoints"] = sorted(
                ({"step": c.step, "checkpoint_type": c.checkpoint_type, "created_at": c.created_at, "name": f"{remote_id}:{c.step}"} for c in checkpoints),
                key=lambda c: c["step"],
            )
        details = merge_details(ws, job["id"], **values)

        progress: dict[str, Any] = {}
        estimate = getattr(remote, "progress", None)
        if estimate is not None and estimate.estimate_available and remote.status == "running":
            progress["eta_seconds"] = float(estimate.seconds_remaining)
        if remote.status == "completed":
            self._finish_success(ws, client, job, remote, details)
            progress["eta_seconds"] = 0.0
        current = ws.store.jobs.get(job["id"]) or job
        apply_remote_status(ws, current, self, remote.status, error=_error_text(remote) if remote.status == "error" else None, **progress)

    def _finish_success(self, ws: Workspace, client: Any, job: dict[str, Any], remote: Any, details: dict[str, Any]) -> None:
        output_name = _output_name(remote)
        if output_name:
            register_tuned_model(
                ws, job, "together", output_name,
                details={"remote_job_id": remote.id, "token_count": remote.token_count, "checkpoints": details.get("checkpoints") or [], "training_type": details.get("training_type")},
            )
        elif not details.get("warned_no_model"):
            ws.store.jobs.add_event(job["id"], "Together reports the job completed but names no output model yet", "warning")
            merge_details(ws, job["id"], warned_no_model=True)
        if remote.total_price and details.get("actual_cost_usd") is None:
            actual = round(remote.total_price / NANODOLLARS, 4)
            ws.store.spending.set_actual(job["id"], actual)
            merge_details(ws, job["id"], actual_cost_usd=actual)
            ws.store.jobs.add_event(job["id"], f"Together billed ${actual:.4f} for {remote.token_count or 0:,} tokens")
        if output_name and not details.get("adapter_download"):
            from model_customization.providers.together.adapters import bring_adapter_home

            merge_details(ws, job["id"], adapter_download=bring_adapter_home(ws, client, job, remote))

    # --- control --------------------------------------------------------------------------------------------------
    def cancel(self, ws: Workspace, job: dict[str, Any]) -> None:
        together = sdk()  # a missing SDK is a UserError naming the extra

        remote_id = job.get("remote_id")
        if not remote_id:
            raise UserError(f"Job {job['id']} has no Together job id: nothing to cancel.")
        try:
            remote = together_client().fine_tuning.cancel(remote_id)
        except together.APIError as error:
            raise refusal(f"cancel Together job {remote_id}", error) from None
        ws.store.jobs.add_event(job["id"], f"asked Together to cancel {remote_id}; it reports {remote.status!r}")
        apply_remote_status(ws, ws.store.jobs.get(job["id"]) or job, self, remote.status)


def _upload_event(split: str, result: UploadResult, examples: int) -> str:
    verb = {"uploaded": "uploaded", "reused": "reused", "found": "found on Together"}[result.how]
    return f"{split} file {verb}: {result.file_id} ({examples} examples, {result.size:,} bytes, sha256 {result.sha256[:12]}…)"
