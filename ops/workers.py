"""Celery and gunicorn hooks: the request id travels with the tasks a request queues (a task
header) and is set again while the task runs, with the task's id and name; tasks are counted; and
each process's metric files are looked after in multiprocess mode.

A Celery worker serves its own metrics when WORKER_METRICS_ADDRESS (host:port) is set: a small
HTTP exporter in the worker's main process, under the same access rule as /metrics, adding up the
files of its pool processes (PROMETHEUS_MULTIPROC_DIR, one directory per worker)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery.signals import (
    before_task_publish,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    worker_init,
    worker_process_shutdown,
)

from . import context
from .multiprocess import clear_metric_files, process_ended

logger = logging.getLogger(__name__)

HEADER = "request_id"
_started: dict[str, float] = {}  # task id -> when it started, in this process
_tokens: dict[str, tuple[Any, Any, Any]] = {}


@before_task_publish.connect
def carry_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = context.request_id.get()
    if request_id and headers is not None:
        headers.setdefault(HEADER, request_id)


@task_prerun.connect
def task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id is None or task is None:
        return
    incoming = getattr(task.request, HEADER, None) or (task.request.headers or {}).get(HEADER)
    _tokens[task_id] = (
        context.request_id.set(context.request_id_from(incoming) if incoming else context.request_id.get()),
        context.task_id.set(task_id), context.task_name.set(task.name))
    _started[task_id] = time.perf_counter()


@task_postrun.connect
def task_ended(task_id: str | None = None, task: Any = None, state: str | None = None, **kwargs: Any) -> None:
    from .metrics import celery_task_seconds, celery_tasks

    started = _started.pop(task_id, None) if task_id else None
    if task is not None:
        if state == "SUCCESS":
            celery_tasks.labels(task=task.name, outcome="success").inc()
        if started is not None:
            celery_task_seconds.labels(task=task.name).observe(time.perf_counter() - started)
    tokens = _tokens.pop(task_id, None) if task_id else None
    if tokens:
        for var, token in zip((context.request_id, context.task_id, context.task_name), tokens):
            var.reset(token)


@task_failure.connect
def task_failed(sender: Any = None, **kwargs: Any) -> None:
    from .metrics import celery_tasks

    if sender is not None:
        celery_tasks.labels(task=sender.name, outcome="failure").inc()


@task_retry.connect
def task_retried(sender: Any = None, **kwargs: Any) -> None:
    from .metrics import celery_tasks

    if sender is not None:
        celery_tasks.labels(task=sender.name, outcome="retry").inc()


def keep_django_logging(**kwargs: Any) -> None:
    """With LOG_FORMAT=json (connected by ops.apps): Celery would replace the logging Django
    configured (settings.LOGGING) with its own text lines; a receiver here keeps Django's."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_process_shutdown.connect
def pool_process_ended(pid: int | None = None, **kwargs: Any) -> None:
    process_ended(pid or os.getpid())


@worker_init.connect
def serve_worker_metrics(**kwargs: Any) -> None:
    from django.conf import settings

    clear_metric_files()
    if settings.WORKER_METRICS_ADDRESS:
        host, port = settings.WORKER_METRICS_ADDRESS
        start_exporter(host, port)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def exporter_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    from django.conf import settings
    from prometheus_client import CONTENT_TYPE_LATEST

    from .access import metrics_allowed
    from .metrics import exposition

    if environ.get("PATH_INFO") != "/metrics":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not found.\n"]
    if not metrics_allowed(environ, token_sha256=settings.METRICS_TOKEN_SHA256, networks=settings.METRICS_ALLOWED_IPS):
        start_response("403 Forbidden", [("Content-Type", "application/json")])
        return [json.dumps({"error": {"code": "metrics_forbidden", "details": None,
                                      "message": "Metrics need a token or an allowed address."}}).encode()]
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
    return [exposition(with_database=False)]


def start_exporter(host: str, port: int) -> WSGIServer:
    server = make_server(host, port, exporter_app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True).start()
    logger.info("Serving this worker's metrics on http://%s:%d/metrics.", host, server.server_port)
    return server
