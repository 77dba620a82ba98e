"""The front-ends on two nodes of a cluster on Redis: PeerJS ids, relays and what
waits for an absent peer, y-webrtc topics and tracker swarms span the nodes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.cluster.nodes import cluster
from tests.tokens import token

FRONTENDS = (
    "--frontend",
    "peerjs",
    "--frontend",
    "y-webrtc",
    "--frontend",
    "tracker",
    "--peerjs-discovery",
)


def _ws(url: str) -> str:
    return url.replace("http://", "ws://")


async def _next(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> Any:
    message = await asyncio.wait_for(ws.receive(), timeout)
    if message.type is aiohttp.WSMsgType.TEXT:
        return json.loads(message.data)
    return message.type, message.data


async def test_peerjs_peers_on_two_nodes(redis_url: str, tmp_path: Path) -> None:
    async with cluster(2, redis_url, tmp_path, *FRONTENDS, tokens=True) as (n1, n2):

        def peer_url(node: Any, peer_id: str) -> str:
            jwt = token(peer_id, "peerjs:*")
            return _ws(node.url) + f"/peerjs/peerjs?key=peerjs&id={peer_id}&token={jwt}"

        async with aiohttp.ClientSession() as http:
            alice = await http.ws_connect(peer_url(n1, "alice"))
            bob = await http.ws_connect(peer_url(n2, "bob"))
            assert await _next(alice) == {"type": "OPEN"}
            assert await _next(bob) == {"type": "OPEN"}
            await alice.send_str('{"type":"OFFER","dst":"bob","payload":{"sdp":"o"}}')
            assert await _next(bob) == {
                "type": "OFFER",
                "src": "alice",
                "dst": "bob",
                "payload": {"sdp": "o"},
            }
            await bob.send_str('{"type":"ANSWER","dst":"alice","payload":{"sdp":"a"}}')
            assert await _next(alice) == {
                "type": "ANSWER",
                "src": "bob",
                "dst": "alice",
                "payload": {"sdp": "a"},
            }
            # Both nodes list both peers.
            for node in (n1, n2):
                async with http.get(node.url + "/peerjs/peerjs/peers") as response:
                    assert sorted(await response.json()) == ["alice", "bob"]

            # What alice sends a peer that is not there yet reaches it on the other node.
            await alice.send_str('{"type":"OFFER","dst":"carol","payload":{"sdp":"early"}}')
            await asyncio.sleep(0.3)
            carol = await http.ws_connect(peer_url(n2, "carol"))
            assert await _next(carol) == {"type": "OPEN"}
            assert (await _next(carol))["payload"] == {"sdp": "early"}

            # bob's token on node 1: bob's id moves there, the old connection is closed.
            bob_again = await http.ws_connect(peer_url(n1, "bob"))
            assert await _next(bob_again) == {"type": "OPEN"}
            assert await _next(bob) == (aiohttp.WSMsgType.CLOSE, 4009)
            await alice.send_str('{"type":"CANDIDATE","dst":"bob","payload":{"c":1}}')
            assert (await _next(bob_again))["payload"] == {"c": 1}

            # What waits for a peer that never comes expires, wherever the sender is.
            await carol.send_str('{"type":"OFFER","dst":"nobody","payload":{}}')
            assert await _next(carol) == {"type": "EXPIRE", "src": "nobody", "dst": "carol"}
            for ws in (alice, bob, bob_again, carol):
                await ws.close()


async def test_y_webrtc_topics_and_tracker_swarms_span_two_nodes(
    redis_url: str, tmp_path: Path
) -> None:
    async with (
        cluster(2, redis_url, tmp_path, *FRONTENDS) as (n1, n2),
        aiohttp.ClientSession() as http,
    ):
        one = await http.ws_connect(_ws(n1.url) + "/y-webrtc")
        two = await http.ws_connect(_ws(n2.url) + "/y-webrtc")
        for ws in (one, two):
            await ws.send_str('{"type":"subscribe","topics":["doc"]}')
            await ws.send_str('{"type":"ping"}')
            assert await _next(ws) == {"type": "pong"}
        # The subscriber count comes from each node's view of the other's members,
        # which follows the subscribe a moment later.
        for _ in range(50):
            await one.send_str('{"type":"publish","topic":"doc","data":"hi"}')
            heard = await _next(two)
            assert await _next(one) == heard
            if heard["clients"] == 2:
                break
            await asyncio.sleep(0.1)
        assert heard == {"type": "publish", "topic": "doc", "data": "hi", "clients": 2}

        info_hash = "h" * 20
        a = await http.ws_connect(_ws(n1.url) + "/announce")
        b = await http.ws_connect(_ws(n2.url) + "/announce")
        await a.send_str(
            json.dumps(
                {"action": "announce", "info_hash": info_hash, "peer_id": "a" * 20, "left": 1}
            )
        )
        assert (await _next(a))["incomplete"] == 1
        await b.send_str(
            json.dumps(
                {
                    "action": "announce",
                    "info_hash": info_hash,
                    "peer_id": "b" * 20,
                    "left": 0,
                    "offers": [{"offer_id": "o" * 20, "offer": {"type": "offer"}}],
                }
            )
        )
        assert await _next(b) == {
            "complete": 1,
            "incomplete": 1,
            "action": "announce",
            "interval": 120,
            "info_hash": info_hash,
        }
        assert await _next(a) == {
            "action": "announce",
            "offer": {"type": "offer"},
            "offer_id": "o" * 20,
            "peer_id": "b" * 20,
            "info_hash": info_hash,
        }
        await a.send_str(
            json.dumps(
                {
                    "action": "announce",
                    "info_hash": info_hash,
                    "peer_id": "a" * 20,
                    "to_peer_id": "b" * 20,
                    "answer": {"type": "answer"},
                    "offer_id": "o" * 20,
                }
            )
        )
        assert (await _next(b))["answer"] == {"type": "answer"}
        for ws in (one, two, a, b):
            await ws.close()
