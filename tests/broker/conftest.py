"""A node's broker with a recording hub, for each backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from hubbub.broker import Broker, ChatRun, ClaimResult, Member
from hubbub.broker.memory import MemoryBroker
from hubbub.broker.redis import RedisBroker

WAIT = 10.0


class Recorder:
    """A hub that records what its broker hands it (Delivery and MembershipEvents)."""

    def __init__(self) -> None:
        self.room: list[tuple[str, bytes, str | None]] = []
        self.session: list[tuple[str, bytes]] = []
        self.user: list[tuple[str, bytes, str | None]] = []
        self.claims: dict[str, ClaimResult] = {}
        self.changes: list[tuple[str, list[Member], list[Member]]] = []
        self.closes: list[tuple[str, int, bool]] = []
        self.chats: list[tuple[str, bytes]] = []
        self.chat_runs: list[tuple[str, ChatRun]] = []
        self.members: dict[str, list[Member]] = {}

    def deliver_to_room(self, room: str, payload: bytes, exclude: str | None) -> None:
        self.room.append((room, payload, exclude))

    def deliver_chat(self, room: str, run: ChatRun) -> None:
        self.chat_runs.append((room, run))

    def deliver_to_session(self, session_id: str, payload: bytes) -> None:
        self.session.append((session_id, payload))

    def deliver_to_user(self, user_id: str, payload: bytes, exclude: str | None) -> None:
        self.user.append((user_id, payload, exclude))

    def claim_answered(self, session_id: str, result: ClaimResult) -> None:
        self.claims[session_id] = result

    def members_changed(self, room: str, joined: list[Member], left: list[Member]) -> None:
        self.changes.append((room, joined, left))

    def close_session(self, session_id: str, code: int, reason: str, announce: bool) -> None:
        self.closes.append((session_id, code, announce))

    def chat_seen(self, room: str, payload: bytes) -> None:
        self.chats.append((room, payload))

    def local_members(self) -> dict[str, list[Member]]:
        return self.members


async def eventually(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Wait until ``check()`` is true; return it."""
    async with asyncio.timeout(timeout):
        while not (result := check()):  # noqa: ASYNC110 - polling what has no event
            await asyncio.sleep(0.01)
    return result


Node = tuple[Any, Recorder]
NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The broker under test: in memory (no cluster), or Redis (a cluster node)."""
    return str(request.param)


@pytest.fixture
async def make_node(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[NodeFactory]:
    """Makes a started node (a broker attached to a recorder) of the backend under
    test; stops it at the end."""
    started: list[Broker] = []

    async def make(**options: Any) -> Node:
        recorder = Recorder()
        broker: Any
        if backend == "memory":
            broker = MemoryBroker()
        else:
            url = request.getfixturevalue("redis_url")
            broker = RedisBroker(url, **{"heartbeat": 0.2, "node_timeout": 1.0, **options})
            broker.attach_members(recorder)
        broker.attach(recorder)
        started.append(broker)
        await broker.start()
        return broker, recorder

    yield make
    for broker in started:
        await broker.stop()


@pytest.fixture
async def make_redis_node(redis_url: str) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """Makes Redis nodes of one cluster (on the test Redis unless ``url`` is given)."""
    started: list[RedisBroker] = []

    async def make(url: str = redis_url, **options: Any) -> Node:
        recorder = Recorder()
        broker = RedisBroker(url, **{"heartbeat": 0.2, "node_timeout": 1.0, **options})
        broker.attach(recorder)
        broker.attach_members(recorder)
        started.append(broker)
        await broker.start()
        return broker, recorder

    yield make
    for broker in started:
        await broker.stop()
