"""The HTTP API's conventions: API key, JSON errors, OpenAPI description."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import aiohttp.web
import pytest

from hubbub.server import ServerSettings, start_server
from tests.wsclient import Client


async def test_api_key_is_required_and_checked(tmp_path: Path) -> None:
    runner, url = await start_server(ServerSettings(port=0, api_key="s3cret", data_dir=tmp_path))
    try:
        async with aiohttp.ClientSession() as http, await Client.connect(url) as client:
            await client.join("r", "a")
            async with http.get(url + "/api/server") as response:
                assert response.status == 401
                assert (await response.json())["error"]["code"] == "unauthorized"
            wrong = {"Authorization": "Bearer nope"}
            async with http.get(url + "/api/server", headers=wrong) as response:
                assert response.status == 401
            right = {"Authorization": "Bearer s3cret"}
            async with http.get(url + "/api/server", headers=right) as response:
                assert response.status == 200
                body = await response.json()
                assert body["connections"] == 1
                assert body["rooms"] == 1
                assert "cluster" not in body  # one process, in-memory broker
    finally:
        await runner.cleanup()


async def test_head_is_answered_as_get_without_the_body(tmp_path: Path) -> None:
    """HTTP's HEAD (RFC 9110, 9.3.2), as ``curl -I`` and monitors send it."""
    runner, url = await start_server(ServerSettings(port=0, api_key="s3cret", data_dir=tmp_path))
    try:
        async with aiohttp.ClientSession() as http:
            right = {"Authorization": "Bearer s3cret"}
            async with http.get(url + "/api/rooms", headers=right) as response:
                got = response.status, response.headers["Content-Type"]
            async with http.head(url + "/api/rooms", headers=right) as response:
                assert (response.status, response.headers["Content-Type"]) == got
                assert await response.read() == b""
            async with http.head(url + "/api/rooms") as response:
                assert response.status == 401
    finally:
        await runner.cleanup()


async def test_without_an_api_key_the_api_is_off(tmp_path: Path) -> None:
    runner, url = await start_server(ServerSettings(port=0, data_dir=tmp_path))
    try:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": "Bearer anything"}
            async with http.get(url + "/api/server", headers=headers) as response:
                assert response.status == 403
                assert (await response.json())["error"]["code"] == "api-disabled"
    finally:
        await runner.cleanup()


async def test_unknown_api_paths_answer_json_and_openapi_lists_the_routes(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(hub_url + "/api/nothing-here") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "not-found"
        async with http.post(hub_url + "/api/openapi.json") as response:
            assert response.status == 405
            assert (await response.json())["error"]["code"] == "method-not-allowed"
        async with http.get(hub_url + "/api/openapi.json") as response:
            assert response.status == 200
            spec = await response.json()
            assert spec["openapi"].startswith("3.")
            assert "get" in spec["paths"]["/api/server"]
            assert spec["paths"]["/api/server"]["get"]["security"] == [{"apiKey": []}]


async def test_readyz_reports_each_check(start_hub) -> None:
    url = await start_hub()
    async with aiohttp.ClientSession() as http, http.get(url + "/readyz") as response:
        assert response.status == 200
        body = await response.json()
        assert body["status"] == "ready"
        assert body["checks"] == {"store": True, "broker": True}


@pytest.mark.logs_errors("event=readiness-check-failed")
async def test_readyz_is_not_ready_when_a_check_fails(tmp_path: Path) -> None:
    from hubbub.server.app import HUB_SERVER, create_app

    app = create_app(ServerSettings(port=0, data_dir=tmp_path))
    server = app[HUB_SERVER]

    async def store_down() -> bool:
        raise ConnectionRefusedError("store unreachable")

    async def broker_up() -> bool:
        return True

    server.readiness_checks["store"] = store_down
    server.readiness_checks["broker"] = broker_up
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as response,
        ):
            assert response.status == 503
            body = await response.json()
            assert body == {"status": "not-ready", "checks": {"store": False, "broker": True}}
            assert "unreachable" not in await response.text()
    finally:
        await runner.cleanup()
