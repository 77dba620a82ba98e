"""The run: every scenario's cases on every server, one fresh server process each."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import logging
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import loadgens, machine, report
from bench.scenario import SIZES, Run, Scenario
from bench.scenarios import SCENARIOS
from bench.servers import REPO, WORK_DIR, HubbubAt, ServerKind, all_servers, hubbub_clusters

log = logging.getLogger("bench")

DEFAULT_OUT = REPO / "docs" / "benchmarks"


async def run_all(
    scenarios: list[Scenario],
    servers: list[ServerKind],
    size: str,
    out_dir: Path,
    command: str,
    shared_machine: bool,
    profile: str | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    work_dir = WORK_DIR / "runs" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    work_dir.mkdir(parents=True, exist_ok=True)
    for server in servers:
        server.prepare()
        if server.missing:
            log.warning("%s will not run: %s", server.label, server.missing)
    seed_ws = next((s.extra.get("ws") for s in servers if s.name == "seed"), None)
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "size": size,
        "shared_machine": shared_machine,
        "machine": machine.machine(),
        "versions": machine.versions(seed_ws),
        "servers": {
            s.name: {"label": s.label, "description": s.description, "missing": s.missing}
            for s in servers
        },
        "scenarios": [],
    }
    run = Run(size=size, work_dir=work_dir, profile=profile)
    if profile:
        log.info("flame graphs of the Python servers go to %s", work_dir)
    for scenario in scenarios:
        for case in scenario.cases(size):
            loadgen = case.params.get("loadgen", loadgens.PICOWS)
            missing = loadgens.missing(loadgen)
            if missing is not None:
                log.warning("%s / %s not run: %s", scenario.name, case.label, missing)
                run.notes.append(f"{scenario.name} / {case.label}: not run ({missing})")
                continue
            entry: dict[str, Any] = {
                "name": scenario.name,
                "case": case.label,
                "params": case.params,
                "results": {},
            }
            repeats: dict[str, list[dict[str, Any]]] = {}
            for server in servers:
                if server.missing or not _measured_in(scenario, server):
                    continue
                log.info("%s / %s / %s", scenario.name, case.label, server.label)
                figures = await _measure(run, scenario, server, case)
                log.info("  %s", _brief(figures))
                repeats.setdefault(server.name, []).append(figures)
            for name, runs in repeats.items():
                entry["results"][name] = median_of(runs)
            results["scenarios"].append(entry)
    results["versions"]["ws (Node generator)"] = loadgens.NODE_LOADGEN.ws_version
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = machine.load_average()
    results["notes"] = run.notes
    report.write(results, out_dir)
    return results


async def _measure(run: Run, scenario: Scenario, kind: ServerKind, case: Any) -> dict[str, Any]:
    try:
        server = await kind.start(run.work_dir)
    except Exception as error:
        return {"error": f"start: {error}"}
    if run.profile:
        slug = "".join(c if c.isalnum() else "-" for c in case.label).strip("-")
        suffix = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}[run.profile]
        server.profile_to = run.work_dir / f"profile-{scenario.name}-{slug}-{kind.name}.{suffix}"
        server.profile_format = run.profile
    try:
        return await scenario.measure(run, server, case)
    except Exception as error:
        log.debug("%s", traceback.format_exc())
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        await server.stop()


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's figures for a case it was measured in several times (its name
    repeated in ``--servers``): the median of each number, the runs kept under
    ``runs``. A single run is returned as it is."""
    if len(runs) == 1:
        return runs[0]
    merged: dict[str, Any] = dict(runs[-1])
    for key, value in runs[-1].items():
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if isinstance(value, int | float) and not isinstance(value, bool) and values:
            merged[key] = statistics.median(values)
    merged["runs"] = runs
    return merged


def _measured_in(scenario: Scenario, server: ServerKind) -> bool:
    if scenario.servers is None:
        return not server.named_only
    return server.name in scenario.servers


def _brief(figures: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in figures.items()
        if not isinstance(value, dict | list)
    )


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark hubbub against the seed's Node server and python-socketio.",
    )
    parser.add_argument(
        "--size", choices=SIZES, default="full", help="how big and long (default: full)"
    )
    parser.add_argument(
        "--scenarios", default=",".join(names), help=f"comma-separated, of: {', '.join(names)}"
    )
    parser.add_argument(
        "--servers",
        default="hubbub,hubbub-redis,hubbub-cluster,seed,socketio,"
        "hubbub-frontends,peer,y-webrtc-server",
        help="comma-separated, of: hubbub, hubbub-redis, hubbub-cluster, seed, socketio, "
        "hubbub-frontends, peer, y-webrtc-server (and hubbub-ref, hubbub-redis-ref, "
        "hubbub-cluster-ref with --compare-with), measured in this order; the "
        "hubbub-redis and hubbub-cluster ones only in the scenarios that name them "
        "(cluster), hubbub-frontends, peer and y-webrtc-server only in peerjs_relay and "
        "ywebrtc_fanout",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the report goes")
    parser.add_argument(
        "--quiet-machine",
        action="store_true",
        help="say in the report that nothing else ran on the machine",
    )
    parser.add_argument(
        "--compare-with",
        metavar="REF",
        help="also run hubbub as it was at this git revision (a commit, a branch), "
        "to measure a change before and after in the same run",
    )
    parser.add_argument(
        "--profile",
        choices=("flamegraph", "speedscope", "raw"),
        help="record a py-spy profile of each Python server's measured window, in this "
        "format (raw: collapsed stacks), into bench/.work/runs/...; the figures of such "
        "a run are not comparable",
    )
    parser.add_argument(
        "--render",
        metavar="RESULTS_JSON",
        type=Path,
        help="measure nothing: write the markdown page and plots again from a results.json "
        "(into --out), after a change to the report or to bench/analysis.md",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.render is not None:
        report.render(json.loads(args.render.read_text()), args.out)
        log.info("report written to %s", args.out)
        return 0
    wanted = args.scenarios.split(",")
    unknown = set(wanted) - set(names)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    scenarios = [s for s in SCENARIOS if s.name in wanted]
    known = all_servers()
    wanted_servers = args.servers.split(",")
    if args.compare_with:
        ref = HubbubAt(args.compare_with)
        known += [ref, *hubbub_clusters(ref, "-ref")]
        # Each right after its own: hubbub-ref after hubbub, and so on.
        for name in ("hubbub", "hubbub-redis", "hubbub-cluster"):
            if name in wanted_servers and f"{name}-ref" not in wanted_servers:
                wanted_servers.insert(wanted_servers.index(name) + 1, f"{name}-ref")
    # In the order given: the order they are measured in, case by case.
    servers = [s for name in wanted_servers for s in known if s.name == name]
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    results = asyncio.run(
        run_all(
            scenarios,
            servers,
            args.size,
            args.out,
            command.strip(),
            not args.quiet_machine,
            args.profile,
        )
    )
    failed = [
        (entry["name"], server)
        for entry in results["scenarios"]
        for server, figures in entry["results"].items()
        if "error" in figures
    ]
    for name, server in failed:
        log.error("%s on %s failed", name, server)
    log.info("report written to %s", args.out)
    return 1 if failed else 0
