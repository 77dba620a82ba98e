"""Presence, typing, notifications and calls between hubbub.client instances,
against a real server process (docs/python.md)."""

from __future__ import annotations

import random
import time
from typing import Any, TypeVar

import aiohttp
import pytest

from hubbub.client import (
    TYPING_EXPIRES,
    Backoff,
    CallAccepted,
    CallAnsweredElsewhere,
    CallCancelled,
    CallDeclined,
    CallEnded,
    CallIncoming,
    ChatMessage,
    Client,
    Event,
    NotificationReceived,
    NotificationsRead,
    PresenceChanged,
    Reconnected,
    RequestFailed,
    Resumed,
    TypingChanged,
    UnreadNotifications,
    UserJoined,
)
from tests.faults.resuming import wait_for
from tests.process import hubbub_serve
from tests.sdk.test_resume import Recorder, proxy_for

WAIT = 30.0
KEY = "api-key-for-sdk-tests"

E = TypeVar("E", bound=Event)


async def next_of(client: Client, kind: type[E]) -> E:
    """The next event of ``kind``, skipping others."""
    while True:
        event = await client.next_event(timeout=WAIT)
        if isinstance(event, kind):
            return event


async def test_presence_and_typing(tmp_path: Any) -> None:
    async with (
        hubbub_serve() as (url, _process),
        Client(url, "p", user="alice") as alice,
        Client(url, "p", user="bob") as bob,
    ):
        await next_of(alice, UserJoined)
        assert alice.participants["bob"].status == "online"

        await bob.set_status("away")
        assert bob.status == "away"
        assert await next_of(alice, PresenceChanged) == PresenceChanged(
            user_id="bob", status="away"
        )
        assert alice.participants["bob"].status == "away"
        with pytest.raises(ValueError, match="status"):
            await bob.set_status("asleep")

        # A newcomer sees the status among the participants.
        async with Client(url, "p", user="carol") as carol:
            assert carol.participants["bob"].status == "away"
            assert carol.participants["alice"].status == "online"

        await bob.typing()
        assert await next_of(alice, TypingChanged) == TypingChanged(user_id="bob", active=True)
        assert alice.typing_users == {"bob"}
        await bob.typing(False)
        assert await next_of(alice, TypingChanged) == TypingChanged(user_id="bob", active=False)
        assert alice.typing_users == set()
        await bob.typing()
        await next_of(alice, TypingChanged)
        await bob.chat("done typing")  # chat stops it
        assert await next_of(alice, TypingChanged) == TypingChanged(user_id="bob", active=False)
        assert (await next_of(alice, ChatMessage)).message == "done typing"
        assert alice.typing_users == set()


async def test_typing_neither_renewed_nor_stopped_expires() -> None:
    # The server takes it as stopped after typing_timeout, and says so.
    async with (
        hubbub_serve("--typing-timeout", "1") as (url, _process),
        Client(url, "t", user="alice") as alice,
        Client(url, "t", user="bob") as bob,
    ):
        await next_of(alice, UserJoined)
        await bob.typing()
        assert await next_of(alice, TypingChanged) == TypingChanged(user_id="bob", active=True)
        started = time.monotonic()
        assert await next_of(alice, TypingChanged) == TypingChanged(user_id="bob", active=False)
        assert 1.0 - 0.05 <= time.monotonic() - started < TYPING_EXPIRES
        assert alice.typing_users == set()

    # A server that says nothing (an older one, or a stop that got lost): the client
    # takes it as stopped itself after TYPING_EXPIRES.
    async with (
        hubbub_serve("--typing-timeout", "60") as (url, _process),
        Client(url, "t", user="alice") as alice,
        Client(url, "t", user="bob") as bob,
    ):
        await next_of(alice, UserJoined)
        await bob.typing()
        await next_of(alice, TypingChanged)
        started = time.monotonic()
        assert alice.typing_users == {"bob"}
        await wait_for(lambda: alice.typing_users == set(), TYPING_EXPIRES + WAIT)
        assert time.monotonic() - started >= TYPING_EXPIRES - 0.1


async def notify(http: aiohttp.ClientSession, url: str, user: str, title: str) -> int:
    async with http.post(
        f"{url}/api/users/{user}/notifications",
        json={"title": title},
        headers={"Authorization": f"Bearer {KEY}"},
    ) as reply:
        assert reply.status == 201, await reply.text()
        sent: dict[str, Any] = await reply.json()
        return int(sent["id"])


