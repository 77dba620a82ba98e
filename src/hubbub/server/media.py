"""The media servers as the server adapter runs them: which one holds each room
(chosen by load among those that are up, and the same for every node of a cluster:
:mod:`hubbub.media.placements`), the room made (or taken) there before the first
request, each member's requests carried out in the order it made them, and the
answers and events handed back to the hub.

The hub asks through :class:`~hubbub.core.media.MediaRequests` and hears back through
:class:`~hubbub.core.media_bridge.MediaEvents`; this bridge is the only part that awaits a
media server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hubbub.media import (
    Jsep,
    MediaError,
    MediaServer,
    MediaServerStats,
    MediaUnavailable,
    SubscriberOffer,
)
from hubbub.media.placements import LocalPlacements, Placement, Placements, new_placement
from hubbub.protocol.errors import ErrorCode
from hubbub.protocol.messages import PUBLISHER, Ref

if TYPE_CHECKING:
    from hubbub.core.media_bridge import MediaEvents
    from hubbub.server.metrics import Exposition
    from hubbub.settings import ServerSettings

log = logging.getLogger("hubbub.media")

ROOM_PUBLISHERS = 100
"""Feeds one room holds on the media server: more senders than a call of people has."""

ORPHAN_SWEEP = 5.0
"""Seconds between two looks for the rooms a dead node left on the media servers (a
cluster node's server sets its ``cluster_node_timeout``: no dead node is found
sooner)."""


def create_media_servers(settings: ServerSettings) -> list[MediaServer]:
    """A Janus for each ``--janus-url``."""
    from hubbub.media.janus import JanusMediaServer

    return [
        JanusMediaServer(
            url, api_secret=settings.janus_api_secret, admin_key=settings.janus_admin_key
        )
        for url in settings.janus_url
    ]


def _closing(room: str) -> str:
    """The key of a room's close among the bridge's chains of requests."""
    return "room/" + room


def handle_of(session_id: str, connection: str) -> str:
    """A connection's name on the media server."""
    return f"{session_id}/{connection}"


