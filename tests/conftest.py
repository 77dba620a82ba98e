from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import uvloop

from hubbub.server import ServerSettings, start_server
from hubbub.settings import DEFAULT_STUN_PORT
from tests.postgres import PostgresServer
from tests.redis import RedisServer

ServerFactory = Callable[..., Awaitable[str]]

DEFAULT_DATA_DIR = ServerSettings().data_dir


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    # The server runs on uvloop in production; the tests run it on uvloop too.
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session", autouse=True)
def _no_public_stun_server() -> Iterator[None]:
    """aiortc asks a public STUN server when a peer connection's configuration names no
    ICE servers at all (None, not an empty list): no test may send traffic outside the
    machine, so such a configuration fails the test that makes it, loudly."""
    from aiortc.rtcicetransport import RTCIceGatherer

    def refuse(cls: type) -> list[object]:
        raise AssertionError(
            "RTCConfiguration with iceServers=None reaches a public STUN server: "
            "pass iceServers=[] (or the test's own servers)"
        )

    default = RTCIceGatherer.__dict__["getDefaultIceServers"]
    RTCIceGatherer.getDefaultIceServers = classmethod(refuse)  # type: ignore[method-assign,assignment]
    yield
    RTCIceGatherer.getDefaultIceServers = default  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def _data_dir_of_servers_started_by_tests(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Servers the tests start as processes (the benchmarks' among them) keep their
    data in a temporary folder, never in ``./hubbub-data`` of the checkout: a
    database left there by another version would be refused, or be read."""
    values = {
        "HUBBUB_DATA_DIR": str(tmp_path_factory.mktemp("hubbub-data")),
        # Nor do they take UDP 3478 for a STUN server (the tests that want one say so).
        "HUBBUB_STUN_PORT": "0",
    }
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    yield
    for name, value in saved.items():
        if value is None:
            del os.environ[name]
        else:
            os.environ[name] = value


@pytest.fixture
async def start_hub(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Start an in-process server on an ephemeral port; returns its base URL."""
    runners = []

    async def start(settings: ServerSettings | None = None, **limits: object) -> str:
        """Start with ``settings`` (host and port are forced to 127.0.0.1:0, the
        data folder to a fresh one unless given, and the built-in STUN server off
        unless a port other than the default is given), and ``limits`` changed from
        theirs."""
        if settings is None or settings.data_dir == DEFAULT_DATA_DIR:
            settings = replace(
                settings or ServerSettings(), data_dir=tmp_path / f"data-{len(runners)}"
            )
        settings = replace(settings, host="127.0.0.1", port=0)
        if settings.stun_port == DEFAULT_STUN_PORT:
            settings = replace(settings, stun_port=0)
        if limits:
            settings = replace(settings, limits=replace(settings.limits, **limits))
        runner, url = await start_server(settings)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def hub_url(start_hub: ServerFactory) -> str:
    return await start_hub()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, started on first use."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the test PostgreSQL server."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> ServerSettings:
    """Server settings for each store backend, with fresh storage."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return ServerSettings(data_dir=tmp_path / "data", database_url=url)
    return ServerSettings(data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis server for the whole run, started on first use."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The test Redis server, emptied."""
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(64).startswith(b"+OK")
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis server of the test's own, to stop and start again."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
