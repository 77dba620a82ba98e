"""Stored chat over real sockets, on both store backends, and across restarts of a
real ``hubbub serve`` process."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hubbub.server import ServerSettings
from tests.process import hubbub_serve
from tests.wsclient import Client


async def test_chat_is_stored_numbered_and_acknowledged(start_hub, store_settings) -> None:
    url = await start_hub(store_settings)
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "alice")
        await b.join("r", "bob")
        await a.expect("user-joined")
        await b.send({"type": "chat", "message": "one", "clientId": "c-1", "ref": 1})
        chat = await a.expect("chat")
        ack = await b.expect("chat-ack")
        assert chat["message"] == "one"
        assert chat["userId"] == "bob"
        assert chat["seq"] == 1
        assert chat["clientId"] == "c-1"
        assert ack == {
            "type": "chat-ack",
            "id": chat["id"],
            "seq": 1,
            "ts": chat["ts"],
            "clientId": "c-1",
            "ref": 1,
        }
        # The same clientId again: answered with the first, stored and relayed once.
        await b.send({"type": "chat", "message": "one", "clientId": "c-1", "ref": 2})
        again = await b.expect("chat-ack")
        assert (again["id"], again["seq"], again["duplicate"], again["ref"]) == (
            chat["id"],
            1,
            True,
            2,
        )
        await b.send({"type": "chat", "message": "two"})
        assert (await a.expect("chat"))["seq"] == 2
        await b.expect("chat-ack")
        await a.nothing()


async def test_history_on_join_and_paging(start_hub, store_settings) -> None:
    url = await start_hub(replace(store_settings, history_on_join=5), max_history_page=4)
    async with await Client.connect(url) as a:
        await a.join("r", "alice")
        for n in range(1, 13):
            await a.send({"type": "chat", "message": f"m{n}"})
        for _ in range(12):
            await a.expect("chat-ack")
        await a.send({"type": "leave-room"})
        await a.expect("room-left")
    async with await Client.connect(url) as b:
        joined = await b.join("r", "bob")
        assert joined["lastSeq"] == 12
        assert [m["message"] for m in joined["history"]] == ["m8", "m9", "m10", "m11", "m12"]
        assert set(joined["history"][0]) == {"id", "seq", "ts", "userId", "message"}
        await b.send({"type": "history", "beforeSeq": 8, "limit": 50, "ref": "h"})
        page = await b.expect("history")
        assert page["ref"] == "h"
        assert page["room"] == "r"
        assert [m["seq"] for m in page["messages"]] == [4, 5, 6, 7]  # at most 4 a page
        await b.send({"type": "history", "beforeSeq": 4})
        assert [m["seq"] for m in (await b.expect("history"))["messages"]] == [1, 2, 3]
        await b.send({"type": "history", "limit": 0})
        await b.expect_error("bad-message")
        await b.send({"type": "chat", "message": "x", "clientId": "c" * 65})
        await b.expect_error("too-large")
        await b.send({"type": "leave-room"})
        await b.expect("room-left")
        await b.send({"type": "history"})
        await b.expect_error("not-in-room")


async def test_a_full_write_queue_answers_store_unavailable(start_hub, tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path, store_max_pending=1, store_batch_delay=0.5)
    url = await start_hub(settings)
    async with await Client.connect(url) as a:
        await a.join("r", "alice")
        await a.send({"type": "chat", "message": "first", "ref": 1})
        await a.send({"type": "chat", "message": "second", "ref": 2})
        error = await a.expect_error("store-unavailable")
        assert error["ref"] == 2
        assert (await a.expect("chat-ack"))["ref"] == 1


async def test_retention_keeps_the_last_messages(start_hub, tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path, retention_messages=3, retention_interval=0.1)
    url = await start_hub(settings)
    async with await Client.connect(url) as a:
        await a.join("r", "alice")
        for n in range(1, 9):
            await a.send({"type": "chat", "message": f"m{n}"})
            await a.expect("chat-ack")
        for _ in range(100):
            await a.send({"type": "history"})
            seqs = [m["seq"] for m in (await a.expect("history"))["messages"]]
            if seqs == [6, 7, 8]:
                break
            await asyncio.sleep(0.1)
        assert seqs == [6, 7, 8]
        await a.send({"type": "chat", "message": "m9"})
        assert (await a.expect("chat-ack"))["seq"] == 9


async def _chat(client: Client, count: int, start: int, prefix: str = "m") -> list[dict]:
    for n in range(start, start + count):
        await client.send({"type": "chat", "message": f"{prefix}{n}", "clientId": f"c{n}"})
    return [await client.expect("chat-ack") for _ in range(count)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
async def test_a_restart_keeps_history_and_sequence_numbers(
    backend: str, stop: signal.Signals, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        store = ("--database-url", request.getfixturevalue("postgres_url"))
    else:
        store = ("--data-dir", str(tmp_path))
    async with hubbub_serve(*store) as (url, process), await Client.connect(url) as a:
        await a.join("r", "alice")
        acks = await _chat(a, 20, 1)
        assert [ack["seq"] for ack in acks] == list(range(1, 21))
        process.send_signal(stop)
        await process.wait()
    async with hubbub_serve(*store) as (url, _), await Client.connect(url) as a:
        joined = await a.join("r", "alice")
        assert joined["lastSeq"] == 20
        assert [m["message"] for m in joined["history"]] == [f"m{n}" for n in range(1, 21)]
        assert [m["id"] for m in joined["history"]] == [ack["id"] for ack in acks]
        # A message sent again after the restart is still recognised...
        await a.send({"type": "chat", "message": "m20", "clientId": "c20"})
        again = await a.expect("chat-ack")
        assert (again["seq"], again["id"], again["duplicate"]) == (20, acks[-1]["id"], True)
        # ...and numbering goes on with no gap and no repeat.
        assert [ack["seq"] for ack in await _chat(a, 5, 21)] == list(range(21, 26))


def test_a_database_from_a_newer_hubbub_is_refused(tmp_path: Path) -> None:
    serve = [sys.executable, "-m", "hubbub", "serve", "--port", "0", "--data-dir", str(tmp_path)]
    database = tmp_path / "hubbub.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE hubbub_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO hubbub_schema VALUES (99)")
    result = subprocess.run(serve, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"hubbub serve: error: the database at {database} has schema version 99" in (
        result.stderr
    )
    assert "newer hubbub" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_storm_reaches_every_member_in_order_with_what_followed_it(
    start_hub, store_settings
) -> None:
    """Chat stored in batches is relayed and acknowledged together: every member
    still gets the room's messages in sequence order, each sender its acks in that
    order among the others' chats, and what a sender did after chatting (a status,
    leaving) only after its chat."""
    url = await start_hub(store_settings)
    async with (
        await Client.connect(url) as alice,
        await Client.connect(url) as bob,
        await Client.connect(url) as carol,
        await Client.connect(url) as dave,
    ):
        await alice.join("r", "alice")
        await bob.join("r", "bob")
        await carol.join("r", "carol")
        await dave.join("elsewhere", "dave")
        for client, joiners in ((alice, 2), (bob, 1)):
            for _ in range(joiners):
                await client.expect("user-joined")
        for number in range(40):
            for name, client in (("alice", alice), ("bob", bob), ("dave", dave)):
                await client.send(
                    {"type": "chat", "message": f"{name} {number}", "clientId": f"{name}-{number}"}
                )
            if number == 20:  # sent again: acked as the first, relayed once
                await alice.send({"type": "chat", "message": "alice 5", "clientId": "alice-5"})
        await alice.send({"type": "presence", "status": "away"})
        await bob.send({"type": "leave-room"})

        async def read(client: Client, until: Any) -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = []
            while not until(got):
                got.append(await client.recv())
            return got

        def chats_from(got: list[dict[str, Any]], name: str) -> list[str]:
            return [m["message"] for m in got if m["type"] == "chat" and m["userId"] == name]

        everything = [f"{name} {n}" for n in range(40) for name in ("alice", "bob")]
        seen_by_carol = await read(carol, lambda got: any(m["type"] == "user-left" for m in got))
        chats = [m for m in seen_by_carol if m["type"] == "chat"]
        assert [m["seq"] for m in chats] == list(range(1, 81))
        assert sorted(m["message"] for m in chats) == sorted(everything)
        kinds = [m["type"] for m in seen_by_carol]
        # alice's status after her last chat; bob's leave after his.
        assert kinds.index("presence") > max(
            i
            for i, m in enumerate(seen_by_carol)
            if m.get("userId") == "alice" and m["type"] == "chat"
        )
        assert kinds[-1] == "user-left"

        seen_by_alice = await read(alice, lambda got: any(m["type"] == "user-left" for m in got))
        acks = [m for m in seen_by_alice if m["type"] == "chat-ack"]
        assert [a["clientId"] for a in acks if not a.get("duplicate")] == [
            f"alice-{n}" for n in range(40)
        ]
        [again] = [a for a in acks if a.get("duplicate")]
        assert again["clientId"] == "alice-5"
        # Her acks and bob's chats, as they came, in the room's order.
        ordered = [
            m["seq"]
            for m in seen_by_alice
            if m["type"] == "chat" or (m["type"] == "chat-ack" and not m.get("duplicate"))
        ]
        assert ordered == list(range(1, 81))
        assert chats_from(seen_by_alice, "bob") == [f"bob {n}" for n in range(40)]

        seen_by_dave = await read(dave, lambda got: sum(m["type"] == "chat-ack" for m in got) == 40)
        assert [m["seq"] for m in seen_by_dave] == list(range(1, 41))
        await dave.nothing()
