"""A webhook receiver on 127.0.0.1, as a member would run one: it verifies every delivery with the
`standardwebhooks` package (v1, the subscription's secret) and with consortium_client.webhooks
(v1a only, the server's published keys), records what it got, and answers as the test tells it:
2xx, an error status (with headers such as Retry-After), a hang, or not at all (stopped)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import standardwebhooks
from consortium_client import webhooks


@dataclass(frozen=True)
class Received:
    webhook_id: str
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    v1: bool  # standardwebhooks accepted it with one of the receiver's secrets
    v1a: bool  # the v1a signature matched one of the server's public keys
    status: int  # what the receiver answered (0: it hung and answered nothing in time)
    at: float  # time.time() when it arrived

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.body.get("data", {}).get("events", [])


@dataclass
class Behaviour:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # hold the request until released (or 60 s)
    body: bytes = b"ok"


class Receiver:
    def __init__(self, *, public_keys: list[Any] | None = None, port: int = 0, verify: bool = True) -> None:
        self.secrets: list[str] = []
        self.public_keys = public_keys or []
        self.verify = verify
        self.behaviour = Behaviour()
        self.received: list[Received] = []
        self.arrived = threading.Condition()
        self.release = threading.Event()
        self._port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._handle(self, raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down entirely: nothing listens on the port any more (start() brings it back on the same one)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.release.set()
        self.stop()

    def _check(self, headers: dict[str, str], raw: bytes) -> tuple[bool, bool]:
        v1 = False
        for secret in self.secrets:
            try:
                standardwebhooks.Webhook(secret).verify(raw, headers)
                v1 = True
                break
            except standardwebhooks.WebhookVerificationError:
                continue
        try:
            webhooks.verify(headers, raw, public_keys=self.public_keys, require_v1a=True)
            v1a = True
        except (webhooks.WebhookVerificationError, ValueError):
            v1a = False
        return v1, v1a

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        arrived = time.time()
        headers = {name.lower(): value for name, value in handler.headers.items()}
        v1, v1a = self._check(headers, raw) if self.verify else (False, False)
        behaviour = self.behaviour
        status = 0 if behaviour.hang else behaviour.status
        record = Received(headers.get("webhook-id", ""), json.loads(raw), raw, headers, v1, v1a, status, arrived)
        with self.arrived:
            self.received.append(record)
            self.arrived.notify_all()
        if behaviour.hang:
            self.release.wait(60)
            return
        try:
            handler.send_response(behaviour.status)
            for name, value in behaviour.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(behaviour.body)))
            handler.end_headers()
            handler.wfile.write(behaviour.body)
        except OSError:
            pass  # the sender gave up (or died) first

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate(self.received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.arrived.wait(remaining)
        return True

    # --- what a member's receiver would conclude ---------------------------------------------------

    def batches(self, lane: str = "main") -> list[Received]:
        """Acknowledged deliveries of a lane, each webhook-id once (the first time), in arrival order."""
        seen: set[str] = set()
        out = []
        for record in self.received:
            data = record.body.get("data", {})
            if record.acknowledged and data.get("lane") == lane and record.webhook_id not in seen:
                seen.add(record.webhook_id)
                out.append(record)
        return out

    def events(self, lane: str = "main") -> list[dict[str, Any]]:
        return [event for record in self.batches(lane) for event in record.events]

    def event_ids(self) -> set[str]:
        """Every event id received on any lane, acknowledged or not: what the member's side ever saw."""
        return {event["id"] for record in self.received for event in record.events}
