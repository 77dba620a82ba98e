"""Prometheus metrics at ``/metrics``, in the text exposition format (version 0.0.4).

Nothing here runs per message. The hub and the outbox keep plain integer
counters (:class:`~hubbub.core.counters.HubCounters`, ``TransportOutbox.sent``);
gauges (connections, rooms, participants, queue lengths) are computed from the
server's state when Prometheus scrapes. ``docs/operations.md`` lists every metric.
"""

from __future__ import annotations

import bisect
import gc
import os
import resource
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from hubbub import __version__

if TYPE_CHECKING:
    from hubbub.server.app import HubServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STORE_WRITE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Upper bounds (seconds) of the store write latency histogram's buckets."""


class Histogram:
    """Observations counted into fixed buckets, as Prometheus histograms are."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        """Per bucket, not cumulative; the last one is +Inf."""
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)`` for every bucket, +Inf last."""
        rows = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            rows.append((_number(bound), total))
        return rows


class ServerMetrics:
    """What the server adapter counts itself (the hub and outbox count the rest)."""

    __slots__ = (
        "connections_dropped",
        "connections_opened",
        "event_loop_lag",
        "handshakes_refused",
        "started_at",
        "store_writes",
    )

    def __init__(self) -> None:
        self.started_at = time.time()
        self.connections_opened = 0
        self.connections_dropped = 0
        """Connections closed as soon as accepted: their address held
        ``max_http_connections_per_ip`` connections that were not WebSockets."""
        self.handshakes_refused: dict[int, int] = {}
        """WebSocket handshakes answered with an HTTP error, by status."""
        self.store_writes = Histogram(STORE_WRITE_BUCKETS)
        """Seconds each store write (one transaction, a batch of chat) took."""
        self.event_loop_lag = 0.0
        """Seconds the last timer of the liveness sweep fired late."""

    def refused(self, status: int) -> None:
        self.handshakes_refused[status] = self.handshakes_refused.get(status, 0) + 1


