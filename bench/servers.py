"""The servers under test: how to find, prepare, start, measure and stop each.

Each runs as its own process on a free loopback port, so that /proc tells its CPU
time and memory apart from the load generators'.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.procstat import CpuTimes, cpu_times, io_calls, rss_bytes

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = REPO / "bench" / ".work"
"""Scratch space the benchmark may fill (the seed server's npm install); not in git."""

SEED_SERVER_ENV = "HUBBUB_BENCH_SEED_SERVER"
SEED_SERVER_RELATIVE = Path("shared") / "peers" / "seed-signaling-server"

START_TIMEOUT = 30.0

HUBBUB_BENCH_LIMITS = {
    # The seed server and python-socketio put no rate on a client; hubbub's
    # per-connection budget (100 messages/s by default) would throttle the load
    # long before the server is busy. It is raised, not removed: the token bucket
    # is still checked on every message.
    "--message-rate": "10000000",
    "--message-burst": "10000000",
    "--flood-disconnect-after": "10000000",
    # Every load-generator client comes from 127.0.0.1; the per-address cap
    # (1000 by default) is for the open internet, not for one machine's load.
    "--max-connections-per-ip": "10000000",
    # The crowd scenario holds as many clients as the open-files limit allows,
    # past the default cap of 50,000.
    "--max-connections": "10000000",
}

HUBBUB_BENCH_ENV_LIMITS = {
    # The same for the connections that are not WebSockets yet (a storm's handshakes
    # all come from 127.0.0.1 at once). In the environment: a revision measured with
    # --compare-with that has no such option ignores it there.
    "HUBBUB_MAX_HTTP_CONNECTIONS_PER_IP": "10000000",
}

BENCH_API_KEY = "bench-api-key"
"""hubbub's HTTP API key in the benchmarks (the crowd's broadcast goes through it)."""


@dataclass
class RunningServer:
    kind: ServerKind
    process: asyncio.subprocess.Process
    url: str
    log_path: Path
    profile_to: Path | None = None
    """Where a py-spy profile of each measured window goes (Python servers only)."""
    profile_format: str = "flamegraph"
    data_dir: Path | None = None
    """The folder of its database, fresh for this start (servers that store data)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def urls(self) -> list[str]:
        """Where clients connect: one URL per node (a cluster has several)."""
        return [self.url]

    def cpu(self) -> CpuTimes:
        return cpu_times(self.pid)

    def cpu_parts(self) -> dict[str, CpuTimes]:
        """CPU time by part (a cluster: its nodes and Redis); one part otherwise."""
        return {"server": self.cpu()}

    def io_parts(self) -> dict[str, tuple[int, int, int]]:
        """System calls that read and that wrote so far, and times preempted, by
        process (a cluster: each node and Redis): :func:`~bench.procstat.io_calls`."""
        return {"server": io_calls(self.pid)}

    def process_cpu(self) -> dict[str, CpuTimes]:
        """CPU time by process (a cluster: each node and Redis)."""
        return {"server": self.cpu()}

    def rss(self) -> int:
        return rss_bytes(self.pid)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class ServerKind:
    """One server under test."""

    name: str
    """Key in the results, and the wire format its clients speak (bench.loadgen.WIRES)."""
    label: str
    description: str
    missing: str | None = None
    """Why this server cannot run here (None: it can)."""
    extra: dict[str, str | None] = field(default_factory=dict)
    python: bool = True
    """Runs on CPython (py-spy can profile it)."""
    wire: str = ""
    """The wire format its clients speak (bench.loadgen.WIRES); its name when empty."""
    data_env: str | None = None
    """The environment variable naming its data folder, for a server that stores
    data: each start gets an empty one (in the run's folder, removed at the stop)."""
    named_only: bool = False
    """Measured only in the scenarios that name it in their ``servers``."""

    def __post_init__(self) -> None:
        self.wire = self.wire or self.name

    def prepare(self) -> None:
        """Make it ready to start; sets ``missing`` if it cannot be."""

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        raise NotImplementedError

    async def start(
        self, log_dir: Path, port: int | None = None, data_dir: Path | None = None
    ) -> RunningServer:
        """Start on a free port (or ``port``: a restart, which keeps its port), with
        a fresh data folder (or ``data_dir``: a restart keeps its data)."""
        if port is not None:
            return await self._start_once(log_dir, port, data_dir)
        # A free port may be taken by another process before the server binds it (a
        # busy machine): a server that exits before listening gets another port.
        for attempt in range(START_ATTEMPTS):
            try:
                return await self._start_once(log_dir, free_port(), data_dir)
            except ServerExited:
                if attempt == START_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _start_once(self, log_dir: Path, port: int, data_dir: Path | None) -> RunningServer:
        argv, cwd, env = self.command(port)
        if self.data_env is not None:
            if data_dir is None:
                data_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-data-", dir=log_dir))
            env = {**env, self.data_env: str(data_dir)}
        log_path = log_dir / f"{self.name}.log"
        with open(log_path, "ab") as log:  # noqa: ASYNC230 - a local file
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        server = RunningServer(self, process, f"ws://127.0.0.1:{port}", log_path, data_dir=data_dir)
        try:
            await _wait_listening(port, process)
        except BaseException:
            await server.stop()
            raise
        return server


class Hubbub(ServerKind):
    def __init__(self) -> None:
        super().__init__(
            "hubbub",
            "hubbub",
            "`hubbub serve` (aiohttp + uvloop + msgspec), log level warning, "
            "message rate limit and per-address connection cap raised (see bench/README.md), "
            "chat stored in SQLite (a fresh database in the run's folder)",
        )
        # An environment variable rather than --data-dir: a revision from before
        # the store (--compare-with) ignores it.
        self.data_env = "HUBBUB_DATA_DIR"

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        argv = [sys.executable, "-m", "hubbub", "serve", "--port", str(port)]
        argv += ["--log-level", "warning"]
        for flag, value in HUBBUB_BENCH_LIMITS.items():
            argv += [flag, value]
        return argv, REPO, {"HUBBUB_API_KEY": BENCH_API_KEY, **HUBBUB_BENCH_ENV_LIMITS}


class HubbubAt(Hubbub):
    """hubbub as it was at another git revision, to measure a change before and after
    in the same run (``--compare-with REF``)."""

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref
        self.name = "hubbub-ref"
        self.wire = "hubbub"
        self.label = f"hubbub at {ref}"
        self.source = WORK_DIR / "hubbub-ref"

    def prepare(self) -> None:
        try:
            commit = subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--short", self.ref],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            shutil.rmtree(self.source, ignore_errors=True)
            self.source.mkdir(parents=True)
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", commit, "src"],
                capture_output=True,
                check=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(self.source)], input=archive, check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            self.missing = f"cannot check out {self.ref}: {error}"
            return
        self.label = f"hubbub at {commit}"
        self.description = f"`hubbub serve` from commit {commit}, run as hubbub is"

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        argv, cwd, env = super().command(port)
        return argv, cwd, {**env, "PYTHONPATH": str(self.source / "src")}


class SeedServer(ServerKind):
    """The seed document's Node.js ``ws`` server, from the shared folder next to the repo."""

    def __init__(self) -> None:
        super().__init__(
            "seed",
            "seed (Node + ws)",
            "the seed document's signaling server, verbatim, on Node.js and ws",
            python=False,
        )
        self.run_dir = WORK_DIR / "seed-signaling-server"

    def source(self) -> Path | None:
        override = os.environ.get(SEED_SERVER_ENV)
        if override:
            path = Path(override)
            return path if (path / "signaling-server.js").is_file() else None
        # ../shared/... from the repository; a worktree sits a level deeper.
        for ancestor in REPO.parents:
            candidate = ancestor / SEED_SERVER_RELATIVE
            if (candidate / "signaling-server.js").is_file():
                return candidate
        return None

    def prepare(self) -> None:
        source = self.source()
        if source is None:
            self.missing = (
                f"the seed server was not found (../{SEED_SERVER_RELATIVE} from the "
                f"repository, or ${SEED_SERVER_ENV})"
            )
            return
        self.extra["source"] = str(source)
        node, npm = shutil.which("node"), shutil.which("npm")
        if node is None or npm is None:
            self.missing = "Node.js (node and npm) is not installed"
            return
        # The shared folder is read-only: copy it and install ws into the copy,
        # from the seed's own package.json.
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "signaling-server.js"):
            shutil.copyfile(source / name, self.run_dir / name)
        ws_package = self.run_dir / "node_modules" / "ws" / "package.json"
        if not ws_package.is_file():
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--silent"],
                cwd=self.run_dir,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if result.returncode != 0 or not ws_package.is_file():
                self.missing = f"npm install of ws failed: {result.stderr.strip()[-300:]}"
                return
        self.extra["ws"] = json.loads(ws_package.read_text())["version"]

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        return ["node", "signaling-server.js"], self.run_dir, {"PORT": str(port)}


