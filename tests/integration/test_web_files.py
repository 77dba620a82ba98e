"""The web app and the client library, as the server serves them over HTTP."""

from __future__ import annotations

import aiohttp
from yarl import URL

from tests.js_modules import STATIC, graph
from tests.wsclient import Client

JS_TYPES = ("text/javascript", "application/javascript")


def _modules(entry: str) -> dict[str, bytes]:
    """Every module of an entry point, by its path under the static folder."""
    return {
        path.relative_to(STATIC).as_posix(): path.read_bytes() for path in graph(STATIC / entry)
    }


LIBRARY_MODULES = _modules("hubbub.js")
APP_MODULES = _modules("app.js")


async def test_root_serves_the_app_and_upgrades_websockets(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(hub_url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers["Cache-Control"] == "no-cache"
        page = await response.text()
        assert '<script type="module" src="static/app.js">' in page
    async with await Client.connect(hub_url) as client:
        joined = await client.join("r", "a")
        assert joined["type"] == "room-joined"


async def test_client_library_is_a_module_any_site_may_import(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/hubbub.js", "/static/hubbub.js"):
            headers = {"Origin": "http://127.0.0.1:1"}
            async with http.get(hub_url + path, headers=headers) as response:
                assert response.status == 200, path
                assert response.content_type in JS_TYPES
                assert response.headers["Access-Control-Allow-Origin"] == "*"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert 'export { join, Room } from "./hubbub/room.js"' in await response.text()
                etag = response.headers["ETag"]
            async with http.get(hub_url + path, headers={"If-None-Match": etag}) as response:
                assert response.status == 304, path


async def test_static_files_stay_inside_their_folder(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in (
            "/static/../server/app.py",
            "/static/%2e%2e/server/app.py",
            "/hubbub/%2e%2e/hubbub.js",
            "/hubbub/%2e%2e/%2e%2e/server/app.py",
            "/hubbub/",
        ):
            # (as written: the client would resolve the dots itself otherwise)
            async with http.get(URL(hub_url + path, encoded=True)) as response:
                assert response.status in (403, 404), path


async def test_the_protocol_module_is_served_next_to_the_library(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/protocol.js", "/static/protocol.js"):
            async with http.get(hub_url + path, headers={"Origin": "http://127.0.0.1:1"}) as got:
                assert got.status == 200, path
                assert got.headers["Access-Control-Allow-Origin"] == "*"
                assert "export const FINAL_CLOSE_CODES" in await got.text()


async def _served_as_a_module(http: aiohttp.ClientSession, url: str, content: bytes) -> None:
    async with http.get(url, headers={"Origin": "http://127.0.0.1:1"}) as response:
        assert response.status == 200, url
        assert response.content_type in JS_TYPES, url
        assert response.headers["Access-Control-Allow-Origin"] == "*", url
        assert response.headers["Cache-Control"] == "no-cache", url
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        assert await response.read() == content, url


async def test_every_module_of_the_library_is_served_next_to_it(hub_url: str) -> None:
    """hubbub.js imports its modules relatively, so that /hubbub.js and
    /static/hubbub.js both work: each is served under both, for any site."""
    assert len(LIBRARY_MODULES) > 10
    async with aiohttp.ClientSession() as http:
        for name, content in LIBRARY_MODULES.items():
            for prefix in ("/", "/static/"):
                await _served_as_a_module(http, hub_url + prefix + name, content)


async def test_every_module_of_the_web_app_is_served(hub_url: str) -> None:
    assert "hubbub.js" in APP_MODULES
    async with aiohttp.ClientSession() as http:
        for name, content in APP_MODULES.items():
            await _served_as_a_module(http, f"{hub_url}/static/{name}", content)