class MediaBridge:
    """The hub's :class:`~hubbub.core.media.MediaRequests`, carried out on media servers."""

    def __init__(
        self,
        servers: list[MediaServer],
        placements: Placements | None = None,
        *,
        orphan_sweep: float = ORPHAN_SWEEP,
    ) -> None:
        self.servers = servers
        self.placements: Placements = placements or LocalPlacements()
        self.orphan_sweep = orphan_sweep
        """Seconds between two looks for rooms that a dead node left on the media
        servers (:meth:`remove_orphans`)."""
        self.orphans_removed = 0
        self._sweeping: asyncio.Task[None] | None = None
        self._hub: MediaEvents | None = None
        self._pins: dict[str, MediaServer] = {}
        """Room -> the media server it is on."""
        self._placed: dict[str, Placement] = {}
        """Room -> its placement this node uses (until it releases it)."""
        self._made: dict[str, asyncio.Future[MediaServer]] = {}
        """Room -> its room on the media server, made or being made."""
        self._chains: dict[str, asyncio.Task[None]] = {}
        """Session id (or room) -> its latest request: each waits for the one before."""
        self.moved = 0
        """Rooms moved to another media server after theirs was lost."""
        for server in servers:
            server.attach(self)

    @property
    def available(self) -> bool:
        return bool(self.servers)

    def attach(self, hub: MediaEvents) -> None:
        self._hub = hub

    @property
    def hub(self) -> MediaEvents:
        if self._hub is None:  # pragma: no cover - attached at creation
            raise RuntimeError("no hub attached")
        return self._hub

    async def start(self) -> None:
        await asyncio.gather(*(server.start() for server in self.servers))
        if self.servers:
            self._sweeping = asyncio.get_running_loop().create_task(self._sweep_orphans())

    async def stop(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
            self._sweeping = None
        for room in list(self._placed):
            self.close_room(room)
        chains = list(self._chains.values())
        if chains:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*chains, return_exceptions=True)
        await asyncio.gather(*(server.close() for server in self.servers), return_exceptions=True)

    def stats(self) -> list[MediaServerStats]:
        return [server.stats() for server in self.servers]

    async def health(self) -> bool:
        """Ready when every media server is up (none configured: nothing to check)."""
        return all(server.up for server in self.servers)

    def pinned(self, room: str) -> str | None:
        server = self._pins.get(room)
        return server.name if server is not None else None

    # -- where a room goes ----------------------------------------------------------

    def _server_named(self, name: str) -> MediaServer | None:
        return next((server for server in self.servers if server.name == name), None)

    async def _place(self, room: str) -> tuple[MediaServer, Placement]:
        """The room's media server, and its placement there: this node's choice (by
        load, among those up) unless the room is placed already."""
        up = {server.name: server for server in self.servers if server.up}
        if not up:
            raise MediaUnavailable("no media server is up")
        chosen = min(up.values(), key=lambda server: server.load())
        try:
            placement = await self.placements.place(room, new_placement(room, chosen.name), up)
        except OSError as error:
            raise MediaUnavailable(f"the rooms' placements cannot be asked: {error}") from None
        server = up.get(placement.server)
        if server is None or not server.up:  # pragma: no cover - went down meanwhile
            raise MediaUnavailable(f"{placement.server} is not up")
        self._pins[room] = server
        self._placed[room] = placement
        log.info("event=media-room-pinned room=%r server=%s", room, server.name)
        return server, placement

    async def _ready(self, room: str) -> MediaServer:
        """The room's media server, with the room made there."""
        made = self._made.get(room)
        if made is not None:
            if not made.done():
                return await asyncio.shield(made)
            if made.exception() is None and made.result().up:
                server = made.result()
                if self._pins.get(room) is server:
                    return server
            self._made.pop(room, None)
        closing = self._chains.get(_closing(room))
        if closing is not None:
            # The room's close is under way: it goes first, or it would remove the
            # room this asks for.
            await asyncio.wait({closing})
            made = self._made.get(room)
            if made is not None:  # another request made it meanwhile
                return await asyncio.shield(made)
        future: asyncio.Future[MediaServer] = asyncio.get_running_loop().create_future()
        self._made[room] = future
        try:
            server, placement = await self._place(room)
            await server.create_room(
                room,
                publishers=ROOM_PUBLISHERS,
                room_id=placement.room_id,
                secret=placement.secret,
            )
        except MediaError as exc:
            self._made.pop(room, None)
            future.set_exception(exc)
            future.exception()  # retrieved: whoever waits gets it raised
            raise
        future.set_result(server)
        return server

    # -- rooms left behind -------------------------------------------------------------

    async def _sweep_orphans(self) -> None:
        while True:
            await asyncio.sleep(self.orphan_sweep)
            try:
                await self.remove_orphans()
            except OSError as error:  # the placements cannot be asked: next time
                log.warning("event=media-orphans-unread error=%s", error)
            except Exception:  # one bad sweep is not the last
                log.exception("event=media-orphans-failed")

    async def remove_orphans(self) -> int:
        """Remove from the media servers the rooms whose last node died (their
        placements say so), where this node reaches that media server; how many."""
        removed = 0
        for room, placement in await self.placements.orphans():
            server = self._server_named(placement.server)
            if server is None or not server.up:
                continue  # for a node that reaches it
            if not await self.placements.take_orphan(room, placement):
                continue  # used again, or taken by another node
            try:
                await server.remove_room(placement.room_id, placement.secret)
            except MediaError as error:
                log.warning(
                    "event=media-orphan-not-removed room=%r server=%s error=%s",
                    room,
                    server.name,
                    error,
                )
                continue
            log.info("event=media-orphan-removed room=%r server=%s", room, server.name)
            removed += 1
        self.orphans_removed += removed
        return removed

    # -- running requests in order --------------------------------------------------

    def _run(self, key: str, step: Callable[[], Awaitable[None]]) -> None:
        previous = self._chains.get(key)

        async def after() -> None:
            if previous is not None:
                with contextlib.suppress(BaseException):
                    await previous
            await step()

        task = asyncio.get_running_loop().create_task(after())
        self._chains[key] = task
        task.add_done_callback(lambda done: self._done(key, done))

    def _done(self, key: str, task: asyncio.Task[None]) -> None:
        if self._chains.get(key) is task:
            del self._chains[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("event=media-bridge-failed", exc_info=task.exception())

    def _request(
        self,
        room: str,
        session_id: str,
        connection: str,
        ref: Ref | None,
        work: Callable[[MediaServer], Awaitable[None]],
    ) -> None:
        async def step() -> None:
            try:
                server = await self._ready(room)
                await work(server)
            except MediaUnavailable as exc:
                log.warning("event=media-request-failed room=%r error=%s", room, exc)
                self.hub.media_failed(session_id, connection, ErrorCode.MEDIA_UNAVAILABLE, ref)
            except MediaError as exc:
                log.info("event=media-request-refused room=%r error=%s", room, exc)
                self.hub.media_failed(session_id, connection, ErrorCode.MEDIA_REFUSED, ref)

        self._run(session_id, step)

    # -- MediaRequests ----------------------------------------------------------------

    def publish(
        self, room: str, session_id: str, user_id: str, offer: Jsep, ref: Ref | None
    ) -> None:
        async def work(server: MediaServer) -> None:
            answer = await server.publish(room, handle_of(session_id, PUBLISHER), user_id, offer)
            self.hub.media_answered(session_id, PUBLISHER, answer, ref)

        self._request(room, session_id, PUBLISHER, ref, work)

    def configure(
        self,
        room: str,
        session_id: str,
        changes: dict[str, Any],
        offer: Jsep | None,
        ref: Ref | None,
    ) -> None:
        async def work(server: MediaServer) -> None:
            answer = await server.configure(
                room,
                handle_of(session_id, PUBLISHER),
                audio=changes.get("audio"),
                video=changes.get("video"),
                bitrate=changes.get("bitrate"),
                offer=offer,
            )
            if answer is not None:
                self.hub.media_answered(session_id, PUBLISHER, answer, ref)

        self._request(room, session_id, PUBLISHER, ref, work)

    def subscribe(
        self, room: str, session_id: str, connection: str, feeds: list[str], ref: Ref | None
    ) -> None:
        async def work(server: MediaServer) -> None:
            offer = await server.subscribe(room, handle_of(session_id, connection), feeds)
            self.hub.media_offered(session_id, connection, offer, ref)

        self._request(room, session_id, connection, ref, work)

    def unsubscribe(
        self, room: str, session_id: str, connection: str, feeds: list[str], ref: Ref | None
    ) -> None:
        async def work(server: MediaServer) -> None:
            offer = await server.unsubscribe(room, handle_of(session_id, connection), feeds)
            self.hub.media_offered(session_id, connection, offer, ref)

        self._request(room, session_id, connection, ref, work)

    def answer(
        self, room: str, session_id: str, connection: str, answer: Jsep, ref: Ref | None
    ) -> None:
        async def work(server: MediaServer) -> None:
            await server.answer(room, handle_of(session_id, connection), answer)

        self._request(room, session_id, connection, ref, work)

    def select_layer(
        self,
        room: str,
        session_id: str,
        connection: str,
        feed: str,
        substream: int | None,
        temporal: int | None,
        ref: Ref | None,
    ) -> None:
        async def work(server: MediaServer) -> None:
            handle = handle_of(session_id, connection)
            await server.select_layer(room, handle, feed, substream, temporal)

        self._request(room, session_id, connection, ref, work)

    def trickle(
        self, room: str, session_id: str, connection: str, candidate: dict[str, Any] | None
    ) -> None:
        async def step() -> None:
            server = self._pins.get(room)
            if server is None:
                return
            with contextlib.suppress(MediaError):
                await server.trickle(room, handle_of(session_id, connection), candidate)

        self._run(session_id, step)

    def hang_up(self, room: str, session_id: str, connection: str) -> None:
        async def step() -> None:
            server = self._pins.get(room)
            if server is None:
                return
            with contextlib.suppress(MediaError):
                await server.hang_up(room, handle_of(session_id, connection))

        self._run(session_id, step)

    def kick(self, room: str, user_id: str, session_id: str, connections: list[str]) -> None:
        async def step() -> None:
            server = self._pins.get(room)
            if server is None:
                return
            handles = [handle_of(session_id, connection) for connection in connections]
            with contextlib.suppress(MediaError):
                await server.kick(room, user_id, handles)

        self._run(session_id, step)

    def close_room(self, room: str) -> None:
        pinned = self._pins.pop(room, None)
        placement = self._placed.pop(room, None)
        self._made.pop(room, None)
        if placement is None:
            return
        server = pinned or self._server_named(placement.server)

        async def step() -> None:
            try:
                last = await self.placements.release(room, placement)
            except OSError as error:
                log.warning("event=media-room-not-released room=%r error=%s", room, error)
                last = False  # another node may use it: leave it there
            if server is None:  # pragma: no cover - placed on a server it does not know
                return
            with contextlib.suppress(MediaError):
                if last:
                    await server.destroy_room(room)
                else:
                    await server.leave_room(room)

        self._run(_closing(room), step)

    # -- MediaServerEvents ------------------------------------------------------------

    def renegotiate(
        self, server: MediaServer, room: str, handle: str, offer: SubscriberOffer
    ) -> None:
        session_id, _, connection = handle.partition("/")
        self.hub.media_offered(session_id, connection, offer, None)

    def feed_up(self, server: MediaServer, room: str, handle: str) -> None:
        session_id, _, _ = handle.partition("/")
        self.hub.feed_up(room, session_id)

    def hung_up(self, server: MediaServer, room: str, handle: str) -> None:
        session_id, _, connection = handle.partition("/")
        self.hub.media_closed(room, session_id, connection)

    def lost(self, server: MediaServer) -> None:
        rooms = [room for room, pinned in self._pins.items() if pinned is server]
        for room in rooms:
            # Its placement stays this node's: taken again if the server comes back
            # before the room is made elsewhere, released when the room is done.
            del self._pins[room]
            self._made.pop(room, None)
        self.moved += len(rooms)
        if rooms:
            log.warning("event=media-rooms-lost server=%s rooms=%d", server.name, len(rooms))
            self.hub.media_lost(rooms)

    def restored(self, server: MediaServer) -> None:
        log.info("event=media-server-restored server=%s", server.name)

    # -- metrics ----------------------------------------------------------------------

    def add_metrics(self, out: Exposition) -> None:
        stats = self.stats()
        families = (
            (
                "hubbub_media_server_up",
                "gauge",
                "1 while hubbub is connected to the media server.",
                "up",
            ),
            (
                "hubbub_media_server_rooms",
                "gauge",
                "Rooms hubbub holds on the media server.",
                "rooms",
            ),
            (
                "hubbub_media_server_handles",
                "gauge",
                "Connections (publishers, subscribers) hubbub holds on the media server.",
                "handles",
            ),
            (
                "hubbub_media_server_requests_total",
                "counter",
                "Requests hubbub sent the media server.",
                "requests",
            ),
            (
                "hubbub_media_server_failures_total",
                "counter",
                "Requests the media server refused or did not answer.",
                "failures",
            ),
            (
                "hubbub_media_server_lost_total",
                "counter",
                "Times hubbub lost its connection to the media server (it was killed, "
                "the network cut).",
                "lost",
            ),
        )
        for name, kind, text, attribute in families:
            out.family(name, kind, text)
            for stat in stats:
                out.sample(name, float(getattr(stat, attribute)), {"server": stat.name})
        out.single(
            "hubbub_media_rooms_moved_total",
            "counter",
            "Rooms moved to another media server after theirs was lost.",
            self.moved,
        )
        out.single(
            "hubbub_media_orphan_rooms_removed_total",
            "counter",
            "Rooms a dead node left on the media servers, removed by this node.",
            self.orphans_removed,
        )
