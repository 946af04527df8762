"""prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR): the processes of one gunicorn
master, or of one Celery worker, write their counts to files in one directory of their own, which
the process answering a scrape adds up. No Django here: gunicorn's master calls these."""

from __future__ import annotations

import glob
import os


def clear_metric_files() -> None:
    """At the start of a process tree (gunicorn's master, a Celery worker's main process): counts of
    an earlier run must not be added to this one's, nor their files pile up."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in glob.glob(os.path.join(path, "*.db")):
            os.remove(name)


def process_ended(pid: int) -> None:
    """A gunicorn worker or Celery pool process ended: drop its live gauges (its counts stay)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
