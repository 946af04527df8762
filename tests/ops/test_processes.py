"""Real processes from deploy/Procfile: gunicorn's workers counted as one in multiprocess mode, a
Celery worker's own exporter, and a request id that reaches the log lines of the task it queued."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import Stack, free_port, wait_until
from tests.factories import md5

TOKEN = "metrics-token-for-process-tests-42"


@pytest.fixture
def stack(tmp_path, committed_db):
    (tmp_path / "var").mkdir()
    live = Stack(workdir=tmp_path, overrides={"METRICS_TOKEN": TOKEN, "LOG_FORMAT": "json"})
    live.purge_broker()
    try:
        yield live
    finally:
        live.stop()
        for name in ("web", "worker"):
            print(f"----- {name} log (tail) -----\n{live.logs(name)}")


def get(url: str, *, token: str | None = TOKEN, headers: dict[str, str] | None = None,
        data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def sample(body: bytes, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def gunicorn_workers(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_gunicorn_workers_are_counted_as_one_and_their_counts_outlive_a_restarted_worker(stack, alice, tmp_path):
    stack.overrides["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics-web")
    stack.start("web")
    stack.wait_for_web()
    wait_until(lambda: len(gunicorn_workers(stack.processes["web"].pid)) == 2, timeout=30, what="two web workers")
    matches = 12
    for _ in range(matches):
        status, _, body = get(f"{stack.base_url}/api/v1/match/", token=alice.token,
                              headers={"Content-Type": "application/json"},
                              data=json.dumps({"signals": [md5(1)]}).encode())
        assert status == 200, body

    # Whichever worker answers a scrape, it counts every worker's requests.
    for _ in range(6):
        status, headers, body = get(f"{stack.base_url}/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain"), body
        assert sample(body, "consortium_match_seconds_count", input="signals") == matches
    assert get(f"{stack.base_url}/metrics", token=None)[0] == 403

    os.kill(gunicorn_workers(stack.processes["web"].pid)[0], signal.SIGTERM)
    wait_until(lambda: len(gunicorn_workers(stack.processes["web"].pid)) == 2, timeout=30, what="a new web worker")
    for _ in range(4):
        status, _, body = get(f"{stack.base_url}/metrics")
        assert status == 200
        assert sample(body, "consortium_match_seconds_count", input="signals") == matches


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_request_id_reaches_the_json_log_lines_of_the_task_it_queued(stack, alice, tmp_path):
    exporter = free_port()
    stack.start("web")
    stack.overrides.update({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics-worker"),
                            "WORKER_METRICS_ADDRESS": f"127.0.0.1:{exporter}"})
    stack.start("worker")
    stack.wait_for_web()

    status, headers, body = get(
        f"{stack.base_url}/api/v1/statements/", token=alice.token,
        headers={"Content-Type": "application/json", "X-Request-ID": "ops-test-request-42"},
        data=json.dumps({"statements": [alice.statement([md5(7)])]}).encode())
    assert status == 202, body
    assert headers["X-Request-ID"] == "ops-test-request-42"

    def task_lines() -> list[dict]:
        return [line for line in json_lines((tmp_path / "worker.log").read_text(errors="replace"))
                if line.get("request_id") == "ops-test-request-42"]

    def trace_lines() -> list[dict]:  # the task's own line (others, such as the broker's, may come first)
        return [line for line in task_lines()
                if line.get("task_name") == "hashes.tasks.verify_statements" and line.get("logger") == "celery.app.trace"]

    wait_until(trace_lines, timeout=60, what="the verifying task's log line")
    line = trace_lines()[0]
    assert line["task_id"] and line["level"] == "INFO"
    assert line["message"].startswith(f"Task hashes.tasks.verify_statements[{line['task_id']}] succeeded")
    web_lines = json_lines((tmp_path / "web.log").read_text(errors="replace"))
    assert any(line["logger"] == "gunicorn.error" and line["message"].startswith("Booting worker")
               for line in web_lines)
    assert alice.token not in (tmp_path / "worker.log").read_text() + (tmp_path / "web.log").read_text()

    # The worker's own exporter adds up its pool processes' counts.
    url = f"http://127.0.0.1:{exporter}/metrics"
    wait_until(lambda: sample(get(url)[2], "consortium_celery_tasks_total", task="hashes.tasks.verify_statements",
                              outcome="success") >= 1, timeout=30, what="the worker's task count")
    assert get(url, token=None)[0] == 403
    assert get(url, token="not-the-metrics-token-at-all")[0] == 403
