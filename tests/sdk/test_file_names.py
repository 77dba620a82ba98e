"""Names offered by a peer never leave the receiver's directory."""

from __future__ import annotations

import pytest

from hubbub.peer.files import safe_name


@pytest.mark.parametrize(
    ("offered", "kept"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/abs/path.txt", "path.txt"),
        (".bashrc", "bashrc"),
        ("a\x00b\nc.txt", "a_b_c.txt"),
        ("", "file.bin"),
        ("..", "file.bin"),
        ("x.hubbub-part", "x.hubbub-part.bin"),
    ],
)
def test_safe_name(offered: str, kept: str) -> None:
    assert safe_name(offered) == kept


def test_long_names_are_cut_on_a_character_boundary() -> None:
    name = safe_name("é" * 300)
    assert len(name.encode()) <= 200
    assert name == "é" * 100
