"""A private Redis server for tests that stop the broker.

The Redis on 6379 serves other people and CI; a test that restarts the broker restarts one of its own:
`redis-server` on a free port of 127.0.0.1, keeping nothing on disk, in a folder of the test's, run as
the test's child (never daemonized), so that it is gone when the test ends, however it ends."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from .stack import free_port

BINARY = "redis-server"


def unavailable() -> str | None:
    """Why no private Redis can be started here, or None."""
    if shutil.which(BINARY) is None:
        return f"{BINARY} is not installed (Debian's redis-server)"
    return None


@dataclass
class PrivateRedis:
    workdir: Path
    port: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def start(self, timeout: float = 20) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [BINARY, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--daemonize", "no", "--logfile", ""]
        with open(self.workdir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{BINARY} on port {self.port} exited ({self.process.returncode}):\n{self.log()}")
            if self.up():
                return self
            time.sleep(0.1)
        self.close()
        raise TimeoutError(f"{BINARY} on port {self.port} did not answer within {timeout} s:\n{self.log()}")

    def up(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def run_id(self) -> str:
        """Changes whenever the server starts again."""
        return self.client().info("server")["run_id"]

    def restart(self, down_for: float = 1.0) -> None:
        """Shut down without saving (every queued message is gone) and start again on the same port."""
        self.client().shutdown(nosave=True)
        assert self.process is not None
        self.process.wait(timeout=10)
        time.sleep(down_for)  # down for a moment, with workers, beat and gunicorn all trying to reach it
        self.start()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own on a free port: restarting it disturbs nobody else using the
    machine's Redis. Without the binary the test skips, except in CI (CI=true, or
    CONSORTIUM_REQUIRE_REDIS_FAULTS=1, which .ci/run sets), where that is a failure. Test modules
    that use it import it."""
    reason = unavailable()
    if reason:
        if os.environ.get("CI", "").lower() == "true" or os.environ.get("CONSORTIUM_REQUIRE_REDIS_FAULTS") == "1":
            pytest.fail(f"{reason}, and CI (CI=true or CONSORTIUM_REQUIRE_REDIS_FAULTS=1) requires the Redis "
                        "fault tests", pytrace=False)
        pytest.skip(f"no private Redis for the fault tests: {reason}")
    server = PrivateRedis(tmp_path / "redis", free_port()).start()
    try:
        yield server
    finally:
        server.close()
