"""A real Redis server for the tests: Debian's redis-server on an ephemeral port.

No persistence (no dump or append-only file), its working folder a temporary one.
It can be stopped and started again on the same port, as an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

START_TIMEOUT = 20.0
REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, *extra: str, sentinel_config: str | None = None) -> None:
        """``extra``: more redis-server options (``--replicaof HOST PORT``);
        ``sentinel_config``: run as a sentinel with this configuration (``port`` and
        ``dir`` are added)."""
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(
                "redis-server is missing: run scripts/system-deps.sh (Debian package redis-server)"
            )
        self.root = Path(tempfile.mkdtemp(prefix="hubbub-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.extra = extra
        self.sentinel_config = sentinel_config

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.log = open(self.root / "redis.log", "ab")  # noqa: SIM115
        if self.sentinel_config is not None:
            # A sentinel rewrites its configuration file as it learns: one of its own.
            config = self.root / "sentinel.conf"
            config.write_text(
                f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.root}\n"
                + self.sentinel_config
            )
            command = [REDIS_SERVER, str(config), "--sentinel"]
        else:
            command = [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--protected-mode",
                "no",
                *self.extra,
            ]
        self.process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start: " + self.log_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)

    def log_text(self) -> str:
        path = self.root / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, kill: bool = False) -> None:
        """Stop the server (everything it held is gone: no persistence)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.process = None
        if hasattr(self, "log"):
            self.log.close()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class FreezingProxy:
    """A TCP proxy in front of Redis that can freeze a connection: it stays open, and
    from then on nothing Redis sends on it gets through (a network that drops a flow
    without a word). A connection is named by what its client sent first."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.port = 0
        self.opened: list[tuple[bytes, dict[str, bool]]] = []
        """(the first bytes the client sent, its state) for each connection."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self, marker: bytes) -> int:
        """Freeze every open connection whose client began with ``marker``."""
        frozen = 0
        for first, state in self.opened:
            if marker in first and not state["closed"]:
                state["frozen"] = True
                frozen += 1
        return frozen

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.redis_port
        )
        first = await reader.read(65536)
        state = {"frozen": False, "closed": False}
        self.opened.append((first, state))
        upstream_writer.write(first)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, down: bool
        ) -> None:
            try:
                while data := await source.read(65536):
                    if not (down and state["frozen"]):
                        sink.write(data)
            except OSError:
                pass
            finally:
                state["closed"] = True
                sink.close()

        for task in (
            asyncio.create_task(pump(reader, upstream_writer, down=False)),
            asyncio.create_task(pump(upstream_reader, writer, down=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


SENTINEL_MASTER = "hubbub"
"""The name the test sentinels watch their master under."""
DOWN_AFTER_MS = 1000
"""A master silent this long is down, to a sentinel."""


class RedisSentinels:
    """A master, one replica of it and three sentinels that watch them (a quorum of
    two), all on loopback: the master can be killed, and the sentinels then promote
    the replica. :attr:`url` is what a node's ``--broker`` takes."""

    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica: RedisServer | None = None
        self.sentinels: list[RedisServer] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SENTINEL_MASTER}/0"

    def start(self) -> None:
        master = self.master
        master.start()
        replica = self.replica = RedisServer("--replicaof", "127.0.0.1", str(master.port))
        replica.start()
        _wait_until(
            lambda: _client(replica.port).info("replication")["master_link_status"] == "up",
            "the replica to sync with its master",
        )
        config = (
            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master.port} 2\n"
            f"sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
            f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n"
        )
        for _ in range(3):
            sentinel = RedisServer(sentinel_config=config)
            self.sentinels.append(sentinel)
            sentinel.start()
        # A failover needs sentinels that know the replica and one another (they
        # find them through the master's hello channel, every few seconds).
        for sentinel in self.sentinels:

            def knows_all(port: int = sentinel.port) -> bool:
                state = _client(port).sentinel_master(SENTINEL_MASTER)
                return state["num-other-sentinels"] == 2 and state["num-slaves"] == 1

            _wait_until(knows_all, "the sentinels to know the replica and one another")

    def master_port(self) -> int:
        """The master's port, as the first sentinel that answers names it."""
        for sentinel in self.sentinels:
            try:
                address = _client(sentinel.port).sentinel_get_master_addr_by_name(SENTINEL_MASTER)
            except redis.RedisError:
                continue
            return int(address[1])
        raise RuntimeError("no sentinel answers")

    def remove(self) -> None:
        for server in [*self.sentinels, self.replica, self.master]:
            if server is not None:
                server.remove()


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=2, decode_responses=True)


def _wait_until(check: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)
