"""A training file uploaded through /v1/files becomes a dataset redacted like one built from memory: a stored
dataset may later be uploaded to a cloud provider, and no secret may travel there (serving/files.py)."""

from __future__ import annotations

import json

from model_customization.datasets.build import read_split
from model_customization.serving.files import file_content, upload_file

GITHUB_TOKEN = "ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2o"


def _file(n: int = 10) -> bytes:
    lines = []
    for i in range(n):
        answer = f"Use the token {GITHUB_TOKEN} for the deploy step {i}." if i % 3 == 0 else f"Step {i} needs no token."
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"How do I run step {i}?"}, {"role": "assistant", "content": answer}]}))
    return ("\n".join(lines) + "\n").encode()


def test_an_uploaded_file_is_stored_redacted_with_its_counts_on_the_card(ws):
    data = _file()
    record = upload_file(ws, "deploy.jsonl", "fine-tune", data)
    stored = json.dumps(list(read_split(ws, record["dataset_id"], "train")))
    assert GITHUB_TOKEN not in stored and "Step 1 needs no token." in stored
    card = ws.store.datasets.get(record["dataset_id"])["card"]
    assert sum(card["redactions"].values()) == 4  # rows 0, 3, 6 and 9
    assert file_content(ws, record["id"]) == data  # the bytes as uploaded stay in the data home, as OpenAI returns them
