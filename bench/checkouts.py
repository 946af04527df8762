"""Run a benchmark's measuring half in a child process against one checkout (this one, or an older
worktree given with --before), on a fresh embedded-mode database, and read back its JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Benchmarks send far more requests than one member may (THROTTLE_*): the server they start is
# unthrottled, so that they measure the work, not the quota.
UNTHROTTLED = {f"THROTTLE_{kind}": "off" for kind in ("SUBMIT", "READ", "MATCH", "MEDIA", "SUBSCRIBE")}
UNTHROTTLED["MEMBER_DAILY_STATEMENT_QUOTA"] = "0"


def child_env(checkout: Path, var: str | Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child run against `checkout`: its imports, the given CONSORTIUM_VAR_DIR,
    no DATABASE_*/CELERY_* of this shell unless `extra_env` sets them; its own numba cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
    env.update({"CONSORTIUM_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "consortium.settings",
                "PYTHONPATH": f"{checkout}{os.pathsep}{checkout / 'client'}", "INDEX_WARM_ON_START": "false",
                "DJANGO_ALLOWED_HOSTS": "testserver", "NUMBA_CACHE_DIR": str(checkout / "var" / "numba-cache"),
                **UNTHROTTLED, **(extra_env or {})})
    return env


def run_child(script: str, checkout: Path, args: list[str], extra_env: dict[str, str] | None = None) -> Any:
    """`python script --child *args` with cwd and imports from `checkout`, this interpreter, and a
    temporary CONSORTIUM_VAR_DIR; the checkout's own numba cache is kept between runs."""
    with tempfile.TemporaryDirectory() as var:
        env = child_env(checkout, var, extra_env)
        result = subprocess.run([sys.executable, str(Path(script).resolve()), "--child", *args], cwd=checkout,
                                env=env, capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            raise SystemExit(f"{checkout}: {result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])
