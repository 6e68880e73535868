"""MCP prompts: ready-made instructions a user picks in their client (a slash command in Claude Code, say).

`specialize_agent` walks an agent through the whole loop with the real tool names and arguments, starting at
find_memory when no memory paths are given; `review_dataset` puts a stored dataset's card and a few examples in front
of a person (or an agent) for approval.

Every tool call a prompt asks for is written as: call `<tool>` with arguments `{json}`. tests/test_prompts.py reads
that form back and checks each tool and argument against the server's tools/list, so a renamed tool or argument
cannot leave a prompt naming something that is gone.
"""

# No `from __future__ import annotations` here: specialize_agent's provider argument is described from the provider
# registry inside register(), so its annotations must be evaluated where they are written.
import json
import re
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import Field

from model_customization.providers.registry import find_provider, provider_names
from model_customization.workspace import Workspace

EMBEDDED_MODEL = "SmolLM2-135M-Instruct"  # the local default (providers/local/models.py), named here without its imports
MIN_TRAIN_EXAMPLES = 10  # start_job refuses fewer (jobs/orchestrator.py)
SAMPLE_MESSAGE_CHARS = 600  # a sample message longer than this is cut, with a note saying where the rest is
MAX_SAMPLES = 20
SOURCES_SHOWN = 5


def call(tool: str, arguments: dict[str, Any]) -> str:
    """One tool call in the form the prompts use (and tests/test_prompts.py parses)."""
    return f"call `{tool}` with arguments `{json.dumps(arguments, ensure_ascii=False)}`"


def split_paths(memory_paths: str | None) -> list[str]:
    """Prompt arguments are strings: several paths come separated by commas or new lines."""
    if not memory_paths:
        return []
    return [part.strip() for part in re.split(r"[,\n]", memory_paths) if part.strip()]


