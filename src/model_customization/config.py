"""Settings from the environment: where data lives, which limits apply.

Everything the product stores (the ledger, dataset files, adapters, converted base models, evaluation
reports) sits under one data home so that a server restart, the CLI and the worker processes see the same state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

HOME_ENV = "MODEL_CUSTOMIZATION_HOME"
STORE_URL_ENV = "MODEL_CUSTOMIZATION_STORE_URL"
MODEL_CACHE_ENV = "MODEL_CUSTOMIZATION_MODEL_CACHE"
MAX_LOCAL_JOBS_ENV = "MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS"
LAUNCHER_ENV = "MODEL_CUSTOMIZATION_WORKER_LAUNCHER"
BUDGET_PER_JOB_ENV = "MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD"
BUDGET_PER_DAY_ENV = "MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD"


@dataclass(frozen=True)
class Settings:
    home: Path
    store_url: str
    model_cache: Path  # converted base models (the embedded GGUF as a plain HF folder); shareable between homes
    max_local_jobs: int = 1  # local jobs training at once; the rest wait in the queue
    worker_launcher: str | None = None  # e.g. "accelerate launch --multi_gpu --num_processes 2": one job on several GPUs
    # Dollars a paid job may commit without the caller confirming, per job and per UTC day. 0 (the default): every
    # paid job needs a confirmation (MCP elicitation, or confirm_cost_usd at least the quote).
    budget_per_job_usd: float = 0.0
    budget_per_day_usd: float = 0.0

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def evals_dir(self) -> Path:
        return self.home / "evals"


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings: an explicit home wins, then $MODEL_CUSTOMIZATION_HOME, then the user's data directory."""
    chosen = Path(home or os.environ.get(HOME_ENV) or user_data_dir("model-customization")).expanduser().resolve()
    chosen.mkdir(parents=True, exist_ok=True)
    store_url = os.environ.get(STORE_URL_ENV) or f"sqlite:///{chosen / 'ledger.sqlite3'}"
    model_cache = Path(os.environ.get(MODEL_CACHE_ENV) or chosen / "models" / "base").expanduser().resolve()
    raw_limit = os.environ.get(MAX_LOCAL_JOBS_ENV, "1")
    try:
        max_local_jobs = int(raw_limit)
        if max_local_jobs < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"{MAX_LOCAL_JOBS_ENV}={raw_limit!r}: expected a whole number of at least 1") from None
    launcher = os.environ.get(LAUNCHER_ENV) or None
    return Settings(
        home=chosen,
        store_url=store_url,
        model_cache=model_cache,
        max_local_jobs=max_local_jobs,
        worker_launcher=launcher,
        budget_per_job_usd=_dollars(BUDGET_PER_JOB_ENV),
        budget_per_day_usd=_dollars(BUDGET_PER_DAY_ENV),
    )


def _dollars(name: str) -> float:
    raw = os.environ.get(name, "0")
    try:
        value = float(raw)
        if not value >= 0:  # also refuses NaN
            raise ValueError
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected an amount of US dollars, 0 or more (e.g. 25 or 7.50)") from None
    return value
