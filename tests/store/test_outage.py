"""PostgreSQL stops during a chat storm and during HTTP reads, and comes back.

docs/protocol.md: while the store fails, a chat is refused with ``store-unavailable``
(nothing was stored: the client sends it again, with the same ``clientId``), an HTTP
read answers 503 ``store-unavailable``, and ``/readyz`` is not ready. Nothing that was
acknowledged is lost, and nothing sent again is stored twice.
"""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
import asyncpg
import pytest

from hubbub.server import ServerSettings
from tests.postgres import PostgresServer
from tests.wsclient import Client

OUTAGE = 3.0
API_KEY = "store-outage-api-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def status_and_code(http: aiohttp.ClientSession, url: str) -> tuple[int, str | None]:
    async with http.get(url, headers=AUTH) as response:
        body = await response.json()
        return response.status, (body.get("error") or {}).get("code")


@pytest.mark.logs_errors(
    # the store's failures, each on one line: a traceback here is a failure not understood
    r"^ERROR hubbub\.store event=store-failed messages=\d+ error=PostgreSQL: [^\n]*$",
    r"^ERROR hubbub\.server event=store-failed op=\S+ [^\n]*error=[^\n]*$",
    r"^WARNING hubbub\.server event=readiness-check-failed\n",
    r"^WARNING asyncpg\.pool Failed to restore the pool connection floor; retrying\n",
)
async def test_nothing_acknowledged_is_lost_when_postgresql_stops(
    own_postgres: PostgresServer, start_hub
) -> None:
    database = own_postgres.new_database()
    url = await start_hub(
        ServerSettings(database_url=database, api_key=API_KEY),
        message_rate=1000,
        message_burst=1000,
    )
    messages_url = url + "/api/rooms/storm/messages"
    writers = {"w1": await Client.connect(url), "w2": await Client.connect(url)}
    sent: dict[str, set[str]] = {name: set() for name in writers}
    acked: dict[str, dict[str, int]] = {name: {} for name in writers}
    refused: dict[str, list[str]] = {name: [] for name in writers}
    storming = True
    async with aiohttp.ClientSession() as http:
        try:
            for name, client in writers.items():
                await client.join("storm", name)
            await writers["w1"].expect("user-joined")

            async def write(name: str, client: Client) -> None:
                for i in itertools.count():
                    if not storming:
                        return
                    client_id = f"{i}"
                    sent[name].add(client_id)
                    await client.send(
                        {
                            "type": "chat",
                            "message": f"{name} {i}",
                            "clientId": client_id,
                            "ref": client_id,
                        }
                    )
                    await asyncio.sleep(0.02)

            async def read(name: str, client: Client) -> None:
                """Until stopped: every ack kept, every refusal a store-unavailable."""
                while True:
                    message = await client.recv(timeout=30)
                    if message["type"] == "chat-ack":
                        acked[name][message["clientId"]] = message["seq"]
                    elif message["type"] == "error":
                        assert message["code"] == "store-unavailable", message
                        refused[name].append(message["ref"])
                    else:
                        assert message["type"] == "chat", message

            readers = [asyncio.create_task(read(n, c)) for n, c in writers.items()]
            sending = [asyncio.create_task(write(n, c)) for n, c in writers.items()]
            await asyncio.sleep(1.5)
            assert await status_and_code(http, messages_url) == (200, None)

            await asyncio.to_thread(own_postgres.pause)
            # HTTP reads and readiness say so while it is down
            async with asyncio.timeout(10):
                while await status_and_code(http, messages_url) != (503, "store-unavailable"):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            async with http.get(url + "/readyz") as response:
                assert response.status == 503
                assert (await response.json())["checks"]["store"] is False
            await asyncio.sleep(OUTAGE)
            await asyncio.to_thread(own_postgres.resume)

            async with asyncio.timeout(30):
                while True:
                    async with http.get(url + "/readyz") as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)  # the storm goes on with the store back
            storming = False
            await asyncio.gather(*sending)
            for task in readers:
                assert not task.done() or task.exception() is None
            assert all(refused.values()), refused  # the outage was felt by both writers

            # A client sends again what was refused, with the same clientId, until
            # everything it sent is acknowledged.
            async with asyncio.timeout(30):
                while any(sent[n] - set(acked[n]) for n in writers):
                    for name, client in writers.items():
                        for client_id in sorted(sent[name] - set(acked[name])):
                            await client.send(
                                {
                                    "type": "chat",
                                    "message": f"{name} {client_id}",
                                    "clientId": client_id,
                                    "ref": client_id,
                                }
                            )
                    await asyncio.sleep(1.0)
            for task in readers:
                assert not task.done(), task
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            assert await status_and_code(http, messages_url) == (200, None)
        finally:
            for client in writers.values():
                await client.close()

    # Every message is stored once, its seq the one acknowledged, gapless.
    db = await asyncpg.connect(database)
    try:
        rows = await db.fetch("SELECT user_id, client_id, seq FROM messages WHERE room = 'storm'")
    finally:
        await db.close()
    stored = {(r["user_id"], r["client_id"]): r["seq"] for r in rows}
    assert len(stored) == len(rows)
    assert sorted(stored.values()) == list(range(1, len(rows) + 1))
    assert stored == {(n, c): seq for n, acks in acked.items() for c, seq in acks.items()}
