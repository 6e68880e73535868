"""Importer for the knowledge graph of the official MCP memory server (``@modelcontextprotocol/server-memory``).

The server keeps its graph in ``memory.jsonl`` (``MEMORY_FILE_PATH``), one JSON object a line::

    {"type": "entity", "name": "...", "entityType": "...", "observations": ["...", ...]}
    {"type": "relation", "from": "...", "to": "...", "relationType": "..."}

Older releases wrote the very same lines to a file named ``memory.json`` (the server now renames it to
``memory.jsonl`` on start-up); detection judges such a file line by line. What the server's ``read_graph`` tool
returns, and what people save as a backup or hand-write as a legacy ``memory.json``, is one document
``{"entities": [...], "relations": [...]}``; that is read too, under the same format name (``sniff_document``).

A graph is not a conversation, so the graph is turned into factual question/answer examples. The graph is read whole
first (entities with the same name are merged, so nothing can be emitted before the last line), then emitted. Each
example is a Conversation with three messages: a short system message (``SYSTEM_PROMPT``, "Answer from what you
know about the user's world.") that scopes the facts to the memory they came from rather than teaching them as
general knowledge, the user question and the assistant answer. The templates (also in ``MCP_MEMORY_TEMPLATES.md``):

* per entity: "What do you know about {name}?" -> "{name} is a {entityType}. {observation 1}. {observation 2}..."
  ("an" before a vowel sound, judged by spelling; all observations, in order, each given a full stop when it ends
  without ``.``, ``!``, ``?`` or an ellipsis; no type sentence when the type is empty). One question per
  observation is *not* made: a question whose right answer is one fact out of several teaches the model to pick an
  arbitrary one, and near-identical prompts with different answers contradict each other.
* per entity that takes part in relations (outgoing and incoming, relations in graph order):
  "How is {name} related to other things?" -> one line per relation, "{from} {relationType} {to}."
* per ordered pair (from, to) with relations: "What is the relation between {from} and {to}?" ->
  "{from} {relationType} {to}." (one line per relation type, so one prompt never gets two different answers).

``relationType`` is written with underscores as spaces (``works_at`` -> ``works at``). Relations whose endpoints
are not entities of the graph still give the pair question (and the relations question of the endpoint that is
known). Entities with the same name are merged: observations unioned in first-seen order, the first non-empty
entityType wins, and ``metadata["merged_records"]`` counts the records merged. Exact duplicate relations are dropped.

session_id: ``<file stem>:entity:<name>``, ``<file stem>:entity:<name>:relations`` and ``<file stem>:relation:<i>``
(``i`` the 1-based position of the pair in first-seen order); source_line is the line where the entity (or the pair's
first relation) first appears, 1 for the single-document form. Unknown extra fields are ignored; a line of another
``type``, without ``name`` (or ``from``/``to``/``relationType``), with observations that are not a list of strings,
or with invalid JSON becomes an ImportProblem with its line and the rest of the file continues.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_customization.paths import read_fenced

from .formats import MemoryFormat
from .reading import RecordError, read_json_lines
from .records import Conversation, ImportProblem, Message

SOURCE_FORMAT = "mcp_memory"
SYSTEM_PROMPT = "Answer from what you know about the user's world."

_SENTENCE_ENDS = (".", "!", "?", "\u2026")
_CLOSERS = "\"')]\u201d\u2019"


@dataclass
class _Entity:
    name: str
    entity_type: str
    observations: list[str]
    line: int
    records: int = 1
    lines: list[int] = field(default_factory=list)


@dataclass
class _Graph:
    entities: dict[str, _Entity] = field(default_factory=dict)
    relations: list[tuple[str, str, str, int]] = field(default_factory=list)  # from, to, type, line
    seen_relations: set[tuple[str, str, str]] = field(default_factory=set)

    def add_entity(self, name: str, entity_type: str, observations: list[str], line: int) -> None:
        known = self.entities.get(name)
        if known is None:
            self.entities[name] = _Entity(name, entity_type, list(dict.fromkeys(observations)), line, 1, [line])
            return
        known.records += 1
        known.lines.append(line)
        if not known.entity_type:
            known.entity_type = entity_type
        for obs in observations:
            if obs not in known.observations:
                known.observations.append(obs)

    def add_relation(self, source: str, target: str, kind: str, line: int) -> None:
        key = (source, target, kind)
        if key in self.seen_relations:
            return
        self.seen_relations.add(key)
        self.relations.append((source, target, kind, line))


def iter_mcp_memory(path: Path) -> Iterator[Conversation | ImportProblem]:
    path = Path(path)
    file = str(path)
    graph = _Graph()
    data = read_fenced(path)
    document = _whole_document(data)
    if document is not None:
        yield from _read_document(document, graph, file)
    else:
        # Only problems come out: the items go into the graph.
        yield from read_json_lines(path, lambda obj, line_no: _add_item(graph, obj, line_no, expect=None), data=data)
    yield from _examples(graph, path)


def _whole_document(data: bytes) -> dict[str, Any] | None:
    """The ``{"entities": [...], "relations": [...]}`` form, or None for the line form."""
    stripped = data.lstrip()
    if stripped.startswith(b"\xef\xbb\xbf"):
        stripped = stripped[3:].lstrip()
    if not stripped.startswith(b"{"):
        return None
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # JSON Lines (or broken): read line by line
    if isinstance(doc, dict) and "type" not in doc and ("entities" in doc or "relations" in doc):
        return doc
    return None


def _read_document(doc: dict[str, Any], graph: _Graph, file: str) -> Iterator[ImportProblem]:
    for key, expect in (("entities", "entity"), ("relations", "relation")):
        items = doc.get(key, [])
        if items is None:
            continue
        if not isinstance(items, list):
            yield ImportProblem(file, 0, f"'{key}' must be a list, got {type(items).__name__}")
            continue
        for i, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise RecordError(f"expected a JSON object, got {type(item).__name__}")
                _add_item(graph, item, 1, expect=expect)
            except RecordError as exc:
                yield ImportProblem(file, 0, f"{key}[{i}]: {exc}")


def _add_item(graph: _Graph, obj: dict[str, Any], line_no: int, expect: str | None) -> None:
    kind = obj.get("type", expect)
    if expect is not None and kind != expect:
        raise RecordError(f"expected type {expect!r}, got {kind!r}")
    if kind == "entity":
        name = obj.get("name")
        if not isinstance(name, str) or not name.strip():
            raise RecordError("entity without a 'name'")
        entity_type = obj.get("entityType")
        if entity_type is None:
            entity_type = ""
        if not isinstance(entity_type, str):
            raise RecordError(f"entity {name!r}: 'entityType' must be a string")
        observations = obj.get("observations")
        if observations is None:
            observations = []
        if not isinstance(observations, list):
            raise RecordError(f"entity {name!r}: 'observations' must be a list")
        for k, obs in enumerate(observations, start=1):
            if not isinstance(obs, str):
                raise RecordError(f"entity {name!r}: observation {k} is not a string")
        graph.add_entity(name, entity_type.strip(), [o.strip() for o in observations if o.strip()], line_no)
    elif kind == "relation":
        values = [obj.get(k) for k in ("from", "to", "relationType")]
        missing = [k for k, v in zip(("from", "to", "relationType"), values) if not isinstance(v, str) or not v.strip()]
        if missing:
            raise RecordError(f"relation without {', '.join(repr(m) for m in missing)}")
        graph.add_relation(values[0], values[1], values[2], line_no)
    elif kind is None:
        raise RecordError("missing 'type' (expected 'entity' or 'relation')")
    else:
        raise RecordError(f"unknown type {kind!r} (expected 'entity' or 'relation')")


def _examples(graph: _Graph, path: Path) -> Iterator[Conversation]:
    stem = path.stem
    by_entity: dict[str, list[tuple[str, str, str, int]]] = {}
    for rel in graph.relations:
        source, target = rel[0], rel[1]
        for endpoint in dict.fromkeys((source, target)):
            if endpoint in graph.entities:
                by_entity.setdefault(endpoint, []).append(rel)

    for entity in graph.entities.values():
        sentences = [_type_sentence(entity.name, entity.entity_type)] if entity.entity_type else []
        sentences += [_sentence(o) for o in entity.observations]
        answer = " ".join(sentences) if sentences else f"I know of {entity.name}, but nothing more about it."
        meta = {
            "kind": "entity",
            "entity_type": entity.entity_type,
            "observations": len(entity.observations),
            "merged_records": entity.records,
        }
        if entity.records > 1:
            meta["lines"] = entity.lines
        question = f"What do you know about {entity.name}?"
        yield _qa(f"{stem}:entity:{entity.name}", question, answer, path, entity.line, meta)
        rels = by_entity.get(entity.name)
        if rels:
            yield _qa(
                f"{stem}:entity:{entity.name}:relations",
                f"How is {entity.name} related to other things?",
                "\n".join(_relation_sentence(s, t, k) for s, t, k, _ in rels),
                path,
                entity.line,
                {"kind": "entity_relations", "relations": len(rels)},
            )

    pairs: dict[tuple[str, str], list[tuple[str, str, str, int]]] = {}
    for rel in graph.relations:
        pairs.setdefault((rel[0], rel[1]), []).append(rel)
    for i, ((source, target), rels) in enumerate(pairs.items(), start=1):
        unknown = [e for e in dict.fromkeys((source, target)) if e not in graph.entities]
        meta: dict[str, Any] = {"kind": "relation", "relations": len(rels)}
        if unknown:
            meta["unknown_entities"] = unknown
        yield _qa(
            f"{stem}:relation:{i}",
            f"What is the relation between {source} and {target}?",
            "\n".join(_relation_sentence(s, t, k) for s, t, k, _ in rels),
            path,
            rels[0][3],
            meta,
        )


def _qa(session_id: str, question: str, answer: str, path: Path, line: int, meta: dict[str, Any]) -> Conversation:
    return Conversation(
        session_id=session_id,
        messages=[
            Message(role="system", content=SYSTEM_PROMPT),
            Message(role="user", content=question),
            Message(role="assistant", content=answer),
        ],
        source_file=str(path),
        source_line=line,
        source_format=SOURCE_FORMAT,
        metadata=meta,
    )


def _type_sentence(name: str, entity_type: str) -> str:
    return _sentence(f"{name} is {_article(entity_type)} {entity_type}")


# Spelling decides "a"/"an" except for the usual sound exceptions ("a user", "a one-off", "an hour").
_A_DESPITE_VOWEL = ("uni", "use", "usu", "uti", "ura", "uro", "eu", "one", "once", "ubi")
_AN_DESPITE_CONSONANT = ("hour", "honest", "honor", "honour", "heir")


def _article(word: str) -> str:
    w = word.lower()
    if w.startswith(_AN_DESPITE_CONSONANT):
        return "an"
    if w[:1] in "aeiou" and not w.startswith(_A_DESPITE_VOWEL):
        return "an"
    return "a"


def _relation_sentence(source: str, target: str, kind: str) -> str:
    return _sentence(f"{source} {kind.strip().replace('_', ' ')} {target}")


def _sentence(text: str) -> str:
    text = text.strip()
    if text.rstrip(_CLOSERS).endswith(_SENTENCE_ENDS):
        return text
    return text + "."


def sniff_line(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    kind = obj.get("type")
    if kind == "entity":
        return isinstance(obj.get("name"), str) and ("entityType" in obj or isinstance(obj.get("observations"), list))
    if kind == "relation":
        return all(isinstance(obj.get(k), str) for k in ("from", "to", "relationType"))
    return False


def sniff_document(doc: Any) -> bool:
    if not isinstance(doc, dict) or "type" in doc or "messages" in doc:
        return False
    entities = doc.get("entities")
    relations = doc.get("relations")
    if not isinstance(entities, list) or ("relations" in doc and not isinstance(relations, list)):
        return False
    if not entities:
        # An empty graph as read_graph returns it; a bare {"entities": []} is too vague to claim.
        return isinstance(relations, list) and all(_looks_like_relation(r) for r in relations[:5])
    head = entities[:5]
    return all(isinstance(e, dict) for e in head) and any(_looks_like_entity(e) for e in head)


def _looks_like_entity(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("name"), str)
        and ("entityType" in item or isinstance(item.get("observations"), list))
    )


def _looks_like_relation(item: Any) -> bool:
    return isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("from", "to", "relationType"))


FORMAT = MemoryFormat(
    SOURCE_FORMAT,
    iter_mcp_memory,
    sniff_line=sniff_line,
    sniff_document=sniff_document,
    title="MCP memory server knowledge graph",
    where="memory.jsonl / memory.json of @modelcontextprotocol/server-memory (MEMORY_FILE_PATH)",
    kept="entities, observations and relations as factual question/answer examples (templates in memory/MCP_MEMORY_TEMPLATES.md)",
)
