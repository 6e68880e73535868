"""Settings from the environment: where data lives, which limits apply.

Everything the product stores (the ledger, dataset files, adapters, converted base models, evaluation
reports) sits under one data home so that a server restart, the CLI and the worker processes see the same state.

An optional config file (TOML: $MODEL_CUSTOMIZATION_CONFIG, else <data home>/config.toml) supplies defaults for
these variables, API keys included. It is read each time settings are loaded (server start, CLI start, each worker
process) and its values go into this process's environment only where a variable is not already set, so the
environment always wins and worker processes started from here inherit the result. See `apply_config_file`.
"""

from __future__ import annotations

import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_data_dir

from model_customization.errors import UserError

HOME_ENV = "MODEL_CUSTOMIZATION_HOME"
STORE_URL_ENV = "MODEL_CUSTOMIZATION_STORE_URL"
MODEL_CACHE_ENV = "MODEL_CUSTOMIZATION_MODEL_CACHE"
MAX_LOCAL_JOBS_ENV = "MODEL_CUSTOMIZATION_MAX_LOCAL_JOBS"
LAUNCHER_ENV = "MODEL_CUSTOMIZATION_WORKER_LAUNCHER"
BUDGET_PER_JOB_ENV = "MODEL_CUSTOMIZATION_BUDGET_PER_JOB_USD"
BUDGET_PER_DAY_ENV = "MODEL_CUSTOMIZATION_BUDGET_PER_DAY_USD"
# Whether a tool argument (confirm_cost_usd, confirm=true) may approve spending above the budgets. Off by default: the
# agent that calls the tool is the one the guard checks, so only a person (elicitation, a terminal) approves.
ARGUMENT_CONFIRMATION_ENV = "MODEL_CUSTOMIZATION_ALLOW_ARGUMENT_CONFIRMATION"
LEASE_SECONDS_ENV = "MODEL_CUSTOMIZATION_LEASE_SECONDS"  # how long a local job's worker holds it between renewals
CONFIG_ENV = "MODEL_CUSTOMIZATION_CONFIG"
CONFIG_FILE_NAME = "config.toml"
ALLOWED_ROOTS_ENV = "MODEL_CUSTOMIZATION_ALLOWED_ROOTS"  # os.pathsep-separated folders (see paths.py)
MAX_FILE_BYTES_ENV = "MODEL_CUSTOMIZATION_MAX_FILE_BYTES"  # largest memory file read (bytes, or e.g. "1GiB")
MAX_LINE_BYTES_ENV = "MODEL_CUSTOMIZATION_MAX_LINE_BYTES"  # longest line of a memory file read (bytes, or "64MiB")


@dataclass(frozen=True)
class Settings:
    home: Path
    store_url: str = field(repr=False)  # may carry a database password: never in a repr
    model_cache: Path  # converted base models (the embedded GGUF as a plain HF folder); shareable between homes
    max_local_jobs: int = 1  # local jobs training at once; the rest wait in the queue
    worker_launcher: str | None = None  # e.g. "accelerate launch --multi_gpu --num_processes 2": one job on several GPUs
    # Dollars paid operations (a job, a prompt, an evaluation run ...) may commit without a person confirming, per
    # operation and per UTC day; no tool argument raises them. 0 (the default): every paid call needs a person
    # (MCP elicitation or the CLI on a terminal), see jobs/spending.py.
    budget_per_job_usd: float = 0.0
    budget_per_day_usd: float = 0.0
    allow_argument_confirmation: bool = False  # confirm_cost_usd / confirm=true may stand in for a person
    # Several servers on one ledger: a worker renews its job's lease every third of this; a job whose lease ran out
    # on another machine is taken over.
    lease_seconds: float = 60.0
    config_file: Path | None = None  # the config file whose values were applied, if any

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
    make_private_home(chosen)
    config_file = apply_config_file(chosen)  # before the variables below are read: the file may supply them
    store_url = os.environ.get(STORE_URL_ENV) or f"sqlite:///{chosen / 'ledger.sqlite3'}"
    model_cache = Path(os.environ.get(MODEL_CACHE_ENV) or chosen / "models" / "base").expanduser().resolve()
    launcher = os.environ.get(LAUNCHER_ENV) or None
    return Settings(
        home=chosen,
        store_url=store_url,
        model_cache=model_cache,
        max_local_jobs=int(_number(MAX_LOCAL_JOBS_ENV, "1", minimum=1, whole=True, expected="a whole number of at least 1 (e.g. 2)")),
        worker_launcher=launcher,
        budget_per_job_usd=_number(BUDGET_PER_JOB_ENV, "0", minimum=0, expected=_DOLLARS),
        budget_per_day_usd=_number(BUDGET_PER_DAY_ENV, "0", minimum=0, expected=_DOLLARS),
        allow_argument_confirmation=_switch(ARGUMENT_CONFIRMATION_ENV),
        lease_seconds=_number(LEASE_SECONDS_ENV, "60", minimum=1, expected="a number of seconds, at least 1 (e.g. 60)"),
        config_file=config_file,
    )


