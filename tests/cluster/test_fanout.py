"""Fan-out across nodes costs Redis one PUBLISH per room message, whatever the
number of recipients or of nodes they sit on (counted by Redis itself)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.broker.test_redis import publish_calls
from tests.cluster.nodes import cluster
from tests.cluster.test_nodes import expect_type
from tests.redis import RedisServer
from tests.wsclient import Client

CHATS = 25
MEMBERS_PER_NODE = 6


async def test_a_chat_is_published_once_per_room_not_per_recipient(
    redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with cluster(2, redis_url, tmp_path) as nodes:
        clients: list[Client] = []
        try:
            sender = await Client.connect(nodes[0].url)
            clients.append(sender)
            await sender.join("crowd", "sender")
            receivers = []
            for index in range(2 * MEMBERS_PER_NODE):
                client = await Client.connect(nodes[index % 2].url)
                clients.append(client)
                await client.join("crowd", f"member-{index}")
                receivers.append(client)
            # Everyone is in once the last joiner's arrival reached every other member.
            last = f"member-{len(receivers) - 1}"
            for client in (sender, *receivers[:-1]):
                async with asyncio.timeout(30):
                    while (await expect_type(client, "user-joined"))["userId"] != last:
                        pass

            before = publish_calls(redis_server.port)
            for number in range(CHATS):
                await sender.send({"type": "chat", "message": f"m{number}"})
            for receiver in receivers:
                got = [(await expect_type(receiver, "chat"))["message"] for _ in range(CHATS)]
                assert got == [f"m{number}" for number in range(CHATS)]
            published = publish_calls(redis_server.port) - before

            # Twelve recipients, half of them on the other node: one PUBLISH a chat.
            assert published == CHATS, published
        finally:
            for client in clients:
                await client.close()
