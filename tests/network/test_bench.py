"""The benchmark over the shaped path (bench/network_path.py) at smoke size, so that
it cannot rot: every pairing moves a whole file and sets a call up."""

from __future__ import annotations

import pytest
from bench.network_path import measure, table

from tests.network.lab import unavailable_reason

pytestmark = [pytest.mark.network, pytest.mark.browser, pytest.mark.bench]


async def test_the_network_benchmark_runs() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    report = await measure(megabytes=0.5, runs=1)
    for name in ("Python to Python", "browser to browser", "browser to Python"):
        row = report["results"][name]
        assert row["mbit_s"] > 0, report
        assert 0 < row["link_share"] <= 1, report
        assert row["setup_channel_ms"] > 0, report
    assert report["results"]["browser to browser"]["setup_frame_ms"] > 0
    assert "| Python to Python |" in table(report)