class Exposition:
    """Writes metric families in the text format."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help: str) -> None:
        self._lines.append(f"# HELP {name} {_escape_help(help)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        if labels:
            inner = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
            self._lines.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            self._lines.append(f"{name} {_number(value)}")

    def single(self, name: str, kind: str, help: str, value: float) -> None:
        self.family(name, kind, help)
        self.sample(name, value)

    def labelled(
        self, name: str, kind: str, help: str, label: str, values: Mapping[str, float]
    ) -> None:
        self.family(name, kind, help)
        for key in sorted(values):
            self.sample(name, values[key], {label: key})

    def histogram(self, name: str, help: str, histogram: Histogram) -> None:
        self.family(name, "histogram", help)
        for bound, count in histogram.cumulative():
            self.sample(name + "_bucket", count, {"le": bound})
        self.sample(name + "_sum", histogram.sum)
        self.sample(name + "_count", histogram.count)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def render(server: HubServer) -> str:
    """Every metric of ``server``, as Prometheus reads them."""
    hub = server.hub
    outbox = server.outbox
    metrics = server.metrics
    counters = hub.counters
    out = Exposition()

    out.family("hubbub_info", "gauge", "Always 1; the version is in the label.")
    out.sample("hubbub_info", 1, {"version": __version__})
    out.single(
        "hubbub_connections", "gauge", "Open WebSocket connections.", len(server.connections)
    )
    out.single(
        "hubbub_connections_opened_total",
        "counter",
        "WebSocket connections accepted.",
        metrics.connections_opened,
    )
    out.single(
        "hubbub_connections_dropped_total",
        "counter",
        "Connections closed as soon as accepted: their address held "
        "max_http_connections_per_ip connections that were not WebSockets.",
        metrics.connections_dropped,
    )
    out.labelled(
        "hubbub_handshakes_refused_total",
        "counter",
        "WebSocket handshakes refused, by HTTP status (403 origin or token, 429 per "
        "address, 503 full or shutting down).",
        "status",
        {str(status): count for status, count in metrics.handshakes_refused.items()},
    )
    out.single("hubbub_rooms", "gauge", "Rooms that exist (have members).", len(hub.rooms))
    out.single(
        "hubbub_participants",
        "gauge",
        "Members of all rooms.",
        sum(len(room) for room in hub.rooms),
    )
    out.labelled(
        "hubbub_messages_received_total",
        "counter",
        "Messages received from clients and decoded, by type.",
        "type",
        counters.received_by_type(),
    )
    out.labelled(
        "hubbub_messages_sent_total",
        "counter",
        "Messages queued to clients, by type; a message to a room counts once per recipient.",
        "type",
        {kind.decode(errors="replace"): count for kind, count in outbox.sent.items()},
    )
    out.labelled(
        "hubbub_errors_total",
        "counter",
        "error messages sent to clients, by code.",
        "code",
        {str(code): count for code, count in counters.errors.items()},
    )
    out.single(
        "hubbub_rate_limited_total",
        "counter",
        "Messages dropped for going over the message rate.",
        counters.rate_limited,
    )
    out.labelled(
        "hubbub_closes_total",
        "counter",
        "Connections the server closed, by close code.",
        "code",
        {str(int(code)): count for code, count in outbox.closes.items()},
    )
    out.single(
        "hubbub_slow_consumer_disconnects_total",
        "counter",
        "Clients cut off (close 4008) because their outgoing queue went over max_send_queue_bytes.",
        outbox.slow_consumers,
    )
    out.histogram(
        "hubbub_store_write_seconds",
        "Seconds one store write (a transaction of a batch of chat messages) took.",
        metrics.store_writes,
    )
    out.single(
        "hubbub_broker_lag_seconds",
        "gauge",
        "How far the broker's deliveries lag behind its publications (0 in memory).",
        server.broker.lag_seconds(),
    )
    cluster = server.broker.status()
    if cluster is not None:
        out.single(
            "hubbub_cluster_connected",
            "gauge",
            "1 while this node reaches Redis and is subscribed to its channels, else 0.",
            int(cluster.connected),
        )
        out.single(
            "hubbub_broker_sent_total",
            "counter",
            "Operations sent to Redis (publications and membership changes).",
            cluster.sent,
        )
        out.single(
            "hubbub_broker_dropped_total",
            "counter",
            "Operations dropped: over broker_max_pending waiting, or Redis unreachable.",
            cluster.dropped,
        )
        out.single(
            "hubbub_broker_pending",
            "gauge",
            "Operations waiting to be sent to Redis, or for its reply.",
            cluster.pending,
        )
    out.single(
        "hubbub_event_loop_lag_seconds",
        "gauge",
        "How late the event loop last ran a timer: the time every message waits on top.",
        metrics.event_loop_lag,
    )
    for extra in server.metric_sources:
        extra(out)
    _process_metrics(out, metrics.started_at)
    _gc_metrics(out)
    return out.text()


def _gc_metrics(out: Exposition) -> None:
    """The garbage collector's work, by generation (the names Prometheus's Python
    client uses)."""
    stats = dict(enumerate(gc.get_stats()))
    for name, key, help in (
        ("python_gc_collections_total", "collections", "Collections of each generation."),
        ("python_gc_objects_collected_total", "collected", "Objects the collector freed."),
    ):
        values = {str(generation): figures[key] for generation, figures in stats.items()}
        out.labelled(name, "counter", help, "generation", values)
    out.single(
        "python_gc_objects_frozen",
        "gauge",
        "Objects made at start and left out of every collection.",
        gc.get_freeze_count(),
    )


def _process_metrics(out: Exposition, started_at: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.single(
        "process_cpu_seconds_total",
        "counter",
        "CPU time of the process, user and system.",
        usage.ru_utime + usage.ru_stime,
    )
    rss = _resident_bytes()
    if rss is not None:
        out.single("process_resident_memory_bytes", "gauge", "Resident memory.", rss)
    fds = _open_fds()
    if fds is not None:
        out.single("process_open_fds", "gauge", "Open file descriptors.", fds)
    out.single(
        "process_start_time_seconds",
        "gauge",
        "When the server started, in unix seconds.",
        started_at,
    )


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return None


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - not Linux
        return None


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
