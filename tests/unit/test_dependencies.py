"""hubbub uses its dependencies' public APIs only: no module of the package imports a
private module of aiohttp (or of anything else), whose layout may change in any
release. The WebSocket endpoint once depended on aiohttp's private reader; it now
reads and writes frames itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "src" / "hubbub"


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "hubbub" and any(
                part.startswith("_") and part != "__future__" for part in parts[1:]
            ):
                found.append(name)
    return found


def test_no_private_module_of_a_dependency_is_imported() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): names
        for path in sorted(PACKAGE.rglob("*.py"))
        if (names := _private_imports(path))
    }
    assert offenders == {}


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from aiohttp._websocket.reader import WebSocketDataQueue\n"
        "import aiohttp.web\nfrom aiohttp import web\nfrom __future__ import annotations\n"
    )
    assert _private_imports(module) == [
        "aiohttp._websocket.reader",
        "aiohttp._websocket.reader.WebSocketDataQueue",
    ]
