"""The network lab's fixtures: a lab per test, removed after it whatever happens,
and checks that the run leaves no namespace of its own behind, nor a Python peer's
working folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.network.lab import PREFIX, Lab, lab_namespaces, remove_stale_labs, unavailable_reason


@pytest.fixture(scope="session", autouse=True)
def _no_lab_left_behind() -> Iterator[None]:
    if unavailable_reason() is None:
        remove_stale_labs()
    yield
    ours = [name for name in lab_namespaces() if name.startswith(f"{PREFIX}{os.getpid()}-")]
    assert not ours, f"network namespaces left behind: {ours}"


@pytest.fixture(autouse=True)
def _no_peer_folder_left_behind() -> Iterator[None]:
    """Each Python peer's working folder (tests/network/services.py python_peer) is
    gone once the test is: the peer is killed, so its starter removes it."""
    folders = Path(tempfile.gettempdir())
    before = set(folders.glob("hubbub-lab-peer-*"))
    yield
    left = set(folders.glob("hubbub-lab-peer-*")) - before
    assert not left, f"Python peers' folders left behind: {sorted(map(str, left))}"


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab() as made:
        yield made
