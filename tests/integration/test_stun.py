"""The built-in STUN server of a running hubbub: it answers binding requests on its
UDP port, is handed to clients in iceServers, and goes quietly when it cannot run."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace

import pytest

from hubbub.server import ServerSettings
from hubbub.server.stun import BURST_PER_ADDRESS
from hubbub.stun import binding_request, mapped_address
from tests.conftest import ServerFactory
from tests.turn import _free_port
from tests.wsclient import Client


async def _joined(url: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    client = await Client.connect(url, headers=headers or {})
    try:
        await client.send({"type": "join-room", "room": "r", "userId": "u"})
        return await client.expect("room-joined")
    finally:
        await client.close()


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answers.put_nowait(data)


async def test_it_answers_binding_requests_and_is_handed_out(start_hub: ServerFactory) -> None:
    port = _free_port()
    url = await start_hub(ServerSettings(stun_port=port))
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Collector, remote_addr=("127.0.0.1", port)
    )
    try:
        request, transaction_id = binding_request()
        transport.sendto(request)
        async with asyncio.timeout(5):
            answer = await protocol.answers.get()
        assert mapped_address(answer, transaction_id) == transport.get_extra_info("sockname")
    finally:
        transport.close()
    joined = await _joined(url)
    assert joined["iceServers"] == [{"urls": [f"stun:127.0.0.1:{port}"]}]
    # the host the client reached the server by (say, a name behind a proxy)
    named = await _joined(url, {"Host": f"hub.example.com:{url.rsplit(':', 1)[1]}"})
    assert named["iceServers"] == [{"urls": [f"stun:hub.example.com:{port}"]}]


async def test_public_host_and_stun_uri_take_its_place(start_hub: ServerFactory) -> None:
    port = _free_port()
    url = await start_hub(ServerSettings(stun_port=port, public_host="203.0.113.10"))
    assert (await _joined(url))["iceServers"] == [{"urls": [f"stun:203.0.113.10:{port}"]}]
    other = await start_hub(ServerSettings(stun_port=_free_port(), stun_uri=["stun:stun.test"]))
    assert (await _joined(other))["iceServers"] == [{"urls": ["stun:stun.test"]}]


async def test_off_means_none_handed_out(start_hub: ServerFactory) -> None:
    url = await start_hub(ServerSettings(stun_port=0))
    assert "iceServers" not in await _joined(url)


async def test_a_port_in_use_leaves_it_off_and_says_so(
    start_hub: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="hubbub.server"):
            url = await start_hub(ServerSettings(stun_port=port))
        assert "event=stun-unavailable" in caplog.text
        assert "iceServers" not in await _joined(url)


async def test_a_flood_from_one_address_is_cut_to_its_budget(start_hub: ServerFactory) -> None:
    port = _free_port()
    await start_hub(replace(ServerSettings(), stun_port=port))
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Collector, remote_addr=("127.0.0.1", port)
    )
    try:
        sent = 3 * BURST_PER_ADDRESS
        for _ in range(sent):
            transport.sendto(binding_request()[0])
            await asyncio.sleep(0)
        await asyncio.sleep(0.5)
    finally:
        transport.close()
    answered = protocol.answers.qsize()
    # the burst, and what the rate refilled meanwhile (at most a second's worth)
    assert BURST_PER_ADDRESS <= answered < BURST_PER_ADDRESS + 40, answered
