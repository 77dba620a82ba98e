"""The web app and the client library, as the server serves them over HTTP."""

from __future__ import annotations

import aiohttp

from tests.wsclient import Client


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
                assert response.content_type in ("text/javascript", "application/javascript")
                assert response.headers["Access-Control-Allow-Origin"] == "*"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert "export async function join" in await response.text()
                etag = response.headers["ETag"]
            async with http.get(hub_url + path, headers={"If-None-Match": etag}) as response:
                assert response.status == 304, path


async def test_static_files_stay_inside_their_folder(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/static/../server/app.py", "/static/%2e%2e/server/app.py"):
            async with http.get(hub_url + path) as response:
                assert response.status in (403, 404), path


async def test_the_protocol_module_is_served_next_to_the_library(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/protocol.js", "/static/protocol.js"):
            async with http.get(hub_url + path, headers={"Origin": "http://127.0.0.1:1"}) as got:
                assert got.status == 200, path
                assert got.headers["Access-Control-Allow-Origin"] == "*"
                assert "export const FINAL_CLOSE_CODES" in await got.text()
