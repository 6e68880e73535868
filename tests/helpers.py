"""Helpers several test modules share: record counting for importer tests, the public tool list."""

from __future__ import annotations

from collections import Counter

from model_customization.memory.records import Conversation

# Every tool the server publishes; tests/snapshots/list_tools.json pins their schemas.
MCP_TOOLS = {
    "build_dataset_from_memory",
    "inspect_dataset",
    "list_datasets",
    "find_memory",
    "delete_dataset",
    "list_models",
    "list_job_events",
    "start_job",
    "check_job",
    "cancel_job",
    "list_jobs",
    "prompt_model",
    "evaluate",
    "export_model",
    "pause_job",
    "generate_constitutional_dataset",
    "upload_training_file",
    "list_training_files",
    "delete_training_file",
    "provision_throughput",
    "throughput_status",
    "release_throughput",
    "deploy_model",
    "rollback_deployment",
    "set_agent_suite",
}


def roles(convs) -> dict[str, int]:
    return dict(Counter(m.role for c in convs for m in c.messages))


def n_tool_calls(convs) -> int:
    return sum(len(m.tool_calls) for c in convs for m in c.messages)


def assert_tool_results_answer_earlier_calls(conv: Conversation) -> None:
    called: set[str] = set()
    for m in conv.messages:
        called.update(tc.id for tc in m.tool_calls)
        if m.role == "tool":
            assert m.tool_call_id in called, (conv.session_id, m.tool_call_id)
