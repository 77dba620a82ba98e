"""The names of what the nodes share in Redis: channels and keys.

The Lua scripts compute some of these themselves from :data:`PREFIX` (a dead node's
rooms, a user's nodes); the two must agree.
"""

from __future__ import annotations

PREFIX = "hubbub:"

USERS_CHANNEL = f"{PREFIX}u"
"""Messages to a user's connections: every node listens and delivers to its own."""

ROOM_CHANNEL_PREFIX = f"{PREFIX}r:"

NODES = f"{PREFIX}nodes"
"""Set: every node that registered (and is not reaped yet)."""

ROOM_NAMES = f"{PREFIX}roomnames"
"""Sorted set, every score 0 (so in name order): the rooms that have members."""


def room_channel(room: str) -> str:
    """Room messages, membership events, the room's end."""
    return f"{ROOM_CHANNEL_PREFIX}{room}"


def node_channel(node: str) -> str:
    """What is for one node: its sessions' messages, answers, requests."""
    return f"{PREFIX}n:{node}"


def members(room: str) -> str:
    """Hash: user id -> entry (see :func:`hubbub.broker.redis.wire.decode_entry`)."""
    return f"{PREFIX}members:{room}"


def order(room: str) -> str:
    """String: the room's join counter."""
    return f"{PREFIX}order:{room}"


def alive(node: str) -> str:
    """String with an expiry, refreshed by the live node."""
    return f"{PREFIX}alive:{node}"


def node_rooms(node: str) -> str:
    """Set: the rooms where that node has members."""
    return f"{PREFIX}rooms:{node}"


def user_nodes(user_id: str) -> str:
    """Hash: node -> 1, the nodes where that user has connections."""
    return f"{PREFIX}conn:{user_id}"


def node_users(node: str) -> str:
    """Set: the users with connections on that node."""
    return f"{PREFIX}users:{node}"


def call(user_id: str) -> str:
    """String: the call that user is in, with an expiry refreshed by the node where
    the call lives (the caller's)."""
    return f"{PREFIX}call:{user_id}"


def moved(session_id: str) -> str:
    """String with an expiry: the id a session that moved to another node has there."""
    return f"{PREFIX}moved:{session_id}"


MEDIA_SETTINGS = f"{PREFIX}mediasettings"
"""Hash: room -> the mode a backend set for it (kept whether it has members or not)."""

MEDIA_VERSION = f"{PREFIX}mediaversion"
"""String: the last version given to a room's calls (see ``media.lua``)."""


def media(room: str) -> str:
    """Hash: a room's calls while it has members (see ``media.lua``)."""
    return f"{PREFIX}media:{room}"


def media_room(room: str) -> str:
    """Hash: where a room is on the media servers, and which nodes use it there."""
    return f"{PREFIX}mediaroom:{room}"


MEDIA_ORPHANS = f"{PREFIX}mediaorphans"
"""Set: the rooms whose placement on the media servers a dead node used
(``reap.lua``); those no node uses any more are removed there by a live node
(``media_room.lua``)."""
