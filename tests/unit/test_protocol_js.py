"""hubbub.js takes the protocol's constants from a generated module: it must match."""

from __future__ import annotations

from hubbub.protocol import javascript
from hubbub.protocol.errors import FINAL_CLOSE_CODES, CloseCode


def test_the_generated_module_is_up_to_date() -> None:
    on_disk = javascript.path().read_text(encoding="utf-8")
    assert on_disk == javascript.render(), (
        "web/static/protocol.js is stale: run python -m hubbub.protocol.javascript"
    )


def test_the_module_names_every_final_close_code() -> None:
    text = javascript.render()
    for code, name in FINAL_CLOSE_CODES.items():
        assert f'"{int(code)}": "{name}"' in text
    # A close that passes with time is never final.
    for code in (CloseCode.GOING_AWAY, CloseCode.SLOW_CONSUMER, CloseCode.AUTH_TIMEOUT):
        assert code not in FINAL_CLOSE_CODES
