"""Secrets and personal data never leave where they belong, through the whole loop.

Seeded: realistic secrets (OpenAI and Anthropic keys, an AWS key pair, a GitHub token, a PEM private key, a JWT, a
password in a URL) and personal data (e-mails, phone numbers, IP addresses) in memory files, and real-looking
provider keys in the environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, AWS_SECRET_ACCESS_KEY) that the fakes at the
HTTP boundary (tests/openai_fake.py, tests/anthropic_fake.py) check.

The loop runs through MCP in process: build_dataset_from_memory, a local job on the tiny model and an OpenAI job
through the fake (confirmed), check_job until done, evaluate (local models, a Claude judge through the fake),
prompt_model (local, OpenAI, Claude), export_model, every resource listed and every template filled with the ids at
hand. Then everything is scanned for every seeded value: each tool result, each resource body, each file under the
data home (bytes, so the ledger's SQLite pages, adapters and worker logs included), the captured logs and output,
and every request the fakes received. The one place a key may appear is the auth header sent to its own provider.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, types

from anthropic_fake import FakeAnthropic
from openai_fake import serving
from model_customization.server.app import build_server

pytestmark = pytest.mark.anyio

# Keys in the environment, used by the fakes to authenticate us.
ENV_OPENAI_KEY = "sk-proj-Qm7vX2LwR9tKp4NcZ8eYhB3uJ6sDfG1aT5oIqW0xVnMbC2rE"
ENV_ANTHROPIC_KEY = "sk-ant-api03-Zx8Kq2Lm5Np7Rt9Vw3Yb6Dc4Fg1Hj0KlMnOpQrStUvWxYz12-AbCdEfAA"
ENV_AWS_KEY_ID = "AKIAQ3EXAMPLE7WNZK2T"
ENV_AWS_SECRET = "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"

# Secrets and personal data in memory.
MEMORY_SECRETS = {
    "openai_key": "sk-proj-T4nW8qZr2Lk6Vx9Bp3Mc7Yd1Fh5Js0Ga8Eu2Io6Pl4Kn9Rs",
    "anthropic_key": "sk-ant-api03-Hh5Jj7Kk9Ll1Mm3Nn5Pp7Qq9Rr1Ss3Tt5Uu7Vv9Ww1Xx3Yy5Zz7-Aa1Bb3CcQQ",
    "aws_key_id": "AKIAZ7Q3XKWPLM4RTN2B",
    "aws_secret": "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",
    "github_token": "ghp_R8sT2uV4wX6yZ8aB0cD2eF4gH6iJ8kL0mN2o",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvcHMtYm90Iiwicm9sZSI6ImFkbWluIn0.Xk3v9Qm2Lp7Rt4Wz8Yb1Nc6Df3Gh5Jk0Ls",
    "url_password": "Tr0ub4dor-Horse-77x",
    "pem_body": "MIIEowIBAAKCAQEAu7Yq3fLk9Zt2Wx5Vc8Nb1Mq4Pr7Ts0Ua3Xd6Ge9Hj2Kl5",
}
MEMORY_PII = {
    "email": "jane.roe@acme-payments.com",
    "email_2": "oncall.lead+pager@globex-logistics.io",
    "phone": "+1 415-555-0134",
    "phone_2": "(212) 555-0199",
    "ip": "198.51.100.77",
    "ip_2": "52.14.201.9",
}
PEM_BLOCK = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    f"{MEMORY_SECRETS['pem_body']}\n"
    "9sQw2Er4Ty6Ui8Op0As2Df4Gh6Jk8Lz0Xc2Vb4Nm6Qw8Er0Ty2Ui4Op6As8Df0Gh\n"
    "-----END RSA PRIVATE KEY-----"
)
SMALL_HP = {"epochs": 1, "batch_size": 16, "max_seq_length": 256}
TERMINAL = {"succeeded", "failed", "cancelled"}


def _memory_lines() -> list[dict[str, Any]]:
    """24 triage conversations; each carries one or more seeded values in what the user pasted and in the answer."""
    s, p = MEMORY_SECRETS, MEMORY_PII
    pastes = [
        f"payments-api crashed on boot: OPENAI_API_KEY={s['openai_key']} rejected",
        f"summariser down, logs show anthropic key {s['anthropic_key']} throttled",
        f"deploy failed: aws_access_key_id={s['aws_key_id']} aws_secret_access_key={s['aws_secret']}",
        f"ci token expired: git clone https://{s['github_token']}@github.com/acme/payments.git",
        f"found this in /etc/ssl/app.key on web-3:\n{PEM_BLOCK}",
        f"auth service rejects Authorization: Bearer {s['jwt']}",
        f"db migration fails: postgres://deploy:{s['url_password']}@db.internal.acme.test:5432/payments",
        f"customer {p['email']} reports double charge, call back on {p['phone']}",
        f"escalate to {p['email_2']} or {p['phone_2']}",
        f"ssh from {p['ip']} to {p['ip_2']} times out",
    ]
    lines = []
    for index in range(24):
        paste = pastes[index % len(pastes)]
        component = ["payments-api", "search", "auth", "db", "cdn", "queue"][index % 6]
        lines.append(
            {
                "messages": [
                    {"role": "system", "content": "You are OpsBot, the on-call triage assistant."},
                    {"role": "user", "content": f"Incident {index} [{component}]: {paste}"},
                    {"role": "assistant", "content": f"TRIAGE severity=high component={component} action=page. Seen: {paste.splitlines()[0]}"},
                ]
            }
        )
    return lines


def _needles() -> dict[str, str]:
    return {**{f"env:{k}": v for k, v in {"openai": ENV_OPENAI_KEY, "anthropic": ENV_ANTHROPIC_KEY, "aws_secret": ENV_AWS_SECRET, "aws_key_id": ENV_AWS_KEY_ID}.items()},
            **{f"memory:{k}": v for k, v in MEMORY_SECRETS.items()}, **{f"pii:{k}": v for k, v in MEMORY_PII.items()}}


def _found(blob: bytes | str, needles: dict[str, str]) -> list[str]:
    data = blob.encode("utf-8", "replace") if isinstance(blob, str) else blob
    hits = []
    for name, value in needles.items():
        forms = {value.encode(), json.dumps(value)[1:-1].encode(), value.replace("/", "\\/").encode()}
        if any(form in data for form in forms):
            hits.append(name)
    return hits


class Recorder:
    """Every request to the OpenAI fake, headers and body, before the fake sees it."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append((request.method, str(request.url), dict(request.headers), bytes(request.content)))
        return self.handler(request)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch):
    from model_customization.providers.anthropic.client import use_http_client as use_anthropic_http

    from model_customization.providers.openai import client as openai_client_module

    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_ANTHROPIC_KEY)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_AWS_SECRET)
    with serving(monkeypatch, ENV_OPENAI_KEY) as openai_fake:
        recorder = Recorder(openai_fake.handler)
        openai_http = httpx2.Client(transport=httpx2.MockTransport(recorder))
        openai_client_module.use_http_client(openai_http)
        anthropic_fake = FakeAnthropic(api_key=ENV_ANTHROPIC_KEY, responder=lambda body: "Score: 7" if "<candidate_answer>" in json.dumps(body) else "echo")
        anthropic_http = anthropic_fake.http_client()
        use_anthropic_http(anthropic_http)
        try:
            yield openai_fake, recorder, anthropic_fake
        finally:
            use_anthropic_http(None)
            anthropic_http.close()
            openai_http.close()


