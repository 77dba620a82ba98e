"""Versioned schema migrations, one folder per backend.

A migration is a file ``NNNN_what.sql`` (``NNNN`` is its version). At start-up a
store applies, in order and each in its own transaction, every migration newer than
the database's version, and refuses a database whose version is newer than the
newest file here: that database was written by a newer hubbub.
"""

from __future__ import annotations

import re
from importlib import resources

from hubbub.store import SchemaTooNew

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations(backend: str) -> list[tuple[int, str]]:
    """``(version, sql)`` of every migration of ``backend``, oldest first."""
    found = []
    for entry in resources.files(__name__).joinpath(backend).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text()))
    found.sort()
    versions = [version for version, _ in found]
    if versions != list(range(1, len(versions) + 1)):  # pragma: no cover - packaging error
        raise RuntimeError(f"{backend} migrations are not numbered 1..n: {versions}")
    return found


def check_not_newer(version: int, known: int, where: str) -> None:
    if version > known:
        raise SchemaTooNew(
            f"the database {where} has schema version {version}, but this hubbub knows "
            f"versions up to {known}: it was written by a newer hubbub. Upgrade hubbub, "
            "or point it at another database."
        )
