"""What a running server logs: one line per connection event, and never a secret."""

from __future__ import annotations

import json

import aiohttp

from tests.process import hubbub_serve
from tests.wsclient import Client

API_KEY = "api-key-that-must-not-leak"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2VkLXNpZ25hdHVyZQ"


async def test_json_logs_carry_connection_events_and_no_secret() -> None:
    log: list[bytes] = []
    async with hubbub_serve("--log-format", "json", "--api-key", API_KEY, log=log) as (
        url,
        process,
    ):
        async with aiohttp.ClientSession() as http:
            for key in (API_KEY, "wrong-" + API_KEY):
                headers = {"Authorization": f"Bearer {key}"}
                async with http.get(url + "/api/server", headers=headers) as response:
                    await response.read()
        async with await Client.connect(url) as client:
            # secrets a client may put where the server logs things
            await client.join(TOKEN, "alice")
            await client.send({"type": "chat", "message": API_KEY})
            await client.send({"type": "join-room", "room": "r", "userId": TOKEN})
            await client.recv()
        process.terminate()
        await process.wait()
    text = b"".join(log).decode()
    assert API_KEY not in text
    assert TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    events = [line.get("event") for line in lines]
    assert "listening" in events
    assert "connect" in events
    assert "join" in events
    assert "disconnect" in events
    join = next(line for line in lines if line.get("event") == "join")
    assert join["user"] == "alice"
    assert join["room"] == "[redacted]"


async def test_front_end_tokens_travel_in_urls_and_are_never_logged() -> None:
    log: list[bytes] = []
    async with hubbub_serve(
        "--log-level", "debug", "--frontend", "peerjs", "--frontend", "y-webrtc", log=log
    ) as (url, process):
        ws = url.replace("http://", "ws://")
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{ws}/peerjs/peerjs?key=peerjs&id=al&token={TOKEN}") as p:
                await p.receive()  # refused: a token signed with another key
            async with http.ws_connect(f"{ws}/peerjs/peerjs?key=peerjs&id=bo&token=plain") as p:
                assert json.loads((await p.receive()).data) == {"type": "OPEN"}
            async with http.ws_connect(f"{ws}/y-webrtc") as y:
                await y.close()
            for token in ("plain", TOKEN):  # no key to check it with: refused
                async with http.get(
                    f"{url}/y-webrtc?token={token}",
                    headers={"Upgrade": "websocket", "Connection": "Upgrade"},
                ) as response:
                    assert response.status == 401
        process.terminate()
        await process.wait()
    text = b"".join(log).decode()
    assert "connect protocol=peerjs" in text or '"protocol": "peerjs"' in text
    assert TOKEN not in text
    assert "token=plain" not in text
