"""The hubbub chat, send, receive and record commands, as real processes against a
real ``hubbub serve``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import av
import numpy as np

from hubbub.client import Client, PresenceChanged
from tests.process import hubbub_serve
from tests.sdk.test_resume import proxy_for

WAIT = 90.0


@asynccontextmanager
async def hubbub(*args: str, stdin: bool = False) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hubbub",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()


async def finish(process: asyncio.subprocess.Process, timeout: float = WAIT) -> tuple[str, str]:
    """Wait for ``process`` to exit; its stdout and stderr. On a timeout, kill it and
    fail with what it printed."""
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.send_signal(signal.SIGKILL)
        stdout, stderr = await process.communicate()
        raise AssertionError(
            f"still running after {timeout:g} s; stdout: {stdout.decode()[-2000:]}; "
            f"stderr: {stderr.decode()[-2000:]}"
        ) from None
    return stdout.decode(), stderr.decode()


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (a file growing, which nothing signals) until it holds."""
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - polling the file system
            await asyncio.sleep(0.02)


async def read_until(stream: asyncio.StreamReader | None, text: str) -> str:
    """Lines of ``stream`` up to the first holding ``text``."""
    assert stream is not None
    seen = []
    async with asyncio.timeout(WAIT):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"ended before {text!r}; got {seen}")
            seen.append(line)
            if text in line:
                return "".join(seen)


async def test_chat_between_two_terminals() -> None:
    async with (
        hubbub_serve() as (url, _server),
        hubbub("chat", "--url", url, "--room", "c", "--user", "ann", stdin=True) as ann,
    ):
        await read_until(ann.stdout, "* in c as ann, with nobody else")
        async with hubbub("chat", "--url", url, "--room", "c", "--user", "ben", stdin=True) as ben:
            await read_until(ben.stdout, "* in c as ben, with ann")
            await read_until(ann.stdout, "* ben joined")
            assert ben.stdin is not None
            ben.stdin.write(b"hello ann\n/who\n")
            await ben.stdin.drain()
            assert "ben: hello ann" in await read_until(ann.stdout, "hello ann")
            await read_until(ben.stdout, "with ann")
            ben.stdin.write(b"/quit\n")
            await ben.stdin.drain()
            assert await ben.wait() == 0
        await read_until(ann.stdout, "* ben left")
        # a later terminal is shown what was said before it came
        async with hubbub("chat", "--url", url, "--room", "c", "--user", "cy", stdin=True) as cy:
            shown = await read_until(cy.stdout, "ben: hello ann")
            assert "* in c as cy, with ann" in shown
            assert cy.stdin is not None
            cy.stdin.write(b"/history\n/quit\n")
            await cy.stdin.drain()
            assert "* no older messages" in await read_until(cy.stdout, "no older messages")
            assert await cy.wait() == 0


async def test_a_command_restarted_after_a_crash_waits_for_its_held_name() -> None:
    # The killed chat's session holds "ann" for its grace period (it may resume): the
    # next run is refused user-id-taken with heldForMs, says so, and gets in after.
    async with hubbub_serve("--resume-grace", "3") as (url, _server):
        room = ["--url", url, "--room", "c", "--user", "ann"]
        async with hubbub("chat", *room, stdin=True) as first:
            await read_until(first.stdout, "* in c as ann")
            first.send_signal(signal.SIGKILL)
            await first.wait()
        started = asyncio.get_running_loop().time()
        async with hubbub("chat", *room, stdin=True) as again:
            said = await read_until(again.stderr, "joining again in")
            assert "the user id 'ann' is still held for a session" in said
            await read_until(again.stdout, "* in c as ann, with nobody else")
            assert asyncio.get_running_loop().time() - started < 3 + 5
            assert again.stdin is not None
            again.stdin.write(b"/quit\n")
            await again.stdin.drain()
            assert await again.wait() == 0


