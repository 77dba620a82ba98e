"""Log formats, the redactor, and the handler that writes a turn's lines at once."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from hubbub.logs import (
    REDACTED,
    JsonFormatter,
    Redactor,
    TextFormatter,
    TurnHandler,
    configure,
)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("hubbub.core", logging.INFO, __file__, 1, message, args, None)


def test_redactor_blanks_secrets_and_token_shapes() -> None:
    redact = Redactor(["hunter2-api-key", None, ""])
    text = redact(f"key=hunter2-api-key token={TOKEN} room='ok'")
    assert "hunter2" not in text
    assert "eyJ" not in text
    assert text == f"key={REDACTED} token={REDACTED} room='ok'"


def test_json_lines_carry_the_pairs_as_fields() -> None:
    formatter = JsonFormatter(Redactor(["s3cret-value"]))
    line = json.loads(
        formatter.format(record("event=join session=%s room=%r members=%d", "abc", "a b", 3))
    )
    assert line["level"] == "info"
    assert line["logger"] == "hubbub.core"
    assert line["event"] == "join"
    assert line["session"] == "abc"
    assert line["room"] == "a b"
    assert line["members"] == 3
    assert line["ts"].endswith("Z")


def test_json_keeps_free_text_as_a_message_and_redacts_it() -> None:
    formatter = JsonFormatter(Redactor(["s3cret-value"]))
    line = json.loads(formatter.format(record("something odd with s3cret-value inside")))
    assert line["message"] == f"something odd with {REDACTED} inside"


def test_text_format_redacts() -> None:
    formatter = TextFormatter(Redactor([]))
    assert TOKEN not in formatter.format(record("event=x room=%r", TOKEN))


class Stream(io.StringIO):
    """Counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def logger_to(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger("hubbub.test-turn-handler")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger


async def test_what_a_turn_of_the_event_loop_logs_is_written_at_its_end_in_one_write() -> None:
    stream = Stream()
    handler = TurnHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logger_to(handler)
    for n in range(3):
        log.info("event=join n=%d", n)
    assert (stream.getvalue(), stream.writes) == ("", 0)
    await asyncio.sleep(0)
    assert (stream.getvalue(), stream.writes) == (
        "event=join n=0\nevent=join n=1\nevent=join n=2\n",
        1,
    )
    # A warning goes at once, after what was logged before it.
    log.info("event=connect")
    log.warning("event=slow-consumer")
    assert stream.getvalue().endswith("event=connect\nevent=slow-consumer\n")
    assert stream.writes == 2
    await asyncio.sleep(0)
    assert stream.writes == 2  # nothing was left to write


def test_outside_the_event_loop_a_line_is_written_at_once() -> None:
    stream = Stream()
    handler = TurnHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger_to(handler).info("event=store-written")
    assert stream.getvalue() == "event=store-written\n"


async def test_lines_logged_meanwhile_on_another_thread_come_in_order() -> None:
    stream = Stream()
    handler = TurnHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logger_to(handler)
    log.info("loop one")
    await asyncio.to_thread(log.info, "thread")  # written at once, with what waited
    log.info("loop two")
    await asyncio.sleep(0)
    assert stream.getvalue() == "loop one\nthread\nloop two\n"


def test_a_line_due_at_the_end_of_a_closed_loops_turn_is_not_held_back() -> None:
    stream = Stream()
    handler = TurnHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logger_to(handler)

    async def log_and_end() -> None:
        log.info("last line of the loop")  # its write was due at the turn's end

    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_end())
    loop.close()
    log.info("after the loop")
    assert stream.getvalue() == "last line of the loop\nafter the loop\n"

    async def log_again() -> None:
        log.info("on a new loop")
        await asyncio.sleep(0)

    asyncio.run(log_again())
    assert stream.getvalue().endswith("after the loop\non a new loop\n")


def test_configure_gathers_nothing_the_formats_do_not_show(monkeypatch: pytest.MonkeyPatch) -> None:
    # Restored afterwards: the knobs, the root logger's handlers and level.
    for knob in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, knob, getattr(logging, knob))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    configure("info", "text")
    made = logging.getLogger("hubbub.test").makeRecord(
        "hubbub.test", logging.INFO, "f.py", 1, "event=x", (), None
    )
    assert (made.threadName, made.processName, made.process) == (None, None, None)
    assert isinstance(root.handlers[0], TurnHandler)
