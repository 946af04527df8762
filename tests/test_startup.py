"""A server that cannot work refuses to start and says why, and a running one writes nothing into
its checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from consortium_client.keys import generate_private_key, private_key_to_pem

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def production_key(settings, tmp_path):
    """Production mode's key settings: the operator provides the file, nothing is created."""
    settings.CONSORTIUM_SIGNING_KEY_CREATE = False
    settings.CONSORTIUM_SIGNING_KEY_FILE = tmp_path / "server.pem"
    return settings.CONSORTIUM_SIGNING_KEY_FILE


def test_check_deploy_fails_naming_the_setting_when_the_server_key_is_missing(production_key):
    with pytest.raises(SystemCheckError, match=r"consortium\.E001.*CONSORTIUM_SIGNING_KEY_FILE"):
        call_command("check", "--deploy")
    assert not production_key.exists()  # nothing invented


def test_check_fails_when_the_server_key_file_is_not_an_ed25519_key(production_key):
    production_key.write_text("not a key")
    with pytest.raises(SystemCheckError, match=r"consortium\.E002"):
        call_command("check")


def test_check_passes_with_a_provisioned_key(production_key):
    production_key.write_bytes(private_key_to_pem(generate_private_key()))
    call_command("check")


def test_check_passes_in_embedded_mode_where_the_key_is_created_on_first_start(settings, tmp_path):
    settings.CONSORTIUM_SIGNING_KEY_CREATE = True
    settings.CONSORTIUM_SIGNING_KEY_FILE = tmp_path / "server.pem"
    call_command("check")


@pytest.mark.parametrize("argv", [["gunicorn", "consortium.wsgi"], ["celery", "-A", "consortium", "worker"]],
                         ids=["gunicorn", "celery-worker"])
def test_web_and_worker_processes_refuse_to_start_without_the_server_key(tmp_path, argv):
    """Before, gunicorn started and answered 500 at /.well-known/jwks.json; a worker failed each delivery."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_"))}
    env.update({
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",  # production mode: the key is not created
        "CONSORTIUM_VAR_DIR": str(tmp_path / "var"),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_FILESYSTEM_BROKER_DIR": str(tmp_path / "broker"),
        "DJANGO_SECRET_KEY": "startup-test",
        "GUNICORN_BIND": "127.0.0.1:0",
        "WEB_CONCURRENCY": "1",
        "INDEX_WARM_ON_START": "false",
    })
    env.pop("CONSORTIUM_SIGNING_KEY_FILE", None)
    done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "CONSORTIUM_SIGNING_KEY_FILE" in done.stdout + done.stderr


def test_numba_caches_compiled_code_outside_the_source_tree():
    import numba

    from hashes.signals.index import PdqIndex  # noqa: F401  compiles, or loads from the cache

    cache_dir = Path(numba.config.CACHE_DIR).resolve()
    assert cache_dir == Path(os.environ["NUMBA_CACHE_DIR"]).resolve()  # set by settings unless the user did
    assert not cache_dir.is_relative_to(ROOT / "hashes")
    assert not list((ROOT / "hashes").rglob("*.nbi"))
