"""The CPU time of the processes a benchmark measures, read from /proc (Linux), and the load average.

The benchmarks import this as `procstat`, the module beside them, never as `bench.procstat`: a child
measuring an older checkout imports `bench` from that checkout, which may not have this file."""

from __future__ import annotations

import os
from pathlib import Path

CpuReading = dict[int, tuple[str, float]]


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg gives them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_seconds(groups: dict[int, str], database: str, *, pids: dict[int, str] | None = None,
                redis: str = "redis") -> CpuReading:
    """CPU seconds (user + system) so far of each process of interest, by pid and with tick precision:
    the members of the process groups `groups` names (by process group id, so with their children),
    the processes `pids` names, the PostgreSQL backends serving `database`, Redis (named `redis`),
    and this process ("benchmark client")."""
    pids = pids or {}
    tick = os.sysconf("SC_CLK_TCK")
    found: CpuReading = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()  # from field 3 (state) on; comm may hold spaces
        pid, pgid, used = int(entry.name), int(fields[2]), (int(fields[11]) + int(fields[12])) / tick
        if pgid in groups:
            name = groups[pgid]
        elif pid in pids:
            name = pids[pid]
        elif comm.startswith("postgres") and f" {database} " in cmdline:
            name = "postgresql"
        elif comm.startswith("redis"):
            name = redis
        elif pid == os.getpid():
            name = "benchmark client"
        else:
            continue
        found[pid] = (name, used)
    return found


def cpu_between(before: CpuReading, after: CpuReading) -> dict[str, float]:
    """CPU seconds each named component spent between two readings (a process that ended meanwhile
    is not counted; one that started counts from zero)."""
    spent: dict[str, float] = {}
    for pid, (name, used) in after.items():
        spent[name] = spent.get(name, 0.0) + used - (before[pid][1] if pid in before else 0.0)
    return spent
