"""docs/reference.md is what scripts/gen_reference.py writes from the live server, so CI fails when it is stale."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gen_reference.py"
REFERENCE = REPO / "docs" / "reference.md"


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_reference_is_current():
    result = _run("--check")
    assert result.returncode == 0, (
        f"docs/reference.md is out of date: run `python scripts/gen_reference.py` and commit it.\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
    )


def test_check_fails_with_a_diff_on_a_stale_page_and_the_generator_rewrites_it(tmp_path: Path):
    stale = tmp_path / "reference.md"
    current = REFERENCE.read_text(encoding="utf-8")
    stale.write_text(current.replace("### start_job\n", "### start_the_job\n"), encoding="utf-8")
    result = _run("--check", "--output", str(stale))
    assert result.returncode == 1
    assert "-### start_the_job" in result.stdout and "+### start_job" in result.stdout
    assert "out of date" in result.stderr
    assert "start_the_job" in stale.read_text(encoding="utf-8")  # --check changes nothing

    written = _run("--output", str(stale))
    assert written.returncode == 0, written.stderr
    rewritten = stale.read_text(encoding="utf-8")
    assert "start_the_job" not in rewritten
    # The page documents each tool with its arguments, the resources and templates, and the prompts.
    for part in ("### build_dataset_from_memory", "### start_job", "| `dataset_id` |", "## Resource templates", "`datasets://{dataset_id}`", "## Prompts"):
        assert part in rewritten, part


# --- the README's troubleshooting section quotes real messages -----------------------------------------------------
README = REPO / "README.md"
SOURCE = REPO / "src" / "model_customization"
PLACEHOLDER = re.compile(r"\{[^{}]*\}")  # a value the code fills in at run time
MIN_FRAGMENT_CHARS = 4  # shorter pieces between placeholders (", " or ": ") say nothing about the wording
MIN_LONGEST_FRAGMENT_CHARS = 12  # a quote must hold at least one real phrase of the message


def troubleshooting_messages(readme: str) -> list[str]:
    """Every line of the ```text blocks in the README's Troubleshooting section."""
    section = readme.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```text\n(.*?)```", section, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def source_strings(folder: Path) -> list[str]:
    """Every string literal in the package, implicit concatenation joined, an f-string's values as NUL."""
    found: list[str] = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                found.append("".join(part.value if isinstance(part, ast.Constant) else "\0" for part in node.values))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(node.value)
    return found


def missing_wording(message: str, strings: list[str]) -> list[str]:
    """The literal pieces of a quoted message (split at its {placeholders}) that no string in the source holds."""
    # Separators at a placeholder's edge (": ", ", ") often come from the string that joins two messages: drop them.
    fragments = [piece.strip(" :,;") for piece in PLACEHOLDER.split(message)]
    fragments = [piece for piece in fragments if len(piece) >= MIN_FRAGMENT_CHARS]
    if not fragments or max(len(piece) for piece in fragments) < MIN_LONGEST_FRAGMENT_CHARS:
        return [f"(no phrase of {MIN_LONGEST_FRAGMENT_CHARS}+ characters outside placeholders in {message!r})"]
    return [piece for piece in fragments if not any(piece in text for text in strings)]


def test_missing_wording_spots_a_reworded_message():
    strings = ["\0 has \0 training examples; at least \0 are needed. Add more memory files."]
    assert missing_wording("{d} has {n} training examples; at least {10} are needed. Add more memory files.", strings) == []
    assert missing_wording("{d} has {n} training examples; at least {10} are required.", strings) == ["are required."]
    assert missing_wording("{a} {b}", strings)  # a quote that is all placeholders proves nothing


def test_troubleshooting_quotes_messages_the_code_still_gives():
    messages = troubleshooting_messages(README.read_text(encoding="utf-8"))
    assert len(messages) >= 8, messages
    strings = source_strings(SOURCE)
    stale = {message: missing for message in messages if (missing := missing_wording(message, strings))}
    assert not stale, "README troubleshooting quotes wording the source no longer has:\n" + "\n".join(
        f"{message}\n    missing: {missing}" for message, missing in stale.items()
    )


def test_readme_tools_table_names_every_tool():
    """The README keeps a short table; each tool the generated reference documents must appear in it."""
    reference = REFERENCE.read_text(encoding="utf-8")
    documented = re.findall(r"^### ([a-z][a-z0-9_]*)$", reference.split("\n## Tools\n", 1)[1].split("\n## Resources\n", 1)[0], flags=re.MULTILINE)
    tools_section = README.read_text(encoding="utf-8").split("\n### Tools\n", 1)[1].split("\n### Resources\n", 1)[0]
    missing = [name for name in documented if f"`{name}`" not in tools_section]
    assert documented and not missing, f"add these tools to the README's Tools table: {missing}"
