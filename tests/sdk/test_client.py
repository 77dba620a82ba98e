"""hubbub.client against a real server over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hubbub.client import (
    Backoff,
    ChatMessage,
    Client,
    Closed,
    ConnectError,
    Disconnected,
    Event,
    JoinRefused,
    Reconnected,
    RequestFailed,
    Resumed,
    RoomJoined,
    ServerError,
    ServerMessage,
    SignalReceived,
    UserJoined,
    UserLeft,
    websocket_url,
)
from hubbub.client.events import decode_event
from hubbub.server import ServerSettings, start_server
from tests.conftest import ServerFactory
from tests.tokens import token, token_settings
from tests.wsclient import Client as RawClient

WAIT = 10.0

E = TypeVar("E", bound=Event)


async def next_of(client: Client, kind: type[E]) -> E:
    """The next event of ``kind``, skipping others."""
    while True:
        event = await client.next_event(timeout=WAIT)
        if isinstance(event, kind):
            return event


async def test_join_chat_signal_and_presence(hub_url: str) -> None:
    async with Client(hub_url, "r", user="alice") as alice:
        assert alice.user_id == "alice"
        assert isinstance(await alice.next_event(WAIT), RoomJoined)
        async with Client(hub_url, "r", user="bob") as bob:
            assert set(bob.participants) == {"alice"}
            assert bob.participants["alice"].polite is True
            joined = await next_of(alice, UserJoined)
            assert joined == UserJoined(user_id="bob", polite=False)
            assert set(alice.participants) == {"bob"}

            ack = await bob.chat("hello alice")
            said = await next_of(alice, ChatMessage)
            assert (said.message, said.user_id) == ("hello alice", "bob")
            assert ack is not None  # hubbub stores chat: the ack is the stored message
            assert (said.id, said.seq, said.client_id) == (ack.id, ack.seq, ack.client_id)
            await alice.signal("bob", {"type": "offer", "sdp": {"n": [1, 2]}})
            assert await next_of(bob, SignalReceived) == SignalReceived(
                signal={"type": "offer", "sdp": {"n": [1, 2]}}, from_user_id="alice"
            )
            started = time.monotonic()
            round_trip = await bob.ping()
            assert 0 < round_trip <= time.monotonic() - started
        assert await next_of(alice, UserLeft) == UserLeft(user_id="bob")
        assert alice.participants == {}


async def test_signals_that_came_before_anything_took_them_are_kept_for_it(
    hub_url: str,
) -> None:
    """A peer offers as soon as it sees us join, which can be before our mesh starts:
    the client keeps the signals until something takes them, in order and once,
    whatever listeners it has meanwhile (a command's own, say); after that, none."""
    async with (
        Client(hub_url, "early", user="alice") as alice,
        Client(hub_url, "early", user="bob") as bob,
    ):
        heard: list[object] = []
        bob.add_listener(heard.append)  # an app's listener: it takes nothing away
        await alice.signal("bob", {"type": "offer", "n": 1})
        await alice.signal("bob", {"type": "ice-candidate", "n": 2})
        assert (await next_of(bob, SignalReceived)).signal["n"] == 1  # bob's client has them
        assert (await next_of(bob, SignalReceived)).signal["n"] == 2
        assert bob.take_signals() == [
            SignalReceived(signal={"type": "offer", "n": 1}, from_user_id="alice"),
            SignalReceived(signal={"type": "ice-candidate", "n": 2}, from_user_id="alice"),
        ]
        assert len(heard) >= 2
        await alice.signal("bob", {"type": "answer", "n": 3})
        assert (await next_of(bob, SignalReceived)).signal["n"] == 3
        assert bob.take_signals() == []  # taken once: the taker listens from then on


async def test_server_chosen_user_id_and_room_switch(hub_url: str) -> None:
    async with Client(hub_url, "one") as client:
        assert client.user_id is not None
        assert client.user_id.startswith("user-")
        joined = await client.join("two")
        assert joined.room == "two"
        assert client.room == "two"
        await client.leave()
        with pytest.raises(RequestFailed) as failed:
            await client.leave()
        assert failed.value.code == "not-in-room"


async def test_refused_join_raises(hub_url: str) -> None:
    async with Client(hub_url, "r", user="alice"):
        with pytest.raises(JoinRefused) as refused:
            async with Client(hub_url, "r", user="alice"):
                pass
        assert refused.value.code == "user-id-taken"


async def test_unreachable_server_raises_connect_error() -> None:
    with pytest.raises(ConnectError):
        async with Client("ws://127.0.0.1:9", "r", user="alice"):
            pass


async def test_reconnects_after_a_server_restart_and_rejoins(tmp_path: Path) -> None:
    settings = ServerSettings(host="127.0.0.1", port=0, data_dir=tmp_path)
    runner, url = await start_server(settings)
    port = int(url.rsplit(":", 1)[1])
    backoff = Backoff(base=0.2, max_delay=0.5, random=random.Random(1))
    try:
        async with Client(url, "r", user="alice", backoff=backoff) as alice:
            await next_of(alice, RoomJoined)
            await runner.cleanup()  # closes every connection with 1001
            gone = await next_of(alice, Disconnected)
            assert gone.code == 1001
            assert gone.will_retry
            # kept while the connection is down, sent once it is back
            sent_while_down = asyncio.ensure_future(alice.chat("sent while down"))
            await asyncio.sleep(0.5)
            assert alice.unacknowledged == ["sent while down"]
            runner, _ = await start_server(replace(settings, port=port))
            back = await next_of(alice, Reconnected)
            assert back.attempts >= 1
            rejoined = await next_of(alice, RoomJoined)
            assert rejoined.user_id == "alice"
            assert rejoined.room == "r"
            ack = await asyncio.wait_for(sent_while_down, WAIT)
            assert ack is not None
            assert alice.unacknowledged == []
            async with Client(url, "r", user="bob") as bob:
                assert [m.message for m in (await next_of(bob, RoomJoined)).history] == [
                    "sent while down"
                ]
                await bob.chat("welcome back")
                assert (await next_of(alice, ChatMessage)).message == "welcome back"
    finally:
        await runner.cleanup()


async def test_a_fatal_close_ends_the_events(start_hub: ServerFactory) -> None:
    url = await start_hub(max_frame_bytes=1024)
    async with Client(url, "r", user="alice") as alice:
        # over max_frame_bytes: closed with 1009 (a client waiting for the message's
        # chat-ack hears that it may not be stored)
        with contextlib.suppress(Closed):
            await alice.chat("x" * 2000)
        gone = await next_of(alice, Disconnected)
        assert gone.code == 1009
        assert not gone.will_retry
        rest = [event async for event in alice]
        assert rest == []


@pytest.mark.parametrize(
    ("code", "name"),
    [(4003, "removed"), (4004, "room-ended"), (4009, "replaced"), (4010, "resumed-elsewhere")],
)
async def test_a_final_close_code_from_the_server_is_not_retried(
    start_hub: ServerFactory, code: int, name: str
) -> None:
    """docs/protocol.md, "Close codes": after 4003, 4004, 4009 or 4010 a client does not
    reconnect by itself. Each is provoked as it comes in use, over real sockets, with a
    reconnection that would come within 0.1 s."""
    url = await start_hub(token_settings())
    fast = Backoff(base=0.1, max_delay=0.1, random=random.Random(1))
    admin_token = token("admin", grants=["join", "admin"])
    async with (
        Client(url, "r", token=token("alice"), backoff=fast) as alice,
        Client(url, "r", token=admin_token, events=False) as admin,
        contextlib.AsyncExitStack() as stack,
    ):
        await next_of(alice, RoomJoined)
        taker: Any = None  # the connection that has alice's place now, if any
        if code == 4003:
            await admin.remove_participant("alice")
        elif code == 4004:
            await admin.end_room()
        elif code == 4009:  # alice again, on another device
            taker = await stack.enter_async_context(Client(url, "r", token=token("alice")))
        else:  # alice's session resumed on another connection; hers still looks open
            taker = await stack.enter_async_context(await RawClient.connect(url))
            mirror = alice._state.mirror
            await taker.send(
                {
                    "type": "resume",
                    "sessionId": mirror.session_id,
                    "resumeToken": mirror.resume_token,
                    "lastN": alice.last_n,
                }
            )
            taker.last_n = (await taker.expect("resumed"))["lastN"]

        gone = await next_of(alice, Disconnected)
        assert (gone.code, gone.will_retry, gone.name) == (code, False, name)
        assert [event async for event in alice] == []
        assert not alice.connected
        await asyncio.sleep(1.0)  # ten reconnections' time
        if taker is None:
            async with await RawClient.connect(url) as witness:
                joined = await witness.join("r", token=token("witness"))
                assert "alice" not in [p["userId"] for p in joined["participants"]]
        elif code == 4009:  # alice coming back would take the place again, with 4009
            await taker.ping()
            assert taker.connected
        else:  # alice resuming again would close this connection with 4010
            await taker.nothing()


async def test_errors_without_a_request_arrive_as_events(hub_url: str) -> None:
    async with Client(hub_url, "r", user="alice") as alice:
        await alice.signal("nobody", {"x": 1})
        error = await next_of(alice, ServerError)
        assert error.code == "no-such-peer"


def test_unknown_messages_become_server_messages() -> None:
    assert decode_event(b'{"type":"presence","users":["a"]}') == ServerMessage(
        type="presence", data={"users": ["a"]}
    )
    assert decode_event(b'{"type":"chat","message":"hi","userId":"b","extra":7}') == ChatMessage(
        message="hi", user_id="b"
    )
    assert decode_event(b"[1]") is None
    assert decode_event(b"not json") is None


def test_a_refusal_says_how_long_an_id_is_held_for_a_resume() -> None:
    frame = b'{"type":"error","code":"user-id-taken","message":"taken","ref":"j","heldForMs":1500}'
    assert decode_event(frame) == ServerError(
        code="user-id-taken", message="taken", ref="j", held_for_ms=1500
    )


def test_backoff_grows_with_jitter_and_stays_bounded() -> None:
    backoff = Backoff(base=0.5, max_delay=4.0, random=random.Random(7))
    for attempt in range(1, 20):
        delays = [backoff.delay(attempt) for _ in range(50)]
        bound = min(4.0, 0.5 * 2 ** (attempt - 1))
        assert all(backoff.min_delay <= d <= max(bound, backoff.min_delay) for d in delays)
        assert len(set(delays)) > 1  # jittered, not a fixed schedule
    assert not Backoff().gives_up_after(1000)
    assert Backoff(max_attempts=3).gives_up_after(3)


def test_websocket_url() -> None:
    assert websocket_url("http://h:1") == "ws://h:1/"
    assert websocket_url("https://h/x?a=1") == "wss://h/x?a=1"
    with pytest.raises(ValueError, match="not a hubbub URL"):
        websocket_url("ftp://h")
    # aiohttp's own refusal of these named nothing but the URL
    for url, why in (
        ("ws://127.0.0.1:99999", "port"),
        ("ws://127.0.0.1:0", "port"),
        ("ws://127.0.0.1:http", "port"),
        ("ws:///room", "no host"),
    ):
        with pytest.raises(ValueError, match=why):
            websocket_url(url)


async def test_history_on_join_and_by_page(hub_url: str) -> None:
    async with Client(hub_url, "h", user="alice") as alice:
        assert alice.stores_chat
        acks = [await alice.chat(f"message {n}") for n in range(1, 6)]
        assert [ack.seq for ack in acks if ack is not None] == [1, 2, 3, 4, 5]
        async with Client(hub_url, "h", user="bob") as bob:
            joined = await next_of(bob, RoomJoined)
            assert joined.last_seq == 5
            assert [m.message for m in joined.history] == [f"message {n}" for n in range(1, 6)]
            assert {m.user_id for m in joined.history} == {"alice"}
            page = await bob.history(before_seq=4, limit=2)
            assert [(m.seq, m.message) for m in page] == [(2, "message 2"), (3, "message 3")]
            assert [m.seq for m in await bob.history(limit=1)] == [5]
            assert await bob.history(before_seq=1) == []
            await alice.chat("live")
            live = await next_of(bob, ChatMessage)
            assert (live.seq, bob.last_seq) == (6, 6)


@asynccontextmanager
async def dropping_first_ack(url: str) -> AsyncIterator[str]:
    """A TCP relay to the server at ``url`` that cuts the first connection as the
    server's first ``chat-ack`` comes through (instead of passing it on): the message
    is stored, and its sender never hears so."""
    host, port = url.removeprefix("ws://").removeprefix("http://").split(":")
    cut = False

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, watch: bool) -> None:
        nonlocal cut
        try:
            while data := await reader.read(65536):
                if watch and not cut and b'"chat-ack"' in data:
                    cut = True
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(
            pipe(reader, upstream_writer, watch=False),
            pipe(upstream_reader, writer, watch=True),
        )

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_a_chat_whose_ack_is_lost_is_stored_once(start_hub: ServerFactory) -> None:
    # The relay cuts the connection without a close frame: the session waits for a
    # resume, which replays the chat-ack that was lost. Nothing is sent twice.
    hub_url = await start_hub()
    backoff = Backoff(base=0.1, max_delay=0.2, random=random.Random(1))
    async with (
        Client(hub_url, "once", user="bob") as bob,
        dropping_first_ack(hub_url) as relay_url,
        Client(relay_url, "once", user="alice", backoff=backoff) as alice,
    ):
        ack = await asyncio.wait_for(alice.chat("only once"), WAIT)
        assert ack is not None
        assert not ack.duplicate  # the first answer, replayed
        assert (await next_of(alice, Disconnected)).will_retry
        resumed = await next_of(alice, Resumed)
        assert resumed.missed >= 1
        history = await bob.history()
        assert [(m.message, m.seq, m.client_id) for m in history] == [
            ("only once", ack.seq, ack.client_id)
        ]
        await alice.chat("after")
        said = [await next_of(bob, ChatMessage) for _ in range(2)]
        assert [m.message for m in said] == ["only once", "after"]


