"""LOG_FORMAT=json and request ids: one JSON object a line, the request id on the response and on
every line written for the request, and only the fields the formatter names."""

from __future__ import annotations

import json
import logging
import re

from django.test import Client

from ops import context
from ops.logs import ContextFilter, JsonFormatter


def formatted(record: logging.LogRecord) -> dict:
    ContextFilter().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    made = logging.LogRecord("hashes.tasks", logging.WARNING, __file__, 1, message, args, exc_info)
    made.__dict__.update(extra)
    return made


def test_a_json_line_has_time_level_logger_message_and_the_request_and_task_it_belongs_to():
    tokens = (context.request_id.set("req-1"), context.task_id.set("t-1"), context.task_name.set("hashes.tasks.x"))
    try:
        line = formatted(record("published %d hashes", 3))
    finally:
        for var, token in zip((context.request_id, context.task_id, context.task_name), tokens):
            var.reset(token)

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])
    assert {k: line[k] for k in ("level", "logger", "message", "request_id", "task_id", "task_name")} == {
        "level": "WARNING", "logger": "hashes.tasks", "message": "published 3 hashes", "request_id": "req-1",
        "task_id": "t-1", "task_name": "hashes.tasks.x"}


def test_an_exception_stays_within_its_one_line():
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        line = formatted(record("failed", exc_info=sys.exc_info()))

    assert "Traceback" in line["exception"] and "ValueError: boom\nsecond line" in line["exception"]
    assert "request_id" not in line  # outside any request


def test_only_the_named_fields_are_written_never_a_records_extras():
    line = formatted(record("sent", authorization="Bearer secret-token", url="https://x/?token=secret"))

    assert "secret" not in json.dumps(line)
    assert set(line) <= {"time", "level", "logger", "message", "process", "request_id", "task_id", "task_name",
                         "exception", "stack"}


def test_a_sane_incoming_request_id_is_kept_and_echoed(db):
    response = Client(HTTP_X_REQUEST_ID="edge-7f3a:42.b_c-d").get("/api/v1/me/")

    assert response["X-Request-ID"] == "edge-7f3a:42.b_c-d"


def test_an_insane_incoming_request_id_is_replaced(db):
    for incoming in ("", "a b", "x" * 129, "id\r\nSet-Cookie: a=b", "<script>", "é"):
        response = Client(HTTP_X_REQUEST_ID=incoming).get("/healthz")
        assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"]), incoming


def test_each_request_gets_its_own_id_and_its_log_lines_carry_it(db, alice, caplog):
    caplog.handler.addFilter(ContextFilter())
    first = alice.api.get("/api/v1/hashes/999999/")
    second = alice.api.get("/api/v1/hashes/999999/")

    assert first.status_code == second.status_code == 404
    assert first["X-Request-ID"] != second["X-Request-ID"]
    # Django logs a 4xx response once the middleware has returned it.
    logged = [r.request_id for r in caplog.records if r.name == "django.request" and "/api/v1/hashes/" in r.getMessage()]
    assert logged == [first["X-Request-ID"], second["X-Request-ID"]]
    assert context.request_id.get() is None  # nothing leaks into what runs next
