"""Each room's calls across the cluster (:class:`~hubbub.broker.SharedMedia`): what
this node says of them goes to ``media.lua``, which decides the room's mode once for
every node and publishes each change on the room's channel (MEDIA), where every node
with members there hears it, this one included.

Where each room is on the media servers (:class:`RedisPlacements`) is asked through
redis-py, once for a room, not per message (``media_room.lua``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hubbub.broker import ModeRule
from hubbub.broker.redis import keys, scripts, wire
from hubbub.broker.redis.node import Node
from hubbub.broker.redis.pipeline import Op
from hubbub.media.modes import BACK_TO_MESH_AT, MediaSetting
from hubbub.media.placements import Placement
from hubbub.protocol.messages import MediaFeed


class RoomCalls:
    """The :class:`~hubbub.broker.Membership` methods for calls through the media
    server."""

    __slots__ = ("_node", "_rule")

    def __init__(self, node: Node) -> None:
        self._node = node
        self._rule: ModeRule | None = None
        """The rule this node last gave: every node gives the same."""

    def count_senders(self, room: str, senders: int, rule: ModeRule | None, reason: str) -> None:
        if rule is not None:
            self._rule = rule
        self._send(room, "senders", senders, "", rule, reason)

    def share_feed(self, room: str, user_id: str, feed: MediaFeed | None) -> None:
        value = "" if feed is None else wire.encode_feed(feed)
        self._send(room, "feed", value, user_id, None, "auto")  # the senders come next

    def set_media_setting(self, room: str, setting: MediaSetting | None, rule: ModeRule) -> None:
        self._rule = rule
        self._send(room, "setting", setting.value if setting else "", "", rule, "setting")

    def media_done(self, room: str, handed_to: str | None = None) -> None:
        to = None if handed_to is None else wire.node_of(handed_to)
        if to is None:
            self._send(room, "done", "", "", self._rule, "auto")
        else:
            self._send(room, "handed", to, "", None, "auto")

    def _send(
        self,
        room: str,
        op: str,
        value: str | int,
        user_id: str,
        rule: ModeRule | None,
        reason: str,
    ) -> None:
        """``rule`` None: the mode stays as it is."""
        command = scripts.media(
            media_key=keys.media(room),
            settings_key=keys.MEDIA_SETTINGS,
            version_key=keys.MEDIA_VERSION,
            op=op,
            node=self._node.id,
            value=value,
            user_id=user_id,
            default="" if rule is None else rule.default.value,
            mesh_max=0 if rule is None else rule.mesh_max,
            sfu_available=rule is not None and rule.sfu_available,
            back_at=BACK_TO_MESH_AT,
            room=room,
            room_channel=keys.room_channel(room),
            reason=reason,
        )
        self._node.pipeline.send(Op(*command))

    def on_changed(self, room: str, changed: wire.MediaChanged) -> None:
        events = self._node.events
        if events is not None:
            events.media_changed(room, changed.media)


class RedisPlacements:
    """The :class:`~hubbub.media.placements.Placements` of a cluster node."""

    def __init__(self, client: aioredis.Redis, node_id: str) -> None:
        self._client = client
        self._node_id = node_id

    async def place(self, room: str, proposed: Placement, up: Collection[str]) -> Placement:
        command = scripts.place_media_room(
            key=keys.media_room(room),
            node=self._node_id,
            server=proposed.server,
            room_id=proposed.room_id,
            secret=proposed.secret,
            up=sorted(up),
        )
        server, room_id, secret = await self._run(command)
        return Placement(server.decode(), room_id.decode(), secret.decode())

    async def release(self, room: str, placement: Placement) -> bool:
        command = scripts.release_media_room(
            key=keys.media_room(room), node=self._node_id, room_id=placement.room_id
        )
        return bool(await self._run(command))

    async def orphans(self) -> list[tuple[str, Placement]]:
        command = scripts.media_orphans(
            orphans_key=keys.MEDIA_ORPHANS, node=self._node_id, prefix=keys.PREFIX
        )
        found = [value.decode() for value in await self._run(command)]
        return [
            (found[i], Placement(found[i + 1], found[i + 2], found[i + 3]))
            for i in range(0, len(found), 4)
        ]

    async def take_orphan(self, room: str, placement: Placement) -> bool:
        command = scripts.take_media_orphan(
            key=keys.media_room(room),
            orphans_key=keys.MEDIA_ORPHANS,
            node=self._node_id,
            room=room,
            room_id=placement.room_id,
        )
        return bool(await self._run(command))

    async def _run(self, command: scripts.Command) -> Any:
        try:
            return await scripts.run(self._client, command)
        except RedisError as error:
            raise ConnectionError(f"Redis: {error}") from error
