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
