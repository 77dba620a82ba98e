"""TURN with a real coturn: credentials from hubbub, two aiortc peers forced to relay
through it, and what coturn refuses."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from hubbub.auth.turn import turn_credentials
from tests.security.test_tls import make_certificate
from tests.tokens import token, token_settings
from tests.turn import allocate, bind_channel, coturn
from tests.wsclient import Client

TURN_SECRET = "turn-secret-shared-with-coturn"


def relay_only(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    """What a browser makes of ``iceServers`` with ``iceTransportPolicy: "relay"``."""
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
            for server in ice_servers
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )


async def _next_signal(client: Client) -> dict[str, Any]:
    while True:
        message = await client.recv(timeout=30)
        if message["type"] == "signal":
            return message


async def test_relay_only_peers_connect_through_coturn_with_hubbub_credentials(
    start_hub,
) -> None:
    async with coturn(TURN_SECRET) as turn_port:
        url = await start_hub(
            token_settings(
                turn_uri=[f"turn:127.0.0.1:{turn_port}?transport=udp"],
                turn_secret=TURN_SECRET,
                turn_ttl=600,
            )
        )
        async with await Client.connect(url) as alice, await Client.connect(url) as bob:
            alice_joined = await alice.join("call", token=token("alice", "call"))
            bob_joined = await bob.join("call", token=token("bob", "call"))
            await alice.expect("user-joined")
            for joined, user in ((alice_joined, "alice"), (bob_joined, "bob")):
                (turn,) = joined["iceServers"]
                expiry, _, owner = turn["username"].partition(":")
                assert owner == user
                assert int(expiry) == joined["iceServersExpireAt"] > time.time() + 500

            caller = RTCPeerConnection(relay_only(alice_joined["iceServers"]))
            callee = RTCPeerConnection(relay_only(bob_joined["iceServers"]))
            try:
                received: asyncio.Queue[str | bytes] = asyncio.Queue()
                channel = caller.createDataChannel("game")
                opened = asyncio.Event()
                channel.on("open", opened.set)

                @callee.on("datachannel")
                def on_datachannel(remote_channel: Any) -> None:
                    @remote_channel.on("message")
                    def on_message(data: str | bytes) -> None:
                        received.put_nowait(data)
                        remote_channel.send(b"pong:" + (data if isinstance(data, bytes) else b""))

                # alice joined first: she is impolite and makes the offer
                await caller.setLocalDescription(await caller.createOffer())
                offer = caller.localDescription
                assert "typ relay" in offer.sdp
                assert "typ host" not in offer.sdp
                await alice.send(
                    {
                        "type": "signal",
                        "targetUserId": "bob",
                        "signal": {"type": "offer", "sdp": {"type": offer.type, "sdp": offer.sdp}},
                    }
                )
                relayed = await _next_signal(bob)
                assert relayed["fromUserId"] == "alice"
                sdp = relayed["signal"]["sdp"]
                await callee.setRemoteDescription(RTCSessionDescription(sdp["sdp"], sdp["type"]))
                await callee.setLocalDescription(await callee.createAnswer())
                answer = callee.localDescription
                assert "typ host" not in answer.sdp
                await bob.send(
                    {
                        "type": "signal",
                        "targetUserId": "alice",
                        "signal": {
                            "type": "answer",
                            "sdp": {"type": answer.type, "sdp": answer.sdp},
                        },
                    }
                )
                sdp = (await _next_signal(alice))["signal"]["sdp"]
                await caller.setRemoteDescription(RTCSessionDescription(sdp["sdp"], sdp["type"]))

                async with asyncio.timeout(30):
                    await opened.wait()
                replies: asyncio.Queue[bytes] = asyncio.Queue()
                channel.on("message", replies.put_nowait)
                payload = json.dumps({"move": [3, 4]}).encode() * 100
                channel.send(payload)
                async with asyncio.timeout(15):
                    assert await received.get() == payload
                    assert await replies.get() == b"pong:" + payload
                # every candidate either side gathered is a relay on coturn
                for peer in (caller, callee):
                    gatherer = peer.sctp.transport.transport.iceGatherer
                    candidates = gatherer.getLocalCandidates()
                    assert candidates
                    assert {candidate.type for candidate in candidates} == {"relay"}
            finally:
                await caller.close()
                await callee.close()


async def test_coturn_refuses_expired_and_forged_credentials() -> None:
    async with coturn(TURN_SECRET) as turn_port:
        now = int(time.time())
        # the control: a fresh credential made with the shared secret is taken, and
        # this test configuration (unlike production's) relays to loopback
        fresh = turn_credentials(TURN_SECRET, "alice", now + 600)
        await allocate(turn_port, *fresh)
        await bind_channel(turn_port, *fresh, ("127.0.0.1", 9))
        for username, password in (
            turn_credentials(TURN_SECRET, "alice", now - 60),  # expired
            turn_credentials("not-the-shared-secret", "alice", now + 600),  # forged
            (f"{now + 600}:alice", "made-up-password"),
        ):
            with pytest.raises(stun.TransactionFailed) as refused:
                await allocate(turn_port, username, password)
            assert refused.value.response.attributes["ERROR-CODE"][0] == 401


async def test_fresh_credentials_arrive_before_the_old_expire_and_work(start_hub) -> None:
    async with coturn(TURN_SECRET) as turn_port:
        url = await start_hub(
            token_settings(
                stun_uri=[f"stun:127.0.0.1:{turn_port}"],
                turn_uri=[f"turn:127.0.0.1:{turn_port}?transport=udp"],
                turn_secret=TURN_SECRET,
                turn_ttl=8,
            )
        )
        async with await Client.connect(url) as alice:
            joined = await alice.join("call", token=token("alice", "call"))
            first_expiry = joined["iceServersExpireAt"]
            assert joined["iceServers"][0] == {"urls": [f"stun:127.0.0.1:{turn_port}"]}
            started = time.time()
            pushed = await alice.expect("ice-servers", timeout=30)
            arrived = time.time()
            # due at 3/4 of the ttl (6 s after the join), not at once, and before the
            # old ones expire (8 s): a push after the expiry leaves a call that needs the
            # relay without it (held exactly, on a hand-driven clock, in
            # tests/unit/test_auth.py)
            assert arrived - started >= 6 - 1  # the expiry is in whole seconds
            assert arrived < first_expiry
            stun_server, turn = pushed["iceServers"]
            assert stun_server == joined["iceServers"][0]
            assert pushed["iceServersExpireAt"] > first_expiry
            await allocate(turn_port, turn["username"], turn["credential"])


TEST_OWNED = {
    "listening-port",
    "tls-listening-port",
    "external-ip",
    "min-port",
    "max-port",
    "cert",
    "pkey",
    "log-file",
    "static-auth-secret",
}


def documented_coturn_config() -> str:
    """docs/deploy.md's turnserver.conf, with the test's own certificate, on loopback."""
    text = (Path(__file__).parents[2] / "docs" / "deploy.md").read_text()
    config = text.split("`/etc/turnserver.conf`:\n\n```ini\n", 1)[1].split("```", 1)[0]
    kept = []
    for line in config.splitlines():
        name = line.split("=", 1)[0].strip()
        # where it listens and logs is the test's; what it allows is the document's
        if name in TEST_OWNED:
            continue
        kept.append(line)
    return "\n".join(kept)


async def test_the_documented_coturn_config_takes_hubbub_credentials_and_guards_the_lan(
    tmp_path: Path,
) -> None:
    cert, key = make_certificate(tmp_path)
    config = documented_coturn_config()
    assert "denied-peer-ip=127.0.0.0-127.255.255.255" in config
    config += f"\nstatic-auth-secret={TURN_SECRET}\ncert={cert}\npkey={key}\n"
    async with coturn(TURN_SECRET, config=config) as turn_port:
        credentials = turn_credentials(TURN_SECRET, "alice", int(time.time()) + 600)
        await allocate(turn_port, *credentials)
        # a relay to the TURN host itself, or into a private network, is refused
        private = [("127.0.0.1", 22), ("10.1.2.3", 80), ("192.168.1.1", 80)]
        for peer in [*private, ("169.254.169.254", 80)]:
            with pytest.raises(stun.TransactionFailed) as refused:
                await bind_channel(turn_port, *credentials, peer)
            assert refused.value.response.attributes["ERROR-CODE"][0] == 403, peer
