"""Calls through the media server: each room's mode (mesh or SFU, see
:mod:`hubbub.media.modes`), who sends, the feeds there are, and the ``media-*``
requests a member may make, checked here and handed to the media bridge.

A room's mode and its feeds are the cluster's (:class:`~hubbub.broker.SharedMedia`):
this node tells the membership how many of its members send and which of their
feeds are up, the membership decides the mode once for every node, and each change
comes back (:meth:`MediaFeature.media_changed`), to this node as to the others,
before its members hear of it. On a lone node that is all at once.

Clients never reach the media server. A member asks hubbub (``media-publish``,
``media-subscribe``...), hubbub checks that it may (the room is in SFU mode, it has
the ``publish`` grant, the feeds it asks for are its own room's) and asks the
bridge (:class:`~hubbub.core.media_bridge.MediaRequests`) with the names on the
media server made here: the room's, the member's feed (its user id), its
connections (``<session>/<name>``). The bridge answers through
:class:`~hubbub.core.media_bridge.MediaEvents`.

When the media server of a room goes away, the room's members hear ``media-mode``
again (``reason: media-server-lost``): they publish and subscribe anew, and the
bridge puts the room on a media server that is up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hubbub.auth.grants import Grant
from hubbub.broker import ModeRule, SharedMedia
from hubbub.core.context import HubContext
from hubbub.core.media_bridge import MediaRequests
from hubbub.core.rooms import Room
from hubbub.core.session import Session
from hubbub.media import Jsep, SubscriberOffer
from hubbub.media.modes import MediaSetting, Mode, next_mode
from hubbub.protocol import codec
from hubbub.protocol.errors import ErrorCode, ProtocolError, not_in_room
from hubbub.protocol.messages import (
    PUBLISHER,
    Error,
    MediaAnswer,
    MediaAnswered,
    MediaCandidate,
    MediaClosed,
    MediaConfigure,
    MediaFeed,
    MediaFeeds,
    MediaLeave,
    MediaMode,
    MediaOffer,
    MediaPublish,
    MediaSending,
    MediaStream,
    MediaSubscribe,
    MediaUnpublish,
    MediaUnsubscribe,
    Ref,
    SessionDescription,
)

log = logging.getLogger("hubbub.core")

SFU_FEATURE = "sfu"
"""What a client puts in ``join-room``'s ``features`` when it can take part in calls
through the media server."""

SESSION_MOVED = "session-moved"
"""A ``media-mode`` reason: the member's session moved to another node (its client
resumed there, or its node stopped), and what it had on the media server did not."""

CLOSE_AFTER_MESH = 10.0
"""Seconds the media server keeps a room that went back to mesh: its members keep
their tiles from it until their peer-to-peer links are up."""


@dataclass
class MemberMedia:
    """One member's part in its room's calls."""

    room: str
    user_id: str
    capable: bool
    """It said it takes part through the media server (``features: ["sfu"]``)."""
    sending: bool = False
    """It said it sends (``media-sending``)."""
    connections: set[str] = field(default_factory=set)
    """Its connections to the media server, open or opening."""
    offered: MediaFeed | None = None
    """What its publisher's offer carries."""
    shared: bool = False
    """Its feed is up, and in the cluster's list of the room's feeds."""

    def withdraw(self) -> bool:
        """Its feed goes (if it had one up): whether the cluster must hear it."""
        shared, self.shared = self.shared, False
        return shared


@dataclass
class RoomMedia:
    """One room's mode and feeds."""

    mode: Mode = Mode.MESH
    feeds: dict[str, MediaFeed] = field(default_factory=dict)
    """User id -> its feed, once its publisher connection is up (on any node)."""
    version: int = 0
    """The version of the cluster's word on it (:class:`~hubbub.broker.SharedMedia`)."""
    close_at: float | None = None
    """Back in mesh: when the media server's room goes."""
    on_media_server: bool = False
    """Something of it was asked of the media server (its room there exists)."""


def _feed_of(user_id: str, sdp: str) -> MediaFeed:
    return MediaFeed(
        user_id=user_id,
        audio="m=audio" in sdp,
        video="m=video" in sdp,
        simulcast="a=simulcast" in sdp,
    )


