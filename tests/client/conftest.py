"""Drive the real `consortium` command (a subprocess: `python -m consortium_client.cli`, what the
console script runs) against pytest-django's live server on 127.0.0.1.

    def test_something(cli, alice):
        done = cli(alice, "match", "md5:...")
        assert done.code == 0 and done.json["results"]

The live server answers from its own thread on the test database, with the pipeline run eagerly in
the request (as every unit test runs it), so the tests are transactional with serialized rollback,
like the browser tests: migrations' data (labels, groups) is there when each starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consortium_client.keys import private_jwk
from tests.actors import Actor

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180


@dataclass
class Done:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def error(self) -> dict[str, Any]:
        """The --json error object printed on stderr."""
        return json.loads(self.stderr.strip().splitlines()[-1])["error"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """No configuration leaks in from the caller; the client package is this checkout's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSORTIUM_")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "NO_PROXY": "*",
    })
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "consortium_client.cli", *args]


@pytest.fixture
def server(live_server, django_db_serialized_rollback) -> str:
    return live_server.url.replace("localhost", "127.0.0.1")


@pytest.fixture
def key_file(tmp_path: Path):
    """The actor's private signing key as a JWK file, as `consortium keygen` writes one."""

    def write(actor: Actor) -> Path:
        path = tmp_path / f"{actor.slug}.jwk"
        path.write_text(json.dumps(private_jwk(actor.signer.private_key, actor.signer.kid)))
        path.chmod(0o600)
        return path

    return write


@pytest.fixture
def cli(server: str, tmp_path: Path, key_file):
    """Run `consortium ARGS` as `actor` (its token and key in the environment), or as nobody."""

    def run(actor: Actor | None, *args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None,
            timeout: float = TIMEOUT) -> Done:
        extra = {"CONSORTIUM_URL": server}
        if actor is not None:
            extra.update({"CONSORTIUM_TOKEN": actor.token, "CONSORTIUM_KEY_FILE": str(key_file(actor))})
        extra.update(env or {})
        done = subprocess.run(command(*args), env=cli_env(tmp_path, **extra), cwd=tmp_path, timeout=timeout,
                              input=stdin.encode() if isinstance(stdin, str) else stdin, capture_output=True)
        return Done(done.returncode, done.stdout.decode(), done.stderr.decode())

    return run
