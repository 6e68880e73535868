"""Anthropic Messages content, as Claude Code transcripts and Cline-family task histories both store it."""

from __future__ import annotations

import json
from typing import Any


def tool_result_text(content: Any, *, keep_structured: bool = False) -> str:
    """A tool_result block's content as text: strings and text blocks as they are, an image or document as a marker
    ("[image]"); other blocks (structured results some tools return) as JSON when `keep_structured`, else dropped."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return json.dumps(content, ensure_ascii=False)
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(block, dict) and block.get("type") in ("image", "document"):
            parts.append(f"[{block['type']}]")
        elif keep_structured:
            parts.append(json.dumps(block, ensure_ascii=False))
    return "\n".join(parts)
