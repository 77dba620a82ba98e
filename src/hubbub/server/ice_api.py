"""``GET /api/ice-servers``: the STUN and TURN servers a member of this server is
given, without joining a room: what the web app's "Test my connection" checks
before a join (docs/deploy.md#troubleshooting).

In token mode it takes the access token a join would take, as
``Authorization: Bearer TOKEN``, and mints the TURN credentials for the token's
subject, as a join would; a token that could not join gets the join's refusal
code, with 401 (403 for a token without the ``join`` grant). In open mode it needs
nothing: anyone who may join may ask.
"""

from __future__ import annotations

import secrets

import msgspec
from aiohttp import web

from hubbub.auth.admission import Admission, AuthMode
from hubbub.auth.grants import Grant
from hubbub.auth.tokens import TokenError
from hubbub.auth.turn import IceServerConfig
from hubbub.protocol.errors import ErrorCode
from hubbub.server.http_api import Api, ApiError

ICE_SERVERS_SCHEMA = {
    "type": "object",
    "required": ["iceServers", "iceServersExpireAt"],
    "properties": {
        "iceServers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["urls"],
                "properties": {
                    "urls": {"type": "array", "items": {"type": "string"}},
                    "username": {"type": "string"},
                    "credential": {"type": "string"},
                },
            },
        },
        "iceServersExpireAt": {"type": ["integer", "null"]},
    },
}


def add_routes(api: Api, admission: Admission, ice_servers: IceServerConfig) -> None:
    async def handle(request: web.Request) -> web.Response:
        user_id = _user_of(request, admission)
        servers, expires_at = ice_servers.for_user(user_id, request.headers.get("Host"))
        return web.json_response(
            {"iceServers": msgspec.to_builtins(servers), "iceServersExpireAt": expires_at},
            headers={"Cache-Control": "no-store"},
        )

    api.route(
        "GET",
        "/api/ice-servers",
        handle,
        api_key=False,
        summary="The STUN and TURN servers a member is given (in token mode, for the "
        "access token sent as 'Authorization: Bearer TOKEN')",
        responses={
            "200": {
                "description": "The ICE servers, and when their TURN credentials expire",
                "content": {"application/json": {"schema": ICE_SERVERS_SCHEMA}},
            }
        },
    )


def _user_of(request: web.Request, admission: Admission) -> str:
    """Whom the TURN credentials are for: the token's subject, or (open mode, no
    token) a name made up for the check."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        if admission.mode is AuthMode.TOKEN:
            raise ApiError(
                401,
                ErrorCode.TOKEN_REQUIRED,
                "send an access token as 'Authorization: Bearer TOKEN'",
            )
        return f"connection-test-{secrets.token_hex(4)}"
    try:
        identity = admission.identify(token)
    except TokenError as error:
        raise ApiError(401, error.code, error.message) from None
    if not identity.may(Grant.JOIN):
        raise ApiError(403, ErrorCode.FORBIDDEN, "the token does not grant joining")
    return identity.user_id or f"connection-test-{secrets.token_hex(4)}"
