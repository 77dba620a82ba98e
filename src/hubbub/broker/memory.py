"""The in-memory twins: the broker and the membership of one process, with no
other node to reach. Every publication is delivered at once, in-process; every
claim and call placement is answered at once, from this process's own truth."""

from __future__ import annotations

from dataclasses import dataclass, field

from hubbub import randomness
from hubbub.broker import (
    CallPlacement,
    CallRoute,
    ChatRun,
    ClaimOutcome,
    ClaimResult,
    ClusterStatus,
    Delivery,
    Member,
    MembershipEvents,
    ModeRule,
    SharedMedia,
)
from hubbub.media.modes import MediaSetting, Mode, next_mode
from hubbub.protocol.messages import MediaFeed


class MemoryBroker:
    """Delivers every publication synchronously to the one attached hub."""

    __slots__ = ("_delivery",)

    def __init__(self) -> None:
        self._delivery: Delivery | None = None

    def attach(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def new_session_id(self) -> str:
        return randomness.token_urlsafe(12)

    def publish_to_room(self, room: str, payload: bytes, exclude: str | None = None) -> None:
        if self._delivery is not None:
            self._delivery.deliver_to_room(room, payload, exclude)

    def publish_chat(self, room: str, run: ChatRun) -> None:
        if self._delivery is not None:
            self._delivery.deliver_chat(room, run)

    def publish_to_session(self, session_id: str, payload: bytes) -> None:
        if self._delivery is not None:
            self._delivery.deliver_to_session(session_id, payload)

    def lag_seconds(self) -> float:
        return 0.0  # delivered inside publish

    def publish_to_user(self, user_id: str, payload: bytes, exclude: str | None = None) -> None:
        if self._delivery is not None:
            self._delivery.deliver_to_user(user_id, payload, exclude)

    # -- lifecycle, health, metrics: nothing to join, nothing to lose -------------

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def health(self) -> bool:
        return True

    def status(self) -> ClusterStatus | None:
        return None

    async def room_members(self, room: str) -> list[Member] | None:
        return None

    async def rooms(
        self, limit: int, after: str | None = None
    ) -> list[tuple[str, list[Member]]] | None:
        return None


class LocalMembership:
    """Who is in which room, who is connected, who is in a call, on a lone node:
    the whole truth is here, and every question is answered before the call that
    asked it returns."""

    __slots__ = (
        "_calls",
        "_events",
        "_in_call",
        "_media_settings",
        "_media_version",
        "_rooms",
        "_users_here",
    )

    def __init__(self) -> None:
        self._events: MembershipEvents | None = None
        self._rooms: dict[str, dict[str, Member]] = {}
        """room -> user id -> member, in join order."""
        self._users_here: set[str] = set()
        self._in_call: dict[str, str] = {}
        """user id -> the call it is in (ringing or talking)."""
        self._calls: dict[str, _RoomCalls] = {}
        """room -> its calls, while it has members."""
        self._media_settings: dict[str, MediaSetting] = {}
        self._media_version = 0

    def attach_members(self, events: MembershipEvents) -> None:
        self._events = events

    def new_session_id(self) -> str:
        return randomness.token_urlsafe(12)

    def claim(
        self,
        room: str,
        member: Member,
        *,
        replace: bool,
        max_members: int,
        joined: bytes | None = None,
        left: bytes | None = None,
    ) -> None:
        members = self._rooms.setdefault(room, {})
        present = members.get(member.user_id)
        replaced: Member | None = None
        if present is not None and present.session_id != member.session_id:
            if not replace:
                self._answer(member, ClaimResult(ClaimOutcome.TAKEN, []), room)
                return
            replaced = present
            del members[member.user_id]
        if replaced is None and len(members) >= max_members:
            self._answer(member, ClaimResult(ClaimOutcome.FULL, []), room)
            return
        members[member.user_id] = member
        calls = self._calls.get(room)
        media = None if calls is None else self._shared(room, calls, "auto")
        result = ClaimResult(ClaimOutcome.ADMITTED, list(members.values()), replaced, media)
        self._answer(member, result, room)

    def _answer(self, member: Member, result: ClaimResult, room: str) -> None:
        if self._events is not None:
            self._events.claim_answered(member.session_id, result)

    def release(self, room: str, member: Member, last_seen: int | None = None) -> None:
        members = self._rooms.get(room)
        if members is None:
            return
        present = members.get(member.user_id)
        if present is not None and present.session_id == member.session_id:
            del members[member.user_id]
            if not members:
                del self._rooms[room]

    def update(self, room: str, member: Member) -> None:
        members = self._rooms.get(room)
        present = None if members is None else members.get(member.user_id)
        if members is not None and present is not None and present.session_id == member.session_id:
            members[member.user_id] = member

    def remote_member(self, room: str, user_id: str) -> Member | None:
        return None  # no other node

    def remote_members(self, room: str) -> list[Member]:
        return []

    def close_remote(self, member: Member, code: int, reason: str, announce: bool) -> None:
        pass  # every member is local: the hub closes it itself

    def end_room_elsewhere(self, room: str) -> None:
        pass

    def user_here(self, user_id: str, here: bool) -> None:
        if here:
            self._users_here.add(user_id)
        else:
            self._users_here.discard(user_id)

    def connected_elsewhere(self, user_id: str) -> bool:
        return False

    def place_call(self, call_id: str, caller: str, callee: str, ringing: bytes) -> None:
        in_call = self._in_call
        if caller in in_call:
            outcome = CallPlacement.ALREADY_IN_CALL
        elif callee in in_call:
            outcome = CallPlacement.BUSY
        elif callee not in self._users_here:
            outcome = CallPlacement.UNAVAILABLE
        else:
            outcome = CallPlacement.PLACED
            in_call[caller] = in_call[callee] = call_id
        if self._events is not None:
            self._events.call_placed(call_id, outcome)

    def call_over(self, call_id: str, caller: str, callee: str) -> None:
        for user_id in (caller, callee):
            if self._in_call.get(user_id) == call_id:
                del self._in_call[user_id]

    def call_move(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: str | int | None,
        room: str | None = None,
    ) -> CallRoute:
        return CallRoute.HERE  # every call is this node's

    # -- calls through the media server: decided here, at once ------------------------

    def count_senders(self, room: str, senders: int, rule: ModeRule | None, reason: str) -> None:
        calls = self._calls.get(room)
        if calls is None:
            calls = self._calls[room] = _RoomCalls()
        calls.senders = senders
        if rule is not None:
            self._decide(room, calls, rule, reason, changed=False)

    def share_feed(self, room: str, user_id: str, feed: MediaFeed | None) -> None:
        calls = self._calls.get(room)
        if calls is None:
            calls = self._calls[room] = _RoomCalls()
        before = calls.feeds.get(user_id)
        if feed is None:
            calls.feeds.pop(user_id, None)
        else:
            calls.feeds[user_id] = feed
        if before != feed:
            self._changed(room, calls, "auto")

    def set_media_setting(self, room: str, setting: MediaSetting | None, rule: ModeRule) -> None:
        before = self._media_settings.get(room)
        if setting is None:
            self._media_settings.pop(room, None)
        else:
            self._media_settings[room] = setting
        calls = self._calls.get(room)
        if calls is not None:
            self._decide(room, calls, rule, "setting", changed=before != setting)

    def media_done(self, room: str, handed_to: str | None = None) -> None:
        if handed_to is None:  # (a lone node hands no session to another)
            self._calls.pop(room, None)

    def _decide(
        self, room: str, calls: _RoomCalls, rule: ModeRule, reason: str, *, changed: bool
    ) -> None:
        mode = next_mode(
            self._media_settings.get(room, rule.default),
            calls.mode,
            calls.senders,
            rule.mesh_max,
            sfu_available=rule.sfu_available,
        )
        if mode is not calls.mode:
            calls.mode = mode
            changed = True
        if changed:
            self._changed(room, calls, reason)

    def _changed(self, room: str, calls: _RoomCalls, reason: str) -> None:
        self._media_version += 1
        calls.version = self._media_version
        if self._events is not None:
            self._events.media_changed(room, self._shared(room, calls, reason))

    def _shared(self, room: str, calls: _RoomCalls, reason: str) -> SharedMedia:
        return SharedMedia(
            calls.version,
            calls.mode,
            list(calls.feeds.values()),
            self._media_settings.get(room),
            reason,
        )

    # -- sessions handed between nodes: there is no other node --------------------------

    def find_session(self, session_id: str, resume_token: str, asked_by: str) -> bool:
        return False  # every session is this node's

    def take_session(self, room: str, session_id: str, taken_by: str) -> None:
        pass  # pragma: no cover - no session is ever found elsewhere

    def offer_session(
        self, asked_by: str, session_id: str, room: str = "", user_id: str = "", moved_to: str = ""
    ) -> None:
        pass  # pragma: no cover - never asked: no other node

    def give_session(self, session_id: str, resume_token: str, room: str, user_id: str) -> bool:
        return False  # no other node to take it


@dataclass
class _RoomCalls:
    """One room's calls on a lone node."""

    mode: Mode = Mode.MESH
    senders: int = 0
    feeds: dict[str, MediaFeed] = field(default_factory=dict)
    version: int = 0
