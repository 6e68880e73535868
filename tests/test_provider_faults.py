"""Provider faults while following a cloud job: retried with backoff, each retry and a give-up a job event, never a
crash, and the job is never failed because of a network blip.

OpenAI is tests/openai_fake.py at the HTTP boundary; faults are injected there (HTTP 500 and 429, dropped
connections, read timeouts). Bedrock's error mapping is checked on botocore's own exception types.
"""

from __future__ import annotations

import re

import httpx2
import pytest

from model_customization.jobs.orchestrator import POLL_ATTEMPTS

from openai_fake import serving
from model_customization.jobs import orchestrator

API_KEY = "sk-test-faults-0123456789abcdef"
RETRIEVE = "/fine_tuning/jobs/{fine_tuning_job_id}"


@pytest.fixture
def fake(ws, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODEL_CUSTOMIZATION_POLL_BACKOFF_SECONDS", "0.01")
    with serving(monkeypatch, API_KEY, ws=ws) as server:
        yield server


@pytest.fixture
def job_id(ws, fake, demo_paths) -> str:
    from model_customization.datasets.build import build_dataset

    dataset_id = build_dataset(ws, demo_paths).dataset_id
    quote = orchestrator.start_job(ws, dataset_id, provider="openai", dry_run=True)["quote"]["estimated_cost_usd"]
    return orchestrator.start_job(ws, dataset_id, provider="openai", confirm_cost_usd=quote)["job_id"]


def _messages(ws, job_id: str) -> list[str]:
    return [e["message"] for e in ws.store.jobs.events(job_id, None)]


def _retries(ws, job_id: str) -> list[tuple[float, int, int]]:
    found = []
    for message in _messages(ws, job_id):
        match = re.match(r"OpenAI unreachable: retrying in ([\d.]+) s \(attempt (\d+)/(\d+)\)", message)
        if match:
            found.append((float(match[1]), int(match[2]), int(match[3])))
    return found


def _timeouts(fake, times: int) -> None:
    """The next `times` retrieves hang until the client's read timeout (raised at once here)."""
    take_fault = fake._take_fault
    left = {"n": times}

    def timing_out(method: str, template: str):
        if (method, template) == ("GET", RETRIEVE) and left["n"] > 0:
            left["n"] -= 1
            raise httpx2.ReadTimeout("timed out")
        return take_fault(method, template)

    fake._take_fault = timing_out


def _follow(ws, job_id: str, checks: int = 10) -> dict:
    for _ in range(checks):
        summary = orchestrator.check_job(ws, job_id)
        if summary["status"] in ("succeeded", "failed", "cancelled"):
            break
    return summary


@pytest.mark.parametrize("fault", ["http_500", "dropped_connection", "timeout"])
def test_a_blip_while_polling_is_retried_with_backoff_as_job_events(ws, fake, job_id, fault):
    # The SDK tries each poll twice (one quick retry); 5 failures in a row cost our loop 2 retries, the 3rd try passes.
    if fault == "http_500":
        fake.fail("GET", RETRIEVE, 500, times=5, headers={"retry-after-ms": "1"})
    elif fault == "dropped_connection":
        fake.drop_connection("GET", RETRIEVE, after_processing=False, times=5)
    else:
        _timeouts(fake, 5)
    summary = orchestrator.check_job(ws, job_id)
    assert summary["status"] not in ("failed", "cancelled") and summary["error"] is None
    retries = _retries(ws, job_id)
    assert [(attempt, total) for _, attempt, total in retries] == [(2, POLL_ATTEMPTS), (3, POLL_ATTEMPTS)]
    assert [delay for delay, _, _ in retries] == [0.01, 0.02]  # doubling backoff
    assert not any("still unreachable" in m for m in _messages(ws, job_id))
    assert _follow(ws, job_id)["status"] == "succeeded"


def test_a_provider_down_for_longer_gives_up_for_this_check_and_the_job_carries_on_later(ws, fake, job_id):
    before = orchestrator.check_job(ws, job_id)
    fake.fail("GET", RETRIEVE, 503, times=-1, headers={"retry-after-ms": "1"})
    during = orchestrator.check_job(ws, job_id)  # never raises
    assert during["status"] == before["status"] and during["error"] is None
    messages = _messages(ws, job_id)
    assert [a for _, a, _ in _retries(ws, job_id)] == list(range(2, POLL_ATTEMPTS + 1))
    gave_up = [m for m in messages if m.startswith(f"OpenAI still unreachable after {POLL_ATTEMPTS} attempts")]
    assert len(gave_up) == 1 and f"({before['status']})" in gave_up[0] and "HTTP 503" in gave_up[0]
    assert ws.store.jobs.get(job_id)["status"] == before["status"]
    assert orchestrator.list_jobs(ws)[0]["status"] == before["status"]  # list_jobs polls too, and survives it
    fake.faults.clear()
    final = _follow(ws, job_id)
    assert final["status"] == "succeeded" and final["model_id"].startswith("ft:")
    assert API_KEY not in " ".join(_messages(ws, job_id))


def test_retry_after_from_the_provider_is_honoured(ws, fake, job_id):
    fake.fail("GET", RETRIEVE, 429, times=2, headers={"retry-after": "0.05"})
    orchestrator.check_job(ws, job_id)
    assert [(d, a) for d, a, _ in _retries(ws, job_id)] == [(0.05, 2)]


def test_a_poll_failing_half_way_records_no_event_twice(ws, fake, job_id):
    # Retrieve and events succeed, the checkpoints listing fails: nothing of that poll may be written, so the events
    # read again by the retry are recorded once.
    fake.fail("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints", 500, times=2, headers={"retry-after-ms": "1"})
    final = _follow(ws, job_id)
    assert final["status"] == "succeeded"
    openai_events = [m for m in _messages(ws, job_id) if m.startswith("OpenAI: ")]
    assert openai_events and len(openai_events) == len(set(openai_events)), openai_events
    steps = [m["step"] for m in ws.store.jobs.metrics(job_id)]
    assert steps == sorted(set(steps))


def test_a_refusal_that_is_not_transient_is_not_retried(ws, fake, job_id):
    fake.fail("GET", RETRIEVE, 403, times=1, message="Project is archived")
    summary = orchestrator.check_job(ws, job_id)
    assert summary["status"] not in ("failed",)
    assert _retries(ws, job_id) == []
    assert any("could not refresh from OpenAI" in m and "Project is archived" in m for m in _messages(ws, job_id))


def test_bedrock_throttling_server_errors_and_network_failures_are_transient():
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    from model_customization.errors import TransientError
    from model_customization.providers.bedrock.training import _aws_error

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetModelCustomizationJob")

    transient = [
        client_error("ThrottlingException", 429),
        client_error("InternalServerException", 500),
        client_error("ServiceUnavailable", 503),
        EndpointConnectionError(endpoint_url="https://bedrock.us-east-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://bedrock.us-east-1.amazonaws.com"),
    ]
    for error in transient:
        assert isinstance(_aws_error("reading customization job x", error), TransientError), error
    for error in (client_error("AccessDeniedException", 403), client_error("ValidationException", 400)):
        refused = _aws_error("reading customization job x", error)
        assert not isinstance(refused, TransientError) and "reading customization job x" in str(refused)
