"""A wheel built from the tree installs into a fresh virtual environment and serves."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from hubbub import __version__
from hubbub.broker.redis import scripts
from tests.wsclient import Client

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv with hubbub installed from its wheel."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work), str(ROOT)],
        check=True,
        timeout=300,
    )
    [wheel] = work.glob("hubbub-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=600,
    )
    return venv / "bin"


def test_the_installed_command_prints_its_version(installed: Path) -> None:
    result = subprocess.run(
        [str(installed / "hubbub"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == f"hubbub {__version__}"


def test_the_installed_package_has_the_clusters_lua_scripts(
    installed: Path, tmp_path: Path
) -> None:
    # From an empty folder: the scripts must come from the wheel, not the source tree.
    result = subprocess.run(
        [
            str(installed / "python"),
            "-c",
            "from hubbub.broker.redis import scripts; "
            "print(*(s.name for s in scripts.ALL), *scripts.PARTS)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    # every script of the source tree, each loaded from the wheel (and every part of
    # one, read with the scripts that use it)
    in_source = {path.stem for path in Path(scripts.__file__).parent.glob("*.lua")}
    assert len(in_source) >= 11
    assert sorted(result.stdout.split()) == sorted(in_source)


async def test_the_installed_server_serves_its_pages_and_websocket(
    installed: Path, tmp_path: Path
) -> None:
    # Run from an empty folder, so nothing is imported from the source tree.
    process = await asyncio.create_subprocess_exec(
        str(installed / "hubbub"),
        "serve",
        "--port",
        "0",
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"event=listening " not in (line := await process.stderr.readline()):
                assert line, "the server exited before listening"
        url = line.decode().split("url=")[1].split()[0].strip('"')
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/") as response:
                assert response.status == 200
                assert "<html" in (await response.text()).lower()
            # hubbub.js and the web app are modules in folders: the wheel has them.
            for path in ("/hubbub.js", "/protocol.js", "/hubbub/room.js", "/static/app/call.js"):
                async with http.get(url + path) as response:
                    assert response.status == 200, path
                    assert "export" in await response.text(), path
            async with http.get(url + "/healthz") as response:
                assert (await response.json())["version"] == __version__
        async with await Client.connect(url) as client:
            joined = await client.join("wheel", "alice")
            assert joined["userId"] == "alice"
    finally:
        process.terminate()
        await process.wait()
