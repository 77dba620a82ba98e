from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import linecache
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import traceback
import warnings
from asyncio import unix_events
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import pytest_timeout
import uvloop

from hubbub.server import ServerSettings, start_server
from hubbub.settings import DEFAULT_STUN_PORT
from tests import process
from tests.postgres import PostgresServer
from tests.redis import RedisSentinels, RedisServer

ServerFactory = Callable[..., Awaitable[str]]

DEFAULT_DATA_DIR = ServerSettings().data_dir


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    # The server runs on uvloop in production; the tests run it on uvloop too.
    return {"uvloop": CheckedLoop}


class CheckedLoop(uvloop.Loop):
    """uvloop's loop, whose close fails the test that left something open instead of
    hanging it, and which starts processes as the standard library does.

    Closing, uvloop warns about each transport still open (ResourceWarning); made an
    error by the tests' warnings filter, that warning leaves uvloop's close waiting for
    ever, out of reach of the test's deadline (a leaked UDP socket did so). The
    warnings of the close are collected instead, and fail the test once it is over.

    To start a process, uvloop forks and runs Python's after-fork work in the child
    before its exec, which frees what the parent's other threads hold (their
    thread-locals). An object whose freeing waits for one of those threads hangs the
    child, and the parent waiting for its exec with it, for good: PyAV's scaler, left
    by aiortc's VP8 encoder in a test that runs a peer, waits for its slice threads,
    which the child does not have (CI hung so). ``subprocess.Popen`` runs no Python
    in the child; the process's pipes and exit are then the loop's as usual."""

    async def subprocess_exec(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.SubprocessProtocol],
        *args: Any,
        stdin: Any = subprocess.PIPE,
        stdout: Any = subprocess.PIPE,
        stderr: Any = subprocess.PIPE,
        **kwargs: Any,
    ) -> tuple[asyncio.SubprocessTransport, asyncio.SubprocessProtocol]:
        protocol = protocol_factory()
        waiter = self.create_future()
        # the standard library's own transport, as its loop makes it (a private name,
        # in the tests only)
        transport = unix_events._UnixSubprocessTransport(  # type: ignore[attr-defined]
            self, protocol, args, False, stdin, stdout, stderr, 0, waiter=waiter, **kwargs
        )
        pid = transport.get_pid()
        threading.Thread(
            target=_reap, args=(self, transport, pid), name=f"reap-{pid}", daemon=True
        ).start()
        try:
            await waiter
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport, protocol

    def close(self) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            super().close()
        if caught:
            left = "\n".join(f"  {w.category.__name__}: {w.message}" for w in caught)
            pytest.fail(
                f"the test's event loop closed on what was left open:\n{left}", pytrace=False
            )


def _reap(loop: asyncio.AbstractEventLoop, transport: Any, pid: int) -> None:
    """Wait for a process of :meth:`CheckedLoop.subprocess_exec`, and tell its
    transport on the loop (as the standard library's thread-per-process watcher does)."""
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(RuntimeError):  # the loop was closed meanwhile
        loop.call_soon_threadsafe(transport._process_exited, os.waitstatus_to_exitcode(status))


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
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, to stop and start again."""
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


@pytest.fixture
def sentinels() -> Iterator[RedisSentinels]:
    """A Redis master, its replica and three sentinels of the test's own."""
    group = RedisSentinels()
    try:
        group.start()
        yield group
    finally:
        group.remove()


# -- the harness: every test has a deadline, and a server's errors fail it ---------

TESTS = str(Path(__file__).parent) + os.sep

TIMEOUT_GRACE = 20.0
"""Seconds a test that ran out of time is given to unwind (its ``finally`` blocks stop
its servers and browsers) before it is stopped where it stands."""

STUCK_GRACE = 10.0
"""Seconds after that before the run is ended, when the test is stuck where no signal
reaches it (in code that is not Python, such as an event loop's close): its stacks are
written out, and the run exits, failed, instead of hanging."""

HELD_GRACE = 30.0
"""Seconds after that before the run is ended by the interpreter's fault handler, from
a thread that needs no Python: when the test is stuck holding the interpreter's lock,
no Python thread can end the run (a process start on uvloop did so, waiting for a
child that had hung). Every thread's stack is written to the terminal, and the
process exits, failed, at once."""

_TERMINAL = -1
"""The terminal's stderr, as it was before output was captured (for the fault handler,
which writes to a descriptor)."""


def pytest_sessionstart(session: pytest.Session) -> None:
    global _TERMINAL
    _TERMINAL = os.dup(2)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # each test's timer is cancelled once it is torn down; this one is for good measure
    faulthandler.cancel_dump_traceback_later()


SLOW_MARKERS = {"browser": 180.0, "bench": 300.0}
"""The deadline of a test with one of these marks and no ``timeout`` mark of its own;
the others have the ``timeout`` of pyproject.toml."""

_TIMED_OUT = pytest.StashKey[str]()
_LOGS = pytest.StashKey["ServerLogs"]()
_TORN_DOWN = pytest.StashKey[bool]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        slowest = max(
            (seconds for mark, seconds in SLOW_MARKERS.items() if item.get_closest_marker(mark)),
            default=None,
        )
        if slowest is not None:
            item.add_marker(pytest.mark.timeout(slowest))


