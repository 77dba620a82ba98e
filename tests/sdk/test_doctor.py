"""``hubbub doctor`` against real servers on loopback: what it reports, and its exit
status when calls would fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.process import hubbub_serve
from tests.sdk.test_commands import finish, hubbub
from tests.security.test_tls import make_certificate
from tests.tokens import SECRET, token
from tests.turn import _free_port, coturn

TURN_SECRET = "doctor-turn-secret"


async def _doctor(*args: str) -> tuple[int, dict[str, Any]]:
    async with hubbub("doctor", *args, "--json") as process:
        stdout, _ = await finish(process, 90)
    assert process.returncode is not None
    return process.returncode, json.loads(stdout)


def _status(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


async def test_a_healthy_server_with_stun_and_turn() -> None:
    async with coturn(TURN_SECRET) as turn_port:
        stun_port = _free_port()
        async with hubbub_serve(
            "--stun-port", str(stun_port),
            "--turn-uri", f"turn:127.0.0.1:{turn_port}?transport=udp",
            "--turn-uri", f"turn:127.0.0.1:{turn_port}?transport=tcp",
            "--turn-secret", TURN_SECRET,
        ) as (url, _):  # fmt: skip
            code, report = await _doctor(url)
    status = _status(report)
    assert code == 0, report
    assert report["callsWouldFail"] is False
    for name in ("dns", "tcp", "websocket", "join", "rtt", "ice-servers", "stun", "turn-udp",
                 "turn-tcp", "relay"):  # fmt: skip
        assert status[name] == "ok", report
    assert status["tls"] == "warn"  # plain http
    (stun,) = [check for check in report["checks"] if check["name"] == "stun"]
    assert stun["data"]["address"][0] == "127.0.0.1"
    (relay,) = [check for check in report["checks"] if check["name"] == "relay"]
    assert relay["data"]["bytesPerSecond"] > 0


async def test_no_turn_and_no_stun_answer_means_calls_would_fail() -> None:
    # a STUN URI where nothing answers, no TURN
    async with hubbub_serve("--stun-uri", f"stun:127.0.0.1:{_free_port()}") as (url, _):
        code, report = await _doctor(url)
    status = _status(report)
    assert code == 1
    assert report["callsWouldFail"] is True
    assert status["stun"] == "fail"
    assert status["ice-servers"] == "warn"  # no TURN


async def test_tls_is_checked_and_a_token_is_needed_to_join(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    async with hubbub_serve(
        "--auth", "token", "--token-secret", SECRET,
        "--tls-cert", str(cert), "--tls-key", str(key), "--stun-port", str(_free_port()),
    ) as (url, _):  # fmt: skip
        # a certificate nobody vouches for: nothing else is tried
        code, report = await _doctor(url)
        assert code == 1
        assert _status(report)["tls"] == "fail"
        assert "websocket" not in _status(report)
        # trusted, but no token: the join is refused
        code, report = await _doctor(url, "--ca", str(cert))
        assert code == 1
        (tls,) = [check for check in report["checks"] if check["name"] == "tls"]
        assert tls["status"] == "warn"  # the test's certificate lives a day: renew it
        assert tls["data"]["days"] < 14
        assert tls["fix"] == "renew the certificate"
        assert _status(report)["join"] == "fail"
        # with a token for the room
        code, report = await _doctor(
            url, "--ca", str(cert), "--token", token("doc", "check"), "--room", "check"
        )
        assert code == 0, report
        assert _status(report)["join"] == "ok"
        assert _status(report)["stun"] == "ok"


async def test_the_text_report_says_what_to_fix() -> None:
    async with hubbub_serve("--stun-port", "0") as (url, _), hubbub("doctor", url) as process:
        stdout, _ = await finish(process, 60)
    assert process.returncode == 1  # no ICE server at all: calls stay on one network
    assert "warn  ice-servers none: calls connect only within one network" in stdout
    assert "fix: set --stun-port" in stdout
    assert stdout.rstrip().endswith("verdict: calls would fail from here")