class SocketIOServer(ServerKind):
    def __init__(self) -> None:
        super().__init__(
            "socketio",
            "python-socketio",
            "python-socketio's AsyncServer on aiohttp + uvloop, rooms-based equivalent "
            "of the seed server (bench/socketio_server.py)",
        )

    def prepare(self) -> None:
        try:
            import socketio  # noqa: F401
        except ImportError:
            self.missing = "python-socketio is not installed"

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        return [sys.executable, "-m", "bench.socketio_server", "--port", str(port)], REPO, {}


class RedisServer:
    """Debian's redis-server on a free loopback port, with no persistence."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-", dir=log_dir))
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        with open(self.dir / "redis.log", "ab") as log:  # noqa: ASYNC230 - a local file
            self.process = await asyncio.create_subprocess_exec(
                *(REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        await _wait_listening(self.port, self.process)

    async def stop(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RunningCluster(RunningServer):
    """hubbub nodes on one Redis: CPU and memory are the sum of every process's."""

    def __init__(self, kind: ServerKind, nodes: list[RunningServer], redis: RedisServer) -> None:
        first = nodes[0]
        super().__init__(kind, first.process, first.url, first.log_path, data_dir=first.data_dir)
        self.nodes = nodes
        self.redis = redis

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def cpu_parts(self) -> dict[str, CpuTimes]:
        processes = self.process_cpu()
        redis = processes.pop("redis")
        return {"server": sum(processes.values(), CpuTimes(0.0, 0.0)), "redis": redis}

    def io_parts(self) -> dict[str, tuple[int, int, int]]:
        assert self.redis.process is not None
        parts = {f"node{n}": io_calls(node.pid) for n, node in enumerate(self.nodes, 1)}
        return {**parts, "redis": io_calls(self.redis.process.pid)}

    def process_cpu(self) -> dict[str, CpuTimes]:
        assert self.redis.process is not None
        nodes = {f"node{n}": node.cpu() for n, node in enumerate(self.nodes, 1)}
        return {**nodes, "redis": cpu_times(self.redis.process.pid)}

    def cpu(self) -> CpuTimes:
        total = CpuTimes(0.0, 0.0)
        for part in self.cpu_parts().values():
            total = total + part
        return total

    def rss(self) -> int:
        assert self.redis.process is not None
        return sum(node.rss() for node in self.nodes) + rss_bytes(self.redis.process.pid)

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()
        await self.redis.stop()


