"""File transfer over a data channel, as ``docs/peer-protocol.md`` describes it.

One file per channel (``hubbub-file:<id>``, reliable and ordered). The sender offers
the file with its size and SHA-256; the receiver accepts from an offset (more than 0
to resume from bytes it kept from a broken transfer of the same file), the bytes
follow in binary messages, then ``file-end``; the receiver checks size and SHA-256
over the whole file and answers ``file-done``.

The receiver keeps a broken transfer as ``NAME.hubbub-part`` with its offer beside it
(``NAME.hubbub-part.json``) in the target directory, so that the next offer of the
same file (same name, size and SHA-256) resumes instead of starting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from aiortc import RTCDataChannel

log = logging.getLogger("hubbub.peer.files")

CHUNK_SIZE = 64 * 1024
"""Bytes: largest binary message (the remote's ``maxMessageSize`` may lower it)."""
HIGH_WATERMARK = 1024 * 1024
"""Bytes: the sender stops while more than this waits in the channel's buffer."""
LOW_WATERMARK = 256 * 1024
"""Bytes: ``bufferedAmountLowThreshold``; the sender goes on when the buffer drains to it."""
MAX_CONTROL_MESSAGE = 4096
"""Characters: longest control message (``file-offer`` and the others) read."""
MAX_NAME_BYTES = 200
"""Bytes: longest file name kept on the receiver's disk (longer ones are cut)."""
CONTROL_TIMEOUT = 60.0
"""Seconds to wait for the other side's next control message."""
PART_SUFFIX = ".hubbub-part"
DONE_GRACE = 5.0
"""Seconds the receiver waits, after ``file-done``, for the sender to close the channel."""
IDLE_CHECK = 5.0
"""Seconds between the receiver's checks that bytes still arrive."""

Progress = Callable[[int, int], None]
"""Called with (bytes done, total bytes) as a transfer goes."""


class ChannelClosed(Exception):
    """The data channel closed before the transfer was over."""


@dataclass(frozen=True)
class FileOffer:
    transfer_id: str
    name: str
    size: int
    mime: str
    sha256: str | None
    from_user: str | None = None


@dataclass(frozen=True)
class TransferResult:
    """How a transfer ended, on either side."""

    ok: bool
    name: str
    size: int
    sha256: str | None
    offset: int
    """The byte the transfer started from: more than 0 when it resumed."""
    reason: str | None = None
    path: Path | None = None
    """Where the receiver put the file."""
    from_user: str | None = None
    seconds: float | None = None
    """On the sender, for a transfer that went through: from the receiver's
    ``file-accept`` to its ``file-done``."""


class _Channel:
    """A data channel's messages as an async queue of control messages, with binary
    messages handed to ``on_bytes`` as they come (no queue on the hot path)."""

    def __init__(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        self.control: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.on_bytes: Callable[[bytes], None] | None = None
        self.closed = asyncio.Event()
        channel.on("message", self._on_message)
        channel.on("close", self._on_close)
        if channel.readyState == "closed":
            self._on_close()

    def _on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            if self.on_bytes is not None:
                self.on_bytes(message)
            else:
                self.control.put_nowait({"kind": "unexpected-bytes"})
            return
        if len(message) > MAX_CONTROL_MESSAGE:
            self.control.put_nowait({"kind": "bad", "reason": "control message too long"})
            return
        try:
            value = json.loads(message)
        except ValueError:
            value = None
        if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
            self.control.put_nowait({"kind": "bad", "reason": "not a control message"})
            return
        self.control.put_nowait(value)

    def _on_close(self) -> None:
        self.closed.set()
        self.control.put_nowait(None)

    def send(self, message: dict[str, Any]) -> None:
        if self.channel.readyState == "open":
            self.channel.send(json.dumps(message, separators=(",", ":")))

    async def next(self, timeout: float = CONTROL_TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            message = await self.control.get()
        if message is None:
            self.control.put_nowait(None)
            raise ChannelClosed("the channel closed")
        return message

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.close()


async def wait_open(channel: RTCDataChannel, timeout: float | None = None) -> None:
    """Return once ``channel`` is open; :class:`ChannelClosed` if it closes first."""
    if channel.readyState == "open":
        return
    opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_open() -> None:
        if not opened.done():
            opened.set_result(None)

    def on_close() -> None:
        if not opened.done():
            opened.set_exception(ChannelClosed(f"channel {channel.label} closed before opening"))

    channel.on("open", on_open)
    channel.on("close", on_close)
    try:
        async with asyncio.timeout(timeout):
            await opened
    finally:
        channel.remove_listener("open", on_open)
        channel.remove_listener("close", on_close)


def sha256_of(path: Path, limit: int | None = None) -> hashlib._Hash:
    """The SHA-256 state over the first ``limit`` bytes of ``path`` (all when None)."""
    digest = hashlib.sha256()
    remaining = limit
    with path.open("rb") as file:
        while remaining is None or remaining > 0:
            block = file.read(1 << 20 if remaining is None else min(1 << 20, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest


# -- sending ---------------------------------------------------------------------


class FileSender:
    """Sends one file over a fresh channel."""

    def __init__(
        self,
        path: Path,
        *,
        progress: Progress | None = None,
        offered: Callable[[], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        self.path = path
        self.progress = progress
        self.offered = offered
        self.chunk_size = chunk_size
        self.transfer_id = secrets.token_hex(8)

    async def run(self, channel: RTCDataChannel, *, max_message_size: int) -> TransferResult:
        link = _Channel(channel)
        size = self.path.stat().st_size
        sha256 = (await asyncio.to_thread(sha256_of, self.path)).hexdigest()
        name = self.path.name
        offset = 0
        try:
            await wait_open(channel, CONTROL_TIMEOUT)
            link.send(
                {
                    "kind": "file-offer",
                    "id": self.transfer_id,
                    "name": name,
                    "size": size,
                    "mime": mimetypes.guess_type(name)[0] or "application/octet-stream",
                    "sha256": sha256,
                }
            )
            if self.offered is not None:
                self.offered()
            answer = await link.next()
            kind = answer.get("kind")
            if kind != "file-accept":
                reason = str(answer.get("reason") or kind)[:200]
                return TransferResult(False, name, size, sha256, 0, f"refused: {reason}")
            offset = answer.get("offset", 0)
            if not isinstance(offset, int) or not 0 <= offset <= size:
                link.send({"kind": "file-cancel", "id": self.transfer_id, "reason": "bad offset"})
                return TransferResult(
                    False, name, size, sha256, 0, "the receiver sent a bad offset"
                )
            started = time.monotonic()
            await self._send_bytes(link, offset, size, min(self.chunk_size, max_message_size))
            link.send({"kind": "file-end", "id": self.transfer_id, "sha256": sha256})
            done = await link.next()
            if done.get("kind") == "file-done" and done.get("ok") is True:
                seconds = time.monotonic() - started
                return TransferResult(True, name, size, sha256, offset, seconds=seconds)
            reason = str(done.get("reason") or done.get("kind"))[:200]
            return TransferResult(False, name, size, sha256, offset, reason)
        except ChannelClosed:
            return TransferResult(False, name, size, sha256, offset, "the connection broke")
        except TimeoutError:
            link.send({"kind": "file-cancel", "id": self.transfer_id, "reason": "timeout"})
            return TransferResult(
                False, name, size, sha256, offset, "the receiver stopped answering"
            )
        except _Cancelled as cancelled:
            return TransferResult(False, name, size, sha256, offset, str(cancelled))
        finally:
            link.close()

    async def _send_bytes(self, link: _Channel, offset: int, size: int, chunk: int) -> None:
        channel = link.channel
        drained = asyncio.Event()
        channel.bufferedAmountLowThreshold = LOW_WATERMARK
        channel.on("bufferedamountlow", drained.set)
        progress = self.progress
        sent = offset
        try:
            with self.path.open("rb") as file:
                file.seek(offset)
                while sent < size:
                    if channel.bufferedAmount > HIGH_WATERMARK:
                        drained.clear()
                        if channel.bufferedAmount > HIGH_WATERMARK:
                            closed = asyncio.ensure_future(link.closed.wait())
                            low = asyncio.ensure_future(drained.wait())
                            await asyncio.wait({closed, low}, return_when=asyncio.FIRST_COMPLETED)
                            closed.cancel()
                            low.cancel()
                        if link.closed.is_set():
                            raise ChannelClosed("the channel closed")
                        if not link.control.empty():
                            _check_cancel(link)
                        if progress is not None:
                            progress(sent - channel.bufferedAmount, size)
                    data = file.read(min(chunk, size - sent))
                    if not data:
                        raise _Cancelled("the file shrank while it was being sent")
                    channel.send(data)
                    sent += len(data)
        finally:
            channel.remove_listener("bufferedamountlow", drained.set)
        if progress is not None:
            progress(size, size)


class _Cancelled(Exception):
    pass


def _check_cancel(link: _Channel) -> None:
    message = link.control.get_nowait()
    if message is None:
        link.control.put_nowait(None)
        raise ChannelClosed("the channel closed")
    if message.get("kind") == "file-cancel":
        raise _Cancelled(f"cancelled by the receiver: {str(message.get('reason'))[:200]}")


# -- receiving -------------------------------------------------------------------

OfferDecision = Callable[[FileOffer], Awaitable[bool] | bool]


class FileInbox:
    """Where a mesh puts the files offered to it.

    Files land in ``directory``. ``accept`` decides on each offer (all are accepted
    when it is None); ``max_size`` refuses larger files. ``progress`` is called with
    (offer, bytes received); results are queued for :meth:`next_result` and passed
    to ``on_result``.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        accept: OfferDecision | None = None,
        max_size: int | None = None,
        progress: Callable[[FileOffer, int], None] | None = None,
        on_result: Callable[[TransferResult], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.accept = accept
        self.max_size = max_size
        self.progress = progress
        self.on_result = on_result
        self._results: asyncio.Queue[TransferResult] = asyncio.Queue()

    async def next_result(self, timeout: float | None = None) -> TransferResult:
        async with asyncio.timeout(timeout):
            return await self._results.get()

    def _finished(self, result: TransferResult) -> None:
        self._results.put_nowait(result)
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:
                log.exception("on_result failed")


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:]")


def safe_name(name: str) -> str:
    """A name offered by a peer, made safe to create in a directory: no path, no
    control characters, no leading dot, at most ``MAX_NAME_BYTES`` bytes."""
    name = PurePosixPath(name.replace("\\", "/")).name
    name = _UNSAFE.sub("_", name).strip().lstrip(".")
    encoded = name.encode()[:MAX_NAME_BYTES]
    name = encoded.decode(errors="ignore")
    if not name or name.endswith(PART_SUFFIX):
        name = (name or "file") + ".bin"
    return name


def _free_path(directory: Path, name: str) -> Path:
    path = directory / name
    stem, suffix = path.stem, path.suffix
    counter = 1
    while path.exists():
        path = directory / f"{stem} ({counter}){suffix}"
        counter += 1
    return path


def _parse_offer(message: dict[str, Any], from_user: str | None) -> FileOffer | None:
    transfer_id, name, size = message.get("id"), message.get("name"), message.get("size")
    mime, sha256 = message.get("mime", ""), message.get("sha256")
    if (
        message.get("kind") != "file-offer"
        or not isinstance(transfer_id, str)
        or not 0 < len(transfer_id) <= 36
        or not isinstance(name, str)
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not isinstance(mime, str)
        or not (
            sha256 is None or (isinstance(sha256, str) and re.fullmatch("[0-9a-f]{64}", sha256))
        )
    ):
        return None
    return FileOffer(transfer_id, name, size, mime[:200], sha256, from_user)


class FileReceiver:
    """Receives one file from a channel the other side opened."""

    def __init__(self, channel: RTCDataChannel, inbox: FileInbox | None, from_user: str) -> None:
        self.link = _Channel(channel)  # listening from the start: no message is missed
        self.inbox = inbox
        self.from_user = from_user

    async def run(self) -> TransferResult | None:
        link = self.link
        try:
            first = await link.next()
        except (ChannelClosed, TimeoutError):
            link.close()
            return None
        offer = _parse_offer(first, self.from_user)
        if offer is None:
            link.send(
                {"kind": "file-cancel", "id": str(first.get("id"))[:36], "reason": "bad offer"}
            )
            link.close()
            return None
        inbox = self.inbox
        reason = None
        if inbox is None:
            reason = "this peer does not take files"
        elif inbox.max_size is not None and offer.size > inbox.max_size:
            reason = f"larger than {inbox.max_size} bytes"
        elif inbox.accept is not None:
            decision = inbox.accept(offer)
            if not isinstance(decision, bool):
                decision = await decision
            if not decision:
                reason = "declined"
        if reason is not None or inbox is None:
            link.send({"kind": "file-reject", "id": offer.transfer_id, "reason": reason})
            link.close()
            return None
        result = await self._receive(offer, inbox)
        inbox._finished(result)
        return result

    async def _receive(self, offer: FileOffer, inbox: FileInbox) -> TransferResult:
        link = self.link
        name = safe_name(offer.name)
        part = inbox.directory / (name + PART_SUFFIX)
        meta = inbox.directory / (name + PART_SUFFIX + ".json")
        described = {"name": offer.name, "size": offer.size, "sha256": offer.sha256}
        offset = 0
        if offer.sha256 is not None and part.exists() and meta.exists():
            with contextlib.suppress(ValueError, OSError):
                if json.loads(meta.read_text()) == described:
                    offset = min(part.stat().st_size, offer.size)
        if offset == 0:
            meta.write_text(json.dumps(described))
        digest = await asyncio.to_thread(sha256_of, part, offset) if offset else hashlib.sha256()
        received = offset
        failure: list[str] = []
        progress = inbox.progress
        fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
        os.truncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)

        loop = asyncio.get_running_loop()
        last_heard = [loop.time()]

        def on_bytes(data: bytes) -> None:
            nonlocal received
            if failure:
                return
            last_heard[0] = loop.time()
            received += len(data)
            if received > offer.size:
                failure.append("more bytes than the offer said")
                link.send({"kind": "file-cancel", "id": offer.transfer_id, "reason": failure[0]})
                link.control.put_nowait({"kind": "overrun"})
                return
            os.write(fd, data)
            digest.update(data)
            if progress is not None:
                progress(offer, received)

        link.on_bytes = on_bytes
        result = TransferResult(
            False, name, offer.size, offer.sha256, offset, None, None, self.from_user
        )
        try:
            link.send({"kind": "file-accept", "id": offer.transfer_id, "offset": offset})
            while True:
                try:
                    message = await link.next(timeout=IDLE_CHECK)
                except TimeoutError:
                    if loop.time() - last_heard[0] < CONTROL_TIMEOUT:
                        continue  # bytes are flowing; only silence is a timeout
                    raise
                kind = message.get("kind")
                if kind == "file-end":
                    break
                if kind in ("file-cancel", "overrun", "bad", "unexpected-bytes"):
                    reason = failure[0] if failure else str(message.get("reason") or kind)
                    return _failed(result, reason[:200], part, meta, keep=kind == "file-cancel")
        except ChannelClosed:
            return _failed(result, "the connection broke", part, meta, keep=True)
        except TimeoutError:
            link.send({"kind": "file-cancel", "id": offer.transfer_id, "reason": "timeout"})
            return _failed(result, "the sender stopped sending", part, meta, keep=True)
        finally:
            link.on_bytes = None
            os.close(fd)
        actual = digest.hexdigest()
        expected = {offer.sha256, message.get("sha256")} - {None}
        if received != offer.size or any(sha != actual for sha in expected):
            why = "size differs" if received != offer.size else "SHA-256 differs"
            link.send({"kind": "file-done", "id": offer.transfer_id, "ok": False, "reason": why})
            return _failed(result, why, part, meta, keep=False)
        final = _free_path(inbox.directory, name)
        part.rename(final)
        meta.unlink(missing_ok=True)
        link.send({"kind": "file-done", "id": offer.transfer_id, "ok": True})
        # the sender closes the channel once it has read file-done; until then, a
        # receiver that quit right away could take file-done down with it
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DONE_GRACE):
                await link.closed.wait()
        return TransferResult(
            True, final.name, offer.size, actual, offset, None, final, self.from_user
        )


def _failed(
    result: TransferResult, reason: str, part: Path, meta: Path, *, keep: bool
) -> TransferResult:
    if not keep:
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)
    return TransferResult(
        False,
        result.name,
        result.size,
        result.sha256,
        result.offset,
        reason,
        None,
        result.from_user,
    )
