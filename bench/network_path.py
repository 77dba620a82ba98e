"""Files and calls across a shaped network path, in the lab of ``tests/network``.

    python -m bench.network_path                     # 32 MB files, 3 runs each
    python -m bench.network_path --megabytes 8 --runs 1

Two sites behind home NATs (nftables masquerade); the sender's uplink is shaped:
40 ms round trip, 0.5 % of packets lost each way, 100 Mbit/s, a 500 kB queue
(``tests.network.lab.Shape``, applied by ``tests.network.link``). hubbub runs on the
lab's internet with its own STUN server; the peers connect through their NATs'
mappings (srflx), so every packet of the transfer crosses the shaped link.

- File transfer, Python to Python (``hubbub.peer``, as ``hubbub send`` runs it),
  browser to browser (hubbub.js in Chromium) and browser to Python: the file's bytes
  over the time from the receiver's accept to its done (Python sender) or to the
  verified Blob (browser receiver), and that rate as a share of the link's 100 Mbit/s.
- Call setup: from the newcomer's join (``hubbub.join`` / ``Client`` start) to a data
  channel open with the member already there, and (browsers) to the first frame of
  that member's video.

Needs root (network namespaces), like the lab's tests. Prints a markdown table and
the figures as JSON (``--json FILE`` writes them).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright
from tests.network.browser import lab_page
from tests.network.lab import Lab, Shape, unavailable_reason
from tests.network.services import hubbub, python_peer

SHAPE = Shape(delay=0.020, loss=0.005, rate_mbit=100, queue_bytes=500_000)
"""The path of the issue that asked for these figures; ``--loss`` changes its loss."""
shape = SHAPE
WAIT = 120.0
MB = 1_000_000


def _figures(bytes_: int, seconds: float, cpu: float | None = None) -> dict[str, Any]:
    mbit = bytes_ * 8 / seconds / 1e6
    figures = {"mbit_s": mbit, "link_share": mbit / shape.rate_mbit, "seconds": seconds}
    if cpu is not None:
        figures["sender_cpu_ms_per_mb"] = 1000 * cpu / (bytes_ / MB)
    return figures


async def python_to_python(lab: Lab, url: str, size: int, run: int) -> dict[str, Any]:
    sender_host, receiver_host = lab.sites["a"].hosts[0], lab.sites["b"].hosts[0]
    room = f"py-py-{run}"
    async with (
        python_peer(receiver_host, url, "receiver", room=room) as receiver,
        python_peer(sender_host, url, "sender", room=room) as sender,
    ):
        setup = await sender.ask({"cmd": "setup", "to": "receiver", "timeout": WAIT})
        sent = await sender.ask(
            {"cmd": "send-file", "to": "receiver", "size": size, "timeout": WAIT * 5}, WAIT * 5
        )
        got = await receiver.ask({"cmd": "next-file", "timeout": WAIT})
    if got["size"] != size:
        raise RuntimeError(f"the file did not arrive whole: {got}")
    return {
        **_figures(sent["bytes"], sent["seconds"], sent["cpu_seconds"]),
        "setup_channel_ms": 1000 * setup["channel_open"],
    }


async def browser_to_browser(
    lab: Lab, url: str, size: int, run: int, playwright: Any
) -> dict[str, Any]:
    sender_host, receiver_host = lab.sites["a"].hosts[0], lab.sites["b"].hosts[0]
    room = f"web-web-{run}"
    async with (
        lab_page(playwright, receiver_host, url) as receiver,
        lab_page(playwright, sender_host, url) as sender,
    ):
        await receiver.evaluate(f"enter('{room}', 'receiver', {{send: true}})")
        await receiver.evaluate("receiveFiles()")
        setup = await sender.evaluate(f"setupTimes('{room}', 'sender', 'receiver')")
        sent = await sender.evaluate(f"sendFile('receiver', {size})")
        await receiver.wait_for_function("received.length > 0", timeout=WAIT * 5000)
        got = (await receiver.evaluate("received"))[0]
    if not got["ok"] or got["size"] != size or got["sha256"] != sent["sha256"]:
        raise RuntimeError(f"the file did not arrive whole: {got}")
    return {
        **_figures(size, got["seconds"]),
        "setup_channel_ms": setup["channel_open"],
        "setup_frame_ms": setup["first_frame"],
    }


async def browser_to_python(
    lab: Lab, url: str, size: int, run: int, playwright: Any
) -> dict[str, Any]:
    sender_host, receiver_host = lab.sites["a"].hosts[0], lab.sites["b"].hosts[0]
    room = f"web-py-{run}"
    async with (
        python_peer(receiver_host, url, "receiver", room=room) as receiver,
        lab_page(playwright, sender_host, url) as sender,
    ):
        setup = await sender.evaluate(
            f"""(async () => {{
                  const started = performance.now();
                  await enter('{room}', 'sender');
                  const channel = room.channel('setup');
                  return await new Promise((resolve) => channel.on('open', () =>
                    resolve({{channel_open: performance.now() - started}})));
                }})()"""
        )
        sent = await sender.evaluate(f"sendFile('receiver', {size})")
        got = await receiver.ask({"cmd": "next-file", "timeout": WAIT})
    if not got["ok"] or got["size"] != size or got["sha256"] != sent["sha256"]:
        raise RuntimeError(f"the file did not arrive whole: {got}")
    return {**_figures(size, sent["seconds"]), "setup_channel_ms": setup["channel_open"]}


async def measure(megabytes: float, runs: int) -> dict[str, Any]:
    size = int(megabytes * MB)
    results: dict[str, list[dict[str, Any]]] = {
        "Python to Python": [],
        "browser to browser": [],
        "browser to Python": [],
    }
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-net-") as workdir, Lab() as lab:
        lab.add_site("a", "masquerade", uplink=shape)
        lab.add_site("b", "masquerade")
        with hubbub(lab, Path(workdir), turn=False) as url:
            async with async_playwright() as playwright:
                for run in range(runs):
                    results["Python to Python"].append(await python_to_python(lab, url, size, run))
                    results["browser to browser"].append(
                        await browser_to_browser(lab, url, size, run, playwright)
                    )
                    results["browser to Python"].append(
                        await browser_to_python(lab, url, size, run, playwright)
                    )
    return {
        "path": shape.describe(),
        "megabytes": megabytes,
        "runs": runs,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "results": {name: _median(rows) for name, rows in results.items()},
        "every_run": results,
    }


def _median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {key for row in rows for key in row}
    return {key: statistics.median(row[key] for row in rows if key in row) for key in keys}


def table(report: dict[str, Any]) -> str:
    lines = [
        f"Path: {report['path']}; {report['megabytes']:g} MB files; median of "
        f"{report['runs']} runs; {report['cpus']} cores, load average "
        f"{report['load_average']:.1f} at the end.",
        "",
        "| | file transfer | share of the link | sender CPU | join to data channel open "
        "| join to first video frame |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in report["results"].items():
        cpu = row.get("sender_cpu_ms_per_mb")
        frame = row.get("setup_frame_ms")
        lines.append(
            f"| {name} | {row['mbit_s']:.1f} Mbit/s | {100 * row['link_share']:.0f} % | "
            f"{f'{cpu:.0f} ms/MB' if cpu is not None else '-'} | "
            f"{row['setup_channel_ms']:.0f} ms | {f'{frame:.0f} ms' if frame else '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.network_path", description=__doc__)
    parser.add_argument("--megabytes", type=float, default=32.0, help="file size (MB)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, the median shown")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--loss", type=float, default=SHAPE.loss, help="share of packets lost each way (0.005)"
    )
    args = parser.parse_args(argv)
    global shape
    shape = dataclasses.replace(SHAPE, loss=args.loss)
    reason = unavailable_reason()
    if reason is not None:
        print(f"python -m bench.network_path: {reason}", file=sys.stderr)
        return 2
    report = asyncio.run(measure(args.megabytes, args.runs))
    print(table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
