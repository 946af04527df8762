"""gunicorn settings for production and for `make run`, read by a plain `gunicorn consortium.wsgi` run
from this folder (gunicorn loads ./gunicorn.conf.py); each can be overridden by environment."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
# The longest a request may hold a worker, receiving its body included (a sync worker has no other
# read timeout): past it gunicorn stops the worker and starts another. 0 would switch that off and let
# one slow client hold a worker for ever. A buffering proxy in front (README "Reverse proxy") keeps
# slow clients off the workers in the first place.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
if timeout < 1:
    raise ValueError(f"GUNICORN_TIMEOUT must be at least 1 second, not {timeout}: 0 lets a slow client hold a "
                     "worker for ever.")
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so that a slow leak in any library never becomes an outage.
max_requests = 5000
max_requests_jitter = 500
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
if os.environ.get("LOG_FORMAT", "text").strip().lower() == "json":  # as Django's lines (ops/logs.py)
    from ops.logs import gunicorn_logconfig

    logconfig_dict = gunicorn_logconfig(access_log=accesslog is not None)
    access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'
# Trust X-Forwarded-* only from the local reverse proxy.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    # What the first requests would otherwise load while a client waits: the URL configuration
    # (every app's views) and the broker's transport (the first submission queues verification).
    from django.urls import get_resolver

    from consortium import collector
    from consortium.celery_app import app
    from hashes.matching import warm_in_background

    get_resolver().url_patterns
    app.connection_for_write().release()
    # What startup loaded lives as long as the worker: kept out of the garbage collector's full
    # passes (consortium/collector.py); before the index's loading thread starts, so that nothing
    # of its work in progress is frozen.
    collector.settle()
    # Each web worker maps the host's match index snapshot (or builds it) in the background as it
    # starts (see hashes.matching); once it has, the next request settles again.
    warm_in_background()


def pre_request(worker, req):
    # Once the match index has loaded beside the first requests (consortium/collector.py): before a
    # request, when nothing of the one before is alive to be frozen with the rest.
    from consortium import collector

    collector.settle_if_asked()


# Metrics of several workers read as one (prometheus-client's multiprocess mode, see ops/multiprocess.py):
# the directory starts empty, and a worker that ends leaves only its counts behind.
def on_starting(server):
    from ops.multiprocess import clear_metric_files

    clear_metric_files()


def child_exit(server, worker):
    from ops.multiprocess import process_ended

    process_ended(worker.pid)
