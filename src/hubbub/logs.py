"""Log lines: text for a terminal, JSON for machines, secrets never.

hubbub logs one line per connection event, in ``key=value`` form
(``event=join session=... room='team'``). The JSON format turns those pairs into
fields. Both formats pass every line through a redactor that blanks the
configured secrets (API key, token secret, TURN secret...) and anything shaped
like a signed token, wherever it appears.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import TextIO

REDACTED = "[redacted]"

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_PAIR = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)""")


class Redactor:
    """Blanks secrets and token-shaped strings out of text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret that contains another is blanked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "eyJ" in text:
            text = _JWT.sub(REDACTED, text)
        return text


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, and the line's key=value pairs."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        message = self._redact(record.getMessage())
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        pairs = _PAIR.findall(message)
        if pairs and message.startswith(pairs[0][0] + "="):
            for key, raw in pairs:
                line.setdefault(key, _value(raw))
        else:
            line["message"] = message
        if record.exc_info:
            line["exception"] = self._redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def _value(raw: str) -> object:
    if raw[:1] in ("'", '"'):
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


class TurnHandler(logging.StreamHandler[TextIO]):
    """Writes the lines one turn of the event loop logged in one write, at its end.

    A join storm logs two lines a join (``event=connect``, ``event=join``); written
    and flushed one by one, each line was a system call of its own on the event
    loop's thread. A warning or worse is written at once, after the lines before it;
    so is a line logged with no event loop running (the store's writer thread, a
    command before or after its loop), and everything once ``MAX_PENDING`` lines
    wait. A process killed outright loses at most the lines of the turn it was in.
    """

    MAX_PENDING = 1000

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None
        """The event loop a write of the pending lines is due on, at its turn's end."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # as StreamHandler does: a bad record costs that record
            self.handleError(record)
            return
        self._pending.append(line)
        if record.levelno >= logging.WARNING or len(self._pending) >= self.MAX_PENDING:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop here: at once
            self.flush()
            return
        if self._flush_on is not loop:  # (one due on a loop since closed never comes)
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._flush_on = None
            if self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                self.stream.write(text)
            super().flush()
        finally:
            self.release()


def configure(level: str, format: str, secrets: Iterable[str | None] = ()) -> None:
    """Send hubbub's logs to stderr in ``format`` ("text" or "json")."""
    redact = Redactor(secrets)
    handler = TurnHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if format == "json" else TextFormatter(redact))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # What no line of hubbub's formats shows, not gathered for every line (the
    # logging HOWTO's "Optimization"): the caller's file and line, the thread's and
    # the process's names. A line costs about 9 µs instead of 14.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # aiohttp logs failed handshakes with the request line; keep its chatter down.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
