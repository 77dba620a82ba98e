"""What the other nodes of a cluster tell this one, through the membership, that no
client of this node asked for: members gone with their node (or back after an
outage), sessions to close, rooms ended."""

from __future__ import annotations

import logging

from hubbub.broker import Member
from hubbub.core.context import HubContext
from hubbub.core.joining import member_of
from hubbub.protocol import codec
from hubbub.protocol.errors import CloseCode
from hubbub.protocol.messages import UserJoined, UserLeft

log = logging.getLogger("hubbub.core")


class ClusterEvents:
    """The membership's word about other nodes, carried out on this one."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx

    def members_changed(self, room: str, joined: list[Member], left: list[Member]) -> None:
        """Members came or went elsewhere without a word of their own (their node
        died, or came back after an outage): this node's members of ``room`` hear it."""
        ctx = self.ctx
        target = ctx.rooms.get(room)
        if target is None:
            return
        for gone in left:
            if not gone.hidden:
                payload = codec.encode(UserLeft(user_id=gone.user_id))
                ctx.room_broadcast(target, payload, None)
        for came in joined:
            if not came.hidden:
                announcement = UserJoined(
                    user_id=came.user_id,
                    polite=False,
                    status=came.status,
                    name=came.name,
                    grants=came.grants,
                )
                ctx.room_broadcast(target, codec.encode(announcement), None)
        if left:
            ctx.media.others_left(target)

    def close_session(self, session_id: str, code: int, reason: str, announce: bool) -> None:
        """Another node asked: take this session out of its room and close it."""
        ctx = self.ctx
        session = ctx.sessions.get(session_id)
        if session is None or session.closing:
            return
        log.info("event=closed-by-cluster session=%s code=%d", session_id, code)
        ctx.joining.leave(session, announce=announce)
        ctx.close(session, CloseCode(code), reason)

    def local_members(self) -> dict[str, list[Member]]:
        """Every member on this node, by room."""
        return {
            room.name: [member_of(session) for session in room.members.values()]
            for room in self.ctx.rooms
            if room.members
        }

    def seen(self, room: str, user_id: str, ts_ms: int) -> None:
        """A member who chatted left through another node: one of the room's offline
        members here too."""
        target = self.ctx.rooms.get(room)
        if target is not None and user_id not in target.members:
            target.saw(user_id, ts_ms, self.ctx.offline_on_join)

    def room_ended(self, room: str) -> None:
        """Another node ended the room: this node's members go too."""
        self.ctx.joining.end_room_here(room, None)
