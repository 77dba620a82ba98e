"""Integers from the network are bounded where they come in, over real sockets: a
number past what the protocol allows is refused with a documented error naming the
field (``bad-message`` on the WebSocket, 400 ``bad-request`` on the HTTP API), never
handed to the store (SQLite and PostgreSQL integers are 64-bit) to fail there with
``store-unavailable``, a 500 and a traceback in the log."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hubbub.server import ServerSettings
from tests.wsclient import Client

LARGEST = 2**53 - 1
"""The largest integer hubbub takes from the network (a JavaScript client's
Number.MAX_SAFE_INTEGER)."""

TOO_LARGE = [2**53, 2**63 - 1, 2**63, 2**64, 10**30]
TOO_SMALL = [-(2**53), -(2**63) - 1, -(10**30)]
OUT_OF_RANGE = TOO_LARGE + TOO_SMALL


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The server logged no error and no traceback while the test ran."""
    bad = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def refused(client: Client, message: dict[str, Any], field: str) -> None:
    """``message`` is refused with ``bad-message`` that names ``field``, echoing its ref."""
    await client.send({**message, "ref": "x"})
    error = await client.expect_error("bad-message")
    assert error["ref"] == "x", error
    assert field in error["message"], error


# -- WebSocket ------------------------------------------------------------------


async def test_history_refuses_integers_out_of_range(
    start_hub, store_settings: ServerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    url = await start_hub(store_settings)
    async with await Client.connect(url) as a:
        await a.join("r", "alice")
        for n in range(3):
            await a.send({"type": "chat", "message": f"m{n}"})
            await a.expect("chat-ack")
        for value in OUT_OF_RANGE:
            await refused(a, {"type": "history", "beforeSeq": value}, "beforeSeq")
            await refused(a, {"type": "history", "limit": value}, "limit")
        # The largest allowed is answered as ever, and the connection is still good.
        await a.send({"type": "history", "beforeSeq": LARGEST, "limit": LARGEST, "ref": 1})
        page = await a.expect("history")
        assert [m["seq"] for m in page["messages"]] == [1, 2, 3]
    assert_no_error_logged(caplog)


async def test_notification_messages_refuse_integers_out_of_range(
    start_hub, store_settings: ServerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    url = await start_hub(store_settings)
    async with await Client.connect(url) as a:
        await a.join("r", "alice")
        for value in OUT_OF_RANGE:
            await refused(a, {"type": "notification-read", "ids": [value]}, "ids")
            await refused(a, {"type": "notification-read", "ids": [1, value]}, "ids")
            await refused(a, {"type": "notifications", "limit": value}, "limit")
        # An id that names no notification is left out, as ever.
        await a.send({"type": "notification-read", "ids": [LARGEST], "ref": 1})
        assert await a.expect("notification-read") == {
            "type": "notification-read",
            "ids": [],
            "ref": 1,
        }
        await a.send({"type": "notifications", "limit": LARGEST, "ref": 2})
        assert (await a.expect("notifications"))["ref"] == 2
    assert_no_error_logged(caplog)


async def test_resume_refuses_a_last_n_out_of_range_and_can_resume_after(
    hub_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with await Client.connect(hub_url) as old:
        joined = await old.join("r", "alice")
        resume = {
            "type": "resume",
            "sessionId": joined["sessionId"],
            "resumeToken": joined["resumeToken"],
        }
        async with await Client.connect(hub_url) as new:
            for value in [*OUT_OF_RANGE, -1]:
                await refused(new, {**resume, "lastN": value}, "lastN")
            await new.send({**resume, "lastN": 1})
            assert (await new.expect("resumed"))["sessionId"] == joined["sessionId"]
    assert_no_error_logged(caplog)


async def test_an_integer_ref_out_of_range_is_refused_and_not_echoed(
    hub_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with await Client.connect(hub_url) as a:
        for value in OUT_OF_RANGE:
            await a.send({"type": "ping", "ref": value})
            error = await a.expect_error("bad-message")
            assert "ref" in error["message"], error
            assert "ref" not in error, error
        for value in (LARGEST, -LARGEST):
            await a.send({"type": "ping", "ref": value})
            assert await a.expect("pong") == {"type": "pong", "ref": value}
    assert_no_error_logged(caplog)
