"""Connections cut at random moments while chat and signals flow: nothing is lost
or doubled (docs/protocol.md, "Reconnecting and resuming")."""

from __future__ import annotations

import asyncio
import random
from urllib.parse import urlsplit

import aiohttp

from tests.faults.resuming import CuttingProxy, ResumingClient, running, wait_for
from tests.process import hubbub_serve

USERS = ["ana", "ben", "cai", "dev"]
CHATS = 1000
SIGNALS_PER_USER = 100
LOOSE_LIMITS = ("--message-rate", "2000", "--message-burst", "2000")


async def test_random_cuts_lose_nothing_and_double_nothing() -> None:
    rng = random.Random(20261126)
    async with hubbub_serve(*LOOSE_LIMITS) as (url, _process):
        parts = urlsplit(url)
        proxy = CuttingProxy(parts.hostname or "127.0.0.1", parts.port or 0)
        proxy_url = await proxy.start()
        async with aiohttp.ClientSession() as http:
            clients = {user: ResumingClient(http, proxy_url, "cuts", user) for user in USERS}
            async with running(clients.values()):
                await everything(clients, proxy, rng)
        await proxy.close()
    check(clients, proxy)


async def everything(
    clients: dict[str, ResumingClient], proxy: CuttingProxy, rng: random.Random
) -> None:
    await wait_for(lambda: all(c.ready.is_set() for c in clients.values()), 30)
    # Everyone has seen everyone join before the storm starts.
    await asyncio.sleep(0.5)

    stop_cutting = asyncio.Event()

    async def cutter() -> None:
        while not stop_cutting.is_set():
            await asyncio.sleep(rng.uniform(0.01, 0.1))
            proxy.cut_one(rng)

    async def talk(user: str, chats: int) -> None:
        client = clients[user]
        others = [u for u in USERS if u != user]
        for i in range(chats):
            await client.send_chat(f"{user} says {i}")
            if i % (chats // SIGNALS_PER_USER or 1) == 0:
                await client.send_signal(rng.choice(others))
                await client.confirm()
            await asyncio.sleep(rng.uniform(0, 0.01))

    cutting = asyncio.create_task(cutter())
    try:
        await asyncio.gather(*(talk(user, CHATS // len(USERS)) for user in USERS))
    finally:
        stop_cutting.set()
        await cutting
    for client in clients.values():
        await client.confirm()
    # Every chat is acknowledged, and every client has seen all of them.
    await wait_for(
        lambda: all(
            not c.unacked and len(c.chats) >= CHATS and c.ready.is_set() for c in clients.values()
        ),
        120,
    )
    await asyncio.sleep(1.0)  # let confirmations and late signals land


def check(clients: dict[str, ResumingClient], proxy: CuttingProxy) -> None:
    assert proxy.cuts >= 10, proxy.cuts
    everyone_seqs = set(range(1, CHATS + 1))
    for user, client in clients.items():
        assert client.violations == [], (user, client.violations[:5])
        assert client.closed_for_good is None
        # Stored once each: the room's numbers are exactly 1..1000, no more.
        assert set(client.chats) == everyone_seqs, user
        own = set(client.acked.values())
        live = client.live_seqs
        # Every message of the others arrived live, once, in order; one's own by ack.
        assert sorted(live) == live
        assert set(live) | own == everyone_seqs
        assert not set(live) & own
        assert len(client.acked) == CHATS // len(USERS)
        assert client.refused_resumes == []
        assert client.fresh_joins == 1
        assert client.errors == [], client.errors[:3]
    # Signals: in order, never twice, and none the server had read went missing.
    for user, client in clients.items():
        got: dict[str, list[int]] = {}
        for message in client.signals:
            got.setdefault(message["fromUserId"], []).append(message["signal"]["k"])
        for sender, ks in got.items():
            assert ks == sorted(set(ks)), (sender, user)
            confirmed = clients[sender].signals_confirmed.get(user, set())
            assert confirmed <= set(ks), (sender, user, sorted(confirmed - set(ks))[:5])
    resumes = sum(c.resumes for c in clients.values())
    assert resumes >= proxy.cuts // 2, (resumes, proxy.cuts)
    print(f"cuts={proxy.cuts} resumes={resumes}")
