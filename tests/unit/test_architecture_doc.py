"""docs/architecture.md and README's Layout name the code as it is: every folder of
the package, every core module, and every class and method the chat's journey goes
through exist under those names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubbub.broker import Broker, Delivery, Membership, MembershipEvents
from hubbub.core.backend_events import BackendEvents
from hubbub.core.chat import ChatFeature
from hubbub.core.context import HubContext
from hubbub.core.hub import Hub
from hubbub.core.joining import Joining
from hubbub.core.ordering import ChatOrdering
from hubbub.core.outbox import Outbox
from hubbub.core.storage import Storage, StorageEvents
from hubbub.server.connection import Connection, TransportOutbox
from hubbub.store.writer import ChatWriter

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "hubbub"
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
LAYOUT = README[README.index("## Layout") :]

NAMED = {
    cls.__name__: cls
    for cls in (
        BackendEvents,
        Broker,
        ChatFeature,
        ChatOrdering,
        ChatWriter,
        Connection,
        Delivery,
        Hub,
        HubContext,
        Joining,
        Membership,
        MembershipEvents,
        Outbox,
        Storage,
        StorageEvents,
        TransportOutbox,
    )
}

FOLDERS = sorted(
    path.name
    for path in PACKAGE.iterdir()
    if (path.is_dir() and (path / "__init__.py").exists()) or path.name == "web"
)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_folder_is_described(folder: str) -> None:
    assert f"{folder}/" in LAYOUT, f"README's Layout does not describe {folder}/"
    assert f"src/hubbub/{folder}/" in ARCHITECTURE, f"architecture.md skips {folder}/"


def test_every_core_module_is_named_in_the_architecture() -> None:
    modules = sorted(p.name for p in (PACKAGE / "core").glob("*.py") if p.name != "__init__.py")
    missing = [name for name in modules if f"`{name}`" not in ARCHITECTURE]
    # The small shared parts go unnamed: limits, counters, events, outbox, storage, users.
    assert set(missing) <= {
        "counters.py",
        "events.py",
        "limits.py",
        "outbox.py",
        "storage.py",
        "users.py",
        "session.py",
    }, missing


def test_every_method_the_chat_travels_through_exists() -> None:
    named = re.findall(r"`([A-Z][A-Za-z]+)\.([a-z_]+)(?:\([^`]*\))?`", ARCHITECTURE)
    assert len(named) >= 10
    for owner, attribute in named:
        assert owner in NAMED, f"architecture.md names {owner}, which the test does not know"
        assert hasattr(NAMED[owner], attribute), f"{owner}.{attribute} does not exist"
