from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consortium.settings")

app = Celery("consortium")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def freeze_what_startup_loaded(**kwargs) -> None:
    # Django, the apps, numpy and numba live as long as the process: kept out of the cyclic garbage
    # collector's full passes, which otherwise walk all of them every few thousand allocations
    # (a quarter of a publishing batch's CPU). Same in gunicorn.conf.py (consortium/collector.py).
    from consortium import collector

    collector.settle()  # connected first: before the index's loading thread starts


@worker_process_init.connect
def warm_match_indexes(**kwargs) -> None:
    from hashes.matching import warm_in_background

    warm_in_background()


@worker_init.connect
def refuse_to_start_if_misconfigured(**kwargs) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from consortium.checks import refuse_to_start_if_misconfigured

    try:
        refuse_to_start_if_misconfigured()
    except ImproperlyConfigured as exc:
        # Celery logs and ignores what a signal handler raises; this worker must not start.
        logging.getLogger(__name__).critical("Refusing to start: %s", exc)
        raise SystemExit(1) from exc


@task_prerun.connect
def settle_once_the_index_has_loaded(**kwargs) -> None:
    # Before a task, when nothing of the one before (its result, a failure's traceback) is alive.
    from consortium import collector

    collector.settle_if_asked()


@task_prerun.connect
@task_postrun.connect
def drop_broken_or_old_connections(task=None, **kwargs) -> None:
    # What Django does around each web request (CELERY_DB_REUSE_MAX keeps Celery from closing them
    # all): this thread's connections that failed or outlived DATABASE_CONN_MAX_AGE are closed, the
    # others are checked before their next query (conn_health_checks). Not around a task run in
    # the caller's own transaction (eager, in tests).
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()