def specialize_agent_text(
    memory_paths: str | None = None,
    agent: str | None = None,
    provider: str = "local",
    base_model: str | None = None,
    outcome: str = "successful",
    dataset_name: str | None = None,
) -> str:
    paths = split_paths(memory_paths)
    chosen = find_provider(provider)
    paid = chosen is None or chosen.paid
    build_arguments: dict[str, Any] = {"paths": paths or ["<memory file or folder>"], "outcome": outcome}
    if dataset_name:
        build_arguments["name"] = dataset_name
    inspect_arguments: dict[str, Any] = {"dataset_id": "<dataset_id from step 1>", "provider": provider}
    start_arguments: dict[str, Any] = {"dataset_id": "<dataset_id from step 1>", "provider": provider}
    if base_model:
        inspect_arguments["model"] = base_model
        start_arguments["base_model"] = base_model
    baseline = base_model or (chosen.default_inspect_model if chosen is not None and chosen.runs_locally else None) or "<base_model from step 4>"
    agent_name = agent or "<agent name>"

    lines = [
        f"Specialise a model for the agent {agent_name!r} on its own memory, with the model-customization tools. "
        "Go one step at a time. After each call, read the fields named below, tell the user in a sentence or two "
        "what you saw, and stop (reporting why) as soon as a stop condition is met.",
        "",
    ]
    if not paths:
        from model_customization.memory.catalog import agent_folders_sentence  # every importer: loaded when asked, not at start-up

        lines += [
            f"0. Find the memory: {call('find_memory', {})}.",
            "   It lists, per agent and folder, the sessions, bytes, first and last date, and whether the folder is "
            "allowed (the server reads only inside its allowed roots). Show the user what you found and ask the user which "
            f"memory to learn from (the usual places: {agent_folders_sentence()}); the chosen locations' paths go into "
            "step 1. For a folder that is not allowed, show its how_to_allow and let the user decide; never change the "
            "allowed roots yourself. Stop if nothing is found and the user has no other transcripts.",
            "",
        ]
    lines += [
        f"1. Build the dataset: {call('build_dataset_from_memory', build_arguments)}.",
        f"   Look at counts (train needs at least {MIN_TRAIN_EXAMPLES} examples), dropped (left out, by reason), "
        "problem_count and problems (unreadable lines as file:line) and redactions (secrets replaced).",
        f"   Stop if counts.train is below {MIN_TRAIN_EXAMPLES}: say that more memory or looser filters "
        '(outcome "any", no min_turns) are needed. Keep dataset_id.',
        "",
        f"2. Validate and quote: {call('inspect_dataset', inspect_arguments)}.",
        "   Look at valid, errors and findings (each with split and line), token_stats and quote "
        "(estimated_cost_usd for a paid provider, estimated seconds for a local job).",
        "   Stop if valid is false: show the findings and suggest rebuilding with other filters.",
    ]
    if paid:
        lines.append(
            f"   {provider} is paid: show the quote to the user and wait for their yes before step 3."
        )
    lines += [
        "",
        f"3. Start training: {call('start_job', start_arguments)}.",
        "   It returns at once with job_id and status (validating, queued or running; queue_position while queued).",
    ]
    if paid:
        lines.append(
            "   If it is refused because the cost is over the budget, ask the user, then repeat the call with "
            "confirm_cost_usd set to the cost they accepted. Never confirm a cost on their behalf."
        )
    lines += [
        "",
        f"4. Watch it: {call('check_job', {'job_id': '<job_id from step 3>'})} every 10 to 30 seconds.",
        "   Look at status, step and total_steps, train_loss, validation_loss and eta_seconds; tell the user now and "
        "then, not on every poll. When status is succeeded, keep model_id and base_model. Stop if it is failed "
        "(report error and the events) or cancelled. A validation_loss rising while train_loss falls means "
        "overfitting: mention it. Once it ends, to see the loss curve, "
        f"{call('check_job', {'job_id': '<job_id from step 3>', 'include_loss_curve': True})}.",
        "",
        f"5. Compare base and tuned: {call('evaluate', {'models': [baseline, '<model_id from step 4>'], 'dataset_id': '<dataset_id from step 1>', 'split': 'test'})}.",
        "   The base model comes first, so each entry of comparisons reads tuned against base. Look at scores per "
        "model, then comparisons: verdict, significant, mean_difference with its interval low..high. Keep eval_id.",
    ]
    if chosen is not None and chosen.can("provision"):
        lines.append(
            "   A tuned Bedrock model answers only through provisioned throughput, billed by the hour: before evaluating, "
            f"once the user agrees to that cost, {call('provision_throughput', {'model_id': '<model_id from step 4>', 'confirm': True})}, "
            f"then {call('throughput_status', {'model_id': '<model_id from step 4>'})} until status is InService; "
            f"{call('release_throughput', {'model_id': '<model_id from step 4>'})} stops the bill when it is no longer needed."
        )
    lines += [
        "",
        "6. Deploy only a winner. If comparisons says the tuned model is significantly better (significant is true "
        f"and mean_difference is above 0): {call('deploy_model', {'agent': agent_name, 'model': '<model_id from step 4>', 'eval_id': '<eval_id from step 5>'})}.",
        "   Look at gate and message; unchanged true means it already served the agent. Otherwise do not deploy: "
        "report the verdict and suggest more or cleaner memory (outcome successful), or more epochs. Never use "
        "force to get past the gate unless the user asks for it and gives a reason.",
    ]
    if not agent:
        lines.append("   Ask the user for the agent's name before this step.")
    lines += [
        "",
        f"Afterwards, to try the deployed model, {call('prompt_model', {'agent': agent_name, 'prompt': '<a question the agent often gets>'})}; "
        "rollback_deployment undoes the deployment.",
    ]
    return "\n".join(lines)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones, name the others
        return "\n".join(part.get("text", f"[{part.get('type', 'part')}]") if isinstance(part, dict) else str(part) for part in content)
    return json.dumps(content, ensure_ascii=False)


def _message_lines(message: dict[str, Any], where: str) -> list[str]:
    text = _content_text(message.get("content"))
    for tool_call in message.get("tool_calls") or []:
        function = tool_call.get("function", {})
        text += f"\n[calls {function.get('name')}({function.get('arguments', '')})]"
    text = text.strip()
    if len(text) > SAMPLE_MESSAGE_CHARS:
        left_out = len(text) - SAMPLE_MESSAGE_CHARS
        text = text[:SAMPLE_MESSAGE_CHARS] + f" … [truncated: {left_out} more characters; the whole example is {where}]"
    return [f"**{message.get('role', '?')}**: {text}"]


