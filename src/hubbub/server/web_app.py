"""What the web app at ``/`` asks the server before it shows its join screen.

The page is static; how it gets into a room is not: in open mode anyone picks a
name, in token mode it needs a token, from an invite link's fragment or from the
application's backend (``token_endpoint``). ``GET /api/web-app`` says which, and
needs no key: it tells nothing a refused join would not.
"""

from __future__ import annotations

from aiohttp import web

from hubbub.server.http_api import Api
from hubbub.settings import ServerSettings

WEB_APP_SCHEMA = {
    "type": "object",
    "required": ["auth", "tokenEndpoint"],
    "properties": {
        "auth": {"enum": ["open", "token"]},
        "tokenEndpoint": {"type": ["string", "null"]},
    },
}


def add_routes(api: Api, settings: ServerSettings) -> None:
    answer = {"auth": settings.auth, "tokenEndpoint": settings.token_endpoint}

    async def web_app(request: web.Request) -> web.Response:
        return web.json_response(answer, headers={"Cache-Control": "no-cache"})

    api.route(
        "GET",
        "/api/web-app",
        web_app,
        api_key=False,
        summary="How the web app at / joins: open mode, or token mode and where to get a token",
        responses={
            "200": {
                "description": "The server's auth mode and token endpoint",
                "content": {"application/json": {"schema": WEB_APP_SCHEMA}},
            }
        },
    )
