"""A node's broker with a recording hub, for each backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from hubbub.broker import (
    Broker,
    CallPlacement,
    ChatRun,
    ClaimResult,
    Member,
    SessionFound,
    SessionState,
    SharedMedia,
)
from hubbub.broker.memory import LocalMembership, MemoryBroker
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
        self.chat_runs: list[tuple[str, ChatRun]] = []
        self.members: dict[str, list[Member]] = {}
        self.placed: dict[str, CallPlacement] = {}
        self.moves: list[tuple[str, str, str, str]] = []
        self.broker: Any = None
        """The membership it is attached to (it answers through it)."""
        self.sessions: dict[tuple[str, str], tuple[str, str]] = {}
        """(session id, token) -> (room, user id): the sessions here that may be handed."""
        self.states: dict[str, SessionState] = {}
        """session id -> its state, when it is cut."""
        self.found: dict[str, SessionFound] = {}
        self.takes: list[tuple[str, str, str]] = []
        self.cuts: list[tuple[str, str, str]] = []
        self.handed: dict[str, SessionState | None] = {}
        self.adopted: list[tuple[str, str, str, str]] = []
        self.rooms_ended: list[str] = []
        self.last_seen: list[tuple[str, str, int]] = []
        self.log: list[tuple[object, ...]] = []
        """Room messages (payload) and chat (each item) in the order delivered."""
        self.media: dict[str, list[SharedMedia]] = {}
        """room -> what the membership said of its calls, in order."""

    def deliver_to_room(self, room: str, payload: bytes, exclude: str | None) -> None:
        self.room.append((room, payload, exclude))
        self.log.append((payload,))

    def deliver_chat(self, room: str, run: ChatRun) -> None:
        self.chat_runs.append((room, run))
        self.log.extend((item,) for item in run)

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

    def local_members(self) -> dict[str, list[Member]]:
        return self.members

    def seen(self, room: str, user_id: str, ts_ms: int) -> None:
        self.last_seen.append((room, user_id, ts_ms))

    def call_placed(self, call_id: str, outcome: CallPlacement) -> None:
        self.placed[call_id] = outcome

    def call_moved(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: str | int | None,
        room: str | None,
    ) -> None:
        self.moves.append((call_id, move, user_id, session_id))

    def session_asked(self, session_id: str, resume_token: str, asked_by: str) -> None:
        offered = self.sessions.get((session_id, resume_token))
        room, user = offered if offered is not None else ("", "")
        self.broker.offer_session(asked_by, session_id, room, user)

    def session_found(self, asked_by: str, found: SessionFound) -> None:
        self.found[asked_by] = found

    def taking(
        self, room: str, session_id: str, taken_by: str, media: SharedMedia | None = None
    ) -> None:
        self.takes.append((room, session_id, taken_by))
        self.log.append(("taking", session_id))

    def session_cut(self, room: str, session_id: str, taken_by: str) -> SessionState | None:
        self.cuts.append((room, session_id, taken_by))
        self.log.append(("cut", session_id))
        return self.states.get(session_id)

    def session_handed(self, taken_by: str, state: SessionState | None) -> None:
        self.handed[taken_by] = state

    def adopt(self, session_id: str, resume_token: str, room: str, user_id: str) -> None:
        self.adopted.append((session_id, resume_token, room, user_id))

    def room_ended(self, room: str) -> None:
        self.rooms_ended.append(room)

    def media_changed(self, room: str, media: SharedMedia) -> None:
        self.media.setdefault(room, []).append(media)


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
            recorder.broker = broker
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
        recorder.broker = broker
        started.append(broker)
        await broker.start()
        return broker, recorder

    yield make
    for broker in started:
        await broker.stop()


MembershipNode = tuple[Any, Recorder]
MembershipFactory = Callable[[], Awaitable[MembershipNode]]


@pytest.fixture(params=["local", "redis"])
async def make_membership(
    request: pytest.FixtureRequest,
) -> AsyncIterator[MembershipFactory]:
    """Makes a membership of the implementation under test, attached to a recorder:
    the in-memory twin of a lone node, or a Redis node (started; stopped at the end)."""
    started: list[RedisBroker] = []

    async def make() -> MembershipNode:
        recorder = Recorder()
        if request.param == "local":
            local = LocalMembership()
            local.attach_members(recorder)
            return local, recorder
        url = request.getfixturevalue("redis_url")
        broker = RedisBroker(url, heartbeat=0.2, node_timeout=1.0)
        broker.attach(recorder)
        broker.attach_members(recorder)
        recorder.broker = broker
        started.append(broker)
        await broker.start()
        return broker, recorder

    yield make
    for broker in started:
        await broker.stop()
