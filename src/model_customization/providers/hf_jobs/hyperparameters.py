"""An hf-jobs job's hyperparameters: exactly the local trainer's (the same model, so the same job trains the same way
here or there), plus where it runs: the hardware flavour and the Hub repository that carries its files. These two
are part of the job's hyperparameters so that the quote and the availability check (which see hyperparameters,
not options) know them before anything is spent, and a job on other hardware has its own idempotency key."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, ValidationError, field_validator

from model_customization.errors import UserError
from model_customization.providers.hf_jobs.flavours import DEFAULT_FLAVOR, canonical_flavour, known_flavours
from model_customization.providers.local.hyperparameters import LocalHyperparameters

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
PLACEMENT_FIELDS = ("flavor", "repository")


class HfJobsHyperparameters(LocalHyperparameters):
    flavor: str = Field(DEFAULT_FLAVOR, description="hf-jobs: the Hugging Face Jobs hardware (cpu-basic, t4-small, l4x1, a10g-small, a10g-large, a100-large, h200 ...).")
    repository: str | None = Field(
        None,
        description="hf-jobs: the private Hub model repository (owner/name) that carries the dataset, the wheel, checkpoints "
        "and the adapter; created private when missing. Default: <your user name>/model-customization-jobs.",
    )

    @field_validator("flavor")
    @classmethod
    def _known_flavour(cls, value: str) -> str:
        flavour = canonical_flavour(value)
        known = known_flavours()
        if flavour not in known:
            raise ValueError(f"unknown flavour {value!r}; Hugging Face Jobs offers {', '.join(known)}")
        return flavour

    @field_validator("repository")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        if value is not None and not _REPO_ID.match(value.strip()):
            raise ValueError(f"{value!r} is not a repository id; write it as owner/name")
        return value.strip() if value else value


def parse_hf_jobs_hyperparameters(raw: dict[str, Any] | None) -> HfJobsHyperparameters:
    try:
        return HfJobsHyperparameters.model_validate(raw or {})
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'hyperparameters'}: {e['msg']}" for e in error.errors())
        raise UserError(f"Invalid hyperparameters ({details}). Allowed keys: {', '.join(HfJobsHyperparameters.model_fields)}.") from error


def trainer_hyperparameters(hp: dict[str, Any]) -> dict[str, Any]:
    """What the local worker gets: the hyperparameters without where the job runs."""
    return {k: v for k, v in hp.items() if k not in PLACEMENT_FIELDS}
