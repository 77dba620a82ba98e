"""The client's picture of its room and of itself, kept up to date from the server's
messages: who is there, who is offline, who types, our status, unread notifications,
the last chat sequence number seen. Sans-I/O: events go in, nothing comes out.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hubbub.client.events import (
    ChatMessage,
    IceServers,
    KnownMessage,
    Notification,
    NotificationReceived,
    NotificationsRead,
    Participant,
    ParticipantUpdated,
    PresenceChanged,
    RoomEnded,
    RoomJoined,
    RoomLeft,
    ServerMessage,
    TypingChanged,
    UnreadNotifications,
    UserJoined,
    UserLeft,
)
from hubbub.protocol.messages import OFFLINE, ONLINE

TYPING_EXPIRES = 5.0
"""Seconds after which a member's typing counts as stopped unless renewed (the server
also tells the room it stopped, after its typing_timeout; this covers a server of the
classic protocol, and an earlier, quieter end)."""


class RoomMirror:
    """What :class:`~hubbub.client.Client` shows of the room it is in."""

    def __init__(self, room: str, user_id: str | None) -> None:
        self.room = room
        self.user_id = user_id
        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.in_room = False
        """In :attr:`room` as far as the server said (``room-joined`` and no
        ``room-left`` or ``room-ended`` since)."""
        self.participants: dict[str, Participant] = {}
        """The other members of the room by user id."""
        self.grants: frozenset[str] | None = None
        """What our token grants, as the server said (None without a token)."""
        self.ice_servers: list[dict[str, Any]] = []
        """The ``iceServers`` for new peer connections, kept fresh by the server."""
        self.last_seq: int | None = None
        """The room's last chat sequence number seen (None: the server stores no chat)."""
        self.status = ONLINE
        """Our presence status, as the server has it."""
        self.offline: dict[str, int] = {}
        """The room's offline members (who chatted there and are not in it now) by
        user id, with when they were last seen (milliseconds since 1970 UTC)."""
        self.unread: dict[int, Notification] = {}
        """This user's unread notifications by id, as far as this client knows."""
        self._typing_since: dict[str, float] = {}

    def joined(self, joined: RoomJoined) -> None:
        """In a room: the room as ``room-joined`` describes it, replacing what was known."""
        self.room = joined.room
        self.user_id = joined.user_id
        self.session_id = joined.session_id
        self.resume_token = joined.resume_token
        self.in_room = True
        self.participants = {p.user_id: p for p in joined.participants}
        self.grants = frozenset(joined.grants) if joined.grants is not None else None
        self.ice_servers = joined.ice_servers
        self.last_seq = joined.last_seq
        self.status = joined.status
        self.offline = {member.user_id: member.last_seen for member in joined.offline}
        self._typing_since.clear()

    def seen_seq(self, seq: int) -> None:
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq

    def typing_users(self, now: float) -> set[str]:
        """The members heard typing within :data:`TYPING_EXPIRES` seconds of ``now``."""
        return {user for user, since in self._typing_since.items() if now - since < TYPING_EXPIRES}

    def notification_arrived(self, event: NotificationReceived) -> bool:
        """Note a live notification; False when it is known already (it came in the
        list sent on connecting as well)."""
        if event.id in self.unread:
            return False
        self.unread[event.id] = event.notification
        return True

    def track(self, event: KnownMessage | ServerMessage, now: float) -> None:
        """Keep the picture up to date with one server message."""
        if isinstance(event, UserJoined):
            self.participants[event.user_id] = Participant(
                event.user_id, event.polite, event.name, event.grants, event.status
            )
            self.offline.pop(event.user_id, None)
        elif isinstance(event, UserLeft):
            self.participants.pop(event.user_id, None)
            self._typing_since.pop(event.user_id, None)
        elif isinstance(event, ParticipantUpdated):
            self._update_participant(event.user_id, connection=event.connection)
        elif isinstance(event, PresenceChanged):
            if event.user_id is None or event.user_id == self.user_id:
                self.status = event.status
            elif event.status == OFFLINE:
                self.offline[event.user_id] = event.last_seen or 0
            else:
                self._update_participant(event.user_id, status=event.status)
        elif isinstance(event, TypingChanged):
            if event.active:
                self._typing_since[event.user_id] = now
            else:
                self._typing_since.pop(event.user_id, None)
        elif isinstance(event, ChatMessage):
            self._typing_since.pop(event.user_id, None)
            if event.seq is not None:
                self.seen_seq(event.seq)
        elif isinstance(event, UnreadNotifications):
            # sent on connecting: the unread ones as they are now
            self.unread = {n.id: n for n in event.notifications}
        elif isinstance(event, NotificationsRead):
            for read in event.ids:
                self.unread.pop(read, None)
        elif isinstance(event, IceServers):
            self.ice_servers = event.ice_servers
        elif isinstance(event, RoomEnded | RoomLeft):
            self.participants.clear()
            self.in_room = False

    def _update_participant(self, user_id: str, **changes: str) -> None:
        member = self.participants.get(user_id)
        if member is not None:
            self.participants[user_id] = msgspec.structs.replace(member, **changes)