def _example_lines(example: dict[str, Any], where: str) -> list[str]:
    if "messages" in example:
        return [line for message in example["messages"] for line in _message_lines(message, where)]
    # A preference pair (dpo): the shared conversation, then both answers.
    lines = [line for message in example.get("input", {}).get("messages", []) for line in _message_lines(message, where)]
    for label, key in (("preferred", "preferred_output"), ("not preferred", "non_preferred_output")):
        lines.append(f"_{label} answer:_")
        lines += [line for message in example.get(key, []) for line in _message_lines(message, where)]
    return lines


def _spread(count: int, wanted: int) -> list[int]:
    """wanted indices spread evenly over count items (the first, the last and between), so samples are not all alike."""
    if wanted >= count:
        return list(range(count))
    if wanted == 1:
        return [0]
    return sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})


def _card_lines(row: dict[str, Any]) -> list[str]:
    card = row["card"]
    counts = card["counts"]
    tokens = card.get("token_stats", {}).get("o200k_base", {})
    lines = [
        f"## Dataset {card['id']}: {card.get('name')}",
        "",
        f"Method {card.get('method', 'sft')}; {card.get('conversations_read', '?')} conversations read from "
        f"{len(card.get('sources', []))} files ({', '.join(f'{k}: {v}' for k, v in card.get('formats', {}).items()) or 'no formats recorded'}).",
        "",
        "| split | examples | tokens (o200k) | mean | max |",
        "|---|---|---|---|---|",
    ]
    for split in ("train", "validation", "test"):
        stats = tokens.get(split, {})
        lines.append(f"| {split} | {counts.get(split, 0)} | {stats.get('total', '')} | {stats.get('mean', '')} | {stats.get('max', '')} |")
    dropped = card.get("dropped", {})
    duplicates = card.get("duplicates_removed", {})
    unreadable = card.get("unreadable", {"count": 0, "first": []})
    lines += [
        "",
        "Left out: " + (", ".join(f"{reason} {n}" for reason, n in dropped.items()) or "nothing")
        + f"; duplicates removed: exact {duplicates.get('exact', 0)}, near {duplicates.get('near', 0)}"
        + f"; unreadable lines or files: {unreadable.get('count', 0)}.",
    ]
    lines += [f"- unreadable: `{problem}`" for problem in unreadable.get("first", [])[:5]]
    redactions = card.get("redactions", {})
    lines.append("Redactions (secrets and personal data replaced by placeholders): " + (", ".join(f"{kind} {n}" for kind, n in redactions.items()) or "none found") + ".")
    options = card.get("options", {})
    if options:
        filters = options.get("filters") or {}
        shown = {k: v for k, v in options.items() if k not in ("paths", "filters")}
        lines.append(f"Built with: {json.dumps(shown, ensure_ascii=False)}; filters: {json.dumps(filters, ensure_ascii=False) if filters else 'none'}.")
    sources = card.get("sources", [])
    if sources:
        lines.append("Sources: " + ", ".join(f"`{source['path']}`" for source in sources[:SOURCES_SHOWN]) + (f" and {len(sources) - SOURCES_SHOWN} more" if len(sources) > SOURCES_SHOWN else "") + ".")
    lines.append(f"The whole card, every source with its sha256: resource datasets://{card['id']}/card.md.")
    return lines


def review_dataset_text(ws: Workspace, dataset_id: str, samples: int = 3) -> str:
    from model_customization.datasets.build import read_split  # loaded on first use: start-up stays short

    row = ws.store.datasets.get(dataset_id)
    if not row:
        raise MCPError(
            INVALID_PARAMS,
            f"No dataset {dataset_id!r}. Call list_datasets (or read datasets://index) for the stored ones, "
            "or build_dataset_from_memory to make one.",
        )
    lines = ["Review this dataset before training on it: is it what the model should learn from?", ""]
    lines += _card_lines(row)
    train = read_split(ws, dataset_id, "train")
    shown = _spread(len(train), samples)
    lines += ["", f"## {len(shown)} of {len(train)} training examples", ""]
    for index in shown:
        where = f"line {index + 1} of {row['path']}/train.jsonl"
        lines += [f"### Example {index + 1} (train.jsonl line {index + 1})", ""]
        lines += _example_lines(train[index], where)
        lines.append("")
    lines += [
        "## What next?",
        "",
        "Check the examples for private data the redaction missed, answers the model should not learn, and whether "
        "the mix of sources fits. Then decide:",
        f"- approve: {call('inspect_dataset', {'dataset_id': dataset_id, 'provider': 'local'})} to validate and "
        f"quote, then {call('start_job', {'dataset_id': dataset_id})};",
        "- or rebuild with other filters: "
        + call("build_dataset_from_memory", {"paths": row["card"].get("options", {}).get("paths") or ["<memory file or folder>"], "outcome": "successful", "min_turns": 2})
        + " (other filters: since, until, tool_calls, sources, near_duplicate_threshold).",
        "",
        "Which do you want: start a job on this dataset, or rebuild it with other filters?",
    ]
    return "\n".join(lines)


