"""The liveness sweep (hubbub.server.liveness) with a clock of its own: who is pinged,
who is dropped, and that a quiet connection is looked at once an interval, not once
a sweep."""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.server.liveness import Liveness

INTERVAL = 20.0
TIMEOUT = 10.0


@dataclass(eq=False)
class Line:
    name: str
    heard: float = 0.0
    pinged_at: float | None = None
    liveness_bucket: int | None = None
    closing: bool = False
    answers: bool = False
    """Answers each ping a moment after it (its pong: heard from, no longer pinged)."""
    looks: int = 0
    """How many times the sweep read when it was last heard from."""

    @property
    def last_heard(self) -> float:
        self.looks += 1
        return self.heard

    @last_heard.setter
    def last_heard(self, value: float) -> None:
        self.heard = value


class World:
    def __init__(self) -> None:
        self.now = 0.0
        self.lines: list[Line] = []
        self.pings: list[tuple[float, str]] = []
        self.dropped: list[tuple[float, str]] = []
        self.liveness = Liveness(INTERVAL, TIMEOUT, ping=self._ping, timed_out=self._timed_out)

    def _ping(self, line: Line) -> bool:
        if line.closing:
            return False
        self.pings.append((self.now, line.name))
        return True

    def _timed_out(self, line: Line) -> None:
        self.dropped.append((self.now, line.name))

    def connect(self, name: str, *, answers: bool = False) -> Line:
        line = Line(name, answers=answers)
        self.lines.append(line)
        self.liveness.watch(line, self.now)
        return line

    def run_until(self, end: float, every: list[tuple[Line, float]] | None = None) -> None:
        """Sweep once a period until ``end``; each (line, seconds) sends a frame that
        often; the lines that answer pings do, before the next sweep."""
        period = self.liveness.period
        while self.now + period <= end + 1e-9:
            self.now = round(self.now + period, 6)
            for line in self.lines:
                if line.answers and line.pinged_at is not None:
                    line.last_heard, line.pinged_at = self.now, None
            for line, seconds in every or []:
                if self.now % seconds < period:
                    line.last_heard = self.now
            self.liveness.sweep(self.now)


def test_a_quiet_client_that_answers_is_pinged_once_an_interval_and_stays() -> None:
    world = World()
    world.connect("quiet", answers=True)
    world.run_until(INTERVAL - 1)
    assert world.pings == []
    world.run_until(INTERVAL + 1)
    assert world.pings == [(INTERVAL, "quiet")]
    world.run_until(200)
    # pinged ping_interval after its last pong, each time
    gaps = [b - a for (a, _), (b, _) in zip(world.pings, world.pings[1:], strict=False)]
    assert len(world.pings) == 9, world.pings
    assert all(INTERVAL <= gap <= INTERVAL + 2 * world.liveness.period for gap in gaps), gaps
    assert world.dropped == []


def test_a_client_that_never_answers_is_dropped_after_interval_and_timeout() -> None:
    world = World()
    world.connect("dead")
    world.run_until(60)
    assert world.pings == [(INTERVAL, "dead")]
    ((when, name),) = world.dropped
    assert name == "dead"
    assert INTERVAL + TIMEOUT <= when <= INTERVAL + TIMEOUT + 4 * world.liveness.period
    world.run_until(200)
    assert len(world.pings) == 1  # forgotten once dropped


def test_a_client_that_talks_is_never_pinged() -> None:
    world = World()
    line = world.connect("chatty")
    world.run_until(300, every=[(line, 5.0)])
    assert world.pings == []
    assert world.dropped == []


def test_quiet_connections_cost_a_look_an_interval_not_a_look_a_sweep() -> None:
    world = World()
    lines = [world.connect(f"c{k}") for k in range(1000)]
    world.run_until(100, every=[(line, 7.0) for line in lines])
    sweeps = 100 / world.liveness.period
    looks = sum(line.looks for line in lines)
    assert looks <= len(lines) * (100 / INTERVAL + 2)
    assert looks < len(lines) * sweeps / 5


def test_closed_connections_are_forgotten() -> None:
    world = World()
    gone = world.connect("gone")
    closing = world.connect("closing")
    world.liveness.forget(gone)  # its connection was lost
    assert len(world.liveness) == 1
    closing.closing = True  # its transport is closing: no ping, and no more looks
    world.run_until(INTERVAL + 1)
    assert world.pings == []
    assert world.dropped == []
    assert gone.looks == 0
    assert len(world.liveness) == 0


def test_a_long_pause_of_the_loop_sweeps_everything_that_came_due() -> None:
    world = World()
    world.connect("a")
    world.now = 1000.0  # nothing swept for 1,000 s
    world.liveness.sweep(world.now)
    assert world.pings == [(1000.0, "a")]
    world.run_until(1000 + TIMEOUT + 3)
    assert [name for _, name in world.dropped] == ["a"]
