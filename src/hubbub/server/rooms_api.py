"""HTTP API for an application's backend about rooms: what is in them, their
history, and messages from the backend to everyone in one. Every endpoint needs
the server API key."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from hubbub.broker import Broker
from hubbub.core import Hub
from hubbub.media.modes import MediaSetting
from hubbub.protocol.messages import ChatEntry
from hubbub.server.admin_api import asked_of_cluster, member_view, participant
from hubbub.server.http_api import Api, ApiError, integer_schema, query_integer, read_json
from hubbub.settings import ServerSettings
from hubbub.store import Store, StoredChat, StoreError

MAX_EVENT_LENGTH = 64
"""Longest ``event`` name of a broadcast, in characters."""

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BroadcastRequest(msgspec.Struct, forbid_unknown_fields=True):
    data: Any
    event: str | None = None


BROADCAST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "additionalProperties": False,
    "properties": {
        "data": {"description": "Any JSON value; clients receive it as it is"},
        "event": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_EVENT_LENGTH,
            "description": "A name for the kind of message, for clients to tell them apart",
        },
    },
}

_MEMBER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["userId", "sessionId", "status"],
    "properties": {
        "userId": {"type": "string"},
        "sessionId": {"type": "string"},
        "status": {"enum": ["online", "away", "busy"]},
        "name": {"type": "string"},
        "grants": {"type": "array", "items": {"type": "string"}},
        "hidden": {"type": "boolean"},
    },
}

_OFFLINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["userId", "lastSeen"],
    "properties": {"userId": {"type": "string"}, "lastSeen": {"type": "integer"}},
}

_CHAT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "seq", "ts", "userId", "message"],
    "properties": {
        "id": {"type": "string"},
        "seq": {"type": "integer"},
        "ts": {"type": "integer"},
        "userId": {"type": "string"},
        "message": {"type": "string"},
        "clientId": {"type": "string"},
    },
}


class MediaModeRequest(msgspec.Struct, forbid_unknown_fields=True):
    mode: MediaSetting | None


_MEDIA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["room", "mode", "setting"],
    "properties": {
        "room": {"type": "string"},
        "mode": {"enum": ["mesh", "sfu"], "description": "How the room's calls go now"},
        "setting": {
            "enum": ["auto", "mesh", "sfu"],
            "description": "What the room's mode is set to (the server's --media-mode "
            "unless a backend set the room's own)",
        },
        "server": {"type": "string", "description": "The media server that holds the room"},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def add_routes(
    api: Api,
    hub: Hub,
    store: Store,
    settings: ServerSettings,
    broker: Broker | None = None,
    media_server_of: Callable[[str], str | None] = lambda room: None,
) -> None:
    """``broker``: the cluster's (None on a lone node), whose rooms and members every
    node lists alike; ``media_server_of``: the media server that holds a room."""
    limits = settings.limits

    def room_name(request: web.Request) -> str:
        name = request.match_info["room"]
        if not name or len(name) > limits.max_room_name_length or _CONTROL_CHARACTERS.search(name):
            raise ApiError(400, "bad-request", "not a room name")
        return name

    async def stored(work: Any) -> Any:
        try:
            return await work
        except StoreError:
            raise ApiError(
                503, "store-unavailable", "the store is unavailable; try again later"
            ) from None

    # -- POST /api/rooms/{room}/broadcast ----------------------------------------

    async def broadcast(request: web.Request) -> web.Response:
        room = room_name(request)
        body = await read_json(request, max_bytes=limits.max_frame_bytes)
        try:
            message = msgspec.convert(body, BroadcastRequest)
        except msgspec.ValidationError as exc:
            raise ApiError(400, "bad-request", str(exc)) from None
        event = message.event
        if event is not None and (
            not 0 < len(event) <= MAX_EVENT_LENGTH or _CONTROL_CHARACTERS.search(event)
        ):
            raise ApiError(
                400, "bad-request", f"event holds 1 to {MAX_EVENT_LENGTH} printable characters"
            )
        ts = hub.broadcast(room, msgspec.json.encode(message.data), event)
        live = hub.rooms.get(room)
        return web.json_response(
            {"room": room, "ts": ts, "members": len(live.members) if live else 0}
        )

    api.route(
        "POST",
        "/api/rooms/{room}/broadcast",
        broadcast,
        summary="Send a message to everyone in a room, as broadcast (not stored)",
        parameters=[_path_parameter("room")],
        request_body=BROADCAST_SCHEMA,
        responses={
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "room": {"type": "string"},
                        "ts": {"type": "integer"},
                        "members": {"type": "integer"},
                    },
                },
                "Sent; when, and to how many members connected to this server",
            ),
            "400": {"description": "Not a room name, or a body that is not as described"},
            "413": {"description": "A body over max_frame_bytes"},
        },
    )

    # -- GET /api/rooms/{room} ---------------------------------------------------

    async def show_room(request: web.Request) -> web.Response:
        name = room_name(request)
        live = hub.rooms.get(name)
        members: list[dict[str, Any]] = []
        last_seq = 0
        offline: list[tuple[str, int]]
        if broker is not None:
            # A cluster: the members on every node, as Redis has them, and the room's
            # history and offline members from the store the nodes share.
            everyone = await asked_of_cluster(broker.room_members(name)) or []
            members = [member_view(member) for member in everyone]
            here = {member.user_id for member in everyone}
            last_seq = (await stored(store.room_state(name, 0))).last_seq
            seen = await stored(store.room_users(name, settings.offline_on_join + len(here)))
            offline = [(uid, ts) for uid, ts in seen if uid not in here]
            offline = offline[: settings.offline_on_join]
        elif live is not None and not live.loading:
            members = [participant(user_id, member) for user_id, member in live.members.items()]
            last_seq = live.last_seq
            offline = live.offline(settings.offline_on_join)
        else:
            state = await stored(store.room_state(name, 0))
            last_seq = state.last_seq
            offline = await stored(store.room_users(name, settings.offline_on_join))
        if not members and not offline and not last_seq:
            raise ApiError(404, "no-such-room", "no room of that name has members or chat")
        return web.json_response(
            {
                "room": name,
                "lastSeq": last_seq,
                "members": members,
                "offline": [{"userId": uid, "lastSeen": ts} for uid, ts in offline],
            }
        )

    api.route(
        "GET",
        "/api/rooms/{room}",
        show_room,
        summary="A room's members with their status, and its offline members",
        parameters=[_path_parameter("room")],
        responses={
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "room": {"type": "string"},
                        "lastSeq": {"type": "integer"},
                        "members": {"type": "array", "items": _MEMBER_SCHEMA},
                        "offline": {"type": "array", "items": _OFFLINE_SCHEMA},
                    },
                },
                "The room",
            ),
            "404": {"description": "No room of that name has members or chat"},
            "503": {"description": "The store is unavailable"},
        },
    )

    # -- GET and PUT /api/rooms/{room}/media ----------------------------------------

    def media_state(name: str) -> dict[str, Any]:
        state: dict[str, Any] = {
            "room": name,
            "mode": hub.media.mode_of(name).value,
            "setting": hub.media.setting_of(name).value,
        }
        server = media_server_of(name)
        if server is not None:
            state["server"] = server
        return state

    async def show_media(request: web.Request) -> web.Response:
        return web.json_response(media_state(room_name(request)))

    async def set_media(request: web.Request) -> web.Response:
        name = room_name(request)
        body = await read_json(request, max_bytes=limits.max_frame_bytes)
        try:
            asked = msgspec.convert(body, MediaModeRequest)
        except msgspec.ValidationError as exc:
            raise ApiError(400, "bad-request", str(exc)) from None
        if asked.mode is MediaSetting.SFU and not hub.media.requests.available:
            raise ApiError(409, "no-media-server", "this server has no media server (--janus-url)")
        hub.set_media_mode(name, asked.mode)
        return web.json_response(media_state(name))

    api.route(
        "GET",
        "/api/rooms/{room}/media",
        show_media,
        summary="How a room's calls go: peer to peer (mesh) or through the media server (sfu)",
        parameters=[_path_parameter("room")],
        responses={"200": _json(_MEDIA_SCHEMA, "The room's mode and setting")},
    )
    api.route(
        "PUT",
        "/api/rooms/{room}/media",
        set_media,
        summary="Set a room's mode: auto, mesh or sfu (null: back to the server's default)",
        parameters=[_path_parameter("room")],
        request_body={
            "type": "object",
            "required": ["mode"],
            "additionalProperties": False,
            "properties": {"mode": {"enum": ["auto", "mesh", "sfu", None]}},
        },
        responses={
            "200": _json(_MEDIA_SCHEMA, "Set; the room's members were told if it changed"),
            "400": {"description": "Not a room name, or not a mode"},
            "409": {"description": "sfu, on a server without a media server"},
        },
    )

    # -- GET /api/rooms/{room}/messages ------------------------------------------

    async def messages(request: web.Request) -> web.Response:
        name = room_name(request)
        before = query_integer(request, "beforeSeq", None)
        limit = query_integer(request, "limit", limits.max_history_page)
        found = await stored(store.history(name, before, min(limit, limits.max_history_page)))
        body = {"room": name, "messages": [_entry(m) for m in found]}
        return web.Response(body=msgspec.json.encode(body), content_type="application/json")

    api.route(
        "GET",
        "/api/rooms/{room}/messages",
        messages,
        summary="A page of a room's stored chat, oldest first, as history gives it",
        parameters=[
            _path_parameter("room"),
            _query_parameter("beforeSeq", integer_schema(), "only messages with a lower seq"),
            _query_parameter(
                "limit", integer_schema(), "most messages (default and most: max_history_page)"
            ),
        ],
        responses={
            "200": _json(
                {
                    "type": "object",
                    "properties": {
                        "room": {"type": "string"},
                        "messages": {"type": "array", "items": _CHAT_SCHEMA},
                    },
                },
                "The messages just before beforeSeq (the newest without it), oldest first",
            ),
            "400": {
                "description": "Not a room name, or a beforeSeq or limit that is not an "
                "integer from 1 to 2**53 - 1"
            },
            "503": {"description": "The store is unavailable"},
        },
    )


def _entry(message: StoredChat) -> ChatEntry:
    return ChatEntry(
        id=message.id,
        seq=message.seq,
        ts=message.ts,
        user_id=message.user_id,
        message=message.text,
        client_id=message.client_id,
    )
