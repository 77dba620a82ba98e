"""A client whose connection to one node was lost comes back through another node
(a load balancer need not be sticky): its session is given up where it was, at
once, and it is told plainly to join again, which it can do under the same name."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from urllib.parse import urlsplit

from tests.cluster.nodes import GONE_WITHIN, cluster
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


async def test_a_resume_through_another_node_ends_the_session_there_and_says_rejoin(
    redis_url: str, tmp_path: Path
) -> None:
    async with cluster(2, redis_url, tmp_path, "--resume-grace", str(GRACE)) as (n1, n2):
        proxy = proxy_to(n1.url)
        through_proxy = await proxy.start()
        watcher = await Client.connect(n2.url)
        alice = await Client.connect(through_proxy)
        impostor = back = None
        try:
            await watcher.join("team", "watcher")
            joined = await alice.join("team", "alice")
            assert (await expect_type(watcher, "user-joined"))["userId"] == "alice"
            await watcher.send({"type": "chat", "message": "before the cut"})
            assert (await expect_type(alice, "chat"))["message"] == "before the cut"

            # The network drops: no close frame, no FIN. Node 1 keeps alice's place.
            assert proxy.cut_one(random.Random(1))
            update = await expect_type(watcher, "participant-updated")
            assert (update["userId"], update["connection"]) == ("alice", "reconnecting")

            # Someone without the token cannot end alice's session from node 2.
            impostor = await Client.connect(n2.url)
            await impostor.send(
                {
                    "type": "resume",
                    "sessionId": joined["sessionId"],
                    "resumeToken": "not-the-token",
                    "lastN": alice.last_n,
                }
            )
            refused = await impostor.expect_error("resume-failed")
            assert refused["reason"] == "unknown-session"
            await watcher.nothing(within=1.0)

            # alice comes back through node 2 with her token: node 1 ends her
            # session now (not when the grace period is over), and she is told so.
            back = await Client.connect(n2.url)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await back.send(
                {
                    "type": "resume",
                    "sessionId": joined["sessionId"],
                    "resumeToken": joined["resumeToken"],
                    "lastN": alice.last_n,
                }
            )
            refused = await back.expect_error("resume-failed")
            assert refused["reason"] == "other-node", refused
            left = await expect_type(watcher, "user-left")
            assert left["userId"] == "alice"
            assert loop.time() - started < GRACE / 2

            # Her name is free: the same connection joins again, with the history.
            again = await back.join("team", "alice")
            assert [entry["message"] for entry in again["history"]] == ["before the cut"]
            assert [p["userId"] for p in again["participants"]] == ["watcher"]
            assert (await expect_type(watcher, "user-joined"))["userId"] == "alice"
            await watcher.send({"type": "chat", "message": "after"})
            assert (await expect_type(back, "chat"))["message"] == "after"
        finally:
            for client in (watcher, alice, impostor, back):
                if client is not None:
                    await client.close()
            await proxy.close()


async def test_a_resume_of_a_session_whose_node_died_fails_and_the_name_comes_back(
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
            n1.kill()
            back = await Client.connect(n2.url)
            await back.send(
                {
                    "type": "resume",
                    "sessionId": joined["sessionId"],
                    "resumeToken": joined["resumeToken"],
                    "lastN": alice.last_n,
                }
            )
            refused = await back.expect_error("resume-failed")
            assert refused["reason"] == "unknown-session", refused
            # The dead node's members are reaped within the documented time; then
            # the name is free.
            assert (await expect_type(watcher, "user-left", GONE_WITHIN + SLACK))[
                "userId"
            ] == "alice"
            again = await back.join("team", "alice")
            assert [p["userId"] for p in again["participants"]] == ["watcher"]
        finally:
            for client in (watcher, alice, back):
                if client is not None:
                    await client.close()
