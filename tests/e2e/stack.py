"""Start the processes of deploy/Procfile (gunicorn, Celery worker, beat) against the test database,
exactly as production runs them, on 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from kombu import Connection

from consortium_client.keys import generate_private_key, private_key_to_pem
from deploy.generate import read_procfile

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
QUEUES = ("sweep", "priority", "verify", "publish", "default", "deliver_priority", "deliver", "media")


def procfile() -> dict[str, list[str]]:
    """The Procfile's commands, run with this virtualenv's gunicorn and celery."""
    return {name: [str(BIN / argv[0]), *argv[1:]] for name, argv in read_procfile().items()}


# DESIGN.md's standard entry points, with no arguments at all: configured by environment only.
PLAIN = {
    "web": ["gunicorn", "consortium.wsgi"],
    "worker": ["celery", "-A", "consortium", "worker"],
    "beat": ["celery", "-A", "consortium", "beat"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


@dataclass
class Stack:
    workdir: Path
    port: int = field(default_factory=free_port)
    overrides: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
        env.update({
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_FILESYSTEM_BROKER_DIR": str(self.workdir / "broker"),
            "CONSORTIUM_VAR_DIR": str(self.workdir / "var"),
            "DJANGO_SECRET_KEY": "e2e-not-secret",
            "CONSORTIUM_SIGNING_KEY_FILE": str(self.signing_key_file()),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SSL_REDIRECT": "false",  # plain http on 127.0.0.1, no TLS proxy in front
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_ACCESS_LOG": "",
            "WEB_CONCURRENCY": "2",
            "CELERY_WORKER_CONCURRENCY": "2",
            "SWEEP_INTERVAL_SECONDS": "1",
            "SWEEP_STALE_AFTER_SECONDS": "3",
            "VERIFY_CHUNK_SIZE": "100",
            "PUBLISH_BATCH_SIZE": "100",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.overrides)
        return env

    def signing_key_file(self) -> Path:
        """Provisioned like production: a key file the operator created, not one made on start."""
        path = self.workdir / "server-signing-key.pem"
        if not path.exists():
            path.write_bytes(private_key_to_pem(generate_private_key()))
        return path

    def purge_broker(self) -> None:
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            return  # a fresh folder per test
        with Connection(settings.CELERY_BROKER_URL) as conn:
            channel = conn.default_channel
            for queue in QUEUES:
                try:
                    channel.queue_purge(queue)
                except Exception:  # a queue that was never declared has nothing to purge
                    pass

    def start(self, *names: str) -> None:
        """Start Procfile entries; "worker2" (and so on) is one more process of the "worker" entry."""
        commands = procfile()
        for name in names:
            kind = name.rstrip("0123456789")
            argv = commands[kind]
            if kind == "beat":
                argv = [*argv, "--schedule", str(self.workdir / "celerybeat-schedule")]
            if kind == "worker":
                argv = [*argv, "--hostname", f"{name}@%h"]
            self.spawn(name, argv)

    def start_plain(self, *names: str) -> None:
        """Start the standard entry points exactly as DESIGN.md names them, with no extra argument."""
        for name in names:
            self.spawn(name, [str(BIN / PLAIN[name][0]), *PLAIN[name][1:]])

    def spawn(self, name: str, argv: list[str]) -> None:
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def manage(self, *args: str) -> str:
        """Run a manage.py command as an operator would, with the processes' environment; its output."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True,
                              text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def kill(self, name: str) -> None:
        """SIGKILL the whole process group: the worker's parent and its pool children at once."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()

    def wait_for_web(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes["web"].poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.logs('web')}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/.well-known/jwks.json", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"gunicorn did not answer within {timeout} s:\n{self.logs('web')}")

    def logs(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def wait_until(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
