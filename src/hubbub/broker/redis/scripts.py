"""The Lua scripts that change what the nodes share atomically (this folder's
``*.lua``), read once, and a wrapper for each whose parameters name the script's
KEYS and ARGV.

A wrapper returns the ``EVALSHA`` command's words, for the pipeline
(:mod:`hubbub.broker.redis.pipeline`) or for redis-py's ``execute_command``. Scripts
are called by their SHA1 only: :data:`ALL` is loaded (``SCRIPT LOAD``) each time a
node connects, Redis having perhaps restarted empty.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from hubbub.broker.redis import wire

Command = tuple[Any, ...]
"""A command's words (str, bytes, int), as :func:`hubbub.broker.redis.resp.pack_command`
and redis-py's ``execute_command`` take them."""


_FOLDER = resources.files(__name__.rpartition(".")[0])


def _lua(name: str) -> str:
    return (_FOLDER / f"{name}.lua").read_text("utf-8")


PARTS = ("room_calls",)
"""The ``.lua`` files of this folder that are parts of scripts, not scripts: each
defines a function the scripts that name it use."""


class Script:
    """One ``<name>.lua`` of this folder, after the parts it uses (:data:`PARTS`)."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, uses: tuple[str, ...] = ()) -> None:
        self.name = name
        self.source = "".join(_lua(part) for part in uses) + _lua(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()
        """What Redis names it by once loaded."""

    def call(self, keys: list[str], args: list[Any]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


async def run(client: aioredis.Redis, command: Command) -> Any:
    """Run a script's command through redis-py (what is not per message)."""
    return await client.execute_command(*command)  # type: ignore[no-untyped-call]


CLAIM = Script("claim", uses=("room_calls",))
RELEASE = Script("release")
REAP = Script("reap")
SYNC = Script("sync")
PLACE_CALL = Script("place_call")
CALL_OVER = Script("call_over")
USER_GONE = Script("user_gone")
UPDATE = Script("update")
LOCATE = Script("locate")
MOVE = Script("move")
TAKE = Script("take", uses=("room_calls",))
MEDIA = Script("media")
MEDIA_ROOM = Script("media_room")
ALL = (
    CLAIM,
    RELEASE,
    REAP,
    SYNC,
    PLACE_CALL,
    CALL_OVER,
    USER_GONE,
    UPDATE,
    LOCATE,
    MOVE,
    TAKE,
    MEDIA,
    MEDIA_ROOM,
)


def claim(
    *,
    members_key: str,
    order_key: str,
    node_rooms_key: str,
    room_names_key: str,
    user_nodes_key: str,
    node_users_key: str,
    media_key: str,
    settings_key: str,
    user_id: str,
    session_id: str,
    info: str,
    replace: bool,
    max_members: int,
    room_channel: str,
    node_channel: str,
    room: str,
    joined: bytes,
    left: bytes,
    node: str,
) -> Command:
    """Answers ``admitted``, ``taken`` or ``full`` (and publishes CLAIMED to
    ``node_channel``); ``joined`` and ``left`` (the ``user-joined`` and the
    replaced member's ``user-left``, or empty) go to the room's other nodes."""
    return CLAIM.call(
        [
            members_key,
            order_key,
            node_rooms_key,
            room_names_key,
            user_nodes_key,
            node_users_key,
            media_key,
            settings_key,
        ],
        [
            user_id,
            session_id,
            info,
            "1" if replace else "0",
            max_members,
            room_channel,
            node_channel,
            room,
            joined,
            left,
            node,
        ],
    )


def release(
    *,
    members_key: str,
    order_key: str,
    room_names_key: str,
    user_id: str,
    session_id: str,
    room_channel: str,
    last_seen: int,
    room: str,
) -> Command:
    """Answers 1 if the entry was that session's (and is gone), else 0. ``last_seen``:
    when the member left, if it chatted in the room (else 0)."""
    return RELEASE.call(
        [members_key, order_key, room_names_key],
        [user_id, session_id, room_channel, last_seen, room],
    )


def update(
    *, members_key: str, user_id: str, session_id: str, info: str, room_channel: str
) -> Command:
    """Answers 1 if the entry was that session's (and now has ``info``), else 0."""
    return UPDATE.call([members_key], [user_id, session_id, info, room_channel])


def reap(*, alive_key: str, node_rooms_key: str, nodes_key: str, dead: str, prefix: str) -> Command:
    """Answers how many members the dead node had, or -1 if it is alive."""
    return REAP.call([alive_key, node_rooms_key, nodes_key], [dead, prefix])


