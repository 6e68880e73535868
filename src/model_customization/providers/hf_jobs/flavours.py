"""What each Hugging Face Jobs hardware flavour costs, and how much faster than this machine we assume it trains.

Prices: the Hub's own hardware list (HfApi.list_jobs_hardware: unit_cost_usd per unit_label, a minute) is asked
first, at quote time; this dated table answers when that list is unreachable or lacks the flavour. Speed: there is
no measurement of our trainer on Hugging Face hardware in this ledger, so the quote scales the local speed measured
here by a stated factor per flavour; the quote says so.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FLAVOR = "a10g-small"
PRICES_READ_ON = "2026-12-06"
PRICES_SOURCE = (
    "https://huggingface.co/docs/hub/jobs-pricing (hourly prices of the CPU, T4 and L4 rows as read there on the date "
    "given; the other rows as Hugging Face's Spaces/Jobs hardware table lists them); the Hub's hardware list "
    "(list_jobs_hardware) is asked first and wins"
)
# Minutes billed besides training: the container starts, pip installs torch, transformers and our wheel, the base
# model and dataset download, the adapter uploads. An assumption (a first guess for a python:3.12 image), stated.
SETUP_MINUTES = 8.0
# The remote job's timeout is this many times the estimate (plus the setup minutes): HF bills until the job ends, so
# the timeout bounds what a stuck job can cost; the quote shows that bound too.
TIMEOUT_FACTOR = 3.0


@dataclass(frozen=True)
class Flavour:
    name: str
    usd_per_hour: float | None  # None: not in the table (the Hub's list must price it)
    speed_factor: float  # tokens/s relative to the local speed measured here (a 2-core CPU by default)
    gpu: bool


# Speed factors are rough: a CPU flavour by its vCPUs against this 2-core machine; a GPU by its class. The worker uses
# one GPU (one process), so the multi-GPU flavours get the factor of one of their GPUs.
_TABLE = [
    Flavour("cpu-basic", 0.01, 1.0, False),
    Flavour("cpu-upgrade", 0.03, 3.0, False),
    Flavour("cpu-xl", 1.00, 6.0, False),
    Flavour("cpu-performance", 1.90, 10.0, False),
    Flavour("t4-small", 0.40, 15.0, True),
    Flavour("t4-medium", 0.60, 15.0, True),
    Flavour("l4x1", 0.80, 25.0, True),
    Flavour("l4x4", 3.80, 25.0, True),
    Flavour("l40sx1", 1.80, 50.0, True),
    Flavour("l40sx4", 8.30, 50.0, True),
    Flavour("l40sx8", 23.50, 50.0, True),
    Flavour("a10g-small", 1.00, 30.0, True),
    Flavour("a10g-large", 1.50, 30.0, True),
    Flavour("a10g-largex2", 3.00, 30.0, True),
    Flavour("a10g-largex4", 5.00, 30.0, True),
    Flavour("a100-large", 2.50, 80.0, True),
    Flavour("a100x4", 10.00, 80.0, True),
    Flavour("a100x8", 20.00, 80.0, True),
    Flavour("h200", 5.00, 150.0, True),
    Flavour("h200x2", 10.00, 150.0, True),
    Flavour("h200x4", 20.00, 150.0, True),
    Flavour("h200x8", 40.00, 150.0, True),
    Flavour("rtx-pro-6000", None, 100.0, True),
    Flavour("rtx-pro-6000x2", None, 100.0, True),
    Flavour("rtx-pro-6000x4", None, 100.0, True),
    Flavour("rtx-pro-6000x8", None, 100.0, True),
]
FLAVOURS = {f.name: f for f in _TABLE}
# Names people write for a flavour that the Hub spells otherwise.
ALIASES = {"a10g": "a10g-small", "a100": "a100-large", "t4": "t4-small", "l4": "l4x1", "l40s": "l40sx1", "cpu": "cpu-basic"}


def known_flavours() -> list[str]:
    """Every flavour huggingface_hub's JobHardware enum names (kept in sync with the Hub by its authors), else ours."""
    try:
        from huggingface_hub import JobHardware
    except ImportError:
        return list(FLAVOURS)
    return [member.value for member in JobHardware]


def canonical_flavour(name: str | None) -> str:
    """The flavour's Hub name; UserError-free: the caller checks it is in known_flavours()."""
    raw = (name or DEFAULT_FLAVOR).strip().lower()
    return ALIASES.get(raw, raw)
