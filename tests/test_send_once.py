"""The at-most-once loop behind every upload and job creation of the cloud providers (providers/send_once.py)."""

from __future__ import annotations

import pytest

from model_customization.providers.send_once import NoReply, backoff_delay, send_at_most_once


class Dropped(Exception):
    """A failure that may pass: the reply was lost, or the service was briefly down."""


def _loop(script_send, script_look, attempts=4):
    """Run the loop over scripted outcomes; returns (result, calls made)."""
    calls = []

    def step(kind, script):
        calls.append(kind)
        outcome = script.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = send_at_most_once(
        lambda: step("send", script_send), lambda: step("look", script_look),
        attempts=attempts, transient=(Dropped,), delay=lambda error, attempt: 0.0,
    )
    return result, calls


def test_a_lost_reply_is_answered_by_what_the_earlier_try_made():
    result, calls = _loop([Dropped("reply lost")], ["file-1"])
    assert result == ("file-1", True) and calls == ["send", "look"]


def test_nothing_found_after_a_failure_sends_again():
    result, calls = _loop([Dropped("503"), "file-2"], [None])
    assert result == ("file-2", False) and calls == ["send", "look", "send"]


def test_a_failed_look_spends_the_round_without_sending():
    """Not knowing whether the earlier try arrived, sending again could make a second copy."""
    result, calls = _loop([Dropped("503"), "file-3"], [Dropped("list failed"), None])
    assert result == ("file-3", False) and calls == ["send", "look", "look", "send"]


def test_giving_up_keeps_the_last_failure_and_a_refusal_is_not_retried():
    with pytest.raises(NoReply) as gave_up:
        _loop([Dropped("a"), Dropped("b")], [None], attempts=2)
    assert str(gave_up.value.last_error) == "b"
    with pytest.raises(ValueError):
        _loop([ValueError("bad request")], [])


def test_the_servers_retry_after_wins_over_doubling():
    class Response:
        def __init__(self, headers):
            self.headers = headers

    class Limited(Exception):
        def __init__(self, headers):
            self.response = Response(headers)

    assert backoff_delay(Limited({"retry-after-ms": "250"}), 1, 1.0, 30.0) == 0.25
    assert backoff_delay(Limited({"retry-after": "90"}), 1, 1.0, 30.0) == 30.0
    assert [backoff_delay(Limited({}), n, 1.0, 30.0) for n in (1, 2, 3, 7)] == [1.0, 2.0, 4.0, 30.0]
