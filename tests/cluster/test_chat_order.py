"""Chat arrives in ``seq`` order on every node, whichever node stored it.

Each node stores its own members' chat in the shared database (which numbers a room's
messages) and relays it; a chat stored a moment earlier on another node reaches this
one through Redis a moment later. Senders on three nodes at once: every member,
wherever connected, sees every message once, in ``seq`` order, its own acks in their
place.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from tests.cluster.nodes import cluster
from tests.cluster.test_nodes import expect_type
from tests.wsclient import Client

SENDERS_PER_NODE = 2
PER_SENDER = 120
IN_FLIGHT = 8


async def test_every_member_sees_chat_in_seq_order_with_senders_on_three_nodes(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    async with cluster(3, redis_url, tmp_path, database_url=postgres_url) as nodes:
        clients: list[Client] = []
        try:
            listeners = []
            for index, node in enumerate(nodes):
                listener = await Client.connect(node.url)
                clients.append(listener)
                await listener.join("order", f"listener{index}")
                listeners.append(listener)
            senders = []
            for index in range(SENDERS_PER_NODE * len(nodes)):
                sender = await Client.connect(nodes[index % len(nodes)].url)
                clients.append(sender)
                await sender.join("order", f"sender{index}")
                senders.append(sender)
            everyone = [*listeners, *senders]
            last = f"sender{len(senders) - 1}"
            for client in everyone[:-1]:
                async with asyncio.timeout(30):
                    while (await expect_type(client, "user-joined"))["userId"] != last:
                        pass
            total = PER_SENDER * len(senders)

            async def send(index: int, sender: Client) -> list[int]:
                """Keep IN_FLIGHT chats on their way; every seq this sender sees, in
                the order it sees them (its acks and the others' chat)."""
                seqs: list[int] = []
                sent = acked = 0
                while sent < min(IN_FLIGHT, PER_SENDER):
                    await sender.send({"type": "chat", "message": f"{index}.{sent}"})
                    sent += 1
                while len(seqs) < total:
                    message = await sender.recv(timeout=60)
                    if message["type"] not in ("chat", "chat-ack"):
                        continue
                    seqs.append(message["seq"])
                    if message["type"] == "chat-ack":
                        acked += 1
                        if sent < PER_SENDER:
                            await sender.send({"type": "chat", "message": f"{index}.{sent}"})
                            sent += 1
                assert acked == PER_SENDER
                return seqs

            async def listen(listener: Client) -> list[int]:
                seqs: list[int] = []
                while len(seqs) < total:
                    message = await listener.recv(timeout=60)
                    if message["type"] == "chat":
                        seqs.append(message["seq"])
                return seqs

            async with asyncio.timeout(120):
                seen = await asyncio.gather(
                    *(listen(listener) for listener in listeners),
                    *(send(index, sender) for index, sender in enumerate(senders)),
                )
            for index, seqs in enumerate(seen):
                name = f"client {index}"
                inversions = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
                assert not inversions, f"{name}: out of order {inversions[:5]}"
                assert seqs == list(range(1, total + 1)), name
        finally:
            for client in clients:
                await client.close()
