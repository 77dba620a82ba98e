"""What the kernel says a process has used: CPU time, resident memory and system calls
(Linux /proc)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class CpuTimes:
    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)

    def __add__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user + other.user, self.system + other.system)


def cpu_times(pid: int) -> CpuTimes:
    """CPU seconds the process has used, all its threads together, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        raw = stat.read()
    # The command name (field 2) may hold spaces; the fields after it are plain.
    fields = raw[raw.rindex(b")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return CpuTimes(utime / _TICKS_PER_SECOND, stime / _TICKS_PER_SECOND)


def core_busy(core: int) -> float:
    """Seconds core ``core`` has not been idle since boot (user, nice, system, interrupts,
    softirq and steal time of its line in /proc/stat)."""
    with open("/proc/stat", "rb") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} ".encode()):
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(
                    int, line.split()[1:9]
                )
                return (user + nice + system + irq + softirq + steal) / _TICKS_PER_SECOND
    raise RuntimeError(f"no cpu{core} in /proc/stat")


def rss_bytes(pid: int) -> int:
    """Resident set size of the process, from /proc/<pid>/statm."""
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


def io_calls(pid: int) -> tuple[int, int, int]:
    """System calls that read and that wrote (``syscr``, ``syscw`` of /proc/<pid>/io:
    recv and send on sockets count, and reads and writes of files; epoll_wait does
    not), and the times the scheduler took a core from the process while it could
    run (``nonvoluntary_ctxt_switches`` of /proc/<pid>/status, its main thread's)."""
    reads = writes = taken = 0
    with open(f"/proc/{pid}/io", "rb") as io:
        for line in io:
            if line.startswith(b"syscr:"):
                reads = int(line.split()[1])
            elif line.startswith(b"syscw:"):
                writes = int(line.split()[1])
    with open(f"/proc/{pid}/status", "rb") as status:
        for line in status:
            if line.startswith(b"nonvoluntary_ctxt_switches:"):
                taken = int(line.split()[1])
    return reads, writes, taken