class MediaFeature:
    """``media-publish``, ``media-unpublish``, ``media-subscribe``,
    ``media-unsubscribe``, ``media-answer``, ``media-configure``, ``media-candidate``,
    ``media-leave``, ``media-sending``; each room's mode."""

    def __init__(
        self,
        ctx: HubContext,
        requests: MediaRequests,
        *,
        default: MediaSetting = MediaSetting.AUTO,
        mesh_max: int = 4,
    ) -> None:
        self.ctx = ctx
        self.requests = requests
        self.default = default
        self.mesh_max = mesh_max
        self.rooms: dict[str, RoomMedia] = {}
        self.members: dict[str, MemberMedia] = {}
        """Session id -> its part, while it is in a room."""
        self.settings: dict[str, MediaSetting] = {}
        """Rooms whose mode a backend set."""
        self.switches = 0
        """How many times a room changed mode (for the metrics)."""
        self.rule = ModeRule(default, mesh_max, requests.available)
        self.membership = ctx.membership

    # -- what the rest of the hub calls ------------------------------------------------

    def joined(self, session: Session, room: Room, features: list[str] | None) -> None:
        """A member is in: in a room in SFU mode it hears how to take part."""
        user_id = session.user_id
        if user_id is None:  # pragma: no cover - a member has a user id
            return
        capable = bool(features) and SFU_FEATURE in (features or ())
        session.sfu_capable = capable
        self.members[session.session_id] = MemberMedia(room.name, user_id, capable)
        state = self._state(room.name)
        if state.mode is Mode.SFU:  # (counted in prepare(): the mode is as it is now)
            if capable:
                self.ctx.send(session, MediaMode(mode=Mode.SFU, feeds=self._feeds(state)))
            else:
                self.ctx.send_error(session, sfu_required(None))

    def adopted(
        self, session: Session, room: Room, *, capable: bool, sending: bool
    ) -> MediaMode | None:
        """A member whose session moved here from another node: its part in the
        calls goes on here. What it had on the media server went with its old node,
        so in a room in SFU mode it must start afresh: the ``media-mode`` (reason
        ``session-moved``) to send it after what it missed, or None."""
        user_id = session.user_id
        if user_id is None:  # pragma: no cover - a member has a user id
            return None
        session.sfu_capable = capable
        self.members[session.session_id] = MemberMedia(room.name, user_id, capable, sending)
        state = self._state(room.name)
        self._count(room, state, "auto", decide=False)  # see left()
        if state.mode is not Mode.SFU or not capable:
            return None
        return MediaMode(mode=Mode.SFU, feeds=self._feeds(state), reason=SESSION_MOVED)

    def part_of(self, session_id: str) -> MemberMedia | None:
        """A member's part in its room's calls, as this node has it."""
        return self.members.get(session_id)

    def prepare(self, room: Room) -> str | None:
        """Before a member's ``room-joined``: the room's mode, looked at again (a room
        set to SFU is in SFU mode from its first member on); ``sfu`` or None."""
        state = self._state(room.name)
        self._count(room, state, "setting")
        return Mode.SFU.value if state.mode is Mode.SFU else None

    def claimed(self, room_name: str, media: SharedMedia | None) -> None:
        """A member of this node was admitted to ``room_name``: the room's calls as
        the cluster had them then (for this node's first member there)."""
        if media is not None:
            self._apply(room_name, self._state(room_name), media)

    def left(self, session: Session, room: Room, *, moved_to: str | None = None) -> None:
        """A member left (or was removed, or its connection went): everything it had
        on the media server goes, and the room's mode may change. Not when it moved
        to another node's session ``moved_to``: it goes on there, its sending with
        it, so the count here changes and the mode is decided by nobody."""
        member = self.members.pop(session.session_id, None)
        if member is None:
            return
        state = self.rooms.get(room.name)
        if state is None:
            return
        if member.connections and self.requests.available:
            self.requests.kick(
                room.name, member.user_id, session.session_id, sorted(member.connections)
            )
        if member.withdraw():
            self.membership.share_feed(room.name, member.user_id, None)
        if not room.members:
            self._drop_room(room.name, state, handed_to=moved_to)
            return
        self._count(room, state, "auto", decide=moved_to is None)

    def others_left(self, room: Room) -> None:
        """Members of other nodes left without a word (their node died): the room's
        mode is decided again without their senders."""
        state = self.rooms.get(room.name)
        if state is not None:
            self._count(room, state, "auto")

    def set_setting(self, room_name: str, setting: MediaSetting | None) -> Mode:
        """A backend set the room's mode (``None``: back to the server's default).
        Returns the mode the room is in now (or will be in, when it has no member)."""
        if setting is None:
            self.settings.pop(room_name, None)
        else:
            self.settings[room_name] = setting
        if self.rule.sfu_available:
            self.membership.set_media_setting(room_name, setting, self.rule)
        state = self.rooms.get(room_name)
        if state is None or self.ctx.rooms.get(room_name) is None:
            return next_mode(
                self.setting_of(room_name),
                Mode.MESH,
                0,
                self.mesh_max,
                sfu_available=self.requests.available,
            )
        return state.mode

    def setting_of(self, room_name: str) -> MediaSetting:
        return self.settings.get(room_name, self.default)

    def mode_of(self, room_name: str) -> Mode:
        state = self.rooms.get(room_name)
        return state.mode if state is not None else Mode.MESH

    # -- requests ---------------------------------------------------------------------

    def _in_sfu(self, session: Session, ref: Ref | None) -> tuple[Room, RoomMedia, MemberMedia]:
        room = session.room
        member = self.members.get(session.session_id)
        if room is None or member is None:
            raise not_in_room(ref)
        state = self.rooms.get(room.name)
        if state is None or state.mode is not Mode.SFU:
            raise ProtocolError(
                ErrorCode.WRONG_MEDIA_MODE,
                "this room's calls are peer to peer now (media-mode mesh)",
                ref=ref,
            )
        if not member.capable:
            raise sfu_required(ref)
        return room, state, member

    def _description(self, jsep: SessionDescription, kind: str, ref: Ref | None) -> Jsep:
        if jsep.type != kind:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"jsep must be an {kind}", ref=ref)
        limit = self.ctx.limits.max_sdp_length
        if len(jsep.sdp) > limit:
            raise ProtocolError(
                ErrorCode.TOO_LARGE, f"jsep.sdp holds at most {limit} characters", ref=ref
            )
        return Jsep(jsep.type, jsep.sdp)

    def _open(self, member: MemberMedia, connection: str, ref: Ref | None) -> None:
        if connection in member.connections:
            return
        if len(member.connections) >= self.ctx.limits.max_media_connections:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                "too many connections to the media server; close one first",
                ref=ref,
            )
        member.connections.add(connection)

    def on_media_publish(self, session: Session, message: MediaPublish) -> None:
        ref = message.ref
        room, state, member = self._in_sfu(session, ref)
        self.ctx.admission.require(session.identity, Grant.PUBLISH, ref)
        offer = self._description(message.jsep, "offer", ref)
        self._open(member, PUBLISHER, ref)
        member.offered = _feed_of(member.user_id, offer.sdp)
        state.on_media_server = True
        self.requests.publish(room.name, session.session_id, member.user_id, offer, ref)

    def on_media_unpublish(self, session: Session, message: MediaUnpublish) -> None:
        room, state, member = self._in_sfu(session, message.ref)
        if PUBLISHER in member.connections:
            self._close(room, state, member, session.session_id, PUBLISHER)

    def _feeds_asked(
        self, state: RoomMedia, member: MemberMedia, feeds: list[str], ref: Ref | None
    ) -> list[str]:
        if not feeds or len(feeds) > self.ctx.limits.max_participants:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "feeds lists one user id or more", ref=ref)
        for feed in feeds:
            if feed == member.user_id or feed not in state.feeds:
                raise ProtocolError(
                    ErrorCode.NO_SUCH_FEED,
                    "no such feed in this room: subscribe to those media-feeds lists",
                    ref=ref,
                )
        return list(dict.fromkeys(feeds))

    def on_media_subscribe(self, session: Session, message: MediaSubscribe) -> None:
        ref = message.ref
        room, state, member = self._in_sfu(session, ref)
        connection = message.connection
        if connection == PUBLISHER:
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE, "the publisher connection only sends", ref=ref
            )
        feeds = self._feeds_asked(state, member, message.feeds, ref)
        self._open(member, connection, ref)
        state.on_media_server = True
        self.requests.subscribe(room.name, session.session_id, connection, feeds, ref)

    def on_media_unsubscribe(self, session: Session, message: MediaUnsubscribe) -> None:
        ref = message.ref
        room, _, member = self._in_sfu(session, ref)
        if message.connection == PUBLISHER or message.connection not in member.connections:
            raise _no_connection(ref)
        if not message.feeds:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "feeds lists one user id or more", ref=ref)
        self.requests.unsubscribe(
            room.name, session.session_id, message.connection, message.feeds, ref
        )

    def on_media_answer(self, session: Session, message: MediaAnswer) -> None:
        ref = message.ref
        room, _, member = self._in_sfu(session, ref)
        if message.connection == PUBLISHER or message.connection not in member.connections:
            raise _no_connection(ref)
        answer = self._description(message.jsep, "answer", ref)
        self.requests.answer(room.name, session.session_id, message.connection, answer, ref)

    def on_media_configure(self, session: Session, message: MediaConfigure) -> None:
        ref = message.ref
        room, _, member = self._in_sfu(session, ref)
        connection = message.connection
        if connection not in member.connections:
            raise _no_connection(ref)
        if connection == PUBLISHER:
            changes: dict[str, Any] = {
                name: value
                for name, value in (
                    ("audio", message.audio),
                    ("video", message.video),
                    ("bitrate", message.bitrate),
                )
                if value is not None
            }
            offer = None
            if message.jsep is not None:
                offer = self._description(message.jsep, "offer", ref)
                member.offered = _feed_of(member.user_id, offer.sdp)
            self.requests.configure(room.name, session.session_id, changes, offer, ref)
            return
        if message.user_id is None or (message.substream is None and message.temporal is None):
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE,
                "a subscriber connection's configure names a userId and a substream or temporal",
                ref=ref,
            )
        self.requests.select_layer(
            room.name,
            session.session_id,
            connection,
            message.user_id,
            message.substream,
            message.temporal,
            ref,
        )

    def on_media_candidate(self, session: Session, message: MediaCandidate) -> None:
        room, _, member = self._in_sfu(session, message.ref)
        if message.connection not in member.connections:
            raise _no_connection(message.ref)
        candidate = message.candidate
        trickled: dict[str, Any] | None = None
        if candidate is not None:
            trickled = {"candidate": candidate.candidate}
            if candidate.sdp_mid is not None:
                trickled["sdpMid"] = candidate.sdp_mid
            if candidate.sdp_m_line_index is not None:
                trickled["sdpMLineIndex"] = candidate.sdp_m_line_index
        self.requests.trickle(room.name, session.session_id, message.connection, trickled)

    def on_media_leave(self, session: Session, message: MediaLeave) -> None:
        room = session.room
        member = self.members.get(session.session_id)
        if room is None or member is None:
            raise not_in_room(message.ref)
        state = self.rooms.get(room.name)
        if state is None:
            return
        if message.connection is None:
            for connection in sorted(member.connections):
                self._close(room, state, member, session.session_id, connection)
        elif message.connection in member.connections:
            self._close(room, state, member, session.session_id, message.connection)

    def on_media_sending(self, session: Session, message: MediaSending) -> None:
        room = session.room
        member = self.members.get(session.session_id)
        if room is None or member is None:
            raise not_in_room(message.ref)
        if message.active:
            self.ctx.admission.require(session.identity, Grant.PUBLISH, message.ref)
        if member.sending != message.active:
            member.sending = message.active
            self._count(room, self._state(room.name), "auto")

    # -- the bridge's answers ---------------------------------------------------------

    def media_answered(
        self, session_id: str, connection: str, answer: Jsep, ref: Ref | None
    ) -> None:
        session = self.ctx.sessions.get(session_id)
        member = self.members.get(session_id)
        if session is None or member is None or connection not in member.connections:
            return
        jsep = SessionDescription(type=answer.type, sdp=answer.sdp)
        self.ctx.send(session, MediaAnswered(connection=connection, jsep=jsep, ref=ref))

    def media_offered(
        self, session_id: str, connection: str, offer: SubscriberOffer, ref: Ref | None
    ) -> None:
        session = self.ctx.sessions.get(session_id)
        member = self.members.get(session_id)
        if session is None or member is None or connection not in member.connections:
            return
        streams = [
            MediaStream(mid=s.mid, kind=s.kind, user_id=s.feed, active=s.active)
            for s in offer.streams
        ]
        jsep = SessionDescription(type=offer.jsep.type, sdp=offer.jsep.sdp)
        self.ctx.send(
            session, MediaOffer(connection=connection, jsep=jsep, streams=streams, ref=ref)
        )

    def media_failed(
        self, session_id: str, connection: str, code: ErrorCode, ref: Ref | None
    ) -> None:
        session = self.ctx.sessions.get(session_id)
        member = self.members.get(session_id)
        if session is None or member is None:
            return
        text = (
            "the media server cannot be reached now; try again shortly"
            if code is ErrorCode.MEDIA_UNAVAILABLE
            else "the media server refused this request"
        )
        self.ctx.counters.errors[code] += 1
        self.ctx.send(session, Error(code=code, message=text, ref=ref))

    def feed_up(self, room_name: str, session_id: str) -> None:
        member = self.members.get(session_id)
        room = self.ctx.rooms.get(room_name)
        state = self.rooms.get(room_name)
        if (
            member is None
            or room is None
            or state is None
            or member.room != room_name
            or PUBLISHER not in member.connections
            or member.offered is None
        ):
            return
        log.info("event=feed-up room=%r user=%r", room_name, member.user_id)
        member.shared = True
        self.membership.share_feed(room_name, member.user_id, member.offered)
        self._count(room, state, "auto")

    def media_closed(self, room_name: str, session_id: str, connection: str) -> None:
        member = self.members.get(session_id)
        room = self.ctx.rooms.get(room_name)
        state = self.rooms.get(room_name)
        if member is None or room is None or state is None or member.room != room_name:
            return
        if connection not in member.connections:
            return
        self._close(room, state, member, session_id, connection, told=True)
        session = self.ctx.sessions.get(session_id)
        if session is not None:
            self.ctx.send(session, MediaClosed(connection=connection))

    def media_lost(self, rooms: list[str]) -> None:
        """The media server of these rooms went away: their members start again."""
        for room_name in rooms:
            room = self.ctx.rooms.get(room_name)
            state = self.rooms.get(room_name)
            if room is None or state is None:
                continue
            self._withdraw_feeds(room_name, state)
            state.on_media_server = False
            if state.mode is Mode.SFU:
                log.warning("event=media-server-lost room=%r", room_name)
                payload = codec.encode(
                    MediaMode(mode=Mode.SFU, feeds=[], reason="media-server-lost")
                )
                self._to_capable(room, payload)

    # -- the room's mode ---------------------------------------------------------------

    def _state(self, room_name: str) -> RoomMedia:
        state = self.rooms.get(room_name)
        if state is None:
            state = self.rooms[room_name] = RoomMedia()
        return state

    def _senders(self, room: Room, state: RoomMedia) -> int:
        count = 0
        for session in room.members.values():
            member = self.members.get(session.session_id)
            if member is not None and (member.sending or member.shared):
                count += 1
        return count

    def _count(self, room: Room, state: RoomMedia, reason: str, *, decide: bool = True) -> None:
        """Tell the membership how many of this node's members send: the room's
        mode is decided from there (:meth:`media_changed` when it changes), unless
        ``decide`` is False. Without a media server every room is a mesh: nothing to
        decide, nothing to tell."""
        if self.rule.sfu_available:
            rule = self.rule if decide else None
            self.membership.count_senders(room.name, self._senders(room, state), rule, reason)

    def media_changed(self, room_name: str, media: SharedMedia) -> None:
        """The cluster's word on the room's calls: applied if it is newer."""
        state = self.rooms.get(room_name)
        if state is not None:
            self._apply(room_name, state, media)

    def _apply(self, room_name: str, state: RoomMedia, media: SharedMedia) -> None:
        if media.version <= state.version:
            return
        state.version = media.version
        if media.setting is None:
            self.settings.pop(room_name, None)
        else:
            self.settings[room_name] = media.setting
        feeds = {feed.user_id: feed for feed in media.feeds}
        feeds_changed = feeds != state.feeds
        state.feeds = feeds
        room = self.ctx.rooms.get(room_name)
        if room is None:
            state.mode = media.mode
            return
        switching = media.mode is not state.mode
        if feeds_changed and not (switching and media.mode is Mode.SFU):
            self._announce_feeds(room, state)
        if switching:
            self._switch(room, state, media.mode, media.reason)

    def _switch(self, room: Room, state: RoomMedia, mode: Mode, reason: str) -> None:
        state.mode = mode
        room.sfu = mode is Mode.SFU
        self.switches += 1
        log.info("event=media-mode room=%r mode=%s reason=%s", room.name, mode, reason)
        if mode is Mode.SFU:
            state.close_at = None
            payload = codec.encode(MediaMode(mode=mode, feeds=self._feeds(state), reason=reason))
            self._to_capable(room, payload)
            for session in room.members.values():
                member = self.members.get(session.session_id)
                if member is not None and not member.capable:
                    self.ctx.send_error(session, sfu_required(None))
            return
        payload = codec.encode(MediaMode(mode=mode, reason=reason))
        self.ctx.outbox.broadcast(room.members.values(), payload, None)
        if state.on_media_server:
            state.close_at = self.ctx.now() + CLOSE_AFTER_MESH
            self.ctx.timers.schedule(state.close_at, self._close_due, room.name)

    def _close_due(self, room_name: str) -> None:
        state = self.rooms.get(room_name)
        if state is None or state.close_at is None or state.close_at > self.ctx.now():
            return
        state.close_at = None
        if state.mode is Mode.MESH:
            self._close_media_room(room_name, state)

    def _close_media_room(self, room_name: str, state: RoomMedia) -> None:
        self._withdraw_feeds(room_name, state)
        state.on_media_server = False
        self.requests.close_room(room_name)

    def _withdraw_feeds(self, room_name: str, state: RoomMedia) -> None:
        """Everything this node's members had on the media server is gone (they are
        told otherwise, if at all): their feeds leave the cluster's list."""
        withdrawn = []
        for member in self.members.values():
            if member.room != room_name:
                continue
            if member.withdraw():
                withdrawn.append(member.user_id)
                state.feeds.pop(member.user_id, None)
            member.connections.clear()
            member.offered = None
        for user_id in withdrawn:
            self.membership.share_feed(room_name, user_id, None)

    def _drop_room(self, room_name: str, state: RoomMedia, *, handed_to: str | None = None) -> None:
        """The room's last member on this node left (or moved to ``handed_to``)."""
        del self.rooms[room_name]
        if self.rule.sfu_available:
            self.membership.media_done(room_name, handed_to)
        if state.on_media_server:
            self.requests.close_room(room_name)

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def sfu_required(ref: Ref | None) -> ProtocolError:
        return sfu_required(ref)

    def _feeds(self, state: RoomMedia) -> list[MediaFeed]:
        return list(state.feeds.values())

    def _announce_feeds(self, room: Room, state: RoomMedia) -> None:
        self._to_capable(room, codec.encode(MediaFeeds(feeds=self._feeds(state))))

    def _to_capable(self, room: Room, payload: bytes) -> None:
        members = self.members
        capable = [
            session
            for session in room.members.values()
            if (member := members.get(session.session_id)) is not None and member.capable
        ]
        self.ctx.outbox.broadcast(capable, payload, None)

    def _close(
        self,
        room: Room,
        state: RoomMedia,
        member: MemberMedia,
        session_id: str,
        connection: str,
        *,
        told: bool = False,
    ) -> None:
        """Close one of a member's connections (``told``: the media server closed it)."""
        member.connections.discard(connection)
        if not told:
            self.requests.hang_up(room.name, session_id, connection)
        if connection == PUBLISHER:
            member.offered = None
            if member.withdraw():
                self.membership.share_feed(room.name, member.user_id, None)
                self._count(room, state, "auto")


def sfu_required(ref: Ref | None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.SFU_REQUIRED,
        "this room's calls go through the media server, which this client does not "
        "support: use hubbub.js or the hubbub Python SDK (join-room features: ['sfu'])",
        ref=ref,
    )


def _no_connection(ref: Ref | None) -> ProtocolError:
    return ProtocolError(ErrorCode.MEDIA_REFUSED, "no such connection to the media server", ref=ref)
