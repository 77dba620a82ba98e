"""The benchmarks at smoke size: every scenario on every server that can run here.

Figures are not checked against any bound (the machine may be busy); what is
checked is that each scenario measured something real on each server and that the
report was written, so that the benchmark cannot rot between full runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.runner import run_all
from bench.scenarios import SCENARIOS
from bench.servers import SeedServer, all_servers

from tests.janus import janus_missing_reason

pytestmark = pytest.mark.bench

UNSTABLE = {"sfu_page"}
"""Left out of the smoke run, for now: ``sfu_page`` (one Chromium page and three aiortc
bots in an SFU room) failed once in a fresh clone with its own ``hubbub serve`` ending
before it listened, and once in three runs here with the page not in the call within
30 s; its cause is not found yet. ``make bench`` runs it as ever; the web app in an SFU
room is tested by tests/browser/test_sfu_web_app.py. (``sfu`` sat out too while a
member of its mesh sometimes got no video: its first offer reached a member whose mesh
was not listening yet, and the pair waited on each other for good; see
tests/sdk/test_peers.py.)"""

SMOKED = [scenario for scenario in SCENARIOS if scenario.name not in UNSTABLE]

JANUS_SCENARIOS = {"sfu", "sfu_page"}
"""They run a Janus of their own (tests/janus.py): root and Debian's janus."""


async def test_every_scenario_measures_every_server(tmp_path: Path) -> None:
    servers = all_servers()
    janus_missing = janus_missing_reason()
    results = await run_all(SMOKED, servers, "smoke", tmp_path, "pytest smoke", shared_machine=True)

    # Every server runs: scripts/system-deps.sh installs Node.js and npm (and
    # redis-server), and the seed's server is in the shared folder beside the repository.
    # A baseline that cannot run fails the test rather than leave the report without it.
    # The cluster set-ups:
    clusters = {"hubbub-redis", "hubbub-cluster"}
    # The front-ends' scenarios, with their reference servers from npm.
    frontends = {"hubbub-frontends", "peer", "y-webrtc-server"}
    named_only = clusters | frontends
    expected = {"hubbub", "socketio", "seed"} | named_only
    missing = {name: server["missing"] for name, server in results["servers"].items()}
    assert set(missing) == expected
    # The seed's server is not the project's: it lives beside the repository
    # (../shared/peers/seed-signaling-server). A clone made elsewhere measures without
    # it, and the report says why; anything else missing (Node.js, npm) fails.
    seed = next(server for server in servers if isinstance(server, SeedServer))
    may_miss = {"seed"} if seed.source() is None else set()
    assert {name for name, why in missing.items() if why} == may_miss, missing
    for name in may_miss:
        assert "the seed server was not found" in missing[name]
    expected -= may_miss
    assert results["scenarios"]
    for entry in results["scenarios"]:
        scenario = next(s for s in SMOKED if s.name == entry["name"])
        wanted = expected & set(scenario.servers or expected - named_only)
        assert set(entry["results"]) == wanted, entry["name"]
        for server, figures in entry["results"].items():
            if entry["name"] in JANUS_SCENARIOS and janus_missing:
                # No Janus can run here: the scenario says why instead of measuring.
                assert figures.get("error", "").endswith(janus_missing), figures
                continue
            assert "error" not in figures, (entry["name"], server, figures)
            for column in scenario.columns:
                if column.servers is not None and server not in column.servers:
                    continue
                value = figures.get(column.key)
                assert value is not None, (entry["name"], server, column.key)
                assert value > 0 or (column.may_be_zero and value == 0), (
                    entry["name"],
                    server,
                    column.key,
                    value,
                )
            if server == "hubbub-cluster":
                # Each node's CPU, besides the nodes' together (read a moment apart).
                nodes = figures["cpu_s_node1"] + figures["cpu_s_node2"]
                assert abs(nodes - figures["cpu_s_server"]) <= 0.05, figures

    written = json.loads((tmp_path / "results.json").read_text())
    assert written["versions"]["python"]
    page = (tmp_path / "README.md").read_text()
    for scenario in SMOKED:
        assert scenario.title in page
        assert (tmp_path / f"{scenario.name}.png").stat().st_size > 0
    not_run = [line for line in page.splitlines() if "not run" in line]
    assert all("the seed server was not found" in line for line in not_run), not_run
    assert len(not_run) == len(may_miss), not_run


def test_the_core_cost_cases_measure_the_core() -> None:
    from bench import core_cost

    # Each case checks that every message it timed reached its member (it raises
    # otherwise): a core that relayed nothing would make a fast, false figure.
    hubbub = core_cost._load(None)
    assert core_cost.relay(hubbub, 200) > 0
    assert core_cost.chat(hubbub, 32, members=4, batch=16) > 0
