"""A media server in memory: rooms, feeds and handles as Janus's VideoRoom keeps them,
with no media. The core's tests and the server's tests without Janus use it; the
contract suite (``tests/media/test_contract.py``) holds it to what Janus does.

Session descriptions are not parsed: a publisher's offer is answered with a stub, a
subscriber is offered a stub that lists its streams.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

from hubbub.media import (
    ForwardedStream,
    Jsep,
    MediaRefused,
    MediaServerEvents,
    MediaServerStats,
    MediaUnavailable,
    PublishedFeed,
    SubscriberOffer,
)


@dataclass
class _Publisher:
    feed: str
    audio: bool
    video: bool
    simulcast: bool


@dataclass
class _Subscriber:
    streams: list[ForwardedStream] = field(default_factory=list)
    next_mid: int = 0
    awaiting_answer: bool = False
    layers: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)


@dataclass
class _Room:
    publishers: int
    room_id: str
    secret: str
    feeds: dict[str, _Publisher] = field(default_factory=dict)
    """Handle -> the feed it publishes."""
    subscribers: dict[str, _Subscriber] = field(default_factory=dict)


def _media_of(sdp: str) -> tuple[bool, bool, bool]:
    """Audio, video and simulcast in an offer: what its m-lines and rids say."""
    audio = "m=audio" in sdp
    video = "m=video" in sdp
    return audio, video, "a=simulcast" in sdp


class MemoryMediaServer:
    """The in-memory :class:`~hubbub.media.MediaServer`."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._events: MediaServerEvents | None = None
        self._rooms: dict[str, _Room] = {}
        self._up = False
        self._closed = False
        self.requests = 0
        self.failures = 0
        self.lost_count = 0
        self.trickled: list[tuple[str, str, dict[str, Any] | None]] = []

    def attach(self, events: MediaServerEvents) -> None:
        self._events = events

    @property
    def up(self) -> bool:
        return self._up

    def stats(self) -> MediaServerStats:
        return MediaServerStats(
            self.name,
            self._up,
            len(self._rooms),
            self.load(),
            self.requests,
            self.failures,
            self.lost_count,
        )

    def load(self) -> int:
        return sum(len(room.feeds) + len(room.subscribers) for room in self._rooms.values())

    async def start(self) -> None:
        self._up = not self._closed

    async def close(self) -> None:
        self._closed = True
        self._up = False
        self._rooms.clear()

    # -- faults, for tests ----------------------------------------------------------

    def crash(self) -> None:
        """Go away as a killed Janus does: every room lost, the events told."""
        self._up = False
        self._rooms.clear()
        self.lost_count += 1
        if self._events is not None:
            self._events.lost(self)

    def restore(self) -> None:
        """Come back, empty."""
        self._up = True
        if self._events is not None:
            self._events.restored(self)

    # -- requests -------------------------------------------------------------------

    def _request(self) -> None:
        """One request counted; it fails while the server is down."""
        self.requests += 1
        if not self._up:
            self.failures += 1
            raise MediaUnavailable(f"{self.name} is not reachable")

    def _room(self, room: str) -> _Room:
        self._request()
        found = self._rooms.get(room)
        if found is None:
            self.failures += 1
            raise MediaRefused(f"no such room {room!r}", 426)
        return found

    async def create_room(
        self,
        room: str,
        *,
        publishers: int,
        room_id: str | None = None,
        secret: str | None = None,
    ) -> None:
        self._request()
        if room not in self._rooms:
            self._rooms[room] = _Room(
                publishers, room_id or f"{room}~{secrets.token_hex(4)}", secret or ""
            )

    async def leave_room(self, room: str) -> None:
        # One process, no other node: what it leaves, nobody else uses.
        await self.destroy_room(room)

    async def destroy_room(self, room: str) -> None:
        self._request()
        self._rooms.pop(room, None)

    async def remove_room(self, room_id: str, secret: str) -> None:
        self._request()
        for room, made in list(self._rooms.items()):
            if made.room_id == room_id and made.secret == secret:
                del self._rooms[room]

    async def publish(self, room: str, handle: str, feed: str, offer: Jsep) -> Jsep:
        found = self._room(room)
        if offer.type != "offer":
            raise MediaRefused("a publisher starts with an offer", 434)
        for other, publisher in list(found.feeds.items()):
            if publisher.feed == feed and other != handle:
                self._stop_feed(room, found, other)
        audio, video, simulcast = _media_of(offer.sdp)
        found.feeds[handle] = _Publisher(feed, audio, video, simulcast)
        if self._events is not None:
            # No ICE here: the connection is up as soon as the answer is out.
            asyncio.get_running_loop().call_soon(self._feed_up, room, handle)
        return Jsep("answer", f"v=0\r\ns=memory answer for {feed}\r\n")

    async def configure(
        self,
        room: str,
        handle: str,
        *,
        audio: bool | None = None,
        video: bool | None = None,
        bitrate: int | None = None,
        offer: Jsep | None = None,
    ) -> Jsep | None:
        found = self._room(room)
        publisher = found.feeds.get(handle)
        if publisher is None:
            raise MediaRefused("not a publisher", 433)
        if offer is not None:
            publisher.audio, publisher.video, publisher.simulcast = _media_of(offer.sdp)
            return Jsep("answer", "v=0\r\ns=memory answer\r\n")
        return None

    def _offer(self, subscriber: _Subscriber) -> SubscriberOffer:
        subscriber.awaiting_answer = True
        lines = [f"m={s.kind} mid={s.mid} feed={s.feed}" for s in subscriber.streams if s.active]
        return SubscriberOffer(
            Jsep("offer", "v=0\r\n" + "\r\n".join(lines)), tuple(subscriber.streams)
        )

    async def subscribe(self, room: str, handle: str, feeds: list[str]) -> SubscriberOffer:
        found = self._room(room)
        published = {p.feed: p for p in found.feeds.values()}
        for feed in feeds:
            if feed not in published:
                raise MediaRefused(f"no such feed {feed!r}", 428)
        subscriber = found.subscribers.setdefault(handle, _Subscriber())
        taken = {s.feed for s in subscriber.streams if s.active}
        for feed in feeds:
            if feed in taken:
                continue
            publisher = published[feed]
            kinds = (["audio"] if publisher.audio else []) + (["video"] if publisher.video else [])
            for kind in kinds:
                subscriber.streams.append(
                    ForwardedStream(str(subscriber.next_mid), kind, feed)  # type: ignore[arg-type]
                )
                subscriber.next_mid += 1
        return self._offer(subscriber)

    async def unsubscribe(self, room: str, handle: str, feeds: list[str]) -> SubscriberOffer:
        found = self._room(room)
        subscriber = found.subscribers.get(handle)
        if subscriber is None:
            raise MediaRefused("not a subscriber", 433)
        gone = set(feeds)
        subscriber.streams = [
            ForwardedStream(s.mid, s.kind, s.feed, active=False) if s.feed in gone else s
            for s in subscriber.streams
        ]
        return self._offer(subscriber)

    async def answer(self, room: str, handle: str, answer: Jsep) -> None:
        found = self._room(room)
        subscriber = found.subscribers.get(handle)
        if subscriber is None:
            raise MediaRefused("not a subscriber", 433)
        if answer.type != "answer" or not subscriber.awaiting_answer:
            raise MediaRefused("no offer to answer", 434)
        subscriber.awaiting_answer = False

    async def select_layer(
        self, room: str, handle: str, feed: str, substream: int | None, temporal: int | None
    ) -> None:
        found = self._room(room)
        subscriber = found.subscribers.get(handle)
        if subscriber is None:
            raise MediaRefused("not a subscriber", 433)
        subscriber.layers[feed] = (substream, temporal)

    async def trickle(self, room: str, handle: str, candidate: dict[str, Any] | None) -> None:
        found = self._room(room)
        if handle not in found.feeds and handle not in found.subscribers:
            raise MediaRefused("no such handle", 458)
        self.trickled.append((room, handle, candidate))

    async def hang_up(self, room: str, handle: str) -> None:
        found = self._room(room)
        found.subscribers.pop(handle, None)
        if handle in found.feeds:
            self._stop_feed(room, found, handle)

    async def kick(self, room: str, feed: str, handles: list[str]) -> None:
        found = self._room(room)
        for handle in handles:
            found.subscribers.pop(handle, None)
            if handle in found.feeds:
                self._stop_feed(room, found, handle)

    async def feeds(self, room: str) -> list[PublishedFeed]:
        found = self._room(room)
        return [PublishedFeed(p.feed, p.audio, p.video, p.simulcast) for p in found.feeds.values()]

    def _feed_up(self, room: str, handle: str) -> None:
        found = self._rooms.get(room)
        if found is not None and handle in found.feeds and self._events is not None:
            self._events.feed_up(self, room, handle)

    def _stop_feed(self, room: str, found: _Room, handle: str) -> None:
        """A feed stops: each subscriber that took it is offered its streams without it."""
        publisher = found.feeds.pop(handle)
        for name, subscriber in found.subscribers.items():
            if any(s.feed == publisher.feed and s.active for s in subscriber.streams):
                subscriber.streams = [
                    ForwardedStream(s.mid, s.kind, s.feed, active=False)
                    if s.feed == publisher.feed
                    else s
                    for s in subscriber.streams
                ]
                if self._events is not None:
                    self._events.renegotiate(self, room, name, self._offer(subscriber))