async def test_notifications_live_resumed_unread_after_reconnect_and_read() -> None:
    backoff = Backoff(base=0.1, max_delay=0.3, random=random.Random(7))
    async with (
        hubbub_serve("--api-key", KEY, "--resume-grace", "1") as (url, _process),
        aiohttp.ClientSession() as http,
    ):
        proxy, proxy_url = await proxy_for(url)
        try:
            async with (
                Client(url, "desk", user="bob", events=False) as bob,
                Client(proxy_url, "desk", user="alice", events=False, backoff=backoff) as alice,
                Client(url, "phone", user="alice", events=False) as alice_phone,
            ):
                seen, seen_by_bob = Recorder(alice), Recorder(bob)
                seen_on_phone = Recorder(alice_phone)

                first = await notify(http, url, "alice", "first")
                await wait_for(lambda: bool(seen.of(NotificationReceived)), WAIT)
                assert seen.of(NotificationReceived)[0].title == "first"
                assert list(alice.unread) == [first]

                # Sent while the connection is down: replayed by the resume.
                proxy.accepting = False
                proxy.cut_all()
                second = await notify(http, url, "alice", "second")
                proxy.accepting = True
                await wait_for(lambda: len(seen.of(NotificationReceived)) == 2, WAIT)
                assert seen.of(Resumed)
                assert list(alice.unread) == [first, second]

                # Down past the grace period: a fresh join, which lists the unread.
                proxy.accepting = False
                proxy.cut_all()
                await wait_for(lambda: "alice" not in bob.participants, WAIT)
                third = await notify(http, url, "alice", "third")
                proxy.accepting = True
                await wait_for(lambda: bool(seen.of(Reconnected)), WAIT)
                await wait_for(lambda: bool(seen.of(UnreadNotifications)), WAIT)
                unread = seen.of(UnreadNotifications)[-1]
                assert [n.id for n in unread.notifications] == [first, second, third]
                assert [n.title for n in unread.notifications] == ["first", "second", "third"]
                assert list(alice.unread) == [first, second, third]
                assert [n.id for n in seen.of(NotificationReceived)] == [first, second]

                # Read on one connection: every connection of the user hears of it.
                assert await alice.mark_read([first, second, 12345]) == [first, second]
                assert list(alice.unread) == [third]
                await wait_for(lambda: bool(seen_on_phone.of(NotificationsRead)), WAIT)
                assert seen_on_phone.of(NotificationsRead)[0].ids == [first, second]
                assert list(alice_phone.unread) == [third]
                assert await alice.mark_read([first]) == []
                fetched = await alice.fetch_notifications()
                assert [n.id for n in fetched.notifications] == [third]
                assert fetched.more is False
                assert seen_by_bob.of(NotificationReceived) == []
        finally:
            await proxy.close()


async def test_calls_ring_accept_decline_cancel_and_end() -> None:
    async with (
        hubbub_serve() as (url, _process),
        Client(url, "lobby", user="alice") as alice,
        Client(url, "lobby", user="bob") as bob,
        Client(url, "elsewhere", user="bob") as bob_laptop,
    ):
        # Accepted on one of bob's connections; the other stops ringing.
        ringing = await alice.call("bob")
        assert ringing.target_user_id == "bob"
        incoming = await next_of(bob, CallIncoming)
        assert (incoming.call_id, incoming.from_user_id) == (ringing.call_id, "alice")
        assert (await next_of(bob_laptop, CallIncoming)).call_id == ringing.call_id
        accepted = await bob.accept_call(ringing.call_id)
        assert accepted.peer_user_id == "alice"
        on_alice = await next_of(alice, CallAccepted)
        assert (on_alice.room, on_alice.peer_user_id) == (accepted.room, "bob")
        assert (await next_of(bob_laptop, CallAnsweredElsewhere)).call_id == ringing.call_id
        with pytest.raises(RequestFailed) as late:
            await bob_laptop.accept_call(ringing.call_id)
        assert late.value.code == "call-not-ringing"
        await alice.end_call(ringing.call_id)
        ended = await next_of(bob, CallEnded)
        assert (ended.reason, ended.by_user_id) == ("hung-up", "alice")
        assert (await next_of(alice, CallEnded)).call_id == ringing.call_id

        # Declined.
        ringing = await alice.call("bob")
        await next_of(bob, CallIncoming)
        await bob.decline_call(ringing.call_id)
        assert (await next_of(alice, CallDeclined)).call_id == ringing.call_id

        # Cancelled by the caller.
        ringing = await alice.call("bob")
        await next_of(bob, CallIncoming)
        await alice.cancel_call(ringing.call_id)
        assert (await next_of(bob, CallCancelled)).call_id == ringing.call_id

        with pytest.raises(RequestFailed) as unknown:
            await bob.accept_call("no-such-call")
        assert unknown.value.code == "no-such-call"
        with pytest.raises(RequestFailed) as nobody:
            await alice.call("nobody")
        assert nobody.value.code == "user-unavailable"
