"""Log lines as text (the default) or, with LOG_FORMAT=json, one JSON object a line that a log
pipeline can index: time, level, logger, message, the request id, the task, the exception.

No Django here: gunicorn's master process logs through it too (gunicorn.conf.py). Only these fields
are written, never a record's arguments or extras, so nothing a caller passes along by accident
(a header, a URL with a token) reaches the log unless the message itself says it."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from . import context


class ContextFilter(logging.Filter):
    """Puts the request id and the task on every record (empty when there are none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.request_id.get() or ""
        record.task_id = context.task_id.get() or ""
        record.task_name = context.task_name.get() or ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for field in ("request_id", "task_id", "task_name"):
            value = getattr(record, field, "") or getattr(context, field).get()
            if value:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(*, log_format: str, level: str) -> dict:
    """The dictConfig for Django (settings.LOGGING) and for gunicorn's own loggers."""
    formatter = ({"()": "ops.logs.JsonFormatter"} if log_format == "json"
                 else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"})
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "ops.logs.ContextFilter"}},
        "formatters": {"main": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "main", "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}},
    }


def gunicorn_logconfig(*, access_log: bool) -> dict:
    """gunicorn's `logconfig_dict` for LOG_FORMAT=json: its own lines (the error log on stderr, the
    access log on stdout, if it is on) as JSON objects too."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "ops.logs.ContextFilter"}},
        "formatters": {"json": {"()": "ops.logs.JsonFormatter"}},
        "handlers": {"stderr": {**handler, "stream": "ext://sys.stderr"},
                     "stdout": {**handler, "stream": "ext://sys.stdout"}},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO" if access_log else "CRITICAL", "handlers": ["stdout"],
                                "propagate": False},
        },
    }
