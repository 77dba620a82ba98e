"""Cluster: relay and fanout on one node, on one node with Redis, and on two nodes.

The same loads as the ``relay`` and ``fanout`` scenarios (their drivers, unchanged),
on three set-ups of hubbub: one node with the in-memory broker (what a single
machine runs), one node on Redis (the broker's cost alone: every room message is
still published), and two nodes on one Redis with the clients dealt over both
(every relay pair split across the nodes; fanout members in turn on each node, the
sender on the first). CPU is that of every process together (the nodes and
redis-server), per message delivered to one recipient, and also given by part and,
for the nodes, how much of it was in the kernel; the nodes' system calls that read
and that wrote (``recv``, ``send`` and file reads and writes; not ``epoll_wait``),
per delivery, say how many messages each carries.

Closed loops run each set-up as fast as it can, so on one machine the set-ups'
processes (two nodes, Redis and the generators on the same cores) take the cores
from each other, and each delivery's cost depends on how many a turn of a node's
event loop finds. The paced cases offer every set-up the same load, below what any
of them can take (``rate``: signals, or chats, a second), so that CPU per delivery
compares the set-ups at one rate.
"""

from __future__ import annotations

from typing import Any

from bench.scenario import Case, Column, Run, Scenario
from bench.scenarios.fanout import Fanout
from bench.scenarios.relay import Relay
from bench.servers import RunningServer

_RELAY = Relay()
_FANOUT = Fanout()


class Cluster(Scenario):
    name = "cluster"
    title = "Cluster: the cost of the Redis hop"
    description = (
        "The relay and fanout loads on hubbub as one node (in-memory broker), as one node "
        "on Redis (`--broker redis://`: every room message is published to Redis too), and "
        "as two nodes on one Redis with the clients dealt over both (each relay pair split "
        "across the nodes; fanout members in turn on each node, the sender on the first). "
        "CPU/delivery counts every process: the nodes and redis-server, per message "
        "delivered to one recipient; the two next columns split it. The paced cases send "
        "at a fixed rate, the same for every set-up, instead of as fast as each goes."
    )
    servers = (
        "hubbub",
        "hubbub-ref",
        "hubbub-redis",
        "hubbub-redis-ref",
        "hubbub-cluster",
        "hubbub-cluster-ref",
    )
    columns = (
        Column("deliveries_per_s", "deliveries/s", digits=0, plot=True),
        Column("p50_ms", "p50", "ms", 2),
        Column("p99_ms", "p99", "ms", 2, plot=True, lower_is_better=True),
        Column("cpu_us_per_delivery", "CPU/delivery, all", "µs", 2, True, True),
        Column("nodes_cpu_us_per_delivery", "of which nodes", "µs", 2),
        Column("redis_cpu_us_per_delivery", "of which Redis", "µs", 2, may_be_zero=True),
        Column("nodes_system_us_per_delivery", "of which nodes' kernel", "µs", 2),
        Column("node_writes_per_delivery", "writes/delivery, nodes", digits=3),
        Column("node_reads_per_delivery", "reads/delivery, nodes", digits=3),
        Column("server_cpu_pct", "CPU, all", "%", 0),
        Column("generator_cpu_pct", "generators CPU", "%", 0),
    )

    def cases(self, size: str) -> list[Case]:
        seconds = {"smoke": 1.0, "quick": 5.0, "full": 15.0}[size]
        # Paced: about 30,000 deliveries a second (under half of what two nodes relay
        # here, a third of what they fan out).
        signals, chats = (5_000, 100) if size == "smoke" else (30_000, 150)
        relay = {**next(iter(_RELAY.cases(size))).params, "load": "relay", "seconds": seconds}
        fanout = next(iter(_FANOUT.cases(size))).params  # the smaller room
        fanout = {**fanout, "load": "fanout", "seconds": seconds}
        return [
            Case(f"relay, {relay['pairs']} pairs", relay),
            Case(f"fanout, {fanout['members']} members", fanout),
            Case(
                f"relay, {relay['pairs']} pairs, {signals:,} signals a second",
                {**relay, "rate": signals},
            ),
            Case(
                f"fanout, {fanout['members']} members, {chats:,} chats a second",
                {**fanout, "rate": chats},
            ),
        ]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        params = {k: v for k, v in case.params.items() if k != "load"}
        if case.params["load"] == "relay":
            figures = await _RELAY.measure(run, server, Case(case.label, params))
            deliveries = figures["messages"]
        else:
            figures = await _FANOUT.measure(run, server, Case(case.label, params))
            deliveries = figures["deliveries"]
        per = 1e6 / max(deliveries, 1)
        nodes = figures["cpu_s_server"]
        redis = figures.get("cpu_s_redis", 0.0)
        # The nodes' processes (one node's: "server"), not Redis's.
        nodes_io = [key.removeprefix("writes_") for key in figures if key.startswith("writes_")]
        nodes_io = [name for name in nodes_io if name != "redis"]
        return {
            **figures,
            "nodes_system_us_per_delivery": figures["cpu_system_s_server"] * per,
            "node_writes_per_delivery": sum(figures[f"writes_{n}"] for n in nodes_io) * per / 1e6,
            "node_reads_per_delivery": sum(figures[f"reads_{n}"] for n in nodes_io) * per / 1e6,
            "deliveries": deliveries,
            "deliveries_per_s": deliveries / figures["seconds"],
            "cpu_us_per_delivery": (nodes + redis) * per,
            "nodes_cpu_us_per_delivery": nodes * per,
            "redis_cpu_us_per_delivery": redis * per,
        }
