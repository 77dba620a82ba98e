"""HTTP API for reaching users: notifications, stored and delivered live.

A notification is stored first (so that a user who is offline gets it on their
next connect), then sent to every connection of the user, wherever they are.
Every endpoint needs the server API key.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from hubbub.core import Hub
from hubbub.protocol.messages import PositiveInt
from hubbub.server.http_api import Api, ApiError, integer_schema, query_integer, read_json
from hubbub.store import Notification, Store, StoreError

MAX_KEY_LENGTH = 128
"""Longest ``key`` a backend may give a notification, in characters."""


class NotificationRequest(msgspec.Struct, forbid_unknown_fields=True):
    title: str | None = None
    body: str | None = None
    data: Any = None
    key: str | None = None


class ReadRequest(msgspec.Struct, forbid_unknown_fields=True):
    ids: list[PositiveInt]


NOTIFICATION_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string"},
        "body": {"type": "string"},
        "data": {"description": "Any JSON value, handed to the client as it is"},
        "key": {
            "type": "string",
            "maxLength": MAX_KEY_LENGTH,
            "description": "The backend's own id for it: sent again for the same user, "
            "nothing new is stored or delivered",
        },
    },
}

NOTIFICATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "ts": {"type": "integer", "description": "Milliseconds since the Unix epoch"},
        "title": {"type": "string"},
        "body": {"type": "string"},
        "data": {},
    },
}


def add_routes(api: Api, hub: Hub, store: Store) -> None:
    limits = hub.limits

    def user_of(request: web.Request) -> str:
        user_id = request.match_info["user_id"]
        if not 0 < len(user_id) <= limits.max_user_id_length or not user_id.isprintable():
            raise ApiError(400, "bad-request", "that is not a usable user id")
        return user_id

    async def post_notification(request: web.Request) -> web.Response:
        user_id = user_of(request)
        try:
            body = msgspec.convert(await read_json(request), NotificationRequest)
        except msgspec.ValidationError as exc:
            raise ApiError(400, "bad-request", str(exc)) from None
        if body.key is not None and not 0 < len(body.key) <= MAX_KEY_LENGTH:
            raise ApiError(400, "bad-request", f"key holds 1 to {MAX_KEY_LENGTH} characters")
        payload = {
            name: value
            for name, value in (("title", body.title), ("body", body.body), ("data", body.data))
            if value is not None
        }
        if not payload:
            raise ApiError(400, "bad-request", "a notification has a title, a body or data")
        size = len(msgspec.json.encode(payload))
        if size > limits.max_notification_bytes:
            raise ApiError(
                413,
                "too-large",
                f"a notification is at most {limits.max_notification_bytes} bytes of JSON",
            )
        try:
            stored = await store.add_notification(
                user_id, payload, int(time.time() * 1000), key=body.key
            )
        except StoreError:
            raise _store_unavailable() from None
        connections = 0 if stored.duplicate else hub.notify(stored)
        reply = {**_entry(stored), "duplicate": stored.duplicate, "connections": connections}
        return web.json_response(reply, status=200 if stored.duplicate else 201)

    async def get_notifications(request: web.Request) -> web.Response:
        user_id = user_of(request)
        most = limits.max_notification_page
        limit = min(query_integer(request, "limit", most), most)
        try:
            found = await store.unread_notifications(user_id, limit + 1)
        except StoreError:
            raise _store_unavailable() from None
        return web.json_response(
            {"notifications": [_entry(n) for n in found[:limit]], "more": len(found) > limit}
        )

    async def mark_read(request: web.Request) -> web.Response:
        user_id = user_of(request)
        try:
            body = msgspec.convert(await read_json(request), ReadRequest)
        except msgspec.ValidationError as exc:
            raise ApiError(400, "bad-request", str(exc)) from None
        ids = list(dict.fromkeys(body.ids))
        if not 0 < len(ids) <= limits.max_notification_page:
            raise ApiError(400, "bad-request", f"ids holds 1 to {limits.max_notification_page} ids")
        try:
            marked = await store.mark_read(user_id, ids, int(time.time() * 1000))
        except StoreError:
            raise _store_unavailable() from None
        hub.notifications_read(user_id, marked)
        return web.json_response({"read": marked})

    user = _path_parameter("user_id")
    api.route(
        "POST",
        "/api/users/{user_id}/notifications",
        post_notification,
        summary="Notify a user: stored unread, and delivered live to all its connections",
        parameters=[user],
        request_body=NOTIFICATION_REQUEST_SCHEMA,
        responses={
            "201": {
                "description": "Stored (id, ts), and sent to the user's connections here "
                "(connections: how many)",
                "content": {"application/json": {"schema": NOTIFICATION_SCHEMA}},
            },
            "200": {"description": "A notification with this key was stored before: that one"},
            "413": {"description": "Larger than max_notification_bytes"},
            "503": {"description": "The store is unavailable; nothing was stored"},
        },
    )
    api.route(
        "GET",
        "/api/users/{user_id}/notifications",
        get_notifications,
        summary="A user's unread notifications, oldest first",
        parameters=[
            user,
            {"name": "limit", "in": "query", "required": False, "schema": integer_schema()},
        ],
        responses={
            "200": {"description": "notifications, and whether more wait"},
            "400": {"description": "A limit that is not an integer from 1 to 2**53 - 1"},
        },
    )
    api.route(
        "POST",
        "/api/users/{user_id}/notifications/read",
        mark_read,
        summary="Mark a user's notifications read; its connections are told",
        parameters=[user],
        request_body={
            "type": "object",
            "required": ["ids"],
            "additionalProperties": False,
            "properties": {"ids": {"type": "array", "items": integer_schema()}},
        },
        responses={
            "200": {"description": "read: the ids that were unread"},
            "400": {
                "description": "ids is not a list of 1 to max_notification_page integers "
                "from 1 to 2**53 - 1"
            },
        },
    )


def _entry(notification: Notification) -> dict[str, Any]:
    return {"id": notification.id, "ts": notification.ts, **notification.payload}


def _store_unavailable() -> ApiError:
    return ApiError(503, "store-unavailable", "the store is unavailable; try again later")


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