async def test_a_chat_refused_for_good_raises(start_hub: ServerFactory) -> None:
    url = await start_hub(max_chat_length=10)
    async with Client(url, "r", user="alice") as alice:
        with pytest.raises(RequestFailed) as refused:
            await alice.chat("x" * 11)
        assert refused.value.code == "too-large"
        assert alice.unacknowledged == []


async def test_a_chat_refused_as_not_in_room_goes_once_back_in_a_room(hub_url: str) -> None:
    # not-in-room is a refusal that passes (docs/protocol.md, "A client's reconnect
    # loop"): the message waits in the outbox until the client is in a room again.
    async with (
        Client(hub_url, "here", user="alice") as alice,
        Client(hub_url, "there", user="bob") as bob,
    ):
        await alice.leave()
        sending = asyncio.ensure_future(alice.chat("between rooms"))
        await asyncio.sleep(0)  # the chat goes out before the ping
        await alice.ping()  # answered after the chat's refusal
        assert not sending.done()
        assert alice.unacknowledged == ["between rooms"]
        await alice.join("there")
        ack = await asyncio.wait_for(sending, WAIT)
        assert ack is not None
        said = await next_of(bob, ChatMessage)
        assert (said.message, said.seq, said.user_id) == ("between rooms", ack.seq, "alice")
        assert alice.unacknowledged == []
