"""GET /api/ice-servers: what a member would be given, without joining (the web app's
"Test my connection" in token mode)."""

from __future__ import annotations

import time

import aiohttp

from hubbub.auth.turn import turn_credentials
from hubbub.server import ServerSettings
from tests.tokens import SECRET, token

TURN_SECRET = "ice-api-turn-secret"
TURN = "turn:turn.example.test:3478?transport=udp"


async def test_token_mode_gives_the_join_s_ice_servers_for_the_token_s_subject(
    start_hub,
) -> None:
    url = await start_hub(
        ServerSettings(
            auth="token",
            token_secret=SECRET,
            stun_uri=["stun:stun.example.test:3478"],
            turn_uri=[TURN],
            turn_secret=TURN_SECRET,
            turn_ttl=600,
        )
    )
    async with aiohttp.ClientSession() as http:
        started = int(time.time())
        async with http.get(
            url + "/api/ice-servers",
            headers={"Authorization": "Bearer " + token("kim", ["standup"])},
        ) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            answer = await response.json()
        expires_at = answer["iceServersExpireAt"]
        assert started + 600 <= expires_at <= int(time.time()) + 600
        username, password = turn_credentials(TURN_SECRET, "kim", expires_at)
        assert answer["iceServers"] == [
            {"urls": ["stun:stun.example.test:3478"]},
            {"urls": [TURN], "username": username, "credential": password},
        ]

        refusals = [
            ({}, 401, "token-required"),
            ({"Authorization": "Bearer nonsense"}, 401, "token-invalid"),
            ({"Authorization": "Bearer " + token("kim", ttl=-3600)}, 401, "token-expired"),
            ({"Authorization": "Bearer " + token("kim", grants=["chat"])}, 403, "forbidden"),
        ]
        for headers, status, code in refusals:
            async with http.get(url + "/api/ice-servers", headers=headers) as response:
                assert response.status == status, code
                assert (await response.json())["error"]["code"] == code


async def test_open_mode_needs_no_token(start_hub) -> None:
    url = await start_hub(ServerSettings(stun_uri=["stun:stun.example.test:3478"]))
    async with aiohttp.ClientSession() as http, http.get(url + "/api/ice-servers") as response:
        assert response.status == 200
        assert await response.json() == {
            "iceServers": [{"urls": ["stun:stun.example.test:3478"]}],
            "iceServersExpireAt": None,
        }
