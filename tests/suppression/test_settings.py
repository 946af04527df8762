"""BENIGN_DISTANCE is bounded to what the match index searches exactly: a server given anything
outside 0..31 refuses to start, naming the setting. Settings are read once per process, so each case
starts one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT = "import django; django.setup(); from django.conf import settings; print(settings.BENIGN_DISTANCE)"


def start(tmp_path: Path, distance: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_", "CONSORTIUM_"))}
    env.update({"CONSORTIUM_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "consortium.settings",
                "DJANGO_SECRET_KEY": "x", "BENIGN_DISTANCE": distance})
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("distance", ["-1", "32", "256"])
def test_a_distance_outside_0_to_31_refuses_to_start(tmp_path, distance):
    done = start(tmp_path, distance)

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "BENIGN_DISTANCE" in done.stderr, done.stderr


@pytest.mark.parametrize("distance", ["0", "31"])
def test_the_bounds_themselves_are_accepted(tmp_path, distance):
    done = start(tmp_path, distance)

    assert (done.returncode, done.stdout.strip()) == (0, distance), done.stderr