@pytest.mark.timeout(300)
async def test_no_secret_or_personal_data_leaks_anywhere(ws, tiny_model, tmp_path, fakes, caplog, capfd):
    openai_fake, openai_requests, anthropic_fake = fakes
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="matplotlib")  # font scoring noise
    memory = tmp_path / "memory"
    memory.mkdir()
    lines = _memory_lines()
    (memory / "triage-a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines[:12]), encoding="utf-8")
    # The second file also holds lines that cannot be read, with secrets in them: the problems reported must not quote them.
    broken = [
        '{"messages": [{"role": "user", "content": "token ' + MEMORY_SECRETS["github_token"] + '"',  # cut off
        json.dumps({"messages": [{"role": MEMORY_SECRETS["openai_key"], "content": "x"}]}),  # a role that is a key
        json.dumps({"messages": "password=" + MEMORY_SECRETS["url_password"] + " " + MEMORY_PII["email"]}),
    ]
    (memory / "triage-b.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines[12:]) + "\n".join(broken) + "\n", encoding="utf-8")

    outputs: list[tuple[str, str]] = []  # (where, text)

    async def call(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
        result = await client.call_tool(name, args)
        text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
        outputs.append((f"tool {name}", text + json.dumps(result.structured_content, default=str)))
        assert not result.is_error, f"{name}: {text}"
        return result.structured_content

    async def follow(client: Client, job_id: str, timeout: float) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            while True:
                status = await call(client, "check_job", {"job_id": job_id, "events": 100})
                if status["status"] in TERMINAL:
                    return status
                await anyio.sleep(0.3)

    async with Client(build_server(ws=ws)) as client:
        built = await call(client, "build_dataset_from_memory", {"paths": [str(memory)], "name": "triage"})
        dataset_id = built["dataset_id"]
        assert built["problem_count"] == 3
        assert {"secret", "private_key", "url_password", "email", "phone", "ip"} <= set(built["redactions"]), built["redactions"]

        local = await call(client, "start_job", {"dataset_id": dataset_id, "base_model": str(tiny_model), "hyperparameters": SMALL_HP})
        quote = (await call(client, "start_job", {"dataset_id": dataset_id, "provider": "openai", "dry_run": True}))["quote"]["estimated_cost_usd"]
        remote = await call(client, "start_job", {"dataset_id": dataset_id, "provider": "openai", "confirm_cost_usd": quote, "options": {"suffix": "triage"}})
        remote_done = await follow(client, remote["job_id"], 60)
        local_done = await follow(client, local["job_id"], 180)
        assert (local_done["status"], remote_done["status"]) == ("succeeded", "succeeded"), (local_done, remote_done)
        local_model, remote_model = local_done["model_id"], remote_done["model_id"]
        await call(client, "list_jobs", {})
        await call(client, "list_datasets", {})
        await call(client, "inspect_dataset", {"dataset_id": dataset_id, "provider": "openai"})

        report = await call(
            client, "evaluate",
            {"dataset_id": dataset_id, "models": [str(tiny_model), local_model], "limit": 2, "max_tokens": 4, "judge": "anthropic:claude-sonnet-5"},
        )
        assert report["judge"] == "anthropic:claude-sonnet-5"
        eval_id = report["eval_id"]
        for model in (local_model, remote_model, "anthropic:claude-haiku-4-5"):
            await call(client, "prompt_model", {"model": model, "prompt": "Triage: [db] ERROR connection refused", "max_tokens": 4})
        await call(client, "export_model", {"model_id": local_model, "formats": ["adapter"]})

        # Every resource listed, and every template filled with each id at hand.
        ids = {
            "dataset_id": [dataset_id], "job_id": [local["job_id"], remote["job_id"]], "model_id": [local_model, remote_model],
            "eval_id": [eval_id], "name": ["opsbot"],
        }
        uris = [str(r.uri) for r in (await client.list_resources()).resources]
        for template in (await client.list_resource_templates()).resource_templates:
            variable = template.uri_template.split("{", 1)[1].split("}", 1)[0]
            uris += [template.uri_template.replace("{" + variable + "}", value) for value in ids[variable]]
        assert any(u.startswith("evals://") for u in uris) and any(u.startswith("jobs://") for u in uris)
        read = 0
        for uri in uris:
            try:
                result = await client.read_resource(uri)
            except Exception as error:  # noqa: BLE001 - an error text is output too (e.g. an agent that does not exist)
                outputs.append((f"resource {uri} (error)", str(error)))
                continue
            read += 1
            for content in result.contents:
                body = content.text if isinstance(content, types.TextResourceContents) else base64.b64decode(content.blob).decode("latin-1")
                outputs.append((f"resource {uri}", body))
        assert read >= 12

    # --- the scan ---------------------------------------------------------------------------------------------------
    needles = _needles()
    leaks: list[str] = []
    for where, text in outputs:
        leaks += [f"{name} in {where}" for name in _found(text, needles)]

    files = [path for path in Path(ws.settings.home).rglob("*") if path.is_file()]
    assert any(p.name == "worker.log" for p in files) and any(p.name.startswith("ledger.sqlite3") for p in files)
    for path in files:
        leaks += [f"{name} in file {path.relative_to(ws.settings.home)}" for name in _found(path.read_bytes(), needles)]

    captured = capfd.readouterr()
    leaks += [f"{name} in the logs" for name in _found(caplog.text, needles)]
    leaks += [f"{name} in stdout/stderr" for name in _found(captured.out + captured.err, needles)]

    # The fakes: a key may only be in the auth header sent to its own provider.
    for method, url, headers, body in openai_requests.requests:
        leaks += [f"{name} in the body of {method} {url}" for name in _found(body, needles)]
        for header, value in headers.items():
            allowed = {"env:openai"} if header.lower() == "authorization" and value == f"Bearer {ENV_OPENAI_KEY}" else set()
            leaks += [f"{name} in OpenAI request header {header}" for name in _found(value, needles) if name not in allowed]
    assert openai_requests.requests and all(h.get("authorization") == f"Bearer {ENV_OPENAI_KEY}" for _, _, h, _ in openai_requests.requests)
    for body in anthropic_fake.requests:
        leaks += [f"{name} in an Anthropic request body" for name in _found(json.dumps(body), needles)]
    for headers in anthropic_fake.headers:
        for header, value in headers.items():
            own = header.lower() in ("authorization", "x-api-key") and ENV_ANTHROPIC_KEY in value
            leaks += [f"{name} in Anthropic request header {header}" for name in _found(value, needles) if not (own and name == "env:anthropic")]
    assert len(anthropic_fake.requests) >= 5  # the judge rated 2 cases x 2 models, and Claude was prompted once

    # The uploaded training files hold the redacted conversations, placeholders in place of what was seeded.
    uploaded = b"".join(f["content"] for f in openai_fake.files.values() if f["object"]["purpose"] == "fine-tune")
    assert b"<SECRET_" in uploaded and b"<EMAIL_" in uploaded and b"<PRIVATE_KEY_" in uploaded
    assert not leaks, "\n".join(sorted(set(leaks)))
