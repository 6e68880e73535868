"""What the remote job installs to run our worker: this package as a wheel.

From a source checkout (the package's pyproject.toml sits two folders above it) the wheel is built from a copy of the
sources with pip (no build isolation: this environment's setuptools, no download) and kept in the model cache under
a hash of the sources, so it is built once per version of the code. An installation from an index has no sources to
build: the remote job then installs the same version from PyPI (`model-customization==<version>`), pinned.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from model_customization.errors import UserError
from model_customization.storage import file_lock

DISTRIBUTION = "model-customization"
_SOURCE_SUFFIXES = {".py", ".md", ".mako", ".ini", ".json", ".jsonl", ".txt", ".toml", ".yaml", ".yml", ".jinja"}


@dataclass(frozen=True)
class Shipment:
    """How the remote job gets this package: a wheel file to upload, or a pinned requirement from PyPI."""

    wheel: Path | None
    requirement: str  # what pip installs remotely (the wheel's file name, or name==version)
    how: str  # said in the job's events and details


def source_root() -> Path | None:
    """The checkout this package runs from, or None when it was installed from an index."""
    package = Path(__file__).resolve().parents[2]  # .../src/model_customization
    root = package.parents[1]
    pyproject = root / "pyproject.toml"
    if package.parent.name == "src" and pyproject.is_file() and f'name = "{DISTRIBUTION}"' in pyproject.read_text(encoding="utf-8"):
        return root
    return None


def _source_files(root: Path) -> list[Path]:
    package = root / "src" / "model_customization"
    files = [p for p in package.rglob("*") if p.is_file() and p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts]
    return sorted(files) + [root / "pyproject.toml"]


def sources_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in _source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_wheel(root: Path, cache: Path) -> Path:
    """The wheel of these sources, built once (cache/<sources hash>/*.whl)."""
    target = cache / sources_hash(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        found = sorted(target.glob("*.whl")) if target.is_dir() else []
        if found:
            return found[0]
        with tempfile.TemporaryDirectory(prefix="mc-wheel-") as work:
            copy = Path(work) / "src-copy"
            # A copy: building in the checkout would leave build/ and *.egg-info there.
            shutil.copytree(root / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            for name in ("pyproject.toml", "README.md", "LICENSE"):
                if (root / name).is_file():
                    shutil.copy2(root / name, copy / name)
            out = Path(work) / "out"
            built = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(copy)],
                capture_output=True, text=True, timeout=600,
            )
            wheels = sorted(out.glob("*.whl")) if out.is_dir() else []
            if built.returncode != 0 or not wheels:
                raise UserError(f"Could not build this package's wheel for the remote job: {built.stderr.strip()[-800:]}")
            staging = Path(tempfile.mkdtemp(prefix=".wheel-", dir=target.parent))
            shutil.move(str(wheels[0]), staging / wheels[0].name)
            staging.rename(target)
        return next(target.glob("*.whl"))


def installed_from_index() -> str | None:
    """name==version when this package was installed from an index (no local or editable source), else None."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    direct = dist.read_text("direct_url.json")
    if direct:
        info = json.loads(direct)
        if info.get("dir_info") or str(info.get("url", "")).startswith("file:"):
            return None  # a local folder or file: PyPI may not have this code
    return f"{DISTRIBUTION}=={dist.version}"


def shipment(cache: Path) -> Shipment:
    root = source_root()
    if root is not None:
        wheel = build_wheel(root, cache)
        return Shipment(wheel, wheel.name, f"wheel {wheel.name} built from this checkout (sources {wheel.parent.name})")
    pinned = installed_from_index()
    if pinned is None:
        raise UserError(
            "This installation of model-customization has neither its sources (to build a wheel) nor a version from PyPI "
            "to pin, so the remote job could not install the same code. Install it from PyPI or from a source checkout."
        )
    return Shipment(None, pinned, f"{pinned} from PyPI (installed from an index here, so the same version is pinned)")
