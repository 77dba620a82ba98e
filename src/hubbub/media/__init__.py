"""The media server of a room in SFU mode: what hubbub asks of it, behind one small
interface, so that the forwarding unit can be Janus (:mod:`hubbub.media.janus`) or the
in-memory twin the core's tests and the contract suite use (:mod:`hubbub.media.memory`).

hubbub speaks to the media server; clients never do. A room of hubbub is one room on
one media server; a member's camera and microphone are its *feed* there (the feed's id
is the member's user id); what a member sends and receives goes through *handles*,
one per WebRTC connection, named by hubbub (``"<session>/publisher"``,
``"<session>/<connection>"``). Every method checks nothing about who may do what: the
core decided that before asking.

Exception tree::

    MediaError             the media server could not do what was asked
    ├── MediaUnavailable   it cannot be reached, or went away meanwhile
    └── MediaRefused       it answered with a refusal (its code and text are logged,
                           never shown to a client)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SdpType = Literal["offer", "answer"]


@dataclass(frozen=True, slots=True)
class Jsep:
    """A session description as WebRTC's ``RTCSessionDescriptionInit`` has it."""

    type: SdpType
    sdp: str


@dataclass(frozen=True, slots=True)
class ForwardedStream:
    """One m-line of a subscriber connection: which feed's track it carries."""

    mid: str
    kind: Literal["audio", "video"]
    feed: str
    """The publishing member's user id."""
    active: bool = True
    """False once the feed stopped: the m-line stays, with nothing in it."""


@dataclass(frozen=True, slots=True)
class SubscriberOffer:
    """The media server's offer for a subscriber connection, and what it carries."""

    jsep: Jsep
    streams: tuple[ForwardedStream, ...]


@dataclass(frozen=True, slots=True)
class PublishedFeed:
    """A member's feed as the media server has it."""

    feed: str
    audio: bool
    video: bool
    simulcast: bool = False


class MediaError(Exception):
    """The media server could not do what was asked."""


class MediaUnavailable(MediaError):
    """The media server cannot be reached, or went away during the request."""


class MediaRefused(MediaError):
    """The media server refused the request; ``code`` is its own error number."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class MediaServerEvents(Protocol):
    """What a media server tells of its own accord (the bridge implements it)."""

    def renegotiate(
        self, server: MediaServer, room: str, handle: str, offer: SubscriberOffer
    ) -> None:
        """A subscriber connection's streams changed (a feed it took stopped): the
        client is to answer this new offer."""

    def feed_up(self, server: MediaServer, room: str, handle: str) -> None:
        """A publisher's connection is up: its feed can be subscribed to from now on."""

    def hung_up(self, server: MediaServer, room: str, handle: str) -> None:
        """A handle's WebRTC connection is gone (ICE failed, DTLS alert, the client
        closed it)."""

    def lost(self, server: MediaServer) -> None:
        """The media server went away: every room on it is gone (or unreachable)."""

    def restored(self, server: MediaServer) -> None:
        """The media server can be reached again (empty: rooms are made anew)."""


@dataclass(slots=True)
class MediaServerStats:
    """What /metrics and /readyz say of one media server."""

    name: str
    up: bool
    rooms: int
    handles: int
    requests: int = 0
    failures: int = 0
    lost: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class MediaServer(Protocol):
    """One media server (one Janus). Every coroutine raises :class:`MediaError` and
    nothing else of its own."""

    name: str
    """Its address, as the settings give it (for logs and metrics)."""

    def attach(self, events: MediaServerEvents) -> None:
        """Tell ``events`` what the media server says of its own accord."""

    @property
    def up(self) -> bool:
        """Whether it is reachable now."""

    def stats(self) -> MediaServerStats:
        """Rooms, handles, counters."""

    def load(self) -> int:
        """How busy it is, to choose among several: its handles."""

    async def start(self) -> None:
        """Connect; a server that cannot be reached yet is retried in the background
        (``up`` stays false until it is)."""

    async def close(self) -> None:
        """Disconnect: every handle of this connection closes; the rooms stay (the
        bridge removes first those no other node uses). A second call does nothing."""

    async def create_room(
        self,
        room: str,
        *,
        publishers: int,
        room_id: str | None = None,
        secret: str | None = None,
    ) -> None:
        """Make ``room`` (nothing if it is made here already), for at most
        ``publishers`` feeds, as ``room_id`` with ``secret`` on the media server (a
        random id and secret if not given). A room with that id there already (another
        node, or a connection that was cut, made it) is taken as it is."""

    async def leave_room(self, room: str) -> None:
        """Close this connection's handles in ``room`` and forget it; the room stays
        on the media server for the other nodes that use it."""

    async def destroy_room(self, room: str) -> None:
        """Remove ``room`` and every handle in it (nothing if it does not exist)."""

    async def remove_room(self, room_id: str, secret: str) -> None:
        """Remove the room ``room_id`` on the media server, with its ``secret``, whoever
        made it (a node that died left it there); nothing if it is not there."""

    async def publish(self, room: str, handle: str, feed: str, offer: Jsep) -> Jsep:
        """Send ``feed``'s media from the client's ``offer`` through a new handle;
        returns the answer. A feed published already is replaced. The feed can be
        subscribed to once the events hear ``feed_up``."""

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
        """Change a publisher: forward its audio or video or not, cap its bitrate,
        renegotiate with a new ``offer`` (then returns the answer)."""

    async def subscribe(self, room: str, handle: str, feeds: list[str]) -> SubscriberOffer:
        """Take ``feeds`` through subscriber connection ``handle`` (made on first
        use, grown after): the offer the client is to answer (:meth:`answer`)."""

    async def unsubscribe(self, room: str, handle: str, feeds: list[str]) -> SubscriberOffer:
        """Stop taking ``feeds`` through ``handle``: the new offer."""

    async def answer(self, room: str, handle: str, answer: Jsep) -> None:
        """The client's answer to the latest offer of subscriber connection ``handle``."""

    async def select_layer(
        self, room: str, handle: str, feed: str, substream: int | None, temporal: int | None
    ) -> None:
        """Which simulcast layer of ``feed`` subscriber ``handle`` gets (0 the smallest)."""

    async def trickle(self, room: str, handle: str, candidate: dict[str, Any] | None) -> None:
        """An ICE candidate of the client's end of ``handle`` (``None``: no more)."""

    async def hang_up(self, room: str, handle: str) -> None:
        """Close connection ``handle`` (a publisher's feed stops with it)."""

    async def kick(self, room: str, feed: str, handles: list[str]) -> None:
        """Take a member out: its ``handles`` close, and ``feed`` stops when one of
        them publishes it (a feed the same member publishes again through another
        handle stays)."""

    async def feeds(self, room: str) -> list[PublishedFeed]:
        """The feeds published in ``room`` now."""