def make_private_home(home: Path) -> None:
    """Create the data home private to its owner (0700): it holds the ledger (dataset cards, evaluation answers) and
    the datasets themselves, which nobody else on the machine should read. An existing folder is left as it is."""
    if not home.is_dir():
        home.parent.mkdir(parents=True, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
        if os.name != "nt":
            home.chmod(0o700)  # mkdir's mode is filtered by the umask; make it exact


def _switch(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw[:40]!r} (from the {setting_source(name)}): expected true or false.")


_DOLLARS = "an amount of US dollars, 0 or more (e.g. 25 or 7.50)"


def setting_source(name: str) -> str:
    """Where a variable's value came from, for error messages: a line of the config file, or the environment."""
    applied = _FROM_CONFIG_FILE.get(name)
    if applied is not None and os.environ.get(name) == applied[0]:
        return applied[1]
    return f"environment variable {name}"


def _number(name: str, default: str, *, minimum: float, expected: str, whole: bool = False) -> float:
    """A numeric setting: finite, at least `minimum`, whole where asked. A ConfigError names the variable, the value
    and where it was set (nan, inf, "abc" and "1e400" are all refused)."""
    raw = os.environ.get(name, "").strip() or default
    try:
        value = int(raw) if whole else float(raw)
        if not math.isfinite(value) or value < minimum:
            raise ValueError(raw)
    except ValueError:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ConfigError(f"{name}={shown!r} (from the {setting_source(name)}): expected {expected}.") from None
    return value


# --- the config file -------------------------------------------------------------------------------------------------
# Top-level keys of the config file and the variable each one stands for.
_FILE_KEYS = {"allowed_roots": ALLOWED_ROOTS_ENV, "max_file_bytes": MAX_FILE_BYTES_ENV, "max_line_bytes": MAX_LINE_BYTES_ENV}
# [env] may set only the variables this product or its provider SDKs read: a config file must not become a way to
# set PYTHONPATH or LD_PRELOAD for the worker processes.
_ENV_PREFIXES = ("MODEL_CUSTOMIZATION_", "OPENAI_", "ANTHROPIC_", "AWS_", "HF_")
_ENV_NOT_SETTABLE = (HOME_ENV, CONFIG_ENV)  # they decide which config file is read
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL", re.IGNORECASE)
_URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")  # e.g. postgresql://user:password@host/db


class ConfigError(UserError, ValueError):
    """A config file that cannot be used; the message names the file and the key, never a value."""


# Variable -> (value, "config file <path> line <n> (key)") for each value this process took from a config file, so
# that a setting's error can say where it was set.
_FROM_CONFIG_FILE: dict[str, tuple[str, str]] = {}


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    # Variable name -> value, top-level settings already translated to their variables. Never printed: keys only.
    env: dict[str, str] = field(repr=False)
    lines: dict[str, str] = field(default_factory=dict)  # variable name -> "line N (key)" where the file sets it
    # [openai_compatible.<name>] tables, checked: name -> the fields of providers/openai/endpoints.Endpoint. May hold
    # an api_key: never printed.
    endpoints: dict[str, dict[str, object]] = field(default_factory=dict, repr=False)

    @property
    def secret_names(self) -> list[str]:
        """The variables whose value is, or holds, a secret: by name (…_KEY, …_TOKEN), a password in a URL, or a
        value the redaction detectors take for a credential wherever it sits (a token inside a launcher command)."""
        found = [name for name, value in self.env.items() if _SECRET_NAME.search(name) or _URL_WITH_PASSWORD.search(value) or _holds_secret(value)]
        found += [f"openai_compatible.{name}.api_key" for name, table in self.endpoints.items() if table.get("api_key_value")]
        return sorted(found)

    def source(self, name: str) -> str:
        where = self.lines.get(name)
        return f"config file {self.path} {where}" if where else f"config file {self.path}"


def _holds_secret(value: str) -> bool:
    # The build's redaction rules, so that what a dataset would never store is also what a config file must guard.
    from model_customization.datasets.redaction import redact_text

    counts = redact_text(value)[1]
    return any(counts.get(kind) for kind in ("secret", "private_key", "url_password"))


def _key_lines(text: str) -> dict[str, int]:
    """Where each key is set: "key" for top-level keys, "env.NAME" for [env] entries (dotted or in the table)."""
    found: dict[str, int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\s*(#.*)?", stripped)
        if header:
            table = ".".join(part.strip().strip("\"'") for part in header.group(1).split("."))
            found.setdefault(table, number)
            continue
        assignment = re.match(r"([A-Za-z0-9_.\"' -]+?)\s*=", stripped)
        if assignment:
            key = ".".join(part.strip().strip("\"'") for part in assignment.group(1).split("."))
            found.setdefault(f"{table}.{key}" if table else key, number)
    return found


def config_file_path(home: str | os.PathLike[str]) -> Path | None:
    """The config file to read: $MODEL_CUSTOMIZATION_CONFIG (which must exist), else <home>/config.toml if present."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={named}: no such file. Create it, or unset {CONFIG_ENV} to use <data home>/{CONFIG_FILE_NAME}.")
        return path.resolve()
    default = Path(home) / CONFIG_FILE_NAME
    return default.resolve() if default.is_file() else None


def read_config_file(path: str | os.PathLike[str]) -> ConfigFile:
    """Parse and check a config file. Errors name the file and the key, never a value (values may be API keys)."""
    # Imported here: reading_limits imports paths, which imports this module.
    from model_customization.reading_limits import (
        MAX_CONFIG_FILE_BYTES,
        read_regular_bytes,
    )

    path = Path(path)
    try:
        # Only a regular file, and a small one (reading_limits.py): a FIFO named as the config must not hang start-up.
        text = read_regular_bytes(path, what="The config file", max_bytes=MAX_CONFIG_FILE_BYTES, limit_setting=None).decode("utf-8")
        document = tomllib.loads(text)
    except UserError as error:  # a FIFO, a device or an oversized file
        raise ConfigError(str(error)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Cannot read the config file {path}: {type(error).__name__}.") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"The config file {path} is not valid TOML: {error}.") from None
    key_lines = _key_lines(text)
    endpoints: dict[str, dict[str, object]] = {}
    env: dict[str, str] = {}
    lines: dict[str, str] = {}
    for key, value in document.items():
        if key == "env":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: 'env' must be a table ([env] with NAME = \"value\" lines).")
            for name, item in value.items():
                env[_checked_env_name(path, name)] = _env_value(path, f"env.{name}", item)
                if f"env.{name}" in key_lines:
                    lines[name] = f"line {key_lines[f'env.{name}']} (env.{name})"
        elif key in _FILE_KEYS:
            env[_FILE_KEYS[key]] = _roots_value(path, value) if key == "allowed_roots" else _env_value(path, key, value)
            if key in key_lines:
                lines[_FILE_KEYS[key]] = f"line {key_lines[key]} ({key})"
        elif key == ENDPOINTS_TABLE:
            endpoints = _endpoint_tables(path, value, key_lines)
        else:
            raise ConfigError(f"{path}: unknown setting {key!r}. Known: {', '.join([*_FILE_KEYS, 'env', ENDPOINTS_TABLE])}.")
    for key, name in _FILE_KEYS.items():
        if key in document and name in document.get("env", {}):
            raise ConfigError(f"{path}: both {key} and env.{name} are given; keep one.")
    config = ConfigFile(path=path, env=env, lines=lines, endpoints=endpoints)
    _check_permissions(config)
    return config


def apply_config_file(home: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Path | None:
    """Read the config file (if any) and set each of its variables that `environ` (default: os.environ) lacks.

    Returns the file's path, or None when there is none. Variables already set keep their values: the environment
    wins over the file, so one process can still override a key for itself.
    """
    global _config_in_force
    path = config_file_path(home)
    if environ is None:
        _config_in_force = path
    if path is None:
        return None
    target = os.environ if environ is None else environ
    config = read_config_file(path)
    for name, value in config.env.items():
        if not target.get(name):
            target[name] = value
            if environ is None:
                _FROM_CONFIG_FILE[name] = (value, config.source(name))
    return path


def _checked_env_name(path: Path, name: str) -> str:
    if name in _ENV_NOT_SETTABLE:
        raise ConfigError(f"{path}: env.{name} cannot be set in the config file (it decides which config file is read); set it in the environment.")
    if not name.startswith(_ENV_PREFIXES) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
        raise ConfigError(f"{path}: env.{name} is not a variable the config file may set; allowed: names starting with {', '.join(_ENV_PREFIXES)}.")
    return name


def _env_value(path: Path, key: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{path}: {key} must be a string or a number (got a TOML {type(value).__name__}).")
    return str(value)


def _roots_value(path: Path, value: object) -> str:
    """allowed_roots as the variable holds them: absolute paths (relative ones are relative to the config file)."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise ConfigError(f"{path}: allowed_roots must be a list of folder paths, e.g. allowed_roots = [\"~/notes\", \"/srv/memory\"].")
    roots = [str((path.parent / Path(item).expanduser()).resolve()) for item in value]
    for root in roots:
        if os.pathsep in root:
            raise ConfigError(f"{path}: the allowed root {root} contains {os.pathsep!r}, which separates roots; rename or link the folder.")
    return os.pathsep.join(roots)


def _check_permissions(config: ConfigFile) -> None:
    """Like ssh (StrictModes): a file someone else can change is refused, since it can name the worker launcher, which
    runs. So the file must belong to this user (or root), be writable by no one else, and sit in folders, up to the
    root, that belong to this user or root and that no one else can write to (unless sticky, as /tmp is: others may
    add files there but not replace ours). A file that holds secrets must not be readable by others either."""
    if os.name == "nt":
        return  # POSIX mode bits mean nothing there; NTFS ACLs are the user's profile's
    info = config.path.stat()
    mode = info.st_mode
    me = os.geteuid()
    if info.st_uid not in (me, 0):
        raise ConfigError(
            f"The config file {config.path} belongs to another user (uid {info.st_uid}), who could change what this "
            f"server runs; it is not used. Make it yours: chown {_user_name(me)} {config.path} (or move your own copy there)."
        )
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"The config file {config.path} is writable by group or others (mode {stat.filemode(mode)}); run: chmod go-w {config.path}")
    for folder in config.path.parents:
        folder_info = folder.stat()
        unsafe_owner = folder_info.st_uid not in (me, 0)
        shared_writable = folder_info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not folder_info.st_mode & stat.S_ISVTX
        if unsafe_owner or shared_writable:
            why = f"belongs to another user (uid {folder_info.st_uid})" if unsafe_owner else f"is writable by group or others (mode {stat.filemode(folder_info.st_mode)})"
            fix = f"chown {_user_name(me)} {folder}" if unsafe_owner else f"chmod go-w {folder}"
            raise ConfigError(
                f"The config file {config.path} is in the folder {folder}, which {why}: someone else could replace the "
                f"file. Run: {fix}, or keep the config file in a folder only you can change."
            )
    secrets = config.secret_names if mode & (stat.S_IRGRP | stat.S_IROTH) else []  # the detectors run only when it matters
    if secrets:
        raise ConfigError(
            f"The config file {config.path} holds secrets ({', '.join(secrets)}) but is readable by group or others "
            f"(mode {stat.filemode(mode)}); run: chmod 600 {config.path}"
        )


# --- [openai_compatible.<name>]: OpenAI-compatible endpoints (providers/openai/endpoints.py) -------------------------
ENDPOINTS_TABLE = "openai_compatible"
_ENDPOINT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")  # a provider name (providers/registry.py)
_AUTH_KINDS = ("bearer", "api-key", "none")
_METHODS = ("sft", "dpo")
# key in the file -> (field of Endpoint, what it must be)
_ENDPOINT_FIELDS = {
    "title": ("title", "a string"),
    "base_url": ("base_url", "an http(s) URL, e.g. \"https://bedrock-mantle.us-east-1.api.aws/v1\""),
    "auth": ("auth", "one of bearer, api-key, none"),
    "key_env": ("key_env", "the name of an environment variable, e.g. \"AWS_BEARER_TOKEN_BEDROCK\""),
    "api_key": ("api_key_value", "a string (better: key_env, so the key stays out of the file)"),
    "closes_on": ("closes_on", "a TOML date, e.g. 2027-06-30"),
    "training_ends": ("training_ends", "a table of model = date, e.g. \"gpt-4o\" = 2027-04-01"),
    "model_shutdowns": ("model_shutdowns", "a table of model = date"),
    "training_prices": ("training_prices", "a table of model = { usd_per_million_tokens = N } or { usd_per_hour = N }"),
    "chat_prices": ("chat_prices", "a table of model = [USD per 1M input tokens, USD per 1M output tokens]"),
    "base_models": ("base_models", "a list of model names, or \"ask\" (the service decides)"),
    "default_base_model": ("default_base_model", "a model name"),
    "methods": ("methods", "a list of sft and/or dpo"),
    "file_expiry_seconds": ("file_expiry_seconds", "a whole number of seconds"),
    "metadata_filter": ("metadata_filter", "true or false (whether GET /fine_tuning/jobs filters by metadata)"),
    "example_token_limit": ("example_token_limit", "a whole number of tokens"),
    "deployments": ("deployments", "a table of model = deployment name"),
}
_config_in_force: Path | None | bool = False  # the config file load_settings last applied here (None: none; False: not loaded yet)
_openai_compatible_cache: tuple[tuple[str, int, int] | None, dict[str, dict[str, object]]] = (None, {})


def _endpoint_tables(path: Path, value: object, key_lines: dict[str, int]) -> dict[str, dict[str, object]]:
    """Check each [openai_compatible.<name>] table; errors name the file, the key and its line, never a value."""
    import datetime

    def where(*keys: str) -> str:
        dotted = ".".join((ENDPOINTS_TABLE, *keys))
        line = key_lines.get(dotted)
        return f"{path} line {line} ({dotted})" if line else f"{path} ({dotted})"

    def bad(keys: tuple[str, ...], expected: str) -> ConfigError:
        return ConfigError(f"{where(*keys)}: expected {expected}.")

    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {ENDPOINTS_TABLE} must hold tables, e.g. [{ENDPOINTS_TABLE}.my-endpoint] with base_url = \"...\".")
    found: dict[str, dict[str, object]] = {}
    for name, table in value.items():
        if not _ENDPOINT_NAME.match(name):
            raise ConfigError(f"{where(name)}: an endpoint name is a provider name: lower-case letters, digits, - and _, starting with a letter, at most 40.")
        if not isinstance(table, dict):
            raise bad((name,), "a table of settings")
        fields: dict[str, object] = {}
        for key, item in table.items():
            if key not in _ENDPOINT_FIELDS:
                raise ConfigError(f"{where(name, key)}: unknown endpoint setting. Known: {', '.join(_ENDPOINT_FIELDS)}.")
            target, expected = _ENDPOINT_FIELDS[key]
            keys = (name, key)
            if key in ("title", "default_base_model", "api_key", "key_env", "base_url", "auth"):
                if not isinstance(item, str) or not item.strip():
                    raise bad(keys, expected)
                if key == "base_url" and not re.match(r"^https?://[^\s/]+", item):
                    raise bad(keys, expected)
                if key == "auth" and item not in _AUTH_KINDS:
                    raise bad(keys, expected)
                if key == "key_env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item):
                    raise bad(keys, expected)
                fields[target] = item.strip()
            elif key == "closes_on":
                if not isinstance(item, datetime.date) or isinstance(item, datetime.datetime):
                    raise bad(keys, expected)
                fields[target] = item
            elif key in ("training_ends", "model_shutdowns"):
                if not isinstance(item, dict) or not all(isinstance(d, datetime.date) and not isinstance(d, datetime.datetime) for d in item.values()):
                    raise bad(keys, expected)
                fields[target] = dict(item)
            elif key == "training_prices":
                from model_customization.providers.openai.endpoints import TrainingPrice

                prices = {}
                for model, price in (item.items() if isinstance(item, dict) else [(None, None)]):
                    if not isinstance(price, dict) or len(price) != 1 or not set(price) <= {"usd_per_million_tokens", "usd_per_hour"}:
                        raise bad(keys if model is None else (*keys, model), expected)
                    (unit, amount), = price.items()
                    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                        raise bad((*keys, model), "a price of 0 or more")
                    prices[model] = TrainingPrice(**{unit: float(amount)})
                fields[target] = prices
            elif key == "chat_prices":
                prices = {}
                for model, pair in (item.items() if isinstance(item, dict) else [(None, None)]):
                    if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 for x in pair):
                        raise bad(keys if model is None else (*keys, model), expected)
                    prices[model] = (float(pair[0]), float(pair[1]))
                fields[target] = prices
            elif key == "base_models":
                if item == "ask":
                    fields[target] = None
                elif isinstance(item, list) and item and all(isinstance(m, str) and m.strip() for m in item):
                    fields[target] = tuple(m.strip() for m in item)
                else:
                    raise bad(keys, expected)
            elif key == "methods":
                if not isinstance(item, list) or not item or not all(m in _METHODS for m in item):
                    raise bad(keys, expected)
                fields[target] = tuple(item)
            elif key in ("file_expiry_seconds", "example_token_limit"):
                if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                    raise bad(keys, expected)
                fields[target] = item
            elif key == "metadata_filter":
                if not isinstance(item, bool):
                    raise bad(keys, expected)
                fields[target] = item
            elif key == "deployments":
                if not isinstance(item, dict) or not all(isinstance(d, str) and d.strip() for d in item.values()):
                    raise bad(keys, expected)
                fields[target] = {str(k): d.strip() for k, d in item.items()}
        builtin = name in ("openai", "azure-openai")
        if not builtin:
            if "base_url" not in fields:
                raise ConfigError(f"{where(name)}: a new endpoint needs base_url (the API root that serves /files and /fine_tuning/jobs).")
            fields.setdefault("title", name)
            fields.setdefault("auth", "bearer")
            if fields["auth"] != "none" and "key_env" not in fields and "api_key_value" not in fields:
                raise ConfigError(f"{where(name)}: give key_env (the environment variable holding the key), or auth = \"none\".")
            fields.setdefault("key_env", None)
            line = key_lines.get(f"{ENDPOINTS_TABLE}.{name}.base_url")
            fields["source"] = f"config file {path}" + (f" line {line}" if line else "")
        found[name] = fields
    return found


def openai_compatible_tables() -> dict[str, dict[str, object]]:
    """The [openai_compatible.<name>] tables of the config file in force ($MODEL_CUSTOMIZATION_CONFIG, else
    <data home>/config.toml), read again only when the file changes."""
    global _openai_compatible_cache
    if os.environ.get(CONFIG_ENV) or _config_in_force is False:
        home = os.environ.get(HOME_ENV) or user_data_dir("model-customization")
        path = config_file_path(Path(home).expanduser())
    else:  # the file load_settings applied (its home may have been given as an argument), or none
        path = _config_in_force if isinstance(_config_in_force, Path) and _config_in_force.is_file() else None
    if path is None:
        _openai_compatible_cache = (None, {})
        return {}
    info = path.stat()
    stamp = (str(path), info.st_mtime_ns, info.st_size)
    if _openai_compatible_cache[0] != stamp:
        _openai_compatible_cache = (stamp, read_config_file(path).endpoints)
    return _openai_compatible_cache[1]


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)