OUTCOMES = ("any", "successful", "failed")


def _invalid(message: str) -> MCPError:
    # An MCPError reaches the client with its message; any other exception in a prompt arrives as "Internal server error".
    return MCPError(INVALID_PARAMS, message)


def _choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise _invalid(f"{name} must be one of {', '.join(choices)}; got {value[:40]!r}.")
    return value


def _sample_count(samples: str) -> int:
    try:
        count = int(samples)
    except ValueError:
        raise _invalid(f"samples must be a whole number from 1 to {MAX_SAMPLES}; got {samples[:40]!r}.") from None
    if not 1 <= count <= MAX_SAMPLES:
        raise _invalid(f"samples must be from 1 to {MAX_SAMPLES}; got {count}.")
    return count


def provider_choices() -> tuple[str, str]:
    """The provider argument's description and default, from the registry: "local (free, this machine; the
    default), openai or bedrock (paid)." with the built-ins."""
    from model_customization.providers.registry import providers

    trainers = providers("train")
    free = [p for p in trainers if not p.paid]
    paid = [p for p in trainers if p.paid]
    default = next((p.name for p in free if p.runs_locally), trainers[0].name)
    parts = [f"{p.name} (free{', this machine' if p.runs_locally else ''}{'; the default' if p.name == default else ''})" for p in free]
    if paid:
        names = [p.name for p in paid]
        parts.append((", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]) + " (paid)")
    return (", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 2 else ", ".join(parts)) + ".", default


def register(server: MCPServer, ws: Workspace) -> None:
    provider_help, default_provider = provider_choices()
    # Prompt arguments travel as strings (prompts/get), so choices and numbers are checked here, with messages that
    # say what to send, rather than by pydantic (whose failures reach the client as an internal error).
    @server.prompt(title="Specialise an agent on its memory")
    def specialize_agent(
        memory_paths: Annotated[str | None, Field(description="Memory files or folders to learn from, separated by commas; asked for when left out.")] = None,
        agent: Annotated[str | None, Field(description="The agent's name to deploy the tuned model to (deploy_model); asked for when left out.")] = None,
        provider: Annotated[str, Field(description=provider_help)] = default_provider,
        base_model: Annotated[str | None, Field(description=f"The model to tune; default: {EMBEDDED_MODEL} locally, the provider's default in the cloud.")] = None,
        outcome: Annotated[str, Field(description="Which sessions to learn from, by outcome: successful (the default), any or failed.")] = "successful",
        dataset_name: Annotated[str | None, Field(description="A readable name for the dataset.")] = None,
    ) -> list[UserMessage]:
        """Walk through the whole loop: build a dataset from memory, validate and quote it, train, watch the job,
        evaluate base against tuned, and deploy the tuned model only if it wins."""
        text = specialize_agent_text(
            memory_paths, agent, _choice("provider", provider, provider_names("train")), base_model, _choice("outcome", outcome, OUTCOMES), dataset_name
        )
        return [UserMessage(text)]

    @server.prompt(title="Review a dataset before training")
    def review_dataset(
        dataset_id: Annotated[str, Field(description="The dataset to review (from build_dataset_from_memory or list_datasets).")],
        samples: Annotated[str, Field(description=f"How many training examples to show, 1 to {MAX_SAMPLES}; default 3.")] = "3",
    ) -> list[UserMessage]:
        """Show a dataset's card (counts per split, tokens, sources, filters, what was left out, redactions) and a few
        training examples, long messages truncated, for approval before start_job."""
        return [UserMessage(review_dataset_text(ws, dataset_id, _sample_count(samples)))]
