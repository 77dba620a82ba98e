"""What an idle client costs the server's CPU: on loopback, and across a network.

``--clients`` clients connect to ``hubbub serve``, join rooms of 10 and then stay
quiet, answering the server's pings (``bench.idle_clients``). Once every client has
been pinged once, the server's CPU is measured over ``--rounds`` ping intervals in
two ways: its process's user and system time, and the busy time of the one core it
is pinned to (user, system, interrupts and softirq: the kernel's receiving for the
server's sockets included). The clients run pinned to the other core.

Two conditions, in the same run, each in network namespaces this script makes and
always removes (addresses in 192.0.2.0/24 only):

- **loopback**: server and clients in one namespace, over 127.0.0.1. On loopback a
  ``send`` runs the receiver's side of TCP in the sender's context: the server's
  ping also pays for the client's receiving of it.
- **veth**: the clients in a namespace of their own, across a veth pair whose receive
  side is steered (RPS) to the receiving side's core: the server's core does the
  server's side of TCP, as when its clients are other machines.

Figures: µs of server CPU per ping answered (one client, one ping round), and what
that comes to for 100,000 clients at the ping interval, as a share of one core.

Needs root, ``ip``, ``taskset`` and two cores; nothing else should run meanwhile.

``python -m bench.idle_cost [--clients 10000] [--ping-interval 20] [--rounds 2]
[--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.network.lab import (
    PREFIX,
    TOOLS,
    Namespace,
    remove_namespace,
    remove_stale_labs,
    unavailable_reason,
)

from bench.procstat import core_busy, cpu_times

REPO = Path(__file__).resolve().parent.parent
PORT = 8000
SERVER_ADDRESS = "192.0.2.1"
CLIENTS_ADDRESS = "192.0.2.2"
SERVER_CORE = 0
CLIENTS_CORE = 1
PROJECTED_CLIENTS = 100_000


def _why_not() -> str | None:
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if (os.cpu_count() or 1) < 2:
        return "needs two cores: one for the server, one for the clients"
    if shutil.which("taskset") is None:
        return "needs taskset (util-linux)"
    return None


class Namespaces:
    """The server's namespace and the clients', joined by a veth pair with RPS."""

    def __init__(self) -> None:
        base = f"{PREFIX}{os.getpid()}-idle"
        self.server = Namespace(f"{base}-s")
        self.clients = Namespace(f"{base}-c")
        self.made: list[Namespace] = []

    def __enter__(self) -> Namespaces:
        try:
            for namespace in (self.server, self.clients):
                subprocess.run([TOOLS["ip"], "netns", "add", namespace.name], check=True)
                self.made.append(namespace)
                namespace.ip("link", "set", "lo", "up")
            veth = ["type", "veth", "peer", "name", "veth-c", "netns", self.clients.name]
            self.server.ip("link", "add", "veth-s", *veth)
            self.server.ip("addr", "add", f"{SERVER_ADDRESS}/24", "dev", "veth-s")
            self.clients.ip("addr", "add", f"{CLIENTS_ADDRESS}/24", "dev", "veth-c")
            for namespace, device, core in (
                (self.server, "veth-s", SERVER_CORE),
                (self.clients, "veth-c", CLIENTS_CORE),
            ):
                namespace.ip("link", "set", device, "up")
                # what arrives on this side is received on this side's core
                namespace.run(
                    "sh", "-c", f"echo {1 << core:x} > /sys/class/net/{device}/queues/rx-0/rps_cpus"
                )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for namespace in self.made:
            remove_namespace(namespace.name)
        self.made.clear()


def measure_one(
    server_ns: Namespace,
    clients_ns: Namespace,
    address: str,
    local_address: str | None,
    clients: int,
    ping_interval: float,
    rounds: int,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}",
        # every client comes from one address
        "HUBBUB_MAX_CONNECTIONS_PER_IP": "10000000",
        "HUBBUB_MAX_HTTP_CONNECTIONS_PER_IP": "10000000",
        "HUBBUB_MAX_CONNECTIONS": "10000000",
    }
    with tempfile.TemporaryDirectory(prefix="hubbub-idle-") as data_dir:
        serve = [sys.executable, "-m", "hubbub", "serve", "--host", address, "--port", str(PORT)]
        serve += ["--data-dir", data_dir, "--log-level", "warning", "--stun-port", "0"]
        # as the defaults are (20 and 20 s): a ping every ping_interval or so, since the
        # answer to one is looked at ping_timeout after it
        serve += ["--ping-interval", str(ping_interval), "--ping-timeout", str(ping_interval)]
        if address != "127.0.0.1":  # in a namespace of the benchmark's, reached by its clients only
            serve += ["--allow-open-on-network"]
        server = server_ns.popen(
            "taskset", "-c", str(SERVER_CORE), *serve, env=env, cwd=REPO, stdout=subprocess.DEVNULL
        )
        idle = [sys.executable, "-m", "bench.idle_clients", "--url", f"ws://{address}:{PORT}/"]
        idle += ["--clients", str(clients)]
        if local_address:
            idle += ["--local-address", local_address]
        fleet = clients_ns.popen(
            "taskset", "-c", str(CLIENTS_CORE), *idle, env=env, cwd=REPO,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

        def ask(command: str) -> dict[str, Any]:
            assert fleet.stdin is not None
            assert fleet.stdout is not None
            fleet.stdin.write(command + "\n")
            fleet.stdin.flush()
            line = fleet.stdout.readline()
            if not line:
                exited = server.poll()
                server_said = "" if exited is None else f"; hubbub serve exited with {exited}"
                raise RuntimeError(f"the clients stopped (asked {command!r}){server_said}")
            answer: dict[str, Any] = json.loads(line)
            return answer

        try:
            joined = ask("start")  # once the server listens
            # every client pinged once before the window: pings are due ping_interval
            # after the last frame heard, and the joins took a while
            time.sleep(ping_interval + joined["seconds"] + 2.0)
            before = ask("count")
            process_before, core_before = cpu_times(server.pid).total, core_busy(SERVER_CORE)
            started = time.monotonic()
            time.sleep(rounds * ping_interval)
            process_after, core_after = cpu_times(server.pid).total, core_busy(SERVER_CORE)
            seconds = time.monotonic() - started
            after = ask("count")
            assert fleet.stdin is not None
            fleet.stdin.write("quit\n")  # no answer: the clients close and exit
            fleet.stdin.close()
            fleet.wait(30)
        finally:
            for process in (fleet, server):
                if process.poll() is None:
                    process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
            for pipe in (fleet.stdin, fleet.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()
    pings = after["pings"] - before["pings"]
    process_cpu = process_after - process_before
    core_cpu = core_after - core_before
    per_second = PROJECTED_CLIENTS / ping_interval
    return {
        "clients": joined["joined"],
        "join_seconds": round(joined["seconds"], 2),
        "still_open": after["open"],
        "window_s": round(seconds, 2),
        "pings": pings,
        "process_cpu_pct": round(100 * process_cpu / seconds, 3),
        "core_busy_pct": round(100 * core_cpu / seconds, 3),
        "process_us_per_ping": round(1e6 * process_cpu / max(pings, 1), 2),
        "core_us_per_ping": round(1e6 * core_cpu / max(pings, 1), 2),
        "process_pct_at_100k": round(100 * per_second * process_cpu / max(pings, 1), 2),
        "core_pct_at_100k": round(100 * per_second * core_cpu / max(pings, 1), 2),
    }


def measure(
    clients: int, ping_interval: float, rounds: int, quiet_seconds: float = 5.0
) -> dict[str, Any]:
    reason = _why_not()
    if reason is not None:
        raise SystemExit(f"bench.idle_cost: {reason}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    try:
        return _measure(clients, ping_interval, rounds, quiet_seconds)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _measure(
    clients: int, ping_interval: float, rounds: int, quiet_seconds: float
) -> dict[str, Any]:
    remove_stale_labs()
    quiet_core_before = core_busy(SERVER_CORE)
    time.sleep(quiet_seconds)  # what the server's core does without the benchmark
    quiet_core = (core_busy(SERVER_CORE) - quiet_core_before) / quiet_seconds
    results = {}
    with Namespaces() as namespaces:
        results["loopback"] = measure_one(
            namespaces.server,
            namespaces.server,
            "127.0.0.1",
            None,
            clients,
            ping_interval,
            rounds,
        )
        results["veth"] = measure_one(
            namespaces.server,
            namespaces.clients,
            SERVER_ADDRESS,
            CLIENTS_ADDRESS,
            clients,
            ping_interval,
            rounds,
        )
    return {
        "command": "python -m bench.idle_cost " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "clients": clients,
        "ping_interval": ping_interval,
        "rounds": rounds,
        "server_core_busy_before_pct": round(100 * quiet_core, 3),
        "load_average": os.getloadavg()[0],
        "results": results,
    }


def table(report: dict[str, Any]) -> str:
    rows = [
        "| Clients across | server process, µs a ping | server's core, µs a ping "
        "| process at 100,000 | core at 100,000 |",
        "|---|---|---|---|---|",
    ]
    for name, row in report["results"].items():
        rows.append(
            f"| {name} | {row['process_us_per_ping']} | {row['core_us_per_ping']} "
            f"| {row['process_pct_at_100k']} % | {row['core_pct_at_100k']} % |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--ping-interval", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    report = measure(args.clients, args.ping_interval, args.rounds)
    print(json.dumps(report, indent=2))
    print(table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
