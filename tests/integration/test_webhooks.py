"""Webhooks to a real HTTP receiver on an ephemeral port: what arrives, signed as
documented, retried, and never in the way of chat."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hubbub.server import ServerSettings, start_server
from tests.integration.test_metrics import scrape
from tests.wsclient import Client

SECRET = "webhook-test-secret-0123456789"
API_KEY = "webhook-test-api-key"

OPERATIONS = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()


def documented_verify() -> Callable[..., bool]:
    """The verification snippet of docs/operations.md, as a backend would paste it."""
    section = OPERATIONS.split("### Verifying the signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


verify = documented_verify()


@dataclass
class Receiver:
    """A backend: records every request; ``answers`` says how to answer the next ones."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """When each request arrived (the loop's clock)."""
    answers: list[int] = field(default_factory=list)
    """Statuses to answer with, first first; 200 once they run out."""
    delay: float = 0.0
    delays: list[float] = field(default_factory=list)
    """Seconds to hold each request before answering, first first; then ``delay``."""
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self.arrived:
            self.requests.append((dict(request.headers), body))
            self.times.append(asyncio.get_running_loop().time())
            self.arrived.notify_all()
        delay = self.delays.pop(0) if self.delays else self.delay
        if delay:
            await asyncio.sleep(delay)
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status, text="ok")

    def delivered(self) -> list[dict[str, Any]]:
        """The bodies of the requests, decoded, in order (retries included)."""
        return [json.loads(body) for _, body in self.requests]

    def events(self) -> list[str]:
        return [body["event"] for body in self.delivered()]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 20) -> None:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(condition)


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    backend = Receiver()
    app = web.Application()
    app.router.add_post("/events", backend.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    backend.url = f"http://127.0.0.1:{port}/events"
    try:
        yield backend
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as backend:
        yield backend


def settings(receiver: Receiver, **more: Any) -> ServerSettings:
    return ServerSettings(
        api_key=API_KEY,
        webhook_url=[receiver.url],
        webhook_secret=SECRET,
        **{"webhook_backoff": 0.05, **more},
    )


async def test_room_and_participant_events_arrive_signed(start_hub, receiver) -> None:
    url = await start_hub(settings(receiver))
    async with await Client.connect(url) as alice, await Client.connect(url) as bob:
        await alice.join("team", "alice")
        await bob.join("team", "bob")
        await alice.send({"type": "chat", "message": "not a webhook by default"})
        await bob.expect("chat")
        await bob.send({"type": "leave-room"})
        await bob.expect("room-left")
    await receiver.wait_for(lambda: len(receiver.requests) >= 6)
    assert receiver.events() == [
        "room.started",
        "participant.joined",
        "participant.joined",
        "participant.left",
        "participant.left",
        "room.finished",
    ]
    bodies = receiver.delivered()
    assert [body["data"].get("userId") for body in bodies] == [
        None,
        "alice",
        "bob",
        "bob",
        "alice",
        None,
    ]
    assert all(body["data"]["room"] == "team" for body in bodies)
    assert len({body["id"] for body in bodies}) == 6
    for headers, body in receiver.requests:
        assert headers["Content-Type"] == "application/json"
        assert headers["Hubbub-Event"] == json.loads(body)["event"]
        assert headers["Hubbub-Event-Id"] == json.loads(body)["id"]
        assert verify(SECRET, body, headers["Hubbub-Signature"])
        # a byte changed, another secret, or a stale timestamp: refused
        assert not verify(SECRET, body + b" ", headers["Hubbub-Signature"])
        assert not verify("another-secret-0123456789", body, headers["Hubbub-Signature"])
        assert not verify(SECRET, body, headers["Hubbub-Signature"], tolerance=-1)
    now = await scrape(url, API_KEY)
    assert now("hubbub_webhook_events_total", event="participant.joined") == 2
    assert now("hubbub_webhook_deliveries_total", result="delivered") == 6


async def test_chat_messages_are_sent_when_asked_for(start_hub, receiver) -> None:
    url = await start_hub(settings(receiver, webhook_event=["chat.message"]))
    async with await Client.connect(url) as alice, await Client.connect(url) as bob:
        await alice.join("team", "alice")
        await bob.join("team", "bob")
        await alice.send({"type": "chat", "message": "hello, backend"})
        await bob.expect("chat")
    await receiver.wait_for(lambda: len(receiver.requests) >= 1)
    await asyncio.sleep(0.3)  # and nothing else comes: joins and leaves were not asked for
    [body] = receiver.delivered()
    assert body["event"] == "chat.message"
    assert body["data"]["room"] == "team"
    assert body["data"]["userId"] == "alice"
    assert body["data"]["message"] == "hello, backend"


async def test_calls_are_sent_as_they_ring_are_taken_and_end(start_hub, receiver) -> None:
    events = ["call.ringing", "call.accepted", "call.ended"]
    url = await start_hub(settings(receiver, webhook_event=events))
    async with await Client.connect(url) as alice, await Client.connect(url) as bob:
        await alice.join("lobby", "alice")
        await bob.join("home", "bob")
        await alice.send({"type": "call-request", "targetUserId": "bob"})
        call_id = (await alice.expect("call-ringing"))["callId"]
        await bob.expect("call-incoming")
        await bob.send({"type": "call-accept", "callId": call_id})
        room = (await bob.expect("call-accepted"))["room"]
        await alice.expect("call-accepted")
        await alice.send({"type": "call-end", "callId": call_id})
        await bob.expect("call-ended")
    await receiver.wait_for(lambda: len(receiver.requests) >= 3)
    bodies = receiver.delivered()
    assert [body["event"] for body in bodies] == events
    assert all(body["data"]["callId"] == call_id for body in bodies)
    assert all((b["data"]["caller"], b["data"]["callee"]) == ("alice", "bob") for b in bodies)
    assert bodies[1]["data"]["room"] == room
    assert bodies[2]["data"]["reason"] == "hung-up"


async def test_a_receiver_failing_twice_gets_the_event_on_the_third_attempt(
    start_hub, receiver
) -> None:
    receiver.answers = [500, 503]
    url = await start_hub(settings(receiver, webhook_event=["room.started"]))
    async with await Client.connect(url) as alice:
        await alice.join("retried", "alice")
        await receiver.wait_for(lambda: len(receiver.requests) >= 3)
    first, second, third = receiver.requests
    assert first[1] == second[1] == third[1]  # the same event, the same body
    assert json.loads(third[1])["data"] == {"room": "retried"}
    assert verify(SECRET, third[1], third[0]["Hubbub-Signature"])
    now = await scrape(url, API_KEY)
    assert now("hubbub_webhook_failed_attempts_total") == 2
    assert now("hubbub_webhook_deliveries_total", result="delivered") == 1
    assert now("hubbub_webhook_deliveries_total", result="failed") == 0


@pytest.mark.logs_errors("event=webhook-failed ")
async def test_an_event_is_given_up_after_its_attempts(start_hub, receiver) -> None:
    receiver.answers = [500, 500, 200]
    url = await start_hub(settings(receiver, webhook_event=["room.started"], webhook_attempts=2))
    async with await Client.connect(url) as alice:
        await alice.join("first", "alice")
        await alice.send({"type": "join-room", "room": "second"})
        await alice.expect("room-joined")
        await receiver.wait_for(lambda: len(receiver.requests) >= 3)
    assert [body["data"]["room"] for body in receiver.delivered()] == ["first", "first", "second"]
    now = await scrape(url, API_KEY)
    assert now("hubbub_webhook_deliveries_total", result="failed") == 1
    assert now("hubbub_webhook_deliveries_total", result="delivered") == 1


# the receiver stops before the server, which gives up what it still held
@pytest.mark.logs_errors("event=webhook-failed ")
async def test_a_slow_receiver_does_not_slow_chat(start_hub, receiver) -> None:
    receiver.delay = 30.0  # longer than the whole test: every request hangs
    url = await start_hub(
        settings(
            receiver,
            webhook_event=["chat.message"],
            webhook_queue_size=10,
            webhook_timeout=60.0,
        ),
        message_rate=10_000,
        message_burst=10_000,
    )
    count = 500
    async with await Client.connect(url) as alice, await Client.connect(url) as bob:
        await alice.join("busy", "alice")
        await bob.join("busy", "bob")
        await alice.send({"type": "chat", "message": "first"})
        await bob.expect("chat")
        await receiver.wait_for(lambda: len(receiver.requests) >= 1)
        # the receiver now holds the first request and answers nothing
        async with asyncio.timeout(20):
            for i in range(count):
                await alice.send({"type": "chat", "message": f"m{i}"})
            for i in range(count):
                assert (await bob.expect("chat"))["message"] == f"m{i}"
        now = await scrape(url, API_KEY)
    assert len(receiver.requests) == 1
    assert now("hubbub_webhook_events_total", event="chat.message") == count + 1
    # webhook_queue_size kept (the one in flight among them), the rest dropped
    assert now("hubbub_webhook_queued") == 10
    assert now("hubbub_webhook_dropped_total") == count + 1 - 10


async def test_retries_wait_twice_as_long_each_time_up_to_the_cap(start_hub, receiver) -> None:
    receiver.answers = [500, 500, 500, 500]
    url = await start_hub(
        settings(
            receiver,
            webhook_event=["room.started"],
            webhook_backoff=0.2,
            webhook_backoff_max=0.5,
            webhook_attempts=5,
        )
    )
    async with await Client.connect(url) as alice:
        await alice.join("backoff", "alice")
        await receiver.wait_for(lambda: len(receiver.requests) >= 5)
    gaps = [later - earlier for earlier, later in itertools.pairwise(receiver.times)]
    # 0.2 s, doubled to 0.4, then held at the cap of 0.5 (a wait is never shorter than
    # its backoff; a busy machine may make it longer, but not by 0.3 s more)
    for gap, backoff in zip(gaps, [0.2, 0.4, 0.5, 0.5], strict=True):
        assert backoff - 0.02 <= gap < backoff + 0.3, gaps
    now = await scrape(url, API_KEY)
    assert now("hubbub_webhook_failed_attempts_total") == 4
    assert now("hubbub_webhook_deliveries_total", result="delivered") == 1


async def test_a_receiver_slower_than_the_timeout_is_tried_again(start_hub, receiver) -> None:
    receiver.delays = [5.0]  # the first request is held past webhook_timeout
    url = await start_hub(settings(receiver, webhook_event=["room.started"], webhook_timeout=0.3))
    async with await Client.connect(url) as alice:
        await alice.join("timeout", "alice")
        await receiver.wait_for(lambda: len(receiver.requests) >= 2)
        now = await scrape(url, API_KEY)
    first, second = receiver.requests
    assert first[1] == second[1]
    # given up on at the timeout, not when the receiver answered 5 s later
    assert receiver.times[1] - receiver.times[0] < 0.3 + 0.05 + 1.0
    assert now("hubbub_webhook_failed_attempts_total") == 1
    assert now("hubbub_webhook_deliveries_total", result="delivered") == 1


async def test_each_url_gets_every_event_and_a_failing_one_holds_no_other(start_hub) -> None:
    async with receiving() as failing, receiving() as working:
        failing.answers = [500] * 10
        url = await start_hub(
            ServerSettings(
                api_key=API_KEY,
                webhook_url=[failing.url, working.url],
                webhook_secret=SECRET,
                webhook_backoff=1.0,
                webhook_attempts=10,
            )
        )
        async with await Client.connect(url) as alice:
            await alice.join("both", "alice")
            await alice.send({"type": "leave-room"})
            await alice.expect("room-left")
            # the working receiver has all of them while the failing one still retries its first
            await working.wait_for(lambda: len(working.requests) >= 4)
            assert working.events() == [
                "room.started",
                "participant.joined",
                "participant.left",
                "room.finished",
            ]
            assert failing.events() == ["room.started"] * len(failing.requests)
            assert len(failing.requests) < 10
            await failing.wait_for(lambda: len(failing.requests) >= 2)
            for headers, body in failing.requests + working.requests:
                assert verify(SECRET, body, headers["Hubbub-Signature"])


async def test_at_shutdown_the_queues_drain_for_2_s_and_no_longer(receiver, tmp_path: Path) -> None:
    # What the members' leaving at shutdown makes is delivered too.
    receiver.delay = 0.2
    runner, url = await start_server(
        replace(settings(receiver), host="127.0.0.1", port=0, data_dir=tmp_path / "a")
    )
    async with await Client.connect(url) as alice, await Client.connect(url) as bob:
        await alice.join("closing", "alice")
        await bob.join("closing", "bob")
        await alice.expect("user-joined")
        await receiver.wait_for(lambda: len(receiver.requests) >= 1)
        stopping = asyncio.create_task(runner.cleanup())
        for client in (alice, bob):  # the clients answer the close
            assert await client.closed_with() == 1001
        await stopping
    assert receiver.events() == [
        "room.started",
        "participant.joined",
        "participant.joined",
        "participant.left",
        "participant.left",
        "room.finished",
    ]

    # A receiver that answers nothing holds the shutdown 2 s, not its timeout of 60 s.
    receiver.requests.clear()
    receiver.delay = 60.0
    runner, url = await start_server(
        replace(
            settings(receiver, webhook_timeout=60.0),
            host="127.0.0.1",
            port=0,
            data_dir=tmp_path / "b",
        )
    )
    async with await Client.connect(url) as alice:
        await alice.join("stuck", "alice")
        await receiver.wait_for(lambda: len(receiver.requests) >= 1)
    started = asyncio.get_running_loop().time()
    await runner.cleanup()
    took = asyncio.get_running_loop().time() - started
    assert 2.0 <= took < 2.0 + 1.0  # the grace, and the rest of the shutdown
    assert len(receiver.requests) == 1


def test_the_documented_example_request_verifies() -> None:
    section = OPERATIONS.split("### The request", 1)[1].split("### Verifying", 1)[0]
    request = re.search(r"```http\n(.*?)```", section, re.DOTALL)
    secret = re.search(r'webhook_secret = "([^"]+)"', section)
    assert request is not None
    assert secret is not None
    head, body = request.group(1).split("\n\n", 1)
    signature = re.search(r"Hubbub-Signature: (\S+)", head)
    assert signature is not None
    assert verify(secret.group(1), body.strip().encode(), signature.group(1), tolerance=10**10)
    assert not verify(secret.group(1), body.strip().encode(), signature.group(1))  # too old
