"""Fine-tuning through Amazon Bedrock model customization jobs, and provisioned throughput for the result.

The base model is discovered, never assumed: ListFoundationModels (byCustomizationType FINE_TUNING) says which
foundation models this account may fine-tune in this region now (lifecycle ACTIVE, text in and out); each belongs
to a family (families.py: Amazon Nova, Meta Llama, Amazon Titan Text, Cohere Command, Claude 3 Haiku) with its own
training format, hyperparameters and limits. Claude 3 Haiku fine-tuning reached end of life on 2026-09-10 and no
newer Claude model is offered, so a Claude base is refused (naming what is offered) unless Bedrock lists one.

What a job does at AWS, in order: the train (and, where the family takes one, validation) split is rendered to the
family's format and checked by its rules (formats.py), then uploaded to s3://<bucket>/<prefix>/data/<sha256>.jsonl
(an object that already exists under its content hash is reused); then create_model_customization_job runs with
the family's hyperparameters.

Names at AWS are derived from the job's idempotency key, so a start_job retried after a lost reply finds the job it
already created (find_existing looks it up by name):
  job name and clientRequestToken   the key itself when it is short and plain (the default "mc-<32 hex>" is), else
                                    "mc-" + the first 40 hex digits of its sha256
  custom model name                 "[<suffix>-]<job name>" (suffix from the job's options)
Jobs are addressed by name (the API takes a name or an ARN; moto only names).

Registry id of a tuned model: its custom model name (unique in an account and region, and free of the slashes and
colons of an ARN, so it fits in a models:// URI). The ARN is kept in the model's details as "model_arn", next to
the provisioned throughput's ARN once one exists.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import time
from datetime import datetime
from typing import Any

from model_customization.config import ARGUMENT_CONFIRMATION_ENV
from model_customization.datasets.build import read_split
from model_customization.errors import ConfirmationNeeded, NotFoundError, TransientError, UserError
from model_customization.providers.base import (
    apply_remote_status,
    merge_details,
    record_metrics,
    register_tuned_model,
)
from model_customization.providers.bedrock import clients, formats
from model_customization.providers.bedrock.families import (
    CLAUDE_FINE_TUNING_END_OF_LIFE,
    Family,
    bare_model_id,
    family_for,
    is_claude,
    preference,
)
from model_customization.providers.bedrock.hyperparameters import parse_bedrock_hyperparameters, resolve, to_api
from model_customization.providers.bedrock.provider import TOKEN_ENCODING, BedrockProvider
from model_customization.workspace import Workspace

log = logging.getLogger(__name__)

MAX_REPORTED_PROBLEMS = 5
COMMITMENTS = ("OneMonth", "SixMonths")

# A key that is already a valid job name and request token (letters, digits, inner hyphens, at most 40 characters).
_PLAIN_KEY = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,38}[a-zA-Z0-9])?$")
_TAG_UNSAFE = re.compile(r"[^a-zA-Z0-9\s._:/=+@-]")
TAG_KEY = "model-customization:idempotency-key"
TAG_JOB_ID = "model-customization:job-id"


# --- names derived from the idempotency key ---------------------------------------------------------------------
def remote_job_name(key: str) -> str:
    """The customization job's name (and clientRequestToken) for an idempotency key: same key, same name."""
    if _PLAIN_KEY.match(key):
        return key
    return "mc-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def custom_model_name(job_name: str, suffix: str | None = None) -> str:
    """A name matching the API's pattern ([0-9a-zA-Z] each followed by at most one - or _), at most 63 characters."""
    base = re.sub(r"-{2,}", "-", job_name)
    if suffix:
        clean = re.sub(r"[^0-9a-zA-Z]+", "-", suffix).strip("-")[:18].strip("-")
        if clean:
            return f"{clean}-{base}"
    return base


def _tag_value(value: str) -> str:
    return _TAG_UNSAFE.sub("_", value)[:256]


# --- rendering ---------------------------------------------------------------------------------------------------
def _family(model_id: str) -> Family:
    family = family_for(model_id)
    if family is None:
        raise UserError(f"This product has no training format for {model_id} on Bedrock yet; choose a model of another family (start_job without base_model picks one).")
    return family


