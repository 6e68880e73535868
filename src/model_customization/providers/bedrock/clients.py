"""boto3 clients for Bedrock and S3, and the operator's Bedrock settings, read from the environment.

Credentials come from boto3's default chain (environment, shared config/profile, SSO, instance role); this module
only checks that the chain yields some, and never reads, prints or stores the secret parts. Tests hand in pre-made
clients (moto-backed or wrapped in a botocore Stubber) per service with `use_clients`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from model_customization.errors import UserError

REGION_ENV = "MODEL_CUSTOMIZATION_BEDROCK_REGION"
BUCKET_ENV = "MODEL_CUSTOMIZATION_BEDROCK_BUCKET"
PREFIX_ENV = "MODEL_CUSTOMIZATION_BEDROCK_PREFIX"
ROLE_ENV = "MODEL_CUSTOMIZATION_BEDROCK_ROLE_ARN"
PRICE_ENV = "MODEL_CUSTOMIZATION_BEDROCK_USD_PER_MILLION_TOKENS"
DEFAULT_PREFIX = "model-customization"
SERVICES = ("bedrock", "bedrock-runtime", "s3")

# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# The service role Bedrock assumes, as the API's own pattern for roleArn.
_ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")

# Clients handed in by tests, per service name; consulted before a real client is made.
_overrides: dict[str, Any] = {}


@dataclass(frozen=True)
class BedrockSettings:
    region: str
    bucket: str
    prefix: str  # no leading or trailing slash; may be empty
    role_arn: str

    def s3_uri(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, *([self.prefix] if self.prefix else []), *parts])

    def key(self, *parts: str) -> str:
        return "/".join([*([self.prefix] if self.prefix else []), *parts])


@contextmanager
def use_clients(clients: dict[str, Any]) -> Iterator[None]:
    """Make `client(service)` return these clients (e.g. {"bedrock": stubbed, "s3": moto_s3}) inside the block."""
    unknown = set(clients) - set(SERVICES)
    if unknown:
        raise ValueError(f"unknown services {sorted(unknown)}; expected some of {SERVICES}")
    saved = dict(_overrides)
    _overrides.update(clients)
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)


def region() -> str:
    """MODEL_CUSTOMIZATION_BEDROCK_REGION wins, then AWS_REGION, AWS_DEFAULT_REGION, then the profile's region."""
    chosen = os.environ.get(REGION_ENV) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not chosen:
        import boto3

        chosen = boto3.session.Session().region_name
    if not chosen:
        raise UserError(
            f"No AWS region set for Bedrock. Set {REGION_ENV} (or AWS_REGION) to a region where Bedrock offers "
            "fine-tuning, e.g. us-east-1 or us-west-2."
        )
    return chosen


def settings() -> BedrockSettings:
    """The bucket, prefix and service role a customization job needs; UserError naming what is missing."""
    bucket = (os.environ.get(BUCKET_ENV) or "").strip()
    if not bucket:
        raise UserError(
            f"{BUCKET_ENV} is not set. Set it to an S3 bucket (in the Bedrock region) where training data is uploaded "
            f"and Bedrock writes its output; {PREFIX_ENV} picks a folder in it (default {DEFAULT_PREFIX!r})."
        )
    if bucket.startswith("s3://"):
        bucket = bucket[len("s3://"):].rstrip("/")
    if not _BUCKET_NAME.match(bucket):
        raise UserError(f"{BUCKET_ENV}={bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, dots, hyphens). Give the bare bucket name.")
    role_arn = (os.environ.get(ROLE_ENV) or "").strip()
    if not role_arn:
        raise UserError(
            f"{ROLE_ENV} is not set. Set it to the ARN of an IAM service role that Bedrock may assume "
            f"(trust policy for bedrock.amazonaws.com) with read and write access to s3://{bucket}."
        )
    if not _ROLE_ARN.match(role_arn):
        raise UserError(f"{ROLE_ENV}={role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>).")
    prefix = os.environ.get(PREFIX_ENV, DEFAULT_PREFIX).strip().strip("/")
    return BedrockSettings(region=region(), bucket=bucket, prefix=prefix, role_arn=role_arn)


def check_credentials() -> None:
    """Refuse early when boto3's default chain finds no AWS credentials (tests with handed-in clients skip this)."""
    if _overrides:
        return
    import boto3

    found = boto3.session.Session().get_credentials()
    if found is None:
        raise UserError(
            "No AWS credentials found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
            "temporary ones), or AWS_PROFILE naming a configured profile, then try again."
        )


def client(service: str) -> Any:
    """A boto3 client for "bedrock", "bedrock-runtime" or "s3" in the configured region (or the test's)."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
    if service in _overrides:
        return _overrides[service]
    check_credentials()
    import boto3
    from botocore.config import Config

    # Standard retries cover throttling; a short connect timeout makes an unreachable endpoint fail fast.
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120)
    return boto3.session.Session(region_name=region()).client(service, config=config)


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError ("ResourceNotFoundException", ...), else None."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return (response.get("Error") or {}).get("Code")
    return None


def error_message(error: BaseException) -> str:
    """What AWS said, for our error messages (AWS error texts carry no credentials)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        err = response.get("Error") or {}
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
    return f"{type(error).__name__}: {error}"
