"""The protocol's constants as an ES module, for hubbub.js: ``web/static/protocol.js``.

The protocol is defined once, here in :mod:`hubbub.protocol`; the browser client
imports what it needs of it from the generated module instead of keeping copies
that drift. A test fails when the file on disk is not what this module makes:
run ``python -m hubbub.protocol.javascript`` to write it again.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from hubbub.protocol.errors import (
    FINAL_CLOSE_CODES,
    RETRIED_CHAT_ERRORS,
    RETRIED_REJOIN_ERRORS,
    CloseCode,
    ErrorCode,
    ResumeFailure,
)
from hubbub.protocol.messages import (
    CONNECTED,
    INCOMING_TYPES,
    OFFLINE,
    ONLINE,
    RECONNECTING,
    SETTABLE_STATUSES,
    Outgoing,
)

HEADER = """\
// protocol.js: hubbub's protocol constants, generated from hubbub.protocol
// (python -m hubbub.protocol.javascript). Do not edit: a test fails when this file
// and the Python definitions differ. docs/protocol.md explains each of them.
"""


def _outgoing_types() -> list[str]:
    found: list[str] = []
    pending: list[type[Any]] = list(Outgoing.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        tag = cls.__struct_config__.tag
        if isinstance(tag, str):
            found.append(tag)
    return sorted(set(found))


def _constant_name(name: str) -> str:
    return name.upper()


def _frozen(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return f"Object.freeze({text})"


def render() -> str:
    """The text of ``protocol.js``."""
    sections: list[tuple[str, str, Any]] = [
        (
            "INCOMING_TYPES",
            "The `type` of every message a client may send.",
            sorted(INCOMING_TYPES),
        ),
        (
            "OUTGOING_TYPES",
            "The `type` of every message the server sends.",
            _outgoing_types(),
        ),
        (
            "ERROR_CODES",
            "The `code` of an `error` message, by name.",
            {_constant_name(code.name): code.value for code in ErrorCode},
        ),
        (
            "CLOSE_CODES",
            "The WebSocket close codes the server sends, by name.",
            {_constant_name(code.name): int(code) for code in CloseCode},
        ),
        (
            "FINAL_CLOSE_CODES",
            "Close codes after which a client does not reconnect by itself, with the "
            "name each is reported by.",
            {str(int(code)): name for code, name in sorted(FINAL_CLOSE_CODES.items())},
        ),
        (
            "RETRIED_CHAT_ERRORS",
            "Refusals of a `chat` after which the same message is sent again.",
            sorted(code.value for code in RETRIED_CHAT_ERRORS),
        ),
        (
            "RETRIED_REJOIN_ERRORS",
            "Refusals of a rejoin after a reconnection that keep the client trying.",
            sorted(code.value for code in RETRIED_REJOIN_ERRORS),
        ),
        (
            "PRESENCE_STATUSES",
            "The presence statuses a client may set.",
            sorted(SETTABLE_STATUSES),
        ),
        ("ONLINE", "The presence status a member has until it sets another.", ONLINE),
        ("OFFLINE", "The status of a member who left (the server's to say).", OFFLINE),
        (
            "RECONNECTING",
            "A member's `connection` while it is lost and may come back.",
            RECONNECTING,
        ),
        ("CONNECTED", "A member's `connection` once it is back.", CONNECTED),
        (
            "RESUME_FAILURES",
            "The `reason` of a `resume-failed` error.",
            sorted(reason.value for reason in ResumeFailure),
        ),
    ]
    parts = [HEADER]
    for name, doc, value in sections:
        rendered = json.dumps(value) if isinstance(value, str) else _frozen(value)
        parts.append(f"\n/** {doc} */\nexport const {name} = {rendered};\n")
    return "".join(parts)


def path() -> Path:
    """Where the generated module lives (served at ``/protocol.js``)."""
    return Path(str(resources.files("hubbub") / "web" / "static" / "protocol.js"))


def main() -> None:
    target = path()
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
