"""Calls through the media server from Python (aiortc), in rooms in SFU mode.

:class:`SfuMedia` listens to a :class:`~hubbub.client.Client` that joined with
``features: ["sfu"]`` (:data:`JOIN_FIELDS`): in SFU mode it publishes what its
:class:`~hubbub.peer.media.MediaSource` gives, on one ``publisher`` connection, and
takes the feeds it wants, **one subscriber connection per feed**: aiortc 1.16 does not
route the packets of several video m-lines of one connection reliably, so a browser's
single subscriber connection is no model here. A ``media-mode`` with ``reason:
media-server-lost`` starts everything again, as hubbub.js does.

Make the SfuMedia before the client starts, so that it hears the ``media-mode`` that
follows ``room-joined``::

    client = Client(url, "townhall", user="bot", join_fields=JOIN_FIELDS)
    async with SfuMedia(client, media=MediaSource.test_pattern()) as sfu, client:
        await sfu.wait_published()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from hubbub.client import (
    Client,
    Event,
    MediaAnswered,
    MediaClosed,
    MediaFeed,
    MediaFeeds,
    MediaMode,
    MediaOffer,
    NotConnected,
    RequestFailed,
    RoomJoined,
)
from hubbub.peer.closing import close_peer_connection
from hubbub.peer.media import MediaSource
from hubbub.peer.mesh import _ice_server

log = logging.getLogger("hubbub.peer")

JOIN_FIELDS = {"features": ["sfu"]}
"""What a client that takes part through the media server adds to its ``join-room``."""

RETRY_AFTER = 0.5
"""Seconds before a publish or subscribe the media server could not take is tried again."""

SfuTrackCallback = Callable[[str, MediaStreamTrack], Awaitable[None] | None]
"""Called with the user id of the member a received track is from, and the track."""


class SfuMedia:
    """Publish and subscribe through the media server.

    ``media``: what to send (nothing when None). ``subscribe``: the members whose feeds
    to take (``True``: everyone's, ``False``: nobody's, or a set of user ids).
    ``on_track(user_id, track)`` is called for each track received.
    """

    def __init__(
        self,
        client: Client,
        *,
        media: MediaSource | None = None,
        subscribe: bool | Iterable[str] = True,
        on_track: SfuTrackCallback | None = None,
    ) -> None:
        self.client = client
        self.media = media
        self.subscribe_to: bool | frozenset[str] = (
            subscribe if isinstance(subscribe, bool) else frozenset(subscribe)
        )
        self.on_track = on_track
        self.mode = "mesh"
        self.feeds: dict[str, MediaFeed] = {}
        self.publisher: RTCPeerConnection | None = None
        self.subscribers: dict[str, RTCPeerConnection] = {}
        """Feed (user id) -> its subscriber connection."""
        self._names: dict[str, str] = {}
        """Connection name -> the feed it takes."""
        self._count = 0
        self._epoch = 0
        self._published = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._offers: dict[str, asyncio.Queue[MediaOffer]] = {}
        client.add_listener(self._on_event)

    async def __aenter__(self) -> SfuMedia:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        self.client.remove_listener(self._on_event)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_all()

    # -- waiting ------------------------------------------------------------------------

    async def wait_mode(self, mode: str, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            while self.mode != mode:
                self._changed.clear()
                await self._changed.wait()

    async def wait_published(self, timeout: float | None = None) -> None:
        """Until this side's feed is up on the media server."""
        async with asyncio.timeout(timeout):
            while not (self._published.is_set() and self.client.user_id in self.feeds):
                self._changed.clear()
                await self._changed.wait()

    # -- events from the server ------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RoomJoined):
            # (A media-mode follows in SFU mode; the mode is known from here on.)
            self.mode = event.media_mode or "mesh"
        elif isinstance(event, MediaMode):
            self._epoch += 1
            self.mode = "sfu" if event.mode == "sfu" else "mesh"
            self._spawn(self._restart(self._epoch, event.feeds))
        elif isinstance(event, MediaFeeds):
            self._set_feeds(event.feeds)
        elif isinstance(event, MediaOffer):
            queue = self._offers.get(event.connection)
            if queue is not None:
                queue.put_nowait(event)
        elif isinstance(event, MediaClosed) and self.mode == "sfu":
            self._spawn(self._restart(self._epoch, list(self.feeds.values())))
        else:
            return
        self._changed.set()

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def _restart(self, epoch: int, feeds: list[MediaFeed]) -> None:
        await self._close_all()
        if epoch != self._epoch:
            return
        if self.mode != "sfu":
            with contextlib.suppress(NotConnected):
                await self.client.send({"type": "media-leave"})
            return
        self._set_feeds(feeds)
        if self.media is not None:
            await self._publish(epoch)

    def _set_feeds(self, feeds: list[MediaFeed]) -> None:
        self.feeds = {feed.user_id: feed for feed in feeds}
        self._changed.set()
        if self.mode != "sfu":
            return
        for user_id in self.feeds:
            wanted = self.subscribe_to is True or (
                isinstance(self.subscribe_to, frozenset) and user_id in self.subscribe_to
            )
            if wanted and user_id != self.client.user_id and user_id not in self.subscribers:
                self._spawn(self._subscribe(self._epoch, user_id))
        for user_id in [u for u in self.subscribers if u not in self.feeds]:
            pc = self.subscribers.pop(user_id)
            self._spawn(close_peer_connection(pc))

    # -- publishing -------------------------------------------------------------------------

    def _configuration(self) -> RTCConfiguration:
        servers = []
        for server in self.client.ice_servers:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                servers.append(_ice_server(server))
        return RTCConfiguration(iceServers=servers)

    async def _publish(self, epoch: int) -> None:
        assert self.media is not None
        while epoch == self._epoch:
            pc = RTCPeerConnection(self._configuration())
            self.publisher = pc
            for track in self.media.tracks():
                pc.addTransceiver(track, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            jsep = {"type": "offer", "sdp": pc.localDescription.sdp}
            try:
                reply = await self.client.request({"type": "media-publish", "jsep": jsep})
            except (RequestFailed, NotConnected) as exc:
                log.info("publishing through the media server failed: %s", exc)
                await close_peer_connection(pc)
                self.publisher = None
                await asyncio.sleep(RETRY_AFTER)
                continue
            if (
                epoch != self._epoch
                or not isinstance(reply, MediaAnswered)
                or pc is not self.publisher
            ):
                await close_peer_connection(pc)
                return
            await pc.setRemoteDescription(RTCSessionDescription(reply.jsep.sdp, reply.jsep.type))
            self._published.set()
            self._changed.set()
            return

    # -- subscribing ------------------------------------------------------------------------

    async def _subscribe(self, epoch: int, user_id: str) -> None:
        self._count += 1
        name = f"feed{self._count}"
        pc = RTCPeerConnection(self._configuration())
        self.subscribers[user_id] = pc
        self._names[name] = user_id
        queue: asyncio.Queue[MediaOffer] = asyncio.Queue()
        self._offers[name] = queue

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if self.on_track is not None:
                result = self.on_track(user_id, track)
                if asyncio.iscoroutine(result):
                    self._spawn(result)

        try:
            while epoch == self._epoch and self.subscribers.get(user_id) is pc:
                message = {"type": "media-subscribe", "connection": name, "feeds": [user_id]}
                try:
                    await self.client.request(message)
                    break
                except (RequestFailed, NotConnected) as exc:
                    if isinstance(exc, RequestFailed) and exc.code == "no-such-feed":
                        return
                    await asyncio.sleep(RETRY_AFTER)
            # Each offer on this connection (the first, and the media server's own when
            # the feed stops) is answered in turn.
            while epoch == self._epoch and self.subscribers.get(user_id) is pc:
                offer = await queue.get()
                jsep = offer.jsep
                if pc.signalingState == "closed":
                    return
                await pc.setRemoteDescription(RTCSessionDescription(jsep.sdp, jsep.type))
                await pc.setLocalDescription(await pc.createAnswer())
                answer = {"type": "answer", "sdp": pc.localDescription.sdp}
                with contextlib.suppress(NotConnected):
                    await self.client.send(
                        {"type": "media-answer", "connection": name, "jsep": answer}
                    )
        finally:
            self._offers.pop(name, None)

    async def _close_all(self) -> None:
        self._published.clear()
        closing = [pc for pc in [self.publisher, *self.subscribers.values()] if pc is not None]
        self.publisher = None
        self.subscribers.clear()
        self._names.clear()
        await asyncio.gather(*(close_peer_connection(pc) for pc in closing), return_exceptions=True)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("media server: %r", task.exception())
