"""The idle-connection benchmark (bench/idle_cost.py) at smoke size, so that it cannot
rot: on loopback and across the veth pair, every client joins, stays connected and
answers the pings of the window, and the server's CPU is read."""

from __future__ import annotations

import pytest
from bench.idle_cost import _why_not, measure, table

pytestmark = [pytest.mark.network, pytest.mark.bench]


def test_the_idle_benchmark_runs() -> None:
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    report = measure(clients=50, ping_interval=1.0, rounds=2, quiet_seconds=0.5)
    for name in ("loopback", "veth"):
        row = report["results"][name]
        assert row["clients"] == row["still_open"] == 50, report
        # two rounds of pings, one per client each (a ping is due 1 s after the last
        # frame heard, its answer included; the sweep is late by up to its period)
        assert 50 <= row["pings"] <= 4 * 50, report
        # (the CPU figures are read, but at this size are below the clock's tick)
        assert row["process_us_per_ping"] >= 0, report
    assert "| veth |" in table(report)