def render_split(ws: Workspace, dataset_id: str, split: str, model_id: str) -> tuple[list[dict[str, Any]], list[int]]:
    """A split's examples in the base model's family format, with each one's approximate token count.

    UserError naming split and line of every example the family's rules refuse, and a split whose size is outside
    the family's record limits: all before anything is uploaded.
    """
    family = _family(model_id)
    rendered: list[dict[str, Any]] = []
    tokens: list[int] = []
    problems: list[str] = []
    for line, example in enumerate(read_split(ws, dataset_id, split), start=1):
        row = formats.render(family, example)
        why = formats.problem(family, row, model_id=model_id)
        count = 0
        if why is None:
            count = formats.row_tokens(family, row, TOKEN_ENCODING)
            why = formats.problem(family, row, count, model_id)
        if why:
            problems.append(f"{split} line {line}: {why}")
            continue
        rendered.append(row)
        tokens.append(count)
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED_PROBLEMS} more)" if len(problems) > MAX_REPORTED_PROBLEMS else ""
        raise UserError(
            f"Dataset {dataset_id} has examples that {family.title} cannot train on ({family.data_format} format): "
            f"{'; '.join(problems[:MAX_REPORTED_PROBLEMS])}{more}. Nothing was uploaded. Rebuild the dataset from memory without "
            "those sessions (or with filters), or choose another base model, then quote again."
        )
    _check_split_size(family, model_id, split, len(rendered))
    return rendered, tokens


def _check_split_size(family: Family, model_id: str, split: str, count: int) -> None:
    low, high = (family.min_train, family.max_train) if split == "train" else (0, family.max_validation)
    if count < low or (high is not None and count > high):
        bounds = f"{low:,} to {high:,}" if high is not None else f"at least {low:,}"
        raise UserError(
            f"The {split} split has {count:,} examples; {family.title} ({model_id}) takes {bounds} {split} examples. "
            "Nothing was uploaded. Build a dataset of that size, or choose another base model."
        )


def to_jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows).encode("utf-8")


def price_per_million_tokens(model_id: str) -> float | None:
    """The operator's Bedrock training price for this model (USD per million tokens trained), or None when unknown.

    MODEL_CUSTOMIZATION_BEDROCK_USD_PER_MILLION_TOKENS holds one number for every model, or a JSON object from
    model-id prefixes to prices ({"amazon.nova-lite": 2, "meta.llama3-1-8b": 1.5}); the longest matching prefix wins.
    This product ships no price table for Bedrock customization: no copy of its price list could be read when the
    families were written (2026-12-06), so an unpriced model's quote is None and a person must approve the spend.
    """
    raw = os.environ.get(clients.PRICE_ENV)
    if raw is None or not raw.strip():
        return None
    bare = bare_model_id(model_id)
    expected = (
        f"{clients.PRICE_ENV}={raw!r}: expected US dollars per million training tokens (0 or more, e.g. 4 or 8.5), or a JSON "
        'object from model-id prefixes to such prices, e.g. {"amazon.nova-lite": 2, "meta.llama3": 1.5}.'
    )
    if raw.strip().startswith("{"):
        try:
            table = json.loads(raw)
        except json.JSONDecodeError:
            raise UserError(expected) from None
        matches = sorted((prefix for prefix in table if bare.startswith(prefix)), key=len, reverse=True)
        if not matches:
            return None
        raw_value: Any = table[matches[0]]
    else:
        raw_value = raw
    try:
        value = float(raw_value)
        if not value >= 0:  # also refuses NaN
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(expected) from None
    return value


# --- AWS calls --------------------------------------------------------------------------------------------------
def _aws_error(what: str, error: BaseException, hint: str = "") -> UserError:
    code = clients.error_code(error)
    if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
        hint = hint or "The AWS credentials in use lack the permission; grant it to the user or role, or use another profile."
    elif code in ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "InvalidClientTokenId"):
        hint = hint or "The AWS credentials were refused: renew them (aws sso login, new session token) and try again."
    elif type(error).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        hint = hint or "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE."
    elif type(error).__name__ in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        hint = hint or "Bedrock could not be reached: check the network and the region."
    message = f"Bedrock: {what} failed ({clients.error_message(error)}). {hint}".rstrip()
    if _is_transient(error):
        return TransientError(message)  # throttling, a server error or the network: the caller may try again later
    return UserError(message)


def _is_transient(error: BaseException) -> bool:
    from botocore.exceptions import ConnectionClosedError, ConnectionError as BotoConnectionError, ReadTimeoutError

    from model_customization.providers.bedrock.chat import TRANSIENT_CODES

    if isinstance(error, (BotoConnectionError, ReadTimeoutError, ConnectionClosedError)):
        return True
    response = getattr(error, "response", None)
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode") if isinstance(response, dict) else None
    return clients.error_code(error) in (*TRANSIENT_CODES, "TooManyRequestsException") or (isinstance(status, int) and status >= 500)


