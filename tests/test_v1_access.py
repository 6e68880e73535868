"""/v1 has /mcp's door: off loopback (a wildcard bind, which needs tokens) every /v1 route answers 401 without a
configured bearer token, in OpenAI's error shape, before anything is routed or read; a good token gets in."""

from __future__ import annotations

import hashlib

import httpx2
import pytest

from v1_live import serving, validate_response

TOKEN = "v1-test-token-0123456789abcdef"
ROUTES = [
    ("GET", "/v1/models"), ("GET", "/v1/models/SmolLM2-135M-Instruct"), ("POST", "/v1/chat/completions"),
    ("POST", "/v1/files"), ("GET", "/v1/files"), ("GET", "/v1/files/file-x"), ("GET", "/v1/files/file-x/content"), ("DELETE", "/v1/files/file-x"),
    ("POST", "/v1/fine_tuning/jobs"), ("GET", "/v1/fine_tuning/jobs"), ("GET", "/v1/fine_tuning/jobs/ftjob-x"),
    ("GET", "/v1/fine_tuning/jobs/ftjob-x/events"), ("GET", "/v1/fine_tuning/jobs/ftjob-x/checkpoints"),
    ("POST", "/v1/fine_tuning/jobs/ftjob-x/cancel"), ("POST", "/v1/fine_tuning/jobs/ftjob-x/pause"), ("POST", "/v1/fine_tuning/jobs/ftjob-x/resume"),
]  # fmt: skip


@pytest.fixture(scope="module")
def public_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v1-public")
    # one token given plainly, one as its digest: both forms work for /v1 as for /mcp
    tokens = f"{TOKEN},sha256:{hashlib.sha256(b'second-token-abcdefghijklmnop').hexdigest()}"
    with serving(folder / "home", folder / "server.log", host="0.0.0.0", env={"MODEL_CUSTOMIZATION_HTTP_TOKENS": tokens}) as live:
        yield live


def test_every_v1_route_needs_a_token_off_loopback(public_server):
    url = f"http://127.0.0.1:{public_server.port}"
    with httpx2.Client(event_hooks={"response": [validate_response]}) as http:
        for method, path in ROUTES:
            for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
                refused = http.request(method, url + path, headers=headers, json={})
                assert refused.status_code == 401, (method, path, headers, refused.text)
                assert refused.json()["error"]["code"] == "invalid_api_key"
                assert refused.headers["www-authenticate"].startswith("Bearer")
        # a path that is no route is refused the same way: nothing about the API is told without a token
        assert http.get(url + "/v1/nothing-here").status_code == 401
        for token in (TOKEN, "second-token-abcdefghijklmnop"):
            listed = http.get(url + "/v1/models", headers={"Authorization": f"Bearer {token}"})
            assert listed.status_code == 200 and listed.json()["object"] == "list"
        # the token is never in the server's output
    assert TOKEN not in public_server.output()


def test_the_sdk_with_the_token_as_api_key(public_server):
    from openai import AuthenticationError, OpenAI

    good = OpenAI(base_url=f"http://127.0.0.1:{public_server.port}/v1", api_key=TOKEN, http_client=public_server.http(), max_retries=0)
    assert "SmolLM2-135M-Instruct" in [m.id for m in good.models.list().data]
    bad = OpenAI(base_url=f"http://127.0.0.1:{public_server.port}/v1", api_key="not-a-token-at-all-xx", http_client=public_server.http(), max_retries=0)
    with pytest.raises(AuthenticationError):
        bad.models.list()


def test_wrong_host_is_refused_before_the_token_is_looked_at(public_server):
    with httpx2.Client() as http:
        response = http.get(f"http://127.0.0.1:{public_server.port}/v1/models", headers={"Host": "attacker.example", "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 421 and response.json()["error"]["code"] == "invalid_host"
