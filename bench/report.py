"""The report: results.json, a markdown page of tables, and one PNG plot per scenario."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.scenario import Column, Scenario
from bench.scenarios import SCENARIOS
from bench.servers import REPO

ANALYSIS = REPO / "bench" / "analysis.md"
"""Written by hand: what the figures mean and what costs the time; the report
includes it as it is, so that a rerun keeps it."""

SERVER_COLOURS = {
    "hubbub": "#2b7bb9",
    "hubbub-ref": "#9cc3e4",
    "seed": "#7f7f7f",
    "socketio": "#e0a030",
}


def write(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    render(results, out_dir)


def render(results: dict[str, Any], out_dir: Path) -> None:
    """The markdown page and the plots, from results already measured."""
    plots = _plots(results, out_dir)
    (out_dir / "README.md").write_text(markdown(results, plots))


def _scenario(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)


def _format(value: Any, column: Column) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        text = f"{value:,.{column.digits}f}"
        return f"{text} {column.unit}".strip() if column.unit in ("ms", "µs", "KB", "s") else text
    return str(value)


def markdown(results: dict[str, Any], plots: dict[str, str]) -> str:
    servers: dict[str, Any] = results["servers"]
    machine, versions = results["machine"], results["versions"]
    lines = [
        "# Benchmarks",
        "",
        "hubbub against the seed document's Node.js server and python-socketio, measured "
        "side by side in one run: every figure below comes from the same run, on the same "
        "machine, with the same load generator. Produced by `make bench` "
        "(see [bench/README.md](../../bench/README.md)); do not edit by hand.",
        "",
        f"- Run: `{results['command']}` (size `{results['size']}`), {results['date']}, "
        f"{results.get('duration_s', 0):.0f} s.",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB memory, Linux {machine['kernel']}; load average "
        f"(1, 5, 15 min) at start {_loads(machine.get('load_average_at_start'))}, at the end "
        f"{_loads(machine.get('load_average_at_end'))}.",
    ]
    if results["shared_machine"]:
        lines.append(
            "- **The machine was shared** with other work during this run: absolute figures "
            "are noisy. CPU time per message (from /proc) is the steadier figure, and the "
            "ratios between servers in one run are what count."
        )
    lines.append(
        "- Versions: "
        + ", ".join(f"{name} {version}" for name, version in versions.items() if version)
        + "."
    )
    lines += ["", "Servers:", ""]
    for name, server in servers.items():
        state = f"**not run**: {server['missing']}" if server["missing"] else server["description"]
        lines.append(f"- **{server['label']}** (`{name}`): {state}")
    lines += [
        "",
        "The load generators are separate processes (`bench/loadgen.py`: picows clients on "
        "uvloop, one callback per frame, several processes); their CPU use is shown for each "
        "figure. On a 2-core machine a server near 100 % of a core is the bottleneck; a "
        "generator near 100 % means the server was not pushed to its limit.",
    ]
    lines += _targets(results)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in results["scenarios"]:
        by_name.setdefault(entry["name"], []).append(entry)
    for name, entries in by_name.items():
        scenario = _scenario(name)
        lines += ["", f"## {scenario.title}", "", scenario.description, ""]
        header = ["case", "server", *(_header(c) for c in scenario.columns)]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for entry in entries:
            for server_name, figures in entry["results"].items():
                label = servers[server_name]["label"]
                if "error" in figures:
                    cells = [f"failed: {figures['error']}"] + [""] * (len(scenario.columns) - 1)
                else:
                    cells = [_format(figures.get(c.key), c) for c in scenario.columns]
                lines.append("| " + " | ".join([entry["case"], label, *cells]) + " |")
        if name in plots:
            lines += ["", f"![{scenario.title}]({plots[name]})"]
    if results.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in results["notes"]]
    if ANALYSIS.is_file():
        lines += ["", ANALYSIS.read_text().strip()]
    return "\n".join(lines) + "\n"


def _loads(values: list[float] | None) -> str:
    return ", ".join(str(v) for v in values) if values else "unknown"


def _header(column: Column) -> str:
    return (
        f"{column.header} ({column.unit})"
        if column.unit and column.unit not in ("ms", "µs", "KB", "s")
        else column.header
    )


def _targets(results: dict[str, Any]) -> list[str]:
    rows = []
    for entry in results["scenarios"]:
        scenario = _scenario(entry["name"])
        ours = entry["results"].get(scenario.ours)
        if not scenario.targets or ours is None or "error" in ours:
            continue
        seed = entry["results"].get(scenario.reference)
        if seed is not None and "error" in seed:
            seed = None
        for target in scenario.targets:
            column = next(c for c in scenario.columns if c.key == target.metric)
            verdict = target.check(ours, seed)
            if verdict is None:
                met, bound_text = f"not measured (no {scenario.reference} baseline)", "-"
            else:
                bound, ok = verdict
                met, bound_text = ("met" if ok else "**not met**"), _format(bound, column)
            measured = _format(ours.get(target.metric), column)
            rows.append(
                f"| {scenario.title.split(':')[0]} ({entry['case']}) | {_header(column)} "
                f"{target.describe(scenario.reference)} | {measured} | "
                f"{bound_text} | {met} |"
            )
    if not rows:
        return []
    return [
        "",
        "## Where hubbub stands against its targets",
        "",
        "| scenario | target | hubbub | bound | |",
        "|---|---|---|---|---|",
        *rows,
    ]


def _plots(results: dict[str, Any], out_dir: Path) -> dict[str, str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}
    servers = results["servers"]
    made: dict[str, str] = {}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in results["scenarios"]:
        by_name.setdefault(entry["name"], []).append(entry)
    for name, entries in by_name.items():
        scenario = _scenario(name)
        columns = [c for c in scenario.columns if c.plot]
        names = [s for s in servers if any(s in e["results"] for e in entries)]
        if not columns or not names:
            continue
        figure, axes = plt.subplots(
            1, len(columns), figsize=(4.2 * len(columns), 3.6), squeeze=False
        )
        width = 0.8 / len(names)
        for axis, column in zip(axes[0], columns, strict=True):
            for offset, server in enumerate(names):
                values = [(e["results"].get(server) or {}).get(column.key) or 0.0 for e in entries]
                positions = [
                    i + (offset - (len(names) - 1) / 2) * width for i in range(len(entries))
                ]
                axis.bar(
                    positions,
                    values,
                    width,
                    label=servers[server]["label"],
                    color=SERVER_COLOURS.get(server),
                )
            axis.set_xticks(range(len(entries)), [e["case"] for e in entries], fontsize=8)
            better = "lower is better" if column.lower_is_better else "higher is better"
            unit = f" ({column.unit})" if column.unit else ""
            axis.set_title(f"{column.header}{unit}\n{better}", fontsize=9)
            axis.tick_params(axis="y", labelsize=8)
            axis.grid(axis="y", alpha=0.3)
        axes[0][0].legend(fontsize=8)
        figure.suptitle(scenario.title, fontsize=10)
        figure.tight_layout()
        filename = f"{name}.png"
        figure.savefig(out_dir / filename, dpi=110)
        plt.close(figure)
        made[name] = filename
    return made
