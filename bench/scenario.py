"""What a scenario is, and the runner-side tools it measures with.

A scenario lives in one module of ``bench/scenarios/``: a :class:`Scenario`
subclass (runner side: which cases, how to measure one, what to report) and a
``Driver`` subclass of :class:`bench.loadgen.Driver` (the clients, inside each
load generator process). ``bench/README.md`` walks through adding one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bench import loadgens
from bench.procstat import CpuTimes
from bench.servers import REPO, RunningServer

SIZES = ("smoke", "quick", "full")
"""smoke: seconds, for the test suite; quick: while developing; full: the report."""

COMMAND_TIMEOUT = 300.0


@dataclass(frozen=True)
class Case:
    """One configuration of a scenario, measured on every server."""

    label: str
    params: dict[str, Any]


def by_loadgen(label: str, params: dict[str, Any]) -> list[Case]:
    """The case once per load generator (``params["loadgen"]``): picows clients,
    then Node ``ws`` clients (see bench/loadgens.py)."""
    return [
        Case(f"{label}, {loadgens.LABELS[kind]}", {**params, "loadgen": kind})
        for kind in (loadgens.PICOWS, loadgens.NODE)
    ]


@dataclass(frozen=True)
class Column:
    """One figure of a scenario's table (and plot, if ``plot``)."""

    key: str
    header: str
    unit: str = ""
    digits: int = 0
    plot: bool = False
    lower_is_better: bool = False
    may_be_zero: bool = False
    """The figure can truly be zero (the smoke test checks the others are above it)."""
    servers: tuple[str, ...] | None = None
    """The servers it is measured on, when not all (what the others cannot do)."""


@dataclass(frozen=True)
class Target:
    """A goal for hubbub: ``metric`` compared with the seed server's (``factor`` times
    it) or with a fixed ``value``."""

    metric: str
    relation: str  # "<=" or ">="
    factor: float = 1.0
    value: float | None = None

    def check(
        self, figures: dict[str, Any], seed: dict[str, Any] | None
    ) -> tuple[float, bool] | None:
        """(the bound, whether hubbub meets it), or None when it cannot be told."""
        ours = figures.get(self.metric)
        if self.value is not None:
            bound = self.value
        elif seed is not None and seed.get(self.metric) is not None:
            bound = self.factor * seed[self.metric]
        else:
            return None
        if ours is None:
            return None
        return bound, (ours <= bound if self.relation == "<=" else ours >= bound)

    def describe(self, reference: str = "seed") -> str:
        if self.value is not None:
            return f"{self.relation} {self.value:g}"
        factor = "" if self.factor == 1.0 else f"{self.factor:g} x "
        return f"{self.relation} {factor}{reference}"


class Scenario:
    name: ClassVar[str]
    """The module's name in bench/scenarios/, and the key in the results."""
    title: ClassVar[str]
    description: ClassVar[str]
    columns: ClassVar[Sequence[Column]]
    targets: ClassVar[Sequence[Target]] = ()
    servers: ClassVar[Sequence[str] | None] = None
    """Server names this scenario runs on; None: every one."""
    ours: ClassVar[str] = "hubbub"
    """The server whose figures the targets hold."""
    reference: ClassVar[str] = "seed"
    """The server the targets compare it with."""

    def cases(self, size: str) -> list[Case]:
        raise NotImplementedError

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        """Measure one case on one freshly started server; return its figures."""
        raise NotImplementedError


@dataclass
class Run:
    """What a scenario's ``measure`` gets from the runner."""

    size: str
    work_dir: Path
    profile: str | None = None
    """py-spy output format, when profiling."""
    notes: list[str] = field(default_factory=list)

    async def generators(
        self,
        scenario: Scenario,
        server: RunningServer,
        params: Sequence[dict[str, Any]],
        loadgen: str = loadgens.PICOWS,
    ) -> Generators:
        """Start one load generator process per entry of ``params`` (of the kind
        ``loadgen``: picows or node); wait for their setup."""
        return await Generators.start(scenario.name, server, params, self.work_dir, loadgen)