class HubbubCluster(ServerKind):
    """``nodes`` hubbub processes joined through one redis-server (``--broker
    redis://``); clients are dealt over the nodes by the scenario."""

    def __init__(self, node: Hubbub, nodes: int, name: str, label: str) -> None:
        super().__init__(
            name,
            label,
            f"{nodes} x {node.description}, on one redis-server (`--broker redis://`, "
            "no persistence); CPU is the nodes' and redis-server's together",
            wire="hubbub",
            named_only=True,
        )
        self.node = node
        self.nodes = nodes

    def prepare(self) -> None:
        if not Path(REDIS_SERVER).exists():
            self.missing = "redis-server is not installed (scripts/system-deps.sh)"
            return
        self.node.prepare()
        self.missing = self.node.missing

    async def start(
        self, log_dir: Path, port: int | None = None, data_dir: Path | None = None
    ) -> RunningServer:
        redis = RedisServer(log_dir)
        nodes: list[RunningServer] = []
        try:
            await redis.start()
            for _ in range(self.nodes):
                nodes.append(await _ClusterNode(self.node, redis.url).start(log_dir))
        except BaseException:
            for node in nodes:
                await node.stop()
            await redis.stop()
            raise
        return RunningCluster(self, nodes, redis)


class _ClusterNode(ServerKind):
    """One node of a cluster: ``node``'s command with ``--broker``."""

    def __init__(self, node: Hubbub, redis_url: str) -> None:
        super().__init__(node.name, node.label, node.description)
        self.data_env = node.data_env
        self.inner = node
        self.redis_url = redis_url

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        argv, cwd, env = self.inner.command(port)
        # An environment variable, as for the data folder: the same for every revision.
        return argv, cwd, {**env, "HUBBUB_BROKER": self.redis_url}


