"""A client that sends its upload slowly holds a sync gunicorn worker while the body arrives. In
production a buffering reverse proxy receives whole bodies before gunicorn sees them (README "Reverse
proxy and TLS"); behind it, or without one, GUNICORN_TIMEOUT bounds how long one request may hold a
worker: gunicorn stops it, starts another, and the upload is dropped with nothing of it kept."""

from __future__ import annotations

import select
import socket
import subprocess
import time
import urllib.request

import pytest

from .stack import BIN, ROOT, wait_until

pytestmark = pytest.mark.e2e

BOUNDARY = "slow-upload-boundary"


def slow_upload_head(token: str, declared: int) -> bytes:
    return (f"POST /api/v1/hash/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n"
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="clip.mp4"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + b"\x00" * 64 * 1024


def trickle_until_cut_off(connection: socket.socket, *, give_up_after: float) -> tuple[int, bytes]:
    """A byte at a time until the server stops reading: the bytes sent, and what it answered."""
    sent, deadline = 0, time.monotonic() + give_up_after
    while time.monotonic() < deadline:
        readable, _, _ = select.select([connection], [], [], 0.2)
        if readable:
            answer = b""
            try:
                while chunk := connection.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                pass
            return sent, answer
        try:
            sent += connection.send(b"\x00")
        except (BrokenPipeError, ConnectionResetError):
            return sent, b""
    raise AssertionError(f"the server still read the upload after {give_up_after} s")


def test_an_upload_that_trickles_in_holds_the_worker_only_until_the_gunicorn_timeout(stack, actor_factory):
    alice = actor_factory("alice")
    stack.overrides.update({"GUNICORN_TIMEOUT": "3", "WEB_CONCURRENCY": "1"})  # the one worker there is
    stack.start("web")
    stack.wait_for_web()
    incoming = stack.workdir / "var" / "media-jobs" / "incoming"
    declared = 8 * 1024 * 1024

    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as slow:
        slow.sendall(slow_upload_head(alice.token, declared))
        wait_until(lambda: incoming.exists() and any(incoming.iterdir()), timeout=30,
                   what="the worker to start writing the upload")
        sent, answer = trickle_until_cut_off(slow, give_up_after=120)

    assert sent < declared  # cut off, not finished
    assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]
    assert "WORKER TIMEOUT" in (stack.workdir / "web.log").read_text(errors="replace")
    wait_until(lambda: not any(incoming.iterdir()), timeout=30, what="the partial upload to be removed")
    request = urllib.request.Request(f"{stack.base_url}/api/v1/me/", headers={"Authorization": f"Bearer {alice.token}"})
    with urllib.request.urlopen(request, timeout=60) as answer:  # the worker that replaced it serves
        assert answer.status == 200


def test_gunicorn_refuses_to_start_without_a_timeout(stack):
    """GUNICORN_TIMEOUT=0 would switch gunicorn's bound off: one slow client could hold a worker for ever."""
    env = {**stack.env(), "GUNICORN_TIMEOUT": "0"}

    done = subprocess.run([str(BIN / "gunicorn"), "--check-config", "consortium.wsgi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode != 0
    assert "GUNICORN_TIMEOUT must be at least 1 second" in done.stdout + done.stderr
