"""A client whose connection to one node was lost comes back through another node
(a load balancer need not be sticky) and resumes there: every message it missed,
once and in order, then the live stream, in its place in the room. When the node
that held the session is dead, it is told so plainly, and its name is free at once."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.cluster.nodes import cluster
from tests.cluster.test_nodes import SLACK, expect_type
from tests.faults.resuming import CuttingProxy
from tests.wsclient import Client

GRACE = 60.0
"""Far longer than any wait below: whatever happens, happens before it is over."""


def proxy_to(url: str) -> CuttingProxy:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return CuttingProxy(parts.hostname, parts.port)


def resume_of(joined: dict[str, Any], last_n: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "resume",
        "sessionId": joined["sessionId"],
        "resumeToken": joined["resumeToken"],
        "lastN": last_n,
        **extra,
    }


async def test_a_session_resumes_through_another_node_with_everything_it_missed(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    async with cluster(
        3, redis_url, tmp_path, "--resume-grace", str(GRACE), database_url=postgres_url
    ) as (n1, n2, n3):
        proxy = proxy_to(n1.url)
        through_proxy = await proxy.start()
        watcher = await Client.connect(n2.url)
        bob = await Client.connect(n3.url)
        alice = await Client.connect(through_proxy)
        impostor = back = None
        try:
            await watcher.join("team", "watcher")
            await bob.join("team", "bob")
            joined = await alice.join("team", "alice")
            n1_id = joined["sessionId"].split(".")[0]
            for member in (watcher, bob):
                while (await expect_type(member, "user-joined"))["userId"] != "alice":
                    pass
            await watcher.send({"type": "chat", "message": "before the cut"})
            assert (await expect_type(alice, "chat"))["message"] == "before the cut"

            # The network drops: no close frame, no FIN. Node 1 keeps alice's place,
            # and what the room sends her meanwhile.
            assert proxy.cut_one(random.Random(1))
            update = await expect_type(watcher, "participant-updated")
            assert (update["userId"], update["connection"]) == ("alice", "reconnecting")
            for text in ("one", "two", "three"):
                await watcher.send({"type": "chat", "message": text})
            await bob.send({"type": "signal", "targetUserId": "alice", "signal": {"k": 1}})
            await bob.send({"type": "presence", "status": "away"})
            await expect_type(watcher, "presence")

            # Someone without the token gets nothing, and changes nothing.
            impostor = await Client.connect(n2.url)
            await impostor.send(resume_of(joined, alice.last_n, resumeToken="not-the-token"))
            refused = await impostor.expect_error("resume-failed")
            assert refused["reason"] == "unknown-session"

            # alice comes back through node 2 with her token: her session moves there,
            # and she gets what she missed, once, in order, then the live stream.
            back = await Client.connect(n2.url)
            back.last_n = alice.last_n
            await back.send(resume_of(joined, alice.last_n, ref="r1"))
            resumed = await back.expect("resumed")
            assert resumed["ref"] == "r1"
            assert resumed["userId"] == "alice"
            assert resumed["room"] == "team"
            assert not resumed["sessionId"].startswith(n1_id)  # held by node 2 now
            missed = [await back.recv() for _ in range(resumed["lastN"] - alice.last_n)]
            assert [(m["type"], m.get("message")) for m in missed if m["type"] == "chat"] == [
                ("chat", "one"),
                ("chat", "two"),
                ("chat", "three"),
            ]
            seqs = [m["seq"] for m in missed if m["type"] == "chat"]
            assert seqs == sorted(seqs)
            assert [m["signal"] for m in missed if m["type"] == "signal"] == [{"k": 1}]
            assert [m["status"] for m in missed if m["type"] == "presence"] == ["away"]
            assert back.last_n == resumed["lastN"]
            update = await expect_type(watcher, "participant-updated")
            assert (update["userId"], update["connection"]) == ("alice", "connected")

            # Her place, her name: the same member, live from here on, wherever sent from.
            await watcher.send({"type": "chat", "message": "after"})
            assert (await expect_type(back, "chat"))["message"] == "after"
            await bob.send({"type": "signal", "targetUserId": "alice", "signal": {"k": 2}})
            assert (await expect_type(back, "signal"))["signal"] == {"k": 2}
            await back.send({"type": "signal", "targetUserId": "bob", "signal": {"k": 3}})
            assert (await expect_type(bob, "signal"))["fromUserId"] == "alice"
            async with await Client.connect(n3.url) as late:
                again = await late.join("team", "late")
                assert [p["userId"] for p in again["participants"]] == ["watcher", "bob", "alice"]
        finally:
            for client in (watcher, bob, alice, impostor, back):
                if client is not None:
                    await client.close()
            await proxy.close()


async def test_a_half_open_connection_is_closed_when_its_client_resumes_elsewhere(
    redis_url: str, tmp_path: Path
) -> None:
    async with cluster(2, redis_url, tmp_path, "--resume-grace", str(GRACE)) as (n1, n2):
        watcher = await Client.connect(n2.url)
        alice = await Client.connect(n1.url)
        back = None
        try:
            await watcher.join("team", "watcher")
            joined = await alice.join("team", "alice")
            await expect_type(watcher, "user-joined")
            # The client takes its connection for dead; the server does not know.
            back = await Client.connect(n2.url)
            back.last_n = alice.last_n
            await back.send(resume_of(joined, alice.last_n))
            assert (await back.expect("resumed"))["lastN"] == alice.last_n
            assert await alice.closed_with() == 4010
            await watcher.nothing(within=0.5)  # nobody left, nobody came
            await watcher.send({"type": "chat", "message": "still here?"})
            assert (await expect_type(back, "chat"))["message"] == "still here?"
        finally:
            for client in (watcher, alice, back):
                if client is not None:
                    await client.close()


async def test_a_resume_of_a_session_whose_node_died_says_so_and_frees_the_name(
    redis_url: str, tmp_path: Path
) -> None:
    async with cluster(2, redis_url, tmp_path, "--resume-grace", str(GRACE)) as (n1, n2):
        watcher = await Client.connect(n2.url)
        alice = await Client.connect(n1.url)
        back = None
        try:
            await watcher.join("team", "watcher")
            joined = await alice.join("team", "alice")
            assert (await expect_type(watcher, "user-joined"))["userId"] == "alice"
            await watcher.send({"type": "chat", "message": "stored"})
            n1.kill()
            await asyncio.sleep(2.0)  # its alive key expires (node timeout 1.5 s)
            back = await Client.connect(n2.url)
            loop = asyncio.get_running_loop()
            asked_at = loop.time()
            await back.send(resume_of(joined, alice.last_n))
            refused = await back.expect_error("resume-failed")
            assert refused["reason"] == "node-gone", refused
            assert loop.time() - asked_at < SLACK
            # Told plainly: its chat is stored, its name free at once.
            assert "history" in refused["message"]
            left = await expect_type(watcher, "user-left")
            assert left["userId"] == "alice"
            again = await back.join("team", "alice")
            assert [p["userId"] for p in again["participants"]] == ["watcher"]
            assert [m["message"] for m in again["history"]] == ["stored"]
        finally:
            for client in (watcher, alice, back):
                if client is not None:
                    await client.close()
