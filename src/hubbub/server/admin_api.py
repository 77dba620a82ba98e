"""HTTP API for an application's backend: mint access tokens, list rooms, remove a
participant, end a room. Every endpoint needs the server API key."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from hubbub.auth import Grant, TokenError, VerificationKeys, mint_token
from hubbub.auth.tokens import (
    DEFAULT_TOKEN_TTL,
    HMAC_ALGORITHM,
    MAX_NAME_LENGTH,
    MAX_TOKEN_TTL,
    parse_grants,
)
from hubbub.broker import Broker, Member
from hubbub.core import Hub, Session
from hubbub.server.http_api import Api, ApiError, integer_schema, query_integer, read_json
from hubbub.store import Store, StoreError

T = TypeVar("T")

DEFAULT_ROOMS_PAGE = 100
"""Rooms in one ``GET /api/rooms`` answer when ``limit`` is left out."""

MAX_ROOMS_PAGE = 1000
"""Most rooms in one ``GET /api/rooms`` answer."""


class TokenRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    user_id: str
    rooms: list[str]
    grants: list[str] | None = None
    name: str | None = None
    ttl: int = DEFAULT_TOKEN_TTL


TOKEN_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["userId", "rooms"],
    "additionalProperties": False,
    "properties": {
        "userId": {"type": "string", "minLength": 1},
        "rooms": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Exact room names, or prefixes ending in '*'",
        },
        "grants": {"type": "array", "items": {"enum": [grant.value for grant in Grant]}},
        "name": {"type": "string", "maxLength": MAX_NAME_LENGTH},
        "ttl": integer_schema(high=MAX_TOKEN_TTL),
    },
}


async def asked_of_cluster(question: Awaitable[T]) -> T:
    """The cluster's answer (the broker's, from Redis), or 503 when it cannot be asked."""
    try:
        return await question
    except OSError as error:  # ConnectionError among them
        raise ApiError(
            503, "cluster-unavailable", "the rest of the cluster cannot be reached"
        ) from error


async def from_store(read: Awaitable[T]) -> T:
    try:
        return await read
    except StoreError:
        raise ApiError(
            503, "store-unavailable", "the store is unavailable; try again later"
        ) from None


def add_routes(
    api: Api,
    hub: Hub,
    keys: VerificationKeys,
    broker: Broker | None = None,
    store: Store | None = None,
) -> None:
    async def everyone_in(room: str) -> list[Member] | None:
        """The room's members cluster-wide; None on a lone node (its rooms are all)."""
        if broker is None:
            return None
        return await asked_of_cluster(broker.room_members(room))

    async def create_token(request: web.Request) -> web.Response:
        secret = keys.by_algorithm.get(HMAC_ALGORITHM)
        if secret is None:
            raise ApiError(
                409,
                "minting-unavailable",
                "this server mints tokens only with a token secret (--token-secret); "
                "tokens for a public key are signed where the private key is",
            )
        try:
            body = msgspec.convert(await read_json(request), TokenRequest)
        except msgspec.ValidationError as exc:
            raise ApiError(400, "bad-request", str(exc)) from None
        limits = hub.limits
        if not 0 < len(body.user_id) <= limits.max_user_id_length or not body.user_id.isprintable():
            raise ApiError(400, "bad-request", "userId is not a usable user id")
        if not 0 < body.ttl <= MAX_TOKEN_TTL:
            raise ApiError(400, "bad-request", f"ttl is 1 to {MAX_TOKEN_TTL} seconds")
        if body.name is not None and not 0 < len(body.name) <= MAX_NAME_LENGTH:
            raise ApiError(400, "bad-request", f"name holds 1 to {MAX_NAME_LENGTH} characters")
        try:
            grants = parse_grants(body.grants) if body.grants is not None else None
        except TokenError as error:
            raise ApiError(400, "bad-request", error.message) from None
        token, expires_at = mint_token(
            secret,
            user_id=body.user_id,
            rooms=body.rooms,
            grants=grants,
            name=body.name,
            ttl=body.ttl,
        )
        return web.json_response({"token": token, "expiresAt": expires_at}, status=201)

    api.route(
        "POST",
        "/api/tokens",
        create_token,
        summary="Mint an access token (HS256, with the server's token secret)",
        request_body=TOKEN_REQUEST_SCHEMA,
        responses={
            "201": {"description": "The token and its expiry (unix seconds)"},
            "409": {"description": "The server has no token secret to sign with"},
        },
    )

    async def list_rooms(request: web.Request) -> web.Response:
        limit = min(query_integer(request, "limit", DEFAULT_ROOMS_PAGE), MAX_ROOMS_PAGE)
        after = request.query.get("after")
        listed = None if broker is None else await asked_of_cluster(broker.rooms(limit + 1, after))
        if listed is not None:
            # A cluster: every node's rooms and members, as Redis has them; the last
            # seq from the store the nodes share. The same from every node.
            shown = listed[:limit]
            seqs: dict[str, int] = {}
            if store is not None and shown:
                seqs = await from_store(store.last_seqs([name for name, _ in shown]))
            body = {
                "rooms": [
                    {
                        "name": name,
                        "participants": [member_view(m) for m in members],
                        "lastSeq": seqs.get(name, 0),
                    }
                    for name, members in shown
                ],
                "next": shown[-1][0] if len(listed) > limit else None,
            }
            return web.json_response(body)
        live = sorted(
            (room for room in hub.rooms if room.members and (after is None or room.name > after)),
            key=lambda room: room.name,
        )
        page = live[:limit]
        rooms = [
            {
                "name": room.name,
                "participants": [
                    participant(user_id, member) for user_id, member in room.members.items()
                ],
                "lastSeq": room.last_seq,
            }
            for room in page
        ]
        more = len(live) > limit
        return web.json_response({"rooms": rooms, "next": page[-1].name if more else None})

    api.route(
        "GET",
        "/api/rooms",
        list_rooms,
        summary="The rooms with members, by name, and their members in the order they joined",
        parameters=[
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": integer_schema(high=MAX_ROOMS_PAGE),
                "description": f"most rooms in the answer (default {DEFAULT_ROOMS_PAGE})",
            },
            {
                "name": "after",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "only rooms whose name sorts after this (code point order)",
            },
        ],
        responses={
            "200": {
                "description": "Rooms by name, each with its participants (and their "
                "status) and last chat sequence number; next: the after of the next "
                "page, null on the last"
            },
            "400": {"description": "A limit that is not an integer from 1 to 2**53 - 1"},
        },
    )

    async def remove_participant(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        user_id = request.match_info["user_id"]
        if not hub.remove_participant(room, user_id):
            # A member on another node this node does not know of (it has no
            # member in that room): the cluster does.
            everyone = await everyone_in(room) or []
            found = next((m for m in everyone if m.user_id == user_id), None)
            if found is None or not hub.remove_participant(room, user_id, remote=found):
                raise ApiError(404, "no-such-participant", "no such user in that room")
        return web.json_response({"removed": user_id})

    api.route(
        "DELETE",
        "/api/rooms/{room}/participants/{user_id}",
        remove_participant,
        summary="Remove a participant; its connection is closed with 4003",
        parameters=[_path_parameter("room"), _path_parameter("user_id")],
        responses={
            "200": {"description": "Removed"},
            "404": {"description": "No such user in that room"},
            "503": {"description": "In a cluster: Redis cannot be reached"},
        },
    )

    async def end_room(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        everyone = await everyone_in(room)
        members = hub.end_room(room)
        if everyone is not None:
            members = max(members, len(everyone))
        if not members:
            raise ApiError(404, "no-such-room", "no room of that name has members")
        return web.json_response({"ended": room, "members": members})

    api.route(
        "DELETE",
        "/api/rooms/{room}",
        end_room,
        summary="End a room; every member's connection is closed with 4004",
        parameters=[_path_parameter("room")],
        responses={
            "200": {"description": "Ended; how many members it had"},
            "404": {"description": "No room of that name has members"},
            "503": {"description": "In a cluster: Redis cannot be reached"},
        },
    )


def member_view(member: Member) -> dict[str, Any]:
    """A room member as the HTTP API shows it, as the cluster lists it."""
    shown: dict[str, Any] = {
        "userId": member.user_id,
        "sessionId": member.session_id,
        "status": member.status,
    }
    if member.name is not None:
        shown["name"] = member.name
    if member.grants is not None:
        shown["grants"] = member.grants
    if member.hidden:
        shown["hidden"] = True
    return shown


def participant(user_id: str, member: Session) -> dict[str, Any]:
    """A room member as the HTTP API shows it."""
    identity = member.identity
    shown: dict[str, Any] = {
        "userId": user_id,
        "sessionId": member.session_id,
        "status": member.status,
    }
    if identity is not None and identity.name is not None:
        shown["name"] = identity.name
    if identity is not None and identity.verified:
        shown["grants"] = sorted(grant.value for grant in identity.grants)
    if member.hidden:
        shown["hidden"] = True
    return shown


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