async def test_chat_shows_presence_and_typing() -> None:
    async with (
        hubbub_serve() as (url, _server),
        hubbub("chat", "--url", url, "--room", "c", "--user", "ann", stdin=True) as ann,
    ):
        await read_until(ann.stdout, "* in c as ann")
        async with Client(url, "c", user="bob") as bob:
            await read_until(ann.stdout, "* bob joined")
            await bob.set_status("busy")
            await read_until(ann.stdout, "* bob is busy")
            await bob.typing()
            await read_until(ann.stdout, "* bob is typing...")
            assert ann.stdin is not None
            ann.stdin.write(b"/who\n")
            await ann.stdin.drain()
            assert "* typing: bob" in await read_until(ann.stdout, "typing: bob")
            ann.stdin.write(b"/status away\n/status asleep\n")
            await ann.stdin.drain()
            await read_until(ann.stdout, "* you are away")
            await read_until(ann.stdout, "! /status takes online, away or busy")
            async with asyncio.timeout(WAIT):
                while True:
                    event = await bob.next_event()
                    if isinstance(event, PresenceChanged) and event.user_id == "ann":
                        break
            assert bob.participants["ann"].status == "away"
            ann.stdin.write(b"/quit\n")
            await ann.stdin.drain()
            assert await ann.wait() == 0


async def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    async with hubbub("chat", "--url", "ws://127.0.0.1:9", "--room", "c") as chat:
        _, err = await chat.communicate()
        assert chat.returncode == 1
        assert err.decode().startswith("hubbub chat: error: cannot reach ws://127.0.0.1:9/")
        assert "Traceback" not in err.decode()
    async with hubbub_serve() as (url, _server):
        missing = str(tmp_path / "nope.bin")
        async with hubbub("send", missing, "--url", url, "--room", "r", "--to", "x") as send:
            _, err = await send.communicate()
            assert send.returncode == 1
            assert err.decode().strip() == f"hubbub send: error: no such file: {missing}"
        async with hubbub("chat", "--url", url, "--room", "r", "--user", "x" * 100) as chat:
            _, err = await chat.communicate()
            assert chat.returncode == 1
            assert "refused to let us in: too-large" in err.decode()


async def test_send_and_receive_resume_after_the_sender_dies(tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(24 * 1024 * 1024))
    out = tmp_path / "out"
    part = out / "data.bin.hubbub-part"
    # The killed sender's session waits out its grace period holding the name "tx"
    # (docs/protocol.md: a client that cannot resume waits and tries again); a short
    # one lets the new sender in as soon as the receiver sees the transfer broke.
    async with hubbub_serve("--resume-grace", "1") as (url, _server):
        room = ["--url", url, "--room", "files"]
        async with hubbub(
            "receive", *room, "--user", "rx", "--out", str(out), "--count", "1"
        ) as rx:
            await read_until(rx.stdout, "receiving in files as rx")
            async with hubbub("send", str(source), *room, "--user", "tx", "--to", "rx") as tx:
                await until(lambda: part.exists() and part.stat().st_size > 2 * 1024 * 1024)
                tx.send_signal(signal.SIGKILL)
                await tx.wait()
            kept = part.stat().st_size
            assert 0 < kept < source.stat().st_size
            await read_until(rx.stderr, "broke")
            async with hubbub("send", str(source), *room, "--user", "tx", "--to", "rx") as tx:
                stdout, stderr = await finish(tx)
                assert tx.returncode == 0, stderr
                assert "resumed at" in stdout
            output = await read_until(rx.stdout, "received")
            assert "sha256 verified, resumed at" in output
            assert await asyncio.wait_for(rx.wait(), WAIT) == 0
    received = out / "data.bin"
    assert (
        hashlib.sha256(received.read_bytes()).digest()
        == hashlib.sha256(source.read_bytes()).digest()
    )
    assert not part.exists()


