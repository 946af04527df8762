"""bench/procstat.py: the benchmarks' reading of each process's CPU time from /proc."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import procstat

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")

# Spends 0.3 s of CPU (its own, not wall-clock), says so, then waits to be killed.
BURN = "import time\nwhile time.process_time() < 0.3: pass\nprint('burnt', flush=True)\ntime.sleep(120)\n"


def burner(**popen) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True, **popen)
    assert process.stdout.readline().strip() == "burnt"
    return process


def test_cpu_is_counted_by_process_group_by_pid_and_for_this_client():
    tick = 2 / os.sysconf("SC_CLK_TCK")  # user and system time are each whole ticks
    before = procstat.cpu_seconds({}, "no-such-database")
    group = burner(start_new_session=True)  # its own process group, as the stack's processes are
    single = burner()
    try:
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:
            pass
        after = procstat.cpu_seconds({group.pid: "web"}, "no-such-database", pids={single.pid: "receivers"})
    finally:
        for process in (group, single):
            process.kill()
            process.wait()
    assert after[group.pid][0] == "web" and after[single.pid][0] == "receivers"
    assert after[os.getpid()][0] == "benchmark client"
    spent = procstat.cpu_between(before, after)
    assert spent["web"] >= 0.3 - tick and spent["receivers"] >= 0.3 - tick
    assert spent["benchmark client"] >= 0.05 - tick
    # Nothing else of this machine's is counted (no PostgreSQL backend serves that database).
    assert "postgresql" not in spent
    assert set(spent) <= {"web", "receivers", "benchmark client", "redis"}


def test_a_process_that_ended_between_readings_is_not_counted():
    before = {1: ("web", 5.0), 2: ("web", 1.0)}
    after = {1: ("web", 7.5), 3: ("worker", 0.5)}
    assert procstat.cpu_between(before, after) == {"web": 2.5, "worker": 0.5}


def test_loadavg_gives_three_figures():
    assert len([float(figure) for figure in procstat.loadavg().split()]) == 3