def hubbub_clusters(node: Hubbub, suffix: str = "") -> list[ServerKind]:
    """One node on Redis (the cost of the broker alone), and two nodes on Redis
    (clients dealt over both: the cost of crossing nodes)."""
    return [
        HubbubCluster(node, 1, f"hubbub-redis{suffix}", f"{node.label}, 1 node on Redis"),
        HubbubCluster(node, 2, f"hubbub-cluster{suffix}", f"{node.label}, 2 nodes on Redis"),
    ]


class HubbubFrontends(Hubbub):
    """hubbub serving the PeerJS and y-webrtc front-ends (docs/compat.md)."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "hubbub-frontends"
        self.label = "hubbub (front-ends)"
        self.description = (
            "`hubbub serve --frontend peerjs --frontend y-webrtc`, otherwise run as hubbub is"
        )
        self.wire = "frontends"
        self.named_only = True

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        argv, cwd, env = super().command(port)
        return [*argv, "--frontend", "peerjs", "--frontend", "y-webrtc"], cwd, env


COMPAT_REFERENCES = {"peer": "1.0.2", "y-webrtc": "10.3.0"}
"""The reference servers of the front-ends' benchmarks, from npm."""


class _NpmServer(ServerKind):
    """A reference server from npm, installed into bench/.work/compat-ref."""

    run_dir = WORK_DIR / "compat-ref"

    def prepare(self) -> None:
        npm = shutil.which("npm")
        if shutil.which("node") is None or npm is None:
            self.missing = "Node.js (node and npm) is not installed"
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"private": True, "dependencies": COMPAT_REFERENCES}
        wanted = json.dumps(manifest, indent=1)
        package = self.run_dir / "package.json"
        installed = all(
            (self.run_dir / "node_modules" / name / "package.json").is_file()
            for name in COMPAT_REFERENCES
        )
        if not installed or not package.is_file() or package.read_text() != wanted:
            package.write_text(wanted)
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=self.run_dir,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                self.missing = f"npm install failed: {result.stderr.strip()[-300:]}"
                return
        for name in COMPAT_REFERENCES:
            manifest_path = self.run_dir / "node_modules" / name / "package.json"
            self.extra[name] = json.loads(manifest_path.read_text())["version"]


class PeerServer(_NpmServer):
    def __init__(self) -> None:
        super().__init__(
            "peer",
            "peer (PeerJS server, Node)",
            f"PeerJS's own server, `peer` {COMPAT_REFERENCES['peer']} from npm: "
            "`peerjs --path /peerjs` on Node.js",
            python=False,
            wire="frontends",
            named_only=True,
        )

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        argv = ["node", "node_modules/.bin/peerjs", "--port", str(port), "--path", "/peerjs"]
        return [*argv, "--host", "127.0.0.1"], self.run_dir, {}


class YWebrtcServer(_NpmServer):
    def __init__(self) -> None:
        super().__init__(
            "y-webrtc-server",
            "y-webrtc bin/server.js (Node)",
            f"y-webrtc {COMPAT_REFERENCES['y-webrtc']}'s signaling server, its "
            "`bin/server.js` from npm, on Node.js and ws",
            python=False,
            wire="frontends",
            named_only=True,
        )

    def command(self, port: int) -> tuple[list[str], Path | None, dict[str, str]]:
        return ["node", "node_modules/y-webrtc/bin/server.js"], self.run_dir, {"PORT": str(port)}


def all_servers() -> list[ServerKind]:
    return [
        Hubbub(),
        *hubbub_clusters(Hubbub()),
        SeedServer(),
        SocketIOServer(),
        HubbubFrontends(),
        PeerServer(),
        YWebrtcServer(),
    ]


START_ATTEMPTS = 3
"""Starts of a server on a fresh port each, before its failure to listen is final."""


class ServerExited(RuntimeError):
    """The server's process ended before it listened."""


def free_port() -> int:
    """A free port below the ephemeral range: the crowd's clients take most of
    that range, and a server must not find its port taken by one of them (or by
    one of their sockets lingering in TIME_WAIT)."""
    low, _ = _ephemeral_range()
    for _ in range(100):
        port = random.randrange(10_000, max(10_001, low))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # pragma: no cover - a machine with no room below
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


async def _wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while True:
        if process.returncode is not None:
            raise ServerExited(f"the server exited with {process.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                raise RuntimeError("the server did not listen in time") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            return