def _aws_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


def offered_base_models() -> list[dict[str, Any]]:
    """The text models this account may fine-tune in this region now (lifecycle ACTIVE), best default first.

    Each entry is Bedrock's model summary plus "family" (families.Family, or None for a model this product has no
    training format for). Image and embedding models are left out: datasets here are conversations.
    """
    bedrock = clients.client("bedrock")
    try:
        response = bedrock.list_foundation_models(byCustomizationType="FINE_TUNING")
    except _aws_errors() as error:
        raise _aws_error("listing the foundation models that offer fine-tuning (bedrock:ListFoundationModels)", error) from error
    offered = []
    for summary in response.get("modelSummaries") or []:
        # A summary without lifecycle data predates the field; the server-side filter already said it can be tuned.
        active = (summary.get("modelLifecycle") or {}).get("status", "ACTIVE") == "ACTIVE"
        tunable = "FINE_TUNING" in (summary.get("customizationsSupported") or ["FINE_TUNING"])
        text = "TEXT" in (summary.get("outputModalities") or ["TEXT"]) and "TEXT" in (summary.get("inputModalities") or ["TEXT"])
        if active and tunable and text and summary.get("modelId"):
            offered.append({**summary, "family": family_for(summary["modelId"])})
    return sorted(offered, key=lambda s: (s["family"] is None, preference(s["modelId"]), s["modelId"]))


def _offered_names(offered: list[dict[str, Any]]) -> str:
    supported = [f"{s['modelId']} ({s['family'].title})" for s in offered if s["family"] is not None]
    other = [s["modelId"] for s in offered if s["family"] is None]
    text = ", ".join(supported) if supported else "none this product can train"
    if other:
        text += f"; also offered, but without a training format here yet: {', '.join(other)}"
    return text


