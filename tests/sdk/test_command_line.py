"""The ``hubbub`` commands met as a newcomer meets them: ordinary mistakes get one line
that says what to do (never a traceback), and each option means one thing."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from hubbub.client import Client, UserJoined
from hubbub.commands.progress import ProgressBar
from tests.process import hubbub_serve
from tests.sdk.test_commands import hubbub, read_until
from tests.tokens import SECRET

WAIT = 60.0


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubbub", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"hubbub {command}: error: "), result.stderr
    return lines[-1]


def test_serve_on_a_port_that_is_taken_says_so_and_how_to_choose_another(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), "--data-dir", str(tmp_path))
    line = one_line_error(result, "serve")
    assert f"port {port} on 127.0.0.1 is taken" in line
    assert f"--port {port + 1}" in line
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr


def test_serve_on_a_host_that_is_no_address_says_so(tmp_path: Path) -> None:
    result = run(
        "serve", "--host", "999.1.1.1", "--allow-open-on-network", "--data-dir", str(tmp_path)
    )
    assert "not a known host name or address (--host)" in one_line_error(result, "serve")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--token-secret", "too-short"], "at least 32 bytes"),
        (["--token-secret", SECRET, "--ttl", "30d"], "longer than hubbub mints tokens for (7d)"),
        (["--token-secret", SECRET, "--ttl", "604801"], "longer than hubbub mints tokens for"),
        (["--token-secret", SECRET, "--ttl", "0"], "not a duration like 90 (seconds)"),
        (["--token-secret", SECRET, "--link", "meet.example.com"], "not an http:// or https://"),
    ],
)
def test_token_refuses_what_the_server_would_refuse(args: list[str], said: str) -> None:
    result = run("token", "--user", "ann", "--room", "team", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert said in result.stderr, result.stderr
    assert result.stdout == ""


def claims_of(token: str) -> dict[str, object]:
    return jwt.decode(token, SECRET, algorithms=["HS256"])


def test_token_grants_add_to_the_defaults_and_a_bare_number_is_seconds() -> None:
    base = ("token", "--user", "ann", "--room", "team", "--token-secret", SECRET)
    result = run(*base, "--grant", "admin", "--ttl", "90")
    assert result.returncode == 0, result.stderr
    claims = claims_of(result.stdout.strip())
    assert claims["grants"] == ["admin", "chat", "join", "publish", "screen", "signal"]
    assert claims["exp"] - claims["iat"] == 90  # type: ignore[operator]
    result = run(*base, "--no-default-grants", "--grant", "join", "--grant", "chat")
    assert claims_of(result.stdout.strip())["grants"] == ["chat", "join"]
    help_text = " ".join(run("token", "--help").stdout.split())
    assert "added to the default ones" in help_text
    assert "a bare number is seconds" in help_text


def test_token_link_carries_the_token_in_the_fragment() -> None:
    result = run(
        "token", "--user", "ann", "--room", "team", "--name", "Ann",
        "--token-secret", SECRET, "--link", "https://meet.example.com/calls?lang=en",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    link = urlsplit(result.stdout.strip())
    assert (link.scheme, link.netloc, link.path) == ("https", "meet.example.com", "/calls")
    assert parse_qs(link.query) == {"lang": ["en"], "room": ["team"]}
    fragment = parse_qs(link.fragment)
    assert claims_of(fragment["token"][0])["name"] == "Ann"
    # a token for rooms by prefix names no room: the person picks one
    result = run(
        "token", "--user", "ann", "--room", "team-*", "--token-secret", SECRET,
        "--link", "http://127.0.0.1:8080",
    )  # fmt: skip
    link = urlsplit(result.stdout.strip())
    assert (link.path, link.query) == ("/", "")
    assert link.fragment.startswith("token=")


def test_config_masks_secrets_and_only_the_password_of_a_url() -> None:
    result = run(
        "config",
        "--broker", "redis://:hunter22@127.0.0.1:6379/0",
        "--database-url", "postgresql://hubbub:hunter33@db.example/hubbub",
        "--api-key", "an-api-key",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    assert shown["broker"] == "redis://:********@127.0.0.1:6379/0"
    assert shown["database_url"] == "postgresql://hubbub:********@db.example/hubbub"
    assert shown["api_key"] == "********"
    for password in ("hunter22", "hunter33", "an-api-key"):
        assert password not in result.stdout
    shown = dict(line.split(" = ", 1) for line in run("config").stdout.splitlines())
    assert shown["broker"] == "memory"


def test_a_peer_command_without_the_peer_extra_names_the_command_that_installs_it(
    tmp_path: Path,
) -> None:
    # aiortc made impossible to import, as in an install without the extra
    shadow = tmp_path / "shadow" / "aiortc"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    path = os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])
    result = run(
        "send", __file__, "--to", "bob", "--room", "r", "--url", "http://127.0.0.1:9",
        env={"PYTHONPATH": path},
    )  # fmt: skip
    line = one_line_error(result, "send")
    root = Path(__file__).resolve().parents[2]
    assert f"-m pip install -e '{root}[peer]'" in line, line
    assert sys.executable in line


async def test_record_means_by_user_who_to_join_as_like_every_command(tmp_path: Path) -> None:
    assert "--member" in (await asyncio.to_thread(run, "record", "--help")).stdout
    result = await asyncio.to_thread(
        run, "record", "--room", "r", "--member", "cam", "--out", str(tmp_path / "a.avi"),
        "--url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert ".mp4, .mkv, .webm" in one_line_error(result, "record")
    async with (
        hubbub_serve() as (url, _server),
        Client(url, "rec", user="host") as host,
        hubbub(
            "record", "--url", url, "--room", "rec", "--user", "taper",
            "--member", "cam", "--out", str(tmp_path / "cam.mkv"), "--wait", "3",
        ) as bot,
    ):  # fmt: skip
        async with asyncio.timeout(WAIT):
            while True:
                event = await host.next_event()
                if isinstance(event, UserJoined):
                    break
        assert event.user_id == "taper"
        _, err = await bot.communicate()
        assert "cam sent no audio or video within 3 s" in err.decode()


async def test_chat_help_and_unknown_commands_stay_out_of_the_room() -> None:
    async with (
        hubbub_serve() as (url, _server),
        Client(url, "c", user="bob") as bob,
        hubbub("chat", "--url", url, "--room", "c", "--user", "ann", stdin=True) as ann,
    ):
        await read_until(ann.stdout, "* in c as ann")
        assert ann.stdin is not None
        ann.stdin.write(b"/help\n/shrug\n//slash is fine\n")
        await ann.stdin.drain()
        shown = await read_until(ann.stdout, "unknown command")
        assert "* /who" in shown
        assert "! unknown command /shrug (not sent); /help lists them" in shown
        said = []
        async with asyncio.timeout(WAIT):
            async for event in bob:
                text = getattr(event, "message", None)
                if isinstance(text, str):
                    said.append(text)
                    if text == "/slash is fine":
                        break
        assert said == ["/slash is fine"]


async def test_send_says_what_it_waits_for(tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(os.urandom(256 * 1024))
    out = tmp_path / "out"
    async with hubbub_serve() as (url, _server):
        room = ["--url", url, "--room", "files"]
        async with hubbub("send", str(source), *room, "--user", "tx", "--to", "rx") as tx:
            await read_until(tx.stderr, "waiting for rx to join files")
            async with hubbub(
                "receive", *room, "--user", "rx", "--out", str(out), "--count", "1"
            ) as rx:
                await read_until(tx.stderr, "offered notes.txt to rx; waiting for them to accept")
                assert await asyncio.wait_for(tx.wait(), WAIT) == 0
                assert await asyncio.wait_for(rx.wait(), WAIT) == 0
    assert (out / "notes.txt").read_bytes() == source.read_bytes()


def test_a_progress_rate_counts_from_when_the_bytes_flow(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])

    class Lines:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def isatty(self) -> bool:
            return False

        def write(self, text: str) -> None:
            self.lines.append(text)

        def flush(self) -> None:
            pass

    stream = Lines()
    bar = ProgressBar("f", 10_000_000, stream=stream)  # type: ignore[arg-type]
    clock[0] += 60  # a minute waiting for the receiver to accept
    bar.update(0)
    clock[0] += 1
    bar.update(5_000_000)
    assert stream.lines[-1].endswith(" 5.0 MB/s\n"), stream.lines