def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool:
    """Instead of pytest-timeout's own alarm: a test on an event loop is cancelled
    where it waits, so that it fails saying what it waited for and its clean-up runs."""

    def alarm(signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        waiting = _waiting_in_tests(frame)
        message = f"the test ran out of its {settings.timeout:g} s, waiting at:\n{waiting}"
        loop = asyncio._get_running_loop()
        if loop is None or _TIMED_OUT in item.stash:
            item.stash[_TIMED_OUT] = message
            pytest.fail(message, pytrace=False)
        item.stash[_TIMED_OUT] = message
        for task in asyncio.all_tasks(loop):
            if any(_in_tests(frame) for frame in _awaits(task)):
                task.cancel("the test ran out of time")
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT_GRACE)

    # the last resort, from a thread of its own: the main thread may never run
    # Python again to take the alarm
    stuck = threading.Timer(
        settings.timeout + TIMEOUT_GRACE + STUCK_GRACE, _end_the_run, [item, settings]
    )
    stuck.daemon = True

    def cancel() -> None:
        stuck.cancel()
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # type: ignore[attr-defined]
    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    stuck.start()
    if _TERMINAL >= 0:
        faulthandler.dump_traceback_later(
            settings.timeout + TIMEOUT_GRACE + STUCK_GRACE + HELD_GRACE,
            exit=True,
            file=_TERMINAL,
        )
    return True


def _end_the_run(item: pytest.Item, settings: Any) -> None:
    capture = item.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.suspend_global_capture(in_=True)
    item.config.get_terminal_writer().line(
        f"\n{item.nodeid} ran out of its {settings.timeout:g} s and did not stop (stuck "
        "where no signal reaches it): ending the run, with its output and threads' stacks",
        red=True,
    )
    pytest_timeout.timeout_timer(item, settings)  # writes them out, exits with 1


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool:
    """pytest-timeout stops a test's deadline as soon as a phase fails (for a debugger
    to take over): the deadline holds until the teardown is over instead, so that a
    teardown that hangs after a failure still runs out of time (an event loop's close
    did, after the failed assertion that a socket was closed)."""
    if item.stash.get(_TORN_DOWN, False) or item.config.option.usepdb:
        cancel = getattr(item, "cancel_timeout", None)
        if cancel is not None:
            cancel()
    return True


def _awaits(task: asyncio.Task[Any]) -> list[FrameType]:
    """The frames of a task's chain of awaits, outermost first."""
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return frames


def _in_tests(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(TESTS)


def _where(frame: FrameType) -> str:
    path = frame.f_code.co_filename
    line = linecache.getline(path, frame.f_lineno).strip()
    return f"  {os.path.relpath(path)}:{frame.f_lineno} in {frame.f_code.co_name}: {line}"


def _waiting_in_tests(frame: FrameType | None) -> str:
    """Where the test's own code waits: each task's awaits in tests/ (and the call it
    waits in, when that is elsewhere), or the main thread's stack without a loop."""
    loop = asyncio._get_running_loop()
    chains = []
    if loop is not None:
        for task in asyncio.all_tasks(loop):
            frames = _awaits(task)
            ours = [f for f in frames if _in_tests(f)]
            if ours:
                if frames[-1] is not ours[-1]:
                    ours.append(frames[-1])
                chains.append("\n".join(_where(f) for f in ours))
    else:
        stack = []
        while frame is not None:
            stack.append(frame)
            frame = frame.f_back
        chains.append("\n".join(_where(f) for f in reversed(stack) if _in_tests(f)))
    return "\n  --\n".join(chains) or "  (nowhere in tests/)"


class ServerLogs(logging.Handler):
    """Errors and tracebacks logged in this process during one test (the servers the
    tests start in-process, and the clients)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR and not record.exc_info:
            return
        text = f"{record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self.problems.append(text)


def _check_logs(item: pytest.Item, problems: list[str]) -> None:
    """Fail a test whose servers logged an error or a traceback it did not provoke on
    purpose (``@pytest.mark.logs_errors(pattern, ...)``: regular expressions, one of
    which each such line must match)."""
    marker = item.get_closest_marker("logs_errors")
    allowed = [re.compile(pattern) for pattern in (marker.args if marker else ())]
    unexpected = [p for p in problems if not any(a.search(p) for a in allowed)]
    if unexpected:
        shown = "\n".join(unexpected[:10])
        more = f"\n(and {len(unexpected) - 10} more)" if len(unexpected) > 10 else ""
        pytest.fail(
            f"a server logged {len(unexpected)} error(s) or traceback(s) this test did "
            f"not expect (mark it logs_errors if it provokes them):\n{shown}{more}",
            pytrace=False,
        )


def _timed_out(item: pytest.Item, exc: BaseException) -> None:
    """Fail a test that ran out of time with where it waited, not with the cancellation."""
    message = item.stash.get(_TIMED_OUT, None)
    if message is not None and not isinstance(exc, pytest.fail.Exception):
        raise pytest.fail.Exception(message, pytrace=False) from None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    logs = ServerLogs()
    item.stash[_LOGS] = logs
    logging.getLogger().addHandler(logs)
    process.server_problems.clear()
    try:
        return (yield)
    except BaseException as exc:
        _timed_out(item, exc)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except BaseException as exc:
        _timed_out(item, exc)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    try:
        try:
            result = yield
        except BaseException as exc:
            _timed_out(item, exc)
            raise
        finally:
            logs = item.stash.get(_LOGS, None)
            if logs is not None:
                logging.getLogger().removeHandler(logs)
        if logs is not None:
            _check_logs(item, logs.problems + process.server_problems)
        return result
    finally:
        item.stash[_TORN_DOWN] = True
