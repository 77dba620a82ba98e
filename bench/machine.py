"""The machine and the software versions a report was measured with."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PYTHON_PACKAGES = (
    "hubbub",
    "aiohttp",
    "uvloop",
    "msgspec",
    "python-socketio",
    "python-engineio",
    "picows",
    "aiortc",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _command_output(*command: str) -> str | None:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "load_average_at_start": load_average(),
    }


def versions(node_ws_version: str | None) -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in PYTHON_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    node = _command_output("node", "--version")
    found["node"] = node.lstrip("v") if node else None
    found["ws (node)"] = node_ws_version
    repo = Path(__file__).resolve().parent.parent
    found["hubbub commit"] = _command_output("git", "-C", str(repo), "rev-parse", "--short", "HEAD")
    return found
