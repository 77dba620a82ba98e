"""The protocol document names every code and limit the code has, with its default."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from hubbub.core import Limits
from hubbub.protocol import CloseCode, ErrorCode

PROTOCOL = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_is_documented(code: ErrorCode) -> None:
    assert f"| `{code.value}` |" in PROTOCOL


@pytest.mark.parametrize("code", list(CloseCode))
def test_every_close_code_is_documented(code: CloseCode) -> None:
    assert f"| {int(code)} |" in PROTOCOL


@pytest.mark.parametrize("limit", [limit.name for limit in fields(Limits)])
def test_every_limit_is_documented_with_its_default(limit: str) -> None:
    default = getattr(Limits(), limit)
    shown = f"{default:g}" if isinstance(default, float) else str(default)
    assert f"| `{limit}` | {shown} |" in PROTOCOL
