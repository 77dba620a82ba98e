"""The network lab's fixtures: a lab per test, removed after it whatever happens,
and a check that the run leaves no namespace of its own behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.network.lab import PREFIX, Lab, lab_namespaces, remove_stale_labs, unavailable_reason


@pytest.fixture(scope="session", autouse=True)
def _no_lab_left_behind() -> Iterator[None]:
    if unavailable_reason() is None:
        remove_stale_labs()
    yield
    ours = [name for name in lab_namespaces() if name.startswith(f"{PREFIX}{os.getpid()}-")]
    assert not ours, f"network namespaces left behind: {ours}"


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab() as made:
        yield made
