"""The browser's ES modules as files: what each imports and exports, the graph from an
entry point, and the literals in its code. Regular expressions over the source, which
is enough for the modules of web/static (they are written plainly: no dynamic import,
no import maps)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

STATIC = Path(str(resources.files("hubbub") / "web" / "static"))
"""Where the server serves the web app, hubbub.js and their modules from."""

_FROM = re.compile(r"""^\s*(import|export)\s+([^;'"]*?)\s*from\s*["']([^"']+)["']""", re.M)
_BARE_IMPORT = re.compile(r"""^\s*import\s*["']([^"']+)["']""", re.M)
_DECLARED = re.compile(
    r"^export\s+(?:async\s+)?(?:function\*?|class|const|let|var)\s+([\w$]+)", re.M
)
_LOCAL_EXPORT = re.compile(r"^export\s*\{([^}]*)\}\s*;", re.M)
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_LINE_COMMENT = re.compile(r"(^|\s)//.*$", re.M)
_STRING = re.compile(r"""(["'`])((?:\\.|(?!\1)[^\\\n])*)\1""")
_NUMBER = re.compile(r"(?<![\w$.])(\d+)(?![\w.])")


def _names(clause: str) -> list[tuple[str, str]]:
    """``{ a, b as c }`` -> [(a, a), (b, c)]: (name in the module, name here)."""
    pairs = []
    for part in clause.strip().strip("{}").split(","):
        words = part.split()
        if words:
            pairs.append((words[0], words[-1]))
    return pairs


def imports(path: Path) -> list[tuple[Path, list[str]]]:
    """Every module ``path`` imports or re-exports from, with the names it takes."""
    text = code(path.read_text(encoding="utf-8"))
    found: list[tuple[Path, list[str]]] = []
    for _kind, clause, specifier in _FROM.findall(text):
        target = (path.parent / specifier).resolve()
        if clause.startswith("*"):
            found.append((target, []))
        else:
            found.append((target, [inner for inner, _outer in _names(clause)]))
    for specifier in _BARE_IMPORT.findall(text):
        found.append(((path.parent / specifier).resolve(), []))
    return found


def exports(path: Path) -> set[str]:
    """The names ``path`` exports."""
    text = code(path.read_text(encoding="utf-8"))
    names = set(_DECLARED.findall(text))
    for clause in _LOCAL_EXPORT.findall(text):
        names.update(outer for _inner, outer in _names(clause))
    for kind, clause, _specifier in _FROM.findall(text):
        if kind == "export" and clause.startswith("{"):
            names.update(outer for _inner, outer in _names(clause))
    return names


def graph(entry: Path) -> list[Path]:
    """``entry`` and every module it imports, directly or not, in the order found."""
    seen: list[Path] = []
    pending = [entry.resolve()]
    while pending:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.append(path)
        pending.extend(target for target, _names in imports(path) if target.exists())
    return seen


def code(text: str) -> str:
    """JavaScript source without its comments."""
    return _LINE_COMMENT.sub(r"\1", _BLOCK_COMMENT.sub("", text))


def literals(text: str) -> tuple[list[str], list[int]]:
    """The string and integer literals of a module's code (comments left out)."""
    source = code(text)
    strings = [match.group(2) for match in _STRING.finditer(source)]
    numbers = [int(number) for number in _NUMBER.findall(_STRING.sub('""', source))]
    return strings, numbers


def protocol_constants() -> dict[str, Any]:
    """What the generated ``protocol.js`` exports, by name, as JSON values."""
    text = (STATIC / "protocol.js").read_text(encoding="utf-8")
    found: dict[str, Any] = {}
    for name, value in re.findall(r"^export const (\w+) = (.*?);$", code(text), re.M | re.S):
        body = value.strip()
        if body.startswith("Object.freeze(") and body.endswith(")"):
            body = body[len("Object.freeze(") : -1]
        found[name] = json.loads(body)
    return found
