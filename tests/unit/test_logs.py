"""Log formats and the redactor."""

from __future__ import annotations

import json
import logging

from hubbub.logs import REDACTED, JsonFormatter, Redactor, TextFormatter

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