def _named(offered: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The offered model a name means: its id, its ARN, or its id without the context suffix (amazon.nova-lite-v1:0)."""
    bare = bare_model_id(wanted)
    for summary in offered:
        if wanted in (summary["modelId"], summary.get("modelArn")) or bare == summary["modelId"]:
            return summary
    shorter = [s for s in offered if s["modelId"].startswith(bare + ":")]
    return shorter[0] if len(shorter) == 1 else None


def _head_exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as error:
        if clients.error_code(error) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def upload_content_addressed(ws: Workspace, cfg: clients.BedrockSettings, body: bytes, job_id: str, split: str) -> str:
    """Put JSONL bytes at <prefix>/data/<sha256>.jsonl unless that object exists; returns its s3:// URI."""
    s3 = clients.client("s3")
    digest = hashlib.sha256(body).hexdigest()
    key = cfg.key("data", f"{digest}.jsonl")
    uri = f"s3://{cfg.bucket}/{key}"
    try:
        if _head_exists(s3, cfg.bucket, key):
            ws.store.jobs.add_event(job_id, f"{split} data already at {uri} (same content); reused, not uploaded again")
        else:
            s3.put_object(Bucket=cfg.bucket, Key=key, Body=body, ContentType="application/jsonl")
            ws.store.jobs.add_event(job_id, f"uploaded {split} data ({len(body)} bytes) to {uri}")
    except _aws_errors() as error:
        hint = ""
        if clients.error_code(error) == "NoSuchBucket":
            hint = f"Create the bucket in {cfg.region}, or set {clients.BUCKET_ENV} to an existing one."
        raise _aws_error(f"uploading the {split} data to {uri}", error, hint) from error
    if not any(row["remote_id"] == uri for row in ws.store.provider_files.find("bedrock", digest)):
        ws.store.provider_files.add({"provider": "bedrock", "sha256": digest, "remote_id": uri, "filename": f"{split}.jsonl", "bytes": len(body)})
    return uri


def _split_uri(uri: str) -> tuple[str, str]:
    without = uri[len("s3://"):] if uri.startswith("s3://") else uri
    bucket, _, key = without.partition("/")
    return bucket, key


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN -> None


def read_metric_rows(output_uri: str) -> list[dict[str, Any]]:
    """Step-wise training (and validation) losses from the CSV files Bedrock writes under the job's output prefix.

    Bedrock writes <output>/model-customization-job-<id>/training_artifacts/step_wise_training_metrics.csv
    (step_number, epoch_number, training_loss, perplexity) and validation_artifacts/.../validation_metrics.csv
    (the same with validation_loss). Missing files mean no rows.
    """
    s3 = clients.client("s3")
    bucket, prefix = _split_uri(output_uri)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents") or []]
    by_step: dict[int, dict[str, Any]] = {}
    for key in sorted(keys):
        name = key.rsplit("/", 1)[-1]
        column = {"step_wise_training_metrics.csv": ("training_loss", "train_loss"), "validation_metrics.csv": ("validation_loss", "validation_loss")}.get(name)
        if column is None:
            continue
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8-sig")
        for record in csv.DictReader(io.StringIO(text)):
            step, loss = _number(record.get("step_number")), _number(record.get(column[0]))
            if step is None or loss is None:
                continue
            row = by_step.setdefault(int(step), {"step": int(step)})
            row[column[1]] = loss
            epoch = _number(record.get("epoch_number"))
            if epoch is not None:
                row["epoch"] = epoch
    return [by_step[s] for s in sorted(by_step)]


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


# --- the provider -----------------------------------------------------------------------------------------------
class BedrockJobs:
    """A customization job's life cycle at Bedrock, in the order providers/base.py gives (BedrockProvider delegates here)."""

    name = BedrockProvider.name
    STATUS_MAP = BedrockProvider.STATUS_MAP

    def check_available(self, ws: Workspace, base_model: str | None, method: str) -> str:
        if method != "sft":
            raise UserError(
                f"Bedrock offers no {method!r} training: its customization jobs are fine-tuning (supervised), continued "
                "pre-training, distillation and reinforcement fine-tuning, and none of its model families takes preference "
                "pairs there. Nothing was uploaded. Build an sft dataset (build_dataset_from_memory with method='sft') and "
                "start the job with method='sft', or train dpo with a provider whose methods include it (provider='local')."
            )
        cfg = clients.settings()
        clients.check_credentials()
        offered = offered_base_models()
        trainable = [s for s in offered if s["family"] is not None]
        wanted = base_model.removeprefix("bedrock:") if base_model else None
        if wanted and is_claude(wanted) and not any(is_claude(s["modelId"]) for s in offered):
            alternatives = f"This account can fine-tune here: {_offered_names(offered)}. Pass one as base_model, or leave base_model out to use {trainable[0]['modelId']}." if trainable else ""
            raise UserError(
                f"{base_model!r} cannot be fine-tuned: no Claude model in {cfg.region} offers fine-tuning on Bedrock now. Claude 3 "
                f"Haiku fine-tuning, the one Claude customization Bedrock had, reached end of life on {CLAUDE_FINE_TUNING_END_OF_LIFE}, "
                f"and no newer Claude model is offered for customization. Nothing was uploaded. {alternatives}".rstrip()
            )
        if not trainable:
            also = f" Bedrock lists {_offered_names(offered)}." if offered else ""
            raise UserError(
                f"No foundation model in {cfg.region} that this product can train is offered for fine-tuning to this account "
                f"on Bedrock now.{also} Claude 3 Haiku fine-tuning reached end of life on {CLAUDE_FINE_TUNING_END_OF_LIFE}. "
                f"Set {clients.REGION_ENV} to a region where Bedrock fine-tunes Nova or Llama (us-east-1, us-west-2), ask for "
                "model access in the Bedrock console, or use provider='local' to fine-tune an open model here."
            )
        if wanted is None:
            chosen = trainable[0]
            log.info("Bedrock base model not given; using %s, the first by this product's preference of those offered in %s: %s", chosen["modelId"], cfg.region, _offered_names(offered))
            return chosen["modelId"]
        summary = _named(offered, wanted)
        if summary is None:
            raise UserError(
                f"{base_model!r} is not offered for fine-tuning to this account on Bedrock in {cfg.region}. It can fine-tune: "
                f"{_offered_names(offered)}. Pass one of them as base_model (id or ARN), or leave base_model out to use "
                f"{trainable[0]['modelId']}. Nothing was uploaded."
            )
        if summary["family"] is None:
            raise UserError(
                f"Bedrock offers {summary['modelId']} for fine-tuning, but this product has no training format or hyperparameter "
                f"rules for it yet. Models it can train here: {', '.join(s['modelId'] for s in trainable)}. Nothing was uploaded."
            )
        return summary["modelId"]

    def parse_hyperparameters(self, method: str, raw: dict[str, Any] | None) -> dict[str, Any]:
        return parse_bedrock_hyperparameters(raw)

    def quote(self, ws: Workspace, dataset_id: str, base_model: str, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        family = _family(base_model)
        resolved = resolve(family, base_model, hyperparameters)
        _rows, train_tokens = render_split(ws, dataset_id, "train", base_model)
        validation_tokens = render_split(ws, dataset_id, "validation", base_model)[1] if family.validation else []
        epochs = int(resolved["epoch_count"])
        per_epoch = sum(train_tokens)
        billed = per_epoch * epochs
        price = price_per_million_tokens(base_model)
        return {
            "provider": "bedrock",
            "model": base_model,
            "family": family.name,
            "data_format": family.data_format,
            "hyperparameters": resolved,
            "epochs": epochs,
            "train_examples": len(train_tokens),
            "validation_examples": len(validation_tokens),
            "tokens_per_epoch": per_epoch,
            "billed_tokens": billed,
            "validation_tokens": sum(validation_tokens),
            "max_example_tokens": max(train_tokens, default=0),
            "tokens_approximate": True,
            "tokenizer": f"{TOKEN_ENCODING} (the Bedrock models' own tokenizers are not available offline; counts are an approximation)",
            "usd_per_million_tokens": price,
            "estimated_cost_usd": round(billed * price / 1_000_000, 4) if price is not None else None,
            "price_source": (
                clients.PRICE_ENV
                if price is not None
                else f"unknown: set {clients.PRICE_ENV} to the Bedrock training price per million tokens of {base_model} (aws.amazon.com/bedrock/pricing)"
            ),
            "not_included": "monthly storage of the custom model, and inference (provisioned throughput billed by the hour, or on demand for Nova)",
            **({"note": family.note} if family.note else {}),
        }

    # -- creating and finding jobs ---------------------------------------------------------------------------------
    def _describe(self, name: str) -> dict[str, Any] | None:
        bedrock = clients.client("bedrock")
        try:
            return bedrock.get_model_customization_job(jobIdentifier=name)
        except _aws_errors() as error:
            if clients.error_code(error) == "ResourceNotFoundException":
                return None
            raise _aws_error(f"reading customization job {name}", error) from error

    @staticmethod
    def _summary(described: dict[str, Any], region: str | None = None) -> dict[str, Any]:
        validators = (described.get("validationDataConfig") or {}).get("validators") or []
        return {
            "remote_id": described["jobName"],
            "remote_status": described.get("status"),
            "details": {
                "job_name": described["jobName"],
                "job_arn": described.get("jobArn"),
                "custom_model_name": described.get("outputModelName"),
                "training_data": (described.get("trainingDataConfig") or {}).get("s3Uri"),
                "validation_data": validators[0].get("s3Uri") if validators else None,
                "output_data": (described.get("outputDataConfig") or {}).get("s3Uri"),
                "region": region,
            },
        }

    def find_existing(self, ws: Workspace, key: str) -> dict[str, Any] | None:
        described = self._describe(remote_job_name(key))
        return self._summary(described, clients.region()) if described else None

    def submit(self, ws: Workspace, job: dict[str, Any]) -> dict[str, Any]:
        cfg = clients.settings()
        base = job["base_model"]
        family = _family(base)
        resolved = resolve(family, base, job["hyperparameters"] or {})
        options = (job.get("details") or {}).get("options") or {}
        name = remote_job_name(job["idempotency_key"])
        model_name = custom_model_name(name, options.get("suffix"))

        # Both splits are rendered and checked before either is uploaded.
        train_rows = render_split(ws, job["dataset_id"], "train", base)[0]
        validation_rows = render_split(ws, job["dataset_id"], "validation", base)[0] if family.validation else []
        train_uri = upload_content_addressed(ws, cfg, to_jsonl(train_rows), job["id"], "train")
        validation_uri = upload_content_addressed(ws, cfg, to_jsonl(validation_rows), job["id"], "validation") if validation_rows else None
        output_uri = cfg.s3_uri("output", job["id"]) + "/"

        tags = [{"key": TAG_KEY, "value": _tag_value(job["idempotency_key"])}, {"key": TAG_JOB_ID, "value": _tag_value(job["id"])}]
        request: dict[str, Any] = {
            "jobName": name,
            "customModelName": model_name,
            "roleArn": cfg.role_arn,
            "clientRequestToken": name,
            "baseModelIdentifier": job["base_model"],
            "customizationType": "FINE_TUNING",
            "trainingDataConfig": {"s3Uri": train_uri},
            "outputDataConfig": {"s3Uri": output_uri},
            "hyperParameters": to_api(family, resolved, with_validation=validation_uri is not None),
            "jobTags": tags,
            "customModelTags": tags,
        }
        if validation_uri:
            request["validationDataConfig"] = {"validators": [{"s3Uri": validation_uri}]}
        bedrock = clients.client("bedrock")
        try:
            response = bedrock.create_model_customization_job(**request)
        except _aws_errors() as error:
            if clients.error_code(error) in ("ResourceInUseException", "ConflictException"):
                existing = self._describe(name)
                if existing:  # created by an earlier attempt whose reply was lost
                    ws.store.jobs.add_event(job["id"], f"Bedrock job {name} already existed (an earlier attempt created it); adopted")
                    return self._summary(existing, cfg.region)
            hint = ""
            if clients.error_code(error) == "ValidationException":
                hint = f"Check {clients.ROLE_ENV} (Bedrock must be able to assume it and read s3://{cfg.bucket}) and the base model."
            raise _aws_error(f"creating customization job {name}", error, hint) from error
        return {
            "remote_id": name,
            "remote_status": "InProgress",
            "details": {
                "job_name": name,
                "job_arn": response.get("jobArn"),
                "custom_model_name": model_name,
                "training_data": train_uri,
                "validation_data": validation_uri,
                "output_data": output_uri,
                "region": cfg.region,
            },
        }

    # -- following a job -----------------------------------------------------------------------------------------
    def refresh(self, ws: Workspace, job: dict[str, Any]) -> None:
        name = job.get("remote_id") or remote_job_name(job["idempotency_key"])
        described = self._describe(name)
        if described is None:
            raise NotFoundError(f"Bedrock has no customization job named {name} in {clients.region()}; it may have been created in another region.")
        status = described["status"]
        self._note_stages(ws, job, described.get("statusDetails") or {})
        if status == "Completed":
            self._collect_result(ws, job, described)
        error = (described.get("failureMessage") or "Bedrock gave no reason") if status == "Failed" else None
        apply_remote_status(ws, job, self, status, error=error)

    @staticmethod
    def _note_stages(ws: Workspace, job: dict[str, Any], status_details: dict[str, Any]) -> None:
        """An event whenever one of Bedrock's stages (validation, data processing, training) changes status."""
        stages = {key.removesuffix("Details"): (value or {}).get("status") for key, value in status_details.items() if isinstance(value, dict)}
        known = (job.get("details") or {}).get("stages") or {}
        changed = {k: v for k, v in stages.items() if v and known.get(k) != v}
        for stage, value in sorted(changed.items()):
            ws.store.jobs.add_event(job["id"], f"Bedrock stage {stage}: {value}")
        if changed:
            merge_details(ws, job["id"], stages={**known, **stages})

    def _collect_result(self, ws: Workspace, job: dict[str, Any], described: dict[str, Any]) -> None:
        output_uri = (described.get("outputDataConfig") or {}).get("s3Uri")
        rows: list[dict[str, Any]] = []
        if output_uri:
            try:
                rows = read_metric_rows(output_uri)
            except _aws_errors() as error:
                ws.store.jobs.add_event(job["id"], f"could not read Bedrock's metrics files under {output_uri}: {clients.error_message(error)}", "warning")
        if rows:
            added = record_metrics(ws, job["id"], rows)
            if added:
                ws.store.jobs.add_event(job["id"], f"recorded {added} metric rows from Bedrock's metrics files")
        else:  # no CSV: keep the final losses the API reports
            final: dict[str, Any] = {}
            train_loss = _number((described.get("trainingMetrics") or {}).get("trainingLoss"))
            validation = described.get("validationMetrics") or []
            validation_loss = _number(validation[-1].get("validationLoss")) if validation else None
            if train_loss is not None:
                final["train_loss"] = train_loss
            if validation_loss is not None:
                final["validation_loss"] = validation_loss
            if final:
                ws.store.jobs.update(job["id"], **final)
        details = job.get("details") or {}
        model_name = details.get("custom_model_name") or described.get("outputModelName")
        model_arn = described.get("outputModelArn")
        if not model_arn:
            try:
                model_arn = clients.client("bedrock").get_custom_model(modelIdentifier=model_name)["modelArn"]
            except _aws_errors() as error:
                raise _aws_error(f"reading custom model {model_name}", error) from error
        register_tuned_model(
            ws,
            job,
            "bedrock",
            model_name,
            details={"model_arn": model_arn, "model_name": model_name, "job_arn": described.get("jobArn"), "region": details.get("region") or clients.region()},
        )

    def cancel(self, ws: Workspace, job: dict[str, Any]) -> None:
        name = job.get("remote_id") or remote_job_name(job["idempotency_key"])
        bedrock = clients.client("bedrock")
        try:
            bedrock.stop_model_customization_job(jobIdentifier=name)
        except _aws_errors() as error:
            if clients.error_code(error) == "ResourceNotFoundException":
                raise NotFoundError(f"Bedrock has no customization job named {name} in {clients.region()}.") from error
            raise _aws_error(f"stopping customization job {name}", error, "A job that has already ended cannot be stopped; check_job shows its status.") from error
        ws.store.jobs.add_event(job["id"], f"asked Bedrock to stop job {name}")


# --- listing ----------------------------------------------------------------------------------------------------
def list_remote_jobs(ws: Workspace, limit: int = 20, next_token: str | None = None) -> dict[str, Any]:
    """The account's customization jobs in this region, newest first, with our job id where the ledger knows them."""
    if not 1 <= limit <= 1000:
        raise UserError(f"limit must be from 1 to 1000 (got {limit}).")
    request: dict[str, Any] = {"maxResults": limit, "sortBy": "CreationTime", "sortOrder": "Descending"}
    if next_token:
        request["nextToken"] = next_token
    try:
        response = clients.client("bedrock").list_model_customization_jobs(**request)
    except _aws_errors() as error:
        raise _aws_error("listing customization jobs", error) from error
    ours = {j["remote_id"]: j["id"] for j in ws.store.jobs.all() if j["provider"] == "bedrock" and j.get("remote_id")}
    jobs = []
    for summary in response.get("modelCustomizationJobSummaries") or []:
        status = summary.get("status")
        jobs.append(
            {
                "job_name": summary["jobName"],
                "job_arn": summary.get("jobArn"),
                "status": BedrockProvider.STATUS_MAP.get(status, status),
                "remote_status": status,
                "base_model_arn": summary.get("baseModelArn"),
                "custom_model_name": summary.get("customModelName"),
                "custom_model_arn": summary.get("customModelArn"),
                "created_at": _iso(summary.get("creationTime")),
                "ended_at": _iso(summary.get("endTime")),
                "job_id": ours.get(summary["jobName"]),
            }
        )
    return {"jobs": jobs, "next_token": response.get("nextToken") or None}


# --- provisioned throughput -------------------------------------------------------------------------------------
def _bedrock_model(ws: Workspace, model_id: str) -> dict[str, Any]:
    row = ws.store.models.get(model_id)
    if not row:
        raise NotFoundError(f"Model {model_id!r} not found. The resource models://index lists the registered models; a finished Bedrock job's model_id is one.")
    if row["provider"] != "bedrock" or not (row.get("details") or {}).get("model_arn"):
        raise UserError(f"Model {model_id} is a {row['provider']} model; provisioned throughput is for tuned Bedrock models.")
    return row


def _throughput_name(model_id: str) -> str:
    clean = re.sub(r"[^0-9a-zA-Z]+", "-", model_id).strip("-")
    return ("pt-" + clean)[:63].rstrip("-")


def provision_throughput(
    ws: Workspace,
    model_id: str,
    *,
    model_units: int = 1,
    commitment: str | None = None,
    name: str | None = None,
    confirm: bool = False,
    confirmed_by: str = "argument",
) -> dict[str, Any]:
    """Buy provisioned throughput for a tuned Bedrock model (the only way to run one); its ARN goes into the model's details.

    It is billed by the hour for every model unit until release_throughput deletes it, so it needs confirm=True from a
    person (confirmed_by "elicitation" or "terminal"); confirm=True as a bare argument counts only where the operator
    allowed argument confirmation (jobs/spending.py).
    """
    row = _bedrock_model(ws, model_id)
    details = dict(row.get("details") or {})
    if details.get("provisioned_model_arn"):
        status = throughput_status(ws, model_id)
        status["note"] = "already provisioned; nothing new was bought (release_throughput deletes it)"
        return status
    if model_units < 1:
        raise UserError(f"model_units must be 1 or more (got {model_units}).")
    if commitment is not None and commitment not in COMMITMENTS:
        raise UserError(f"commitment must be omitted (no commitment, hourly) or one of {', '.join(COMMITMENTS)} (got {commitment!r}).")
    chosen_name = name or _throughput_name(model_id)
    if not re.fullmatch(r"([0-9a-zA-Z][_-]?)+", chosen_name) or len(chosen_name) > 63:
        raise UserError(f"name {chosen_name!r} must be at most 63 letters or digits, each followed by at most one - or _.")
    term = f"a {commitment} commitment (billed for the whole term even if released early)" if commitment else "no commitment"
    if confirm and confirmed_by == "argument" and not ws.settings.allow_argument_confirmation:
        raise ConfirmationNeeded(
            f"Not provisioned, nothing bought: provisioned throughput for {model_id} is billed by the hour ({model_units} model "
            f"unit(s) with {term}) and confirm=true cannot approve spending on this server (the operator has not set "
            f"{ARGUMENT_CONFIRMATION_ENV}=true). A person must confirm it: use an MCP client that supports elicitation (it "
            "asks the user), or the CLI on a terminal; or the operator allows argument confirmation.",
            quote_usd=None,
            question=f"Buy {model_units} model unit(s) of provisioned throughput for {model_id} now ({term}, billed hourly)?",
        )
    if not confirm:
        raise ConfirmationNeeded(
            f"Provisioned throughput for {model_id} costs money by the hour: {model_units} model unit(s) with {term}, "
            "billed from creation until release_throughput deletes it, whether or not it is used. Check the hourly price "
            "of this model at aws.amazon.com/bedrock/pricing, then call provision_throughput again with confirm=true.",
            quote_usd=None,
            question=f"Buy {model_units} model unit(s) of provisioned throughput for {model_id} now ({term}, billed hourly)?",
        )
    token = "pt-" + hashlib.sha256(json.dumps([model_id, model_units, commitment, chosen_name]).encode()).hexdigest()[:40]
    request: dict[str, Any] = {
        "modelUnits": model_units,
        "provisionedModelName": chosen_name,
        "modelId": details["model_arn"],
        "clientRequestToken": token,  # a retry after a lost reply gets the same throughput, not a second one
        "tags": [{"key": "model-customization:model-id", "value": _tag_value(model_id)}],
    }
    if commitment:
        request["commitmentDuration"] = commitment
    try:
        response = clients.client("bedrock").create_provisioned_model_throughput(**request)
    except _aws_errors() as error:
        raise _aws_error(f"creating provisioned throughput for {model_id}", error) from error
    arn = response["provisionedModelArn"]
    details.update(
        provisioned_model_arn=arn, provisioned_model_name=chosen_name, model_units=model_units, commitment=commitment, provisioned_at=time.time()
    )
    ws.store.models.update(model_id, details=details)
    return {
        "model_id": model_id,
        "provisioned_model_arn": arn,
        "provisioned_model_name": chosen_name,
        "status": "Creating",
        "model_units": model_units,
        "commitment": commitment,
        "billing": f"hourly per model unit with {term}, until release_throughput",
        "next": "throughput_status shows when it is InService; then prompt the model.",
    }


def throughput_status(ws: Workspace, model_id: str) -> dict[str, Any]:
    row = _bedrock_model(ws, model_id)
    arn = (row.get("details") or {}).get("provisioned_model_arn")
    if not arn:
        raise UserError(f"Model {model_id} has no provisioned throughput. provision_throughput(model_id={model_id!r}, confirm=true) buys it (billed hourly).")
    try:
        found = clients.client("bedrock").get_provisioned_model_throughput(provisionedModelId=arn)
    except _aws_errors() as error:
        raise _aws_error(f"reading provisioned throughput {arn}", error) from error
    return {
        "model_id": model_id,
        "provisioned_model_arn": arn,
        "provisioned_model_name": found.get("provisionedModelName"),
        "status": found.get("status"),
        "model_units": found.get("modelUnits"),
        "desired_model_units": found.get("desiredModelUnits"),
        "commitment": found.get("commitmentDuration"),
        "commitment_expires_at": _iso(found.get("commitmentExpirationTime")),
        "failure_message": found.get("failureMessage"),
    }


def release_throughput(ws: Workspace, model_id: str) -> dict[str, Any]:
    """Delete the model's provisioned throughput (hourly billing stops) and forget it in the registry."""
    row = _bedrock_model(ws, model_id)
    details = dict(row.get("details") or {})
    arn = details.get("provisioned_model_arn")
    if not arn:
        raise UserError(f"Model {model_id} has no provisioned throughput to release.")
    gone_already = False
    try:
        clients.client("bedrock").delete_provisioned_model_throughput(provisionedModelId=arn)
    except _aws_errors() as error:
        if clients.error_code(error) != "ResourceNotFoundException":
            raise _aws_error(f"deleting provisioned throughput {arn}", error, "A throughput under a commitment term cannot be deleted before the term ends.") from error
        gone_already = True
    for key in ("provisioned_model_arn", "provisioned_model_name", "model_units", "commitment", "provisioned_at"):
        details.pop(key, None)
    ws.store.models.update(model_id, details=details)
    return {"model_id": model_id, "released": arn, "note": "it no longer existed at Bedrock" if gone_already else "deleted; hourly billing stops"}
