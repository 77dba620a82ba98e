"""Integers from the network are bounded where they come in, over real sockets: a
number past what the protocol allows is refused with a documented error naming the
field (``bad-message`` on the WebSocket, 400 ``bad-request`` on the HTTP API), never
handed to the store (SQLite and PostgreSQL integers are 64-bit) to fail there with
``store-unavailable``, a 500 and a traceback in the log."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from hubbub.server import ServerSettings
from tests.tokens import SECRET
from tests.wsclient import Client

KEY = "integer-bounds-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}

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


# -- HTTP -----------------------------------------------------------------------

NOT_INTEGERS = ["", "x", "1.5", "1e3", "1_000", " 7", "7 ", "+7", "\u0667", "0x10", "9" * 5000]
"""Query values that are not integers written in ASCII digits."""


@pytest.fixture
async def api(start_hub, store_settings: ServerSettings):
    """(base URL, HTTP session) of a server with an API key, on each store backend."""
    url = await start_hub(replace(store_settings, api_key=KEY, token_secret=SECRET))
    async with aiohttp.ClientSession(headers=AUTH) as http:
        yield url, http


async def bad_request(response: aiohttp.ClientResponse, field: str) -> None:
    body = await response.json(content_type=None)
    assert response.status == 400, body
    assert response.content_type == "application/json"
    assert body["error"]["code"] == "bad-request", body
    assert field in body["error"]["message"], body


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/rooms/team/messages", "beforeSeq"),
        ("/api/rooms/team/messages", "limit"),
        ("/api/users/alice/notifications", "limit"),
        ("/api/rooms", "limit"),
    ],
)
async def test_integer_query_parameters_are_bounded(
    api, path: str, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, http = api
    for value in [*(str(v) for v in OUT_OF_RANGE), "0", "-1", *NOT_INTEGERS]:
        async with http.get(url + path, params={field: value}) as response:
            await bad_request(response, field)
    for value in ("1", str(LARGEST)):
        async with http.get(url + path, params={field: value}) as response:
            assert response.status == 200, await response.text()
    assert_no_error_logged(caplog)


async def test_notification_ids_in_a_body_are_bounded(
    api, caplog: pytest.LogCaptureFixture
) -> None:
    url, http = api
    read = url + "/api/users/alice/notifications/read"
    for value in [*OUT_OF_RANGE, 0, -1]:
        for ids in ([value], [1, value]):
            async with http.post(read, json={"ids": ids}) as response:
                await bad_request(response, "ids")
    async with http.post(read, json={"ids": [1, LARGEST]}) as response:
        assert response.status == 200
        assert await response.json() == {"read": []}
    assert_no_error_logged(caplog)


async def test_a_token_ttl_out_of_range_is_refused(api, caplog: pytest.LogCaptureFixture) -> None:
    url, http = api
    for value in OUT_OF_RANGE:
        body = {"userId": "alice", "rooms": ["team"], "ttl": value}
        async with http.post(url + "/api/tokens", json=body) as response:
            await bad_request(response, "ttl")
    assert_no_error_logged(caplog)


async def test_openapi_gives_every_integer_input_its_bounds(hub_url: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(hub_url + "/api/openapi.json") as response,
    ):
        paths = (await response.json())["paths"]
    schemas = []
    for path in paths.values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                schemas.append((parameter["name"], parameter["schema"]))
            body = operation.get("requestBody")
            if body is not None:
                properties = body["content"]["application/json"]["schema"]["properties"]
                for name, schema in properties.items():
                    schemas.append((name, schema.get("items", schema)))
    integers = [(name, schema) for name, schema in schemas if schema.get("type") == "integer"]
    assert {name for name, _ in integers} == {"beforeSeq", "limit", "ids", "ttl"}
    for name, schema in integers:
        assert schema.get("minimum", -LARGEST - 1) >= 1, name
        assert schema.get("maximum", LARGEST + 1) <= LARGEST, name
