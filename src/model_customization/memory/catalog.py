"""What the server says about the memory formats it reads, derived from the format registry (detect.FORMATS).

The build tool's argument description, the prompts, docs/reference.md and the README's formats table all come from
here, so a format added to the registry is named everywhere without anyone writing it out again.
"""

from __future__ import annotations

from model_customization.memory import detect
from model_customization.memory.formats import MemoryFormat

README_BEGIN = "<!-- memory formats table: written by scripts/gen_reference.py from the format registry -->"
README_END = "<!-- end of memory formats table -->"


def readable_formats() -> list[MemoryFormat]:
    """The formats a user can import (side files such as an export's feedback.json left out), in registry order."""
    return [f for f in detect.FORMATS if not f.side_file]


def agent_formats() -> list[MemoryFormat]:
    """The formats that are some agent's own memory, kept in folders find_memory looks in."""
    return [f for f in readable_formats() if f.agent and f.locations]


def paths_description() -> str:
    """The description of build_dataset_from_memory's `paths` argument."""
    agents = "; ".join(f"{f.agent}: {f.locations[0]}" for f in agent_formats())
    names = ", ".join(f.name for f in readable_formats())
    return (
        "Memory files or folders; folders are searched recursively and may mix formats, detected per file. "
        f"Formats: {names}. Where agents keep theirs: {agents}. find_memory lists what is on this machine."
    )


def agent_folders_sentence() -> str:
    """For prompts: where each agent keeps its transcripts (the first folder of each; find_memory knows them all)."""
    return "; ".join(f"{f.agent} under {f.locations[0]}" for f in agent_formats())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if text else "-"


def formats_table() -> str:
    """The README's formats table (markdown), one row per readable format."""
    rows = [
        "| format | agent or source | where it is kept | what is kept | outcome signals |",
        "|---|---|---|---|---|",
    ]
    # Agents' own memory first (what most users hold), then datasets, benchmarks and traces.
    for fmt in sorted(readable_formats(), key=lambda f: f.agent is None):
        title = f"`{fmt.name}`: {fmt.title}" if fmt.title else f"`{fmt.name}`"
        rows.append(f"| {_cell(title)} | {_cell(fmt.agent or '')} | {_cell(fmt.where)} | {_cell(fmt.kept)} | {_cell(fmt.outcome_signals)} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    """`readme` with the text between the table markers replaced by the current table."""
    start, end = readme.index(README_BEGIN), readme.index(README_END)
    return readme[: start + len(README_BEGIN)] + "\n" + formats_table() + "\n" + readme[end:]