class Generators:
    """Load generator processes driving one server; commands go to all of them."""

    def __init__(self, processes: list[asyncio.subprocess.Process]) -> None:
        self.processes = processes

    async def steady_load(
        self, server: RunningServer, seconds: float
    ) -> tuple[Window, list[dict[str, Any]]]:
        """Start the load, let it warm up, then measure ``seconds`` of it: the server's
        window and each generator's report of what it counted since the mark."""
        await self.command("run")
        await asyncio.sleep(min(2.0, seconds / 2))  # warm up
        window = Window(server)
        window.open()
        await self.command("mark")
        await asyncio.sleep(seconds)
        reports = await self.command("report")
        window.close()
        return window, reports

    @classmethod
    async def start(
        cls,
        scenario: str,
        server: RunningServer,
        params: Sequence[dict[str, Any]],
        work_dir: Path,
        loadgen: str = loadgens.PICOWS,
    ) -> Generators:
        processes = []
        log = open(work_dir / "generators.log", "ab")  # noqa: SIM115, ASYNC230 - a local file
        try:
            for index, part in enumerate(params):
                job = {
                    "scenario": scenario,
                    "wire": server.kind.wire,
                    "url": server.url,
                    "urls": server.urls,
                    "index": index,
                    "params": part,
                }
                processes.append(
                    await asyncio.create_subprocess_exec(
                        *loadgens.command(loadgen, json.dumps(job)),
                        cwd=REPO,
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=log,
                        limit=64 * 1024 * 1024,
                    )
                )
        finally:
            log.close()
        generators = cls(processes)
        try:
            await generators._replies()
        except BaseException:
            await generators.close()
            raise
        return generators

    async def command(
        self, word: str, timeout: float = COMMAND_TIMEOUT, only: int | None = None
    ) -> list[dict[str, Any]]:
        """Send ``word`` to every process (or process ``only``); return their replies."""
        chosen = self.processes if only is None else [self.processes[only]]
        for process in chosen:
            assert process.stdin is not None
            process.stdin.write(word.encode() + b"\n")
        return await self._replies(chosen, timeout)

    async def _replies(
        self,
        processes: list[asyncio.subprocess.Process] | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> list[dict[str, Any]]:
        async def reply(process: asyncio.subprocess.Process) -> dict[str, Any]:
            assert process.stdout is not None
            line = await process.stdout.readline()
            if not line:
                raise RuntimeError("a load generator exited (see generators.log)")
            answer: dict[str, Any] = json.loads(line)
            if not answer.pop("ok"):
                raise RuntimeError(f"load generator: {answer['error']}")
            return answer

        async with asyncio.timeout(timeout):
            return list(await asyncio.gather(*(reply(p) for p in processes or self.processes)))

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None and process.stdin is not None:
                try:
                    process.stdin.write(b"quit\n")
                    process.stdin.close()
                except (ConnectionError, RuntimeError):
                    pass
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@dataclass
class Window:
    """A measured stretch of time: wall clock and the server's CPU time."""

    server: RunningServer
    started: float = 0.0
    cpu_start: CpuTimes = field(default_factory=lambda: CpuTimes(0.0, 0.0))
    seconds: float = 0.0
    cpu: CpuTimes = field(default_factory=lambda: CpuTimes(0.0, 0.0))
    parts_start: dict[str, CpuTimes] = field(default_factory=dict)
    parts: dict[str, CpuTimes] = field(default_factory=dict)
    """CPU time by part of the server (a cluster's nodes, its Redis)."""
    processes_start: dict[str, CpuTimes] = field(default_factory=dict)
    processes: dict[str, CpuTimes] = field(default_factory=dict)
    """CPU time by process of the server (a cluster's each node, its Redis)."""
    io_start: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    io: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """System calls that read and that wrote, and times preempted, by process of the
    server."""

    profiler: subprocess.Popen[bytes] | None = None

    def open(self) -> None:
        target = self.server.profile_to
        py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        if target is not None and self.server.kind.python and py_spy:
            # py-spy samples from outside the process (--nonblocking: without
            # pausing it), 100 times a second.
            command = [py_spy, "record", "--pid", str(self.server.pid), "--rate", "100"]
            command += ["--output", str(target), "--format", self.server.profile_format]
            command += ["--nonblocking"]
            self.profiler = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.parts_start = self.server.cpu_parts()
        self.processes_start = self.server.process_cpu()
        self.io_start = self.server.io_parts()
        self.cpu_start = self.server.cpu()
        self.started = time.monotonic()

    def close(self) -> None:
        self.seconds = time.monotonic() - self.started
        self.cpu = self.server.cpu() - self.cpu_start
        now = self.server.cpu_parts()
        self.parts = {name: now[name] - self.parts_start[name] for name in now}
        processes = self.server.process_cpu()
        self.processes = {name: processes[name] - self.processes_start[name] for name in processes}
        io_now = self.server.io_parts()
        self.io = {
            name: (
                counts[0] - self.io_start[name][0],
                counts[1] - self.io_start[name][1],
                counts[2] - self.io_start[name][2],
            )
            for name, counts in io_now.items()
        }
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)  # py-spy writes its output, then exits
            self.profiler.wait(30)


def cpu_parts(window: Window) -> dict[str, float]:
    """The window's CPU seconds by part of the server (``cpu_s_<part>``, of which in
    the kernel ``cpu_system_s_<part>``), the same by process where a part has several
    (a cluster's ``cpu_s_node1``...), and its system calls and preemptions by process
    (``reads_<process>``, ``writes_<process>``, ``preempted_<process>``)."""
    calls = {}
    for name, (reads, writes, taken) in window.io.items():
        calls[f"reads_{name}"] = reads
        calls[f"writes_{name}"] = writes
        calls[f"preempted_{name}"] = taken
    parts = {**window.processes, **window.parts}
    cpu = {f"cpu_s_{name}": times.total for name, times in parts.items()}
    system = {f"cpu_system_s_{name}": times.system for name, times in parts.items()}
    return {**cpu, **system, **calls}


def generator_figures(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The load generators' own CPU use over the window, in percent of one core."""
    shares = [
        100.0 * r["generator_cpu_seconds"] / max(r["generator_wall_seconds"], 1e-9) for r in reports
    ]
    return {
        "generator_processes": len(reports),
        "generator_cpu_pct": sum(shares),
        "generator_busiest_pct": max(shares) if shares else 0.0,
    }


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """``items`` dealt into ``parts`` lists of near-equal length, in order."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        out.append(list(items[start:end]))
        start = end
    return out
