"""The front-ends over real sockets: their refusals and hubbub's limits (frames,
rates, connections per address, tokens, origins), the PeerJS HTTP endpoints and
CORS, the metrics, and what a front-end's server turned off does not serve."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from hubbub.server import ServerSettings, start_server
from tests.integration.test_metrics import METRICS_KEY, scrape
from tests.tokens import SECRET, token

FRONTENDS = ["peerjs", "y-webrtc", "tracker"]


def _ws(url: str) -> str:
    return url.replace("http://", "ws://")


async def _next(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> Any:
    message = await asyncio.wait_for(ws.receive(), timeout)
    if message.type is aiohttp.WSMsgType.TEXT:
        return json.loads(message.data)
    return message.type, message.data


async def test_peerjs_http_endpoints_and_cors(start_hub) -> None:
    url = await start_hub(
        ServerSettings(frontend=FRONTENDS, peerjs_key=["peerjs", "app"], peerjs_discovery=True)
    )
    origin = {"Origin": "http://app.test:3000"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/peerjs", headers=origin) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "http://app.test:3000"
            assert (await response.json())["name"] == "hubbub"
        async with http.get(url + "/peerjs/app/id?ts=1&version=1.5.5", headers=origin) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert len(await response.text()) == 36
            assert response.headers["Access-Control-Allow-Origin"] == "http://app.test:3000"
        async with http.get(url + "/peerjs/other/id", headers=origin) as response:
            assert response.status == 401
            assert await response.text() == "Invalid key provided"
            assert response.headers["Access-Control-Allow-Origin"] == "http://app.test:3000"
        async with http.ws_connect(_ws(url) + "/peerjs/peerjs?key=app&id=zed&token=t") as zed:
            assert await _next(zed) == {"type": "OPEN"}
            async with http.get(url + "/peerjs/app/peers") as response:
                assert await response.json() == ["zed"]
            async with http.get(url + "/peerjs/peerjs/peers") as response:
                assert await response.json() == []
        async with http.options(
            url + "/peerjs/app/id",
            headers={**origin, "Access-Control-Request-Method": "GET"},
        ) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "http://app.test:3000"


async def test_peerjs_peers_list_is_refused_without_discovery(start_hub) -> None:
    url = await start_hub(ServerSettings(frontend=["peerjs"]))
    async with aiohttp.ClientSession() as http, http.get(url + "/peerjs/peerjs/peers") as response:
        assert response.status == 401


async def test_a_frontend_that_is_not_turned_on_is_not_served(start_hub) -> None:
    url = await start_hub(ServerSettings(frontend=["tracker"]))
    async with aiohttp.ClientSession() as http:
        for path in ("/peerjs", "/peerjs/peerjs/id", "/y-webrtc"):
            async with http.get(url + path) as response:
                assert response.status == 404, path
        async with http.ws_connect(_ws(url) + "/announce") as tracker:
            await tracker.send_str("{}")
            reply = await _next(tracker)
            assert "failure reason" in reply


async def test_oversized_frames_close_with_1009_and_floods_with_1008(start_hub) -> None:
    url = await start_hub(
        ServerSettings(frontend=FRONTENDS),
        max_frame_bytes=2048,
        message_rate=0.1,
        message_burst=3,
        flood_disconnect_after=20,
    )
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(_ws(url) + "/y-webrtc") as big:
            await big.send_str(json.dumps({"type": "publish", "topic": "t", "data": "x" * 4000}))
            assert await _next(big) == (aiohttp.WSMsgType.CLOSE, 1009)
        async with http.ws_connect(_ws(url) + "/y-webrtc") as chatty:
            for _ in range(60):
                await chatty.send_str('{"type":"ping"}')
            replies = []
            while not isinstance(reply := await _next(chatty), tuple):
                replies.append(reply)
            assert reply == (aiohttp.WSMsgType.CLOSE, 1008)
            assert replies[:3] == [{"type": "pong"}] * 3
            assert replies[3]["code"] == "rate-limited"


async def test_connections_per_address_count_every_protocol_together(start_hub) -> None:
    url = await start_hub(ServerSettings(frontend=FRONTENDS), max_connections_per_ip=2)
    async with aiohttp.ClientSession() as http:
        async with (
            http.ws_connect(_ws(url) + "/y-webrtc"),
            http.ws_connect(_ws(url) + "/ws"),
        ):
            for path in ("/announce", "/peerjs/peerjs?key=peerjs&id=a&token=t", "/ws"):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(_ws(url) + path)
                assert refused.value.status == 429, path
        # Both gone: room again.
        async with http.ws_connect(_ws(url) + "/announce"):
            pass


async def test_token_mode_needs_a_token_on_the_url_and_honours_its_rooms(start_hub) -> None:
    url = await start_hub(
        ServerSettings(
            auth="token",
            token_secret=SECRET,
            frontend=FRONTENDS,
            allowed_origin=["http://app.test"],
        )
    )
    async with aiohttp.ClientSession() as http:
        for path in ("/y-webrtc", "/announce", "/y-webrtc?token=nonsense"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(_ws(url) + path)
            assert refused.value.status == 401, path
        good = token("alice", ["y-webrtc:team", "tracker:*"])
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                _ws(url) + "/y-webrtc?token=" + good, headers={"Origin": "http://evil.test"}
            )
        assert refused.value.status == 403
        async with http.ws_connect(
            _ws(url) + "/y-webrtc?token=" + good, headers={"Origin": "http://app.test"}
        ) as y:
            await y.send_str('{"type":"subscribe","topics":["team","elsewhere"]}')
            assert await _next(y) == {
                "type": "error",
                "code": "forbidden",
                "message": "the token does not grant this room",
                "topic": "elsewhere",
            }
            await y.send_str('{"type":"publish","topic":"team","data":"d"}')
            assert await _next(y) == {"type": "publish", "topic": "team", "data": "d", "clients": 1}
        async with http.ws_connect(_ws(url) + "/peerjs/peerjs?key=peerjs&id=bob&token=x1") as p:
            assert await _next(p) == {"type": "ERROR", "payload": {"msg": "Invalid token provided"}}
            kind, _ = await _next(p)
            assert kind is aiohttp.WSMsgType.CLOSE


async def test_peerjs_over_sockets_relays_queues_and_expires(start_hub) -> None:
    url = await start_hub(ServerSettings(frontend=["peerjs"], peerjs_expire_timeout=0.3))
    base = _ws(url) + "/peerjs/peerjs?key=peerjs&token=t&id="
    async with aiohttp.ClientSession() as http, http.ws_connect(base + "alice") as alice:
        assert await _next(alice) == {"type": "OPEN"}
        await alice.send_str('{"type":"OFFER","dst":"bob","payload":{"connectionId":"c"}}')
        async with http.ws_connect(base + "bob") as bob:
            assert await _next(bob) == {"type": "OPEN"}
            assert await _next(bob) == {
                "type": "OFFER",
                "src": "alice",
                "dst": "bob",
                "payload": {"connectionId": "c"},
            }
        await alice.send_str('{"type":"OFFER","dst":"carol","payload":{}}')
        assert await _next(alice) == {"type": "EXPIRE", "src": "carol", "dst": "alice"}
        await alice.send_bytes(b"\x00\x01")
        reply = await _next(alice)
        assert reply["type"] == "ERROR"


async def test_metrics_count_each_frontend(start_hub) -> None:
    url = await start_hub(ServerSettings(frontend=FRONTENDS, metrics_key=METRICS_KEY))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(_ws(url) + "/y-webrtc") as one,
        http.ws_connect(_ws(url) + "/y-webrtc") as two,
    ):
        for ws in (one, two):
            await ws.send_str('{"type":"subscribe","topics":["doc"]}')
            await ws.send_str('{"type":"ping"}')
            assert await _next(ws) == {"type": "pong"}  # subscribed by now
        await one.send_str('{"type":"publish","topic":"doc","data":1}')
        await _next(one), await _next(two)
        await one.send_str("nope")
        await _next(one)
        samples = await scrape(url)
        assert samples("hubbub_frontend_connections", protocol="y-webrtc") == 2
        assert samples("hubbub_frontend_connections", protocol="peerjs") == 0
        assert samples("hubbub_frontend_connections_opened_total", protocol="y-webrtc") == 2
        assert samples("hubbub_frontend_messages_received_total", protocol="y-webrtc") == 5
        assert samples("hubbub_frontend_messages_sent_total", protocol="y-webrtc") == 5
        assert samples("hubbub_frontend_refused_total", protocol="y-webrtc") == 1
        assert samples("hubbub_rooms") == 1
        assert samples("hubbub_participants") == 2


async def test_a_shutdown_closes_front_end_connections_with_1001(tmp_path) -> None:
    settings = ServerSettings(frontend=FRONTENDS, data_dir=tmp_path, port=0)
    runner, url = await start_server(settings)
    async with aiohttp.ClientSession() as http:
        y = await http.ws_connect(_ws(url) + "/y-webrtc")
        peer = await http.ws_connect(_ws(url) + "/peerjs/peerjs?key=peerjs&id=p&token=t")
        assert await _next(peer) == {"type": "OPEN"}
        await y.send_str('{"type":"subscribe","topics":["doc"]}')
        await y.send_str('{"type":"ping"}')
        assert await _next(y) == {"type": "pong"}
        closing = asyncio.create_task(runner.cleanup())
        assert await _next(y) == (aiohttp.WSMsgType.CLOSE, 1001)
        assert await _next(peer) == (aiohttp.WSMsgType.CLOSE, 1001)
        await asyncio.wait_for(closing, 10)
