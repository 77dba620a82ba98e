"""A real PostgreSQL server for the tests, from Debian's binaries, in a temporary folder.

It listens on a Unix socket in its own folder only (no TCP port to collide on).
PostgreSQL refuses to run as root, so under root (as in CI) it runs as ``nobody``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

START_TIMEOUT = 120.0
"""Seconds PostgreSQL may take to accept connections: generous, for a busy machine."""


def binaries() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries, newest version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    for path in found:
        return Path(path).parent
    return None


class PostgresServer:
    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL server binaries are missing: run scripts/system-deps.sh "
                "(Debian package postgresql)"
            )
        self._bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="hubbub-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.socket_dir.mkdir()
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            os.chown(self.socket_dir, nobody.pw_uid, nobody.pw_gid)
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self.process: subprocess.Popen[bytes] | None = None
        self._databases = 0

    def _run(self, *args: str) -> None:
        subprocess.run(
            args,
            check=True,
            capture_output=True,
            cwd=self.root,
            timeout=120,
            **self._as,
        )

    def start(self) -> None:
        self._run(
            str(self._bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "hubbub",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self._launch()

    def _launch(self) -> None:
        self.log = open(self.root / "postgres.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **self._as,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not list(self.socket_dir.glob(".s.PGSQL.*")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "PostgreSQL did not start: " + (self.root / "postgres.log").read_text()
                )
            time.sleep(0.05)
        # The socket appears a little before connections are accepted, and
        # pg_isready answers "rejecting" (1) at once while the server starts up.
        while True:
            ready = subprocess.run(
                [str(self._bin / "pg_isready"), "-h", str(self.socket_dir), "-t", "5"],
                capture_output=True,
                cwd=self.root,
                timeout=60,
                **self._as,
            )
            if ready.returncode == 0:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "PostgreSQL did not start: " + (self.root / "postgres.log").read_text()
                )
            time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://hubbub@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A fresh empty database's URL."""
        self._databases += 1
        name = f"test_{self._databases}"
        self._run(
            str(self._bin / "psql"),
            "-h",
            str(self.socket_dir),
            "-U",
            "hubbub",
            "-d",
            "postgres",
            "-c",
            f"CREATE DATABASE {name}",
        )
        return self.url(name)

    def pause(self) -> None:
        """Stop the server (its clients are cut off), keeping its data to start again."""
        self._shut_down()
        self.log.close()

    def resume(self) -> None:
        """Start the server again on its data, where it listened before."""
        self._launch()

    def stop(self) -> None:
        self._shut_down()
        if hasattr(self, "log"):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _shut_down(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
