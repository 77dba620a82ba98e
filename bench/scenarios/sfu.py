"""Calls of 3, 4, 6 and 8 members as a mesh and through Janus, side by side.

Each member is an aiortc peer in a process of its own (``bench/sfu_member.py``) that
sends the test pattern (320x240, 15 frames a second) and a tone, and decodes every
other member's video. The same room size is measured twice on one hubbub with a
Janus of its own (started as in the tests: ``nobody``, in a network namespace,
reached over a veth pair): once set to ``mesh`` and once to ``sfu`` through the HTTP
API. Figures are each member's upload and CPU (means over the members), the frames
each received stream brings, and Janus's CPU, over the measured window.

Needs root (the namespace) and Debian's ``janus`` (``scripts/system-deps.sh``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp

from bench.procstat import cpu_times
from bench.scenario import Case, Column, Run, Scenario, Target
from bench.servers import REPO, RunningServer

API_KEY = "bench-sfu-api-key"


class SfuRooms(Scenario):
    name = "sfu"
    title = "Calls as a mesh and through Janus: each member's upload and CPU"
    description = (
        "Rooms of N aiortc members (one process each; 320x240 at 15 frames a second and a "
        "tone, every other member's video decoded), once as a mesh and once through Janus "
        "(VideoRoom, started as nobody in a network namespace). Means over the members of "
        "the upload (kbit/s, every connection) and CPU (% of one core, all threads), the "
        "frames each received video brings, and Janus's CPU."
    )
    servers = ("hubbub",)
    columns = (
        Column("mesh_upload_kbps", "mesh upload", "kbit/s", 0, plot=True, lower_is_better=True),
        Column("sfu_upload_kbps", "SFU upload", "kbit/s", 0, plot=True, lower_is_better=True),
        Column("mesh_cpu_pct", "mesh member CPU", "%", 0, plot=True, lower_is_better=True),
        Column("sfu_cpu_pct", "SFU member CPU", "%", 0, plot=True, lower_is_better=True),
        Column("janus_cpu_pct", "Janus CPU", "%", 1, plot=True, lower_is_better=True),
        Column("mesh_fps", "mesh fps/stream", "", 1),
        Column("sfu_fps", "SFU fps/stream", "", 1),
    )
    targets = (Target("sfu_fps", ">=", value=10.0),)

    def cases(self, size: str) -> list[Case]:
        sizes = {"smoke": [3], "quick": [3, 4, 6], "full": [3, 4, 6, 8]}[size]
        seconds = {"smoke": 2.0, "quick": 5.0, "full": 10.0}[size]
        return [Case(f"{n} members", {"members": n, "seconds": seconds}) for n in sizes]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        # The runner's server has no media server: this scenario starts its own hubbub,
        # in front of its own Janus, and measures both modes on it.
        sys.path.insert(0, str(REPO))
        from tests.janus import janus_lab, janus_missing_reason
        from tests.process import hubbub_serve

        missing = janus_missing_reason()
        if missing:
            raise RuntimeError(missing)
        figures: dict[str, Any] = {}
        async with janus_lab() as lab:
            flags = ["--janus-url", lab.url, "--janus-api-secret", lab.api_secret]
            flags += ["--janus-admin-key", lab.admin_key, "--api-key", API_KEY]
            flags += ["--media-mode", "mesh"]
            async with hubbub_serve(*flags) as (url, _process):
                assert lab.process is not None
                for mode in ("mesh", "sfu"):
                    address = "127.0.0.1" if mode == "mesh" else lab.host_address
                    measured = await self._measure_mode(
                        url, mode, case, run, lab.process.pid, address
                    )
                    figures[f"{mode}_upload_kbps"] = measured["upload_kbps"]
                    figures[f"{mode}_cpu_pct"] = measured["cpu_pct"]
                    figures[f"{mode}_fps"] = measured["fps_per_stream"]
                    if mode == "sfu":
                        figures["janus_cpu_pct"] = measured["janus_cpu_pct"]
        return figures

    async def _measure_mode(
        self, url: str, mode: str, case: Case, run: Run, janus_pid: int, address: str
    ) -> dict[str, float]:
        members = case.params["members"]
        seconds = case.params["seconds"]
        room = f"bench-{mode}-{members}"
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            aiohttp.ClientSession() as http,
            http.put(
                f"{url}/api/rooms/{room}/media", json={"mode": mode}, headers=headers
            ) as set_mode,
        ):
            set_mode.raise_for_status()
        processes = []
        log = (run.work_dir / f"sfu-{mode}-{members}.log").open("ab")
        try:
            for n in range(members):
                job = {"url": url, "room": room, "user": f"m{n}", "members": members}
                job["host_address"] = address
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "bench.sfu_member",
                        json.dumps(job),
                        cwd=REPO,
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=log,
                    )
                )
            for process in processes:
                ready = json.loads(await _line(process, 180))
                if ready.get("mode") != mode:
                    raise RuntimeError(f"a member found the room in {ready.get('mode')} mode")
            loop = asyncio.get_running_loop()
            started = loop.time()
            janus_before = cpu_times(janus_pid)
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(f"measure {seconds}\n".encode())
            reports = [json.loads(await _line(p, seconds + 60)) for p in processes]
            window = loop.time() - started
            janus = cpu_times(janus_pid) - janus_before
        finally:
            for process in processes:
                if process.returncode is None:
                    if process.stdin is not None:
                        process.stdin.write(b"quit\n")
                        process.stdin.close()
                    try:
                        await asyncio.wait_for(process.wait(), 15)
                    except TimeoutError:
                        process.kill()
                        await process.wait()
            log.close()
        mean = {key: sum(r[key] for r in reports) / len(reports) for key in reports[0]}
        return {**mean, "janus_cpu_pct": 100 * janus.total / window}


async def _line(process: asyncio.subprocess.Process, timeout: float) -> bytes:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout)
    if not line:
        code = await process.wait()
        raise RuntimeError(f"a member exited with {code} (see its log in the run's folder)")
    return line