def sync(
    *,
    node_rooms_key: str,
    alive_key: str,
    nodes_key: str,
    node_id: str,
    prefix: str,
    ttl_ms: int,
    node_channel: str,
    want: bytes,
) -> Command:
    """``want``: JSON, room -> [[user id, session id, info]...]. Answers the session
    ids whose user id another session holds now."""
    return SYNC.call(
        [node_rooms_key, alive_key, nodes_key],
        [node_id, prefix, ttl_ms, node_channel, want, wire.WIRE_VERSION],
    )


def place_call(
    *,
    caller_call_key: str,
    callee_call_key: str,
    callee_nodes_key: str,
    call_id: str,
    ttl_ms: int,
    prefix: str,
    users_channel: str,
    ringing: bytes,
) -> Command:
    """Answers a :class:`~hubbub.broker.CallPlacement` value; ``ringing`` (a USER
    publication) goes to ``users_channel`` when the call is placed."""
    return PLACE_CALL.call(
        [caller_call_key, callee_call_key, callee_nodes_key],
        [call_id, ttl_ms, prefix, users_channel, ringing],
    )


def call_over(*, call_keys: list[str], call_id: str) -> Command:
    return CALL_OVER.call(call_keys, [call_id])


def user_gone(
    *,
    user_nodes_key: str,
    node_users_key: str,
    call_key: str,
    node: str,
    user_id: str,
    prefix: str,
) -> Command:
    """Answers 1 if no live node reaches the user any more and its call was told."""
    return USER_GONE.call([user_nodes_key, node_users_key, call_key], [node, user_id, prefix])


def locate(*, session_id: str, prefix: str) -> Command:
    """Answers ``[its id now, 1 if that id's node is alive else 0]``."""
    return LOCATE.call([], [session_id, prefix])


def move(
    *,
    members_key: str,
    moved_key: str,
    user_nodes_key: str,
    node_rooms_key: str,
    node_users_key: str,
    user_id: str,
    old: str,
    new: str,
    new_node: str,
    ttl_ms: int,
    room_channel: str,
    room: str,
) -> Command:
    """Answers 1 if the entry was ``old``'s and now names ``new``, else 0."""
    return MOVE.call(
        [members_key, moved_key, user_nodes_key, node_rooms_key, node_users_key],
        [user_id, old, new, new_node, ttl_ms, room_channel, room],
    )


def take(
    *,
    members_key: str,
    media_key: str,
    settings_key: str,
    room_channel: str,
    session_id: str,
    taken_by: str,
    room: str,
) -> Command:
    """Publishes TAKE, with the room's members and calls, on ``room_channel``."""
    return TAKE.call(
        [members_key, media_key, settings_key], [room_channel, session_id, taken_by, room]
    )


def media(
    *,
    media_key: str,
    settings_key: str,
    version_key: str,
    op: str,
    node: str,
    value: str | int,
    user_id: str,
    default: str,
    mesh_max: int,
    sfu_available: bool,
    back_at: int,
    room: str,
    room_channel: str,
    reason: str,
) -> Command:
    """Answers the version of the room's calls if they changed (and publishes MEDIA
    on ``room_channel``), else 0. ``op``: ``senders``, ``feed``, ``setting``,
    ``done`` (see ``media.lua``)."""
    return MEDIA.call(
        [media_key, settings_key, version_key],
        [
            op,
            node,
            value,
            user_id,
            default,
            mesh_max,
            "1" if sfu_available else "0",
            back_at,
            room,
            room_channel,
            reason,
        ],
    )


def place_media_room(
    *, key: str, node: str, server: str, room_id: str, secret: str, up: list[str]
) -> Command:
    """Answers ``[server, room id, secret]``: the room's placement now."""
    return MEDIA_ROOM.call([key], ["place", node, server, room_id, secret, "\n".join(up)])


def release_media_room(*, key: str, node: str, room_id: str) -> Command:
    """Answers 1 when no node uses the placement any more, else 0."""
    return MEDIA_ROOM.call([key], ["release", node, room_id])


def media_orphans(*, orphans_key: str, node: str, prefix: str) -> Command:
    """Answers ``[room, server, room id, secret, ...]``: the placements no node uses."""
    return MEDIA_ROOM.call([orphans_key], ["orphans", node, prefix])


def take_media_orphan(*, key: str, orphans_key: str, node: str, room: str, room_id: str) -> Command:
    """Answers 1 when the orphaned placement is this node's to remove, else 0."""
    return MEDIA_ROOM.call([key, orphans_key], ["take", node, room_id, room])
