"""hubbub.js and the web app as native ES modules: every module they import is there
and exports what is taken from it, and none of them keeps its own copy of the
protocol's codes (those come from the generated protocol.js)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.js_modules import STATIC, exports, graph, imports, literals, protocol_constants

LIBRARY = STATIC / "hubbub.js"
APP = STATIC / "app.js"

# What every page could import from hubbub.js before it was split: it must stay.
LIBRARY_API = {
    "AppChannel",
    "DEFAULTS",
    "Emitter",
    "FINAL_CLOSE_CODES",
    "FileTransfer",
    "HubbubError",
    "Participant",
    "Room",
    "Sha256",
    "VERSION",
    "join",
    "reconnectDelay",
}


def _name(path: Path) -> str:
    return path.relative_to(STATIC).as_posix()


def _library_modules() -> list[Path]:
    return [path for path in graph(LIBRARY) if path.name != "protocol.js"]


def _app_modules() -> list[Path]:
    return [path for path in graph(APP) if path not in graph(LIBRARY)]


@pytest.mark.parametrize("entry", [LIBRARY, APP], ids=_name)
def test_every_module_imported_exists_and_exports_what_is_taken(entry: Path) -> None:
    modules = graph(entry)
    assert len(modules) > 5, [_name(path) for path in modules]
    for module in modules:
        for target, names in imports(module):
            assert target.is_file(), f"{_name(module)} imports {target}, which is not there"
            assert target.is_relative_to(STATIC), f"{_name(module)} imports {target}"
            missing = set(names) - exports(target)
            assert not missing, f"{_name(module)} imports {missing} from {_name(target)}"


def test_the_library_exports_what_it_always_did() -> None:
    assert exports(LIBRARY) >= LIBRARY_API


def test_every_module_is_in_the_graph_of_an_entry_point() -> None:
    """A module nothing imports is dead, or its import was lost."""
    served = {path.resolve() for path in [*STATIC.glob("hubbub/*.js"), *STATIC.glob("app/*.js")]}
    reached = set(graph(LIBRARY)) | set(graph(APP))
    assert served - reached == set()
    assert {_name(path) for path in served} >= {
        "hubbub/connection.js",
        "hubbub/chat.js",
        "hubbub/presence.js",
        "hubbub/media.js",
        "hubbub/participant.js",
        "hubbub/peer-link.js",
        "hubbub/channels.js",
        "hubbub/files.js",
        "hubbub/sha256.js",
        "hubbub/emitter.js",
    }


def _protocol_literals() -> tuple[set[str], set[str], set[int]]:
    """What would be a copy of the protocol: (codes the app must not spell out either,
    names only the library reports, close codes)."""
    constants = protocol_constants()
    codes = {*constants["ERROR_CODES"].values(), *constants["RESUME_FAILURES"]}
    # `online` is also the browser's event for a network that is back, and `connected`
    # a peer connection's state: they are not looked for.
    names = {
        *constants["FINAL_CLOSE_CODES"].values(),
        *constants["PRESENCE_STATUSES"],
        constants["OFFLINE"],
    } - {"online"}
    # 1000 (normal closure) is also a second in milliseconds, throughout.
    close_codes = set(constants["CLOSE_CODES"].values()) - {1000}
    return codes, names, close_codes


def _copies(path: Path, strings_looked_for: set[str], close_codes: set[int]) -> list[str]:
    strings, numbers = literals(path.read_text(encoding="utf-8"))
    found = [f'"{text}"' for text in strings if text in strings_looked_for]
    found += [f'"{text}"' for text in strings if text.isdigit() and int(text) in close_codes]
    found += [str(number) for number in numbers if number in close_codes]
    return found


@pytest.mark.parametrize("module", _library_modules(), ids=_name)
def test_the_library_spells_out_no_code_of_the_protocol(module: Path) -> None:
    codes, names, close_codes = _protocol_literals()
    assert _copies(module, codes | names, close_codes) == []


@pytest.mark.parametrize("module", _app_modules(), ids=_name)
def test_the_app_spells_out_no_code_of_the_protocol(module: Path) -> None:
    # The app shows the names the library reports a close by (`replaced`...) and
    # presence in its own words: only the protocol's codes are looked for, and not
    # those that are plain words too (`busy` is a CSS class of a button here).
    codes, _names, close_codes = _protocol_literals()
    assert _copies(module, {code for code in codes if "-" in code}, close_codes) == []


def test_a_copy_of_a_code_is_found(tmp_path: Path) -> None:
    codes, names, close_codes = _protocol_literals()
    module = tmp_path / "copy.js"
    module.write_text(
        "// 4009 in a comment is no copy, nor is /* store-unavailable */\n"
        'const FINAL = { 4009: "replaced" };\n'
        "if (error.code === 'store-unavailable') retry(`4010`);\n"
        'const url = "http://example.org/1009"; // rate-limited\n',
        encoding="utf-8",
    )
    assert sorted(_copies(module, codes | names, close_codes)) == sorted(
        ['"replaced"', '"store-unavailable"', '"4010"', "4009"]
    )
