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
import contextlib
import json
import logging
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
            flags = [*lab.serve_args(), "--api-key", API_KEY]
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
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
    except TimeoutError:
        raise RuntimeError(
            f"a member did not answer within {timeout:g} s: it waits for every other "
            "member's video (what it has, in its log in the run's folder)"
        ) from None
    if not line:
        code = await process.wait()
        raise RuntimeError(f"a member exited with {code} (see its log in the run's folder)")
    return line


FRAME_RATES = """async (seconds) => {
  const shown = [...document.querySelectorAll('.tile[data-kind="camera"]:not([data-local])')]
    .filter((tile) => tile.dataset.role !== "hidden");
  const count = () => Object.fromEntries(shown.map((tile) => [
    tile.dataset.user, tile.querySelector("video").getVideoPlaybackQuality().totalVideoFrames,
  ]));
  const before = count();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const after = count();
  return Object.fromEntries(Object.keys(after).map(
    (user) => [user, (after[user] - before[user]) / seconds]));
}"""


class SfuPage(Scenario):
    name = "sfu_page"
    title = "A Chromium page in a large room through Janus: the frame rate of every video"
    description = (
        "One Chromium page (the web app, hubbub.js) in a room in SFU mode with N-1 aiortc "
        "bots that send a 320x240 test pattern at 15 frames a second (one with a tone) and "
        "decode nothing, through a Janus of the scenario's own. The page shows a speaker "
        "view past nine cameras; its strip is turned page by page and each shown video's "
        "decoded frames are counted (getVideoPlaybackQuality) over the window."
    )
    servers = ("hubbub",)
    columns = (
        Column("videos", "videos seen", "", 0),
        Column("min_fps", "slowest video", "fps", 1, plot=True),
        Column("mean_fps", "mean video", "fps", 1),
        Column("janus_cpu_pct", "Janus CPU", "%", 1, plot=True, lower_is_better=True),
    )
    targets = (Target("min_fps", ">=", value=10.0),)

    def cases(self, size: str) -> list[Case]:
        members = {"smoke": 4, "quick": 12, "full": 12}[size]
        seconds = {"smoke": 1.0, "quick": 2.0, "full": 4.0}[size]
        return [Case(f"{members} members", {"members": members, "seconds": seconds})]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        sys.path.insert(0, str(REPO))
        import aioice.ice
        from playwright.async_api import async_playwright
        from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
        from tests.browser.web_app import join_app
        from tests.janus import janus_lab, janus_missing_reason
        from tests.process import hubbub_serve

        from hubbub.client import Client
        from hubbub.peer import JOIN_FIELDS, MediaSource, SfuMedia

        missing = janus_missing_reason()
        if missing:
            raise RuntimeError(missing)
        bots = case.params["members"] - 1
        seconds = case.params["seconds"]
        wait = 60_000
        sources: list[MediaSource] = []
        gather = aioice.ice.get_host_addresses
        async with (
            janus_lab() as lab,
            contextlib.AsyncExitStack() as stack,
        ):
            # The bots' candidates on this machine's end of Janus's veth alone.
            aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: (
                [lab.host_address] if use_ipv4 else []
            )
            stack.callback(setattr, aioice.ice, "get_host_addresses", gather)
            # The bots are in this process: aioice's log of every check, not in the run's.
            ice_log = logging.getLogger("aioice")
            stack.callback(ice_log.setLevel, ice_log.level)
            ice_log.setLevel(logging.WARNING)
            flags = [*lab.serve_args(), "--media-mode", "sfu"]
            url, _process = await stack.enter_async_context(hubbub_serve(*flags))
            for n in range(bots):
                media = MediaSource.test_pattern(audio=n == 0, width=320, height=240)
                sources.append(media)
                stack.callback(media.stop)
                client = Client(
                    url, "bench-page", user=f"bot{n:02d}", join_fields=JOIN_FIELDS, events=False
                )
                bot = await stack.enter_async_context(
                    SfuMedia(client, media=media, subscribe=False)
                )
                await stack.enter_async_context(client)
                await bot.wait_published(60)
            playwright = await stack.enter_async_context(async_playwright())
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            stack.push_async_callback(browser.close)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await join_app(page, url, "bench-page", "viewer")
            everyone = [f"bot{n:02d}" for n in range(bots)]
            await page.wait_for_function(
                """(bots) => {
                  const tiles = [...document.querySelectorAll(
                    '.tile[data-kind="camera"]:not([data-local])')];
                  const shown = tiles.filter((tile) => tile.dataset.role !== "hidden");
                  return tiles.length >= bots && shown.length > 0 && shown.every((tile) => {
                    const video = tile.querySelector("video");
                    return video && video.getVideoPlaybackQuality().totalVideoFrames > 5;
                  });
                }""",
                arg=bots,
                timeout=wait,
            )
            await asyncio.sleep(2)  # past the first keyframes and the layer choice
            loop = asyncio.get_running_loop()
            started = loop.time()
            janus_before = cpu_times(lab.process.pid) if lab.process else None
            rates: dict[str, float] = {}
            pager = await page.query_selector("#strip-previous")
            if pager is not None and await pager.is_visible():
                while not await page.is_disabled("#strip-previous"):
                    await page.click("#strip-previous")
            while True:
                rates.update(await page.evaluate(FRAME_RATES, seconds))
                if pager is None or not await pager.is_visible():
                    break
                if await page.is_disabled("#strip-next"):
                    break
                await page.click("#strip-next")
                await asyncio.sleep(1)  # the page's new videos start
            window = loop.time() - started
            janus_pct = (
                100 * (cpu_times(lab.process.pid) - janus_before).total / window
                if lab.process and janus_before is not None
                else 0.0
            )
        missing_videos = set(everyone) - set(rates)
        if missing_videos:
            raise RuntimeError(f"the page showed no video of {sorted(missing_videos)}")
        values = [rates[user] for user in everyone]
        return {
            "videos": len(values),
            "min_fps": min(values),
            "mean_fps": sum(values) / len(values),
            "janus_cpu_pct": janus_pct,
        }