async def test_send_tries_again_by_itself_when_the_receiver_goes_and_comes_back(
    tmp_path: Path,
) -> None:
    # The sender stays up through the break (docs/python.md: "when the connection
    # breaks, tries again (--attempts), resuming where the receiver stopped").
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(24 * 1024 * 1024))
    out = tmp_path / "out"
    part = out / "data.bin.hubbub-part"
    async with hubbub_serve("--resume-grace", "1") as (url, _server):
        room = ["--url", url, "--room", "files"]
        receive = ("receive", *room, "--user", "rx", "--out", str(out), "--count", "1")
        async with hubbub("send", str(source), *room, "--user", "tx", "--to", "rx") as tx:
            async with hubbub(*receive) as rx:
                await read_until(rx.stdout, "receiving in files as rx")
                await until(lambda: part.exists() and part.stat().st_size > 2 * 1024 * 1024)
                rx.send_signal(signal.SIGKILL)
                await rx.wait()
            kept = part.stat().st_size
            assert 0 < kept < source.stat().st_size
            broke = await read_until(tx.stderr, "transfer broke")
            assert "attempt 1 of 10" in broke
            assert tx.returncode is None  # still there, waiting for the receiver
            async with hubbub(*receive) as rx:
                output = await read_until(rx.stdout, "received")
                assert "sha256 verified, resumed at" in output
                assert await asyncio.wait_for(rx.wait(), WAIT) == 0
            stdout, stderr = await finish(tx)
            assert tx.returncode == 0, stderr
            assert "resumed at" in stdout
    received = out / "data.bin"
    assert (
        hashlib.sha256(received.read_bytes()).digest()
        == hashlib.sha256(source.read_bytes()).digest()
    )


async def test_a_cut_of_the_senders_connection_to_the_server_breaks_no_transfer(
    tmp_path: Path,
) -> None:
    # The file goes peer to peer: the sender's WebSocket is cut mid-transfer (a proxy
    # drops it), the client resumes its session, and the transfer never notices.
    source = tmp_path / "data.bin"
    source.write_bytes(os.urandom(24 * 1024 * 1024))
    out = tmp_path / "out"
    part = out / "data.bin.hubbub-part"
    async with hubbub_serve() as (url, _server):
        proxy, proxy_url = await proxy_for(url)
        try:
            receive = ("receive", "--url", url, "--room", "files", "--user", "rx")
            async with hubbub(*receive, "--out", str(out), "--count", "1") as rx:
                await read_until(rx.stdout, "receiving in files as rx")
                send = ("send", str(source), "--url", proxy_url, "--room", "files")
                async with hubbub(*send, "--user", "tx", "--to", "rx") as tx:
                    await until(lambda: part.exists() and part.stat().st_size > 2 * 1024 * 1024)
                    proxy.cut_all()
                    assert proxy.cuts >= 1
                    stdout, stderr = await finish(tx)
                    assert tx.returncode == 0, stderr
                    assert "transfer broke" not in stderr
                    assert "resumed at" not in stdout  # one go, from the first byte
                output = await read_until(rx.stdout, "received")
                assert "sha256 verified" in output
        finally:
            await proxy.close()
    received = out / "data.bin"
    assert (
        hashlib.sha256(received.read_bytes()).digest()
        == hashlib.sha256(source.read_bytes()).digest()
    )


async def test_record_a_python_peer(tmp_path: Path) -> None:
    """A peer sending the generated test pattern and tone is recorded by the bot."""
    from hubbub.client import Client
    from hubbub.peer import MediaSource, Mesh

    out = tmp_path / "rec.mkv"
    media = MediaSource.test_pattern()
    async with hubbub_serve() as (url, _server):
        async with Client(url, "rec", user="cam", events=False) as cam, Mesh(cam, media=media):  # noqa: SIM117
            async with hubbub(
                "record", "--url", url, "--room", "rec", "--member", "cam",
                "--out", str(out), "--duration", "8",
            ) as bot:  # fmt: skip
                stdout, stderr = await finish(bot)
                assert bot.returncode == 0, stderr
                assert "recording cam (audio, video)" in stdout
        media.stop()
    assert_recording_has_moving_video(out, audio=True)


def assert_recording_has_moving_video(path: Path, *, audio: bool) -> None:
    """The file decodes; its video frames are not blank and change over time."""
    with av.open(str(path)) as container:
        kinds = {stream.type for stream in container.streams}
        assert "video" in kinds
        if audio:
            assert "audio" in kinds
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    assert len(frames) >= 10, len(frames)
    last = frames[-1].astype(np.int16)
    assert last.std() > 10, "the picture is flat"
    # Motion somewhere in the recording: on a loaded machine the picture may stall
    # for a while (frames dropped before the encoder), so not between two given frames.
    first = frames[0].astype(np.int16)
    change = max(np.abs(frame.astype(np.int16) - first).mean() for frame in frames[1:])
    assert change > 1, "no motion"
