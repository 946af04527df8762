"""Production settings pass `manage.py check --deploy` as they are (HTTPS redirect and HSTS, for a
server behind a TLS proxy), refuse to start without an explicit secret key, and the embedded mode
keeps its files to their owner. Settings are read once per process, so each case starts one."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from consortium_client.keys import generate_private_key, private_key_to_pem

ROOT = Path(__file__).resolve().parents[1]
PRINT_SECURITY = ("from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
                  "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_PROXY_SSL_HEADER is not None)")


def run(tmp_path: Path, argv: list[str], **overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "CELERY_", "DJANGO_", "CONSORTIUM_", "API_DOCS_"))}
    env.update({"CONSORTIUM_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "consortium.settings",
                "INDEX_WARM_ON_START": "false", **overrides})
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def production(tmp_path: Path, **overrides: str) -> dict[str, str]:
    key = tmp_path / "server.pem"
    key.write_bytes(private_key_to_pem(generate_private_key()))
    return {"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
            "CONSORTIUM_SIGNING_KEY_FILE": str(key), "DJANGO_ALLOWED_HOSTS": "consortium.example.org",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), **overrides}


def test_check_deploy_passes_with_the_production_defaults(tmp_path):
    done = run(tmp_path, ["manage.py", "check", "--deploy"], **production(tmp_path))

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "security.W004" not in output and "security.W008" not in output
    assert "(security." not in output, output  # nor HSTS's own follow-ups (W005, W021), cookies, DEBUG...


def test_production_redirects_to_https_and_sends_hsts_and_each_can_be_turned_off(tmp_path):
    defaults = run(tmp_path, ["-c", f"import django; django.setup(); {PRINT_SECURITY}"], **production(tmp_path))
    turned_off = run(tmp_path, ["-c", f"import django; django.setup(); {PRINT_SECURITY}"], **production(
        tmp_path, DJANGO_SSL_REDIRECT="false", DJANGO_HSTS_SECONDS="0", DJANGO_HSTS_INCLUDE_SUBDOMAINS="false",
        DJANGO_HSTS_PRELOAD="false", DJANGO_BEHIND_TLS_PROXY="false"))

    assert defaults.stdout.split() == ["True", "31536000", "True", "True", "True"], defaults.stderr
    assert turned_off.stdout.split() == ["False", "0", "False", "False", "False"], turned_off.stderr


def test_the_embedded_mode_neither_redirects_nor_sends_hsts(tmp_path):
    done = run(tmp_path, ["-c", f"import django; django.setup(); {PRINT_SECURITY}"])

    assert done.stdout.split() == ["False", "0", "False", "False", "False"], done.stderr


def test_behind_the_tls_proxy_plain_http_is_redirected_and_https_gets_hsts(settings, client, db):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    plain = client.get("/.well-known/jwks.json")
    secure = client.get("/.well-known/jwks.json", HTTP_X_FORWARDED_PROTO="https")

    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/.well-known/jwks.json")
    assert secure.status_code == 200 and secure["Strict-Transport-Security"].startswith("max-age=31536000")


@pytest.mark.parametrize("argv", [["manage.py", "check"], ["-c", "import consortium.wsgi"]], ids=["manage", "wsgi"])
def test_production_without_a_secret_key_refuses_to_start_naming_the_setting(tmp_path, argv):
    env = production(tmp_path)
    del env["DJANGO_SECRET_KEY"]

    done = run(tmp_path, argv, **env)

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "DJANGO_SECRET_KEY" in done.stderr, done.stderr
    assert not (tmp_path / "var" / "django-secret-key").exists()  # nothing generated behind the operator's back


def test_production_starts_with_a_secret_key_file(tmp_path):
    env = production(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    (tmp_path / "secret").write_text("from-a-file-" + secrets.token_urlsafe(50))

    done = run(tmp_path, ["-c", "import django; django.setup(); from django.conf import settings; "
                                "print(settings.SECRET_KEY[:12])"], **env, DJANGO_SECRET_KEY_FILE=str(tmp_path / "secret"))

    assert done.stdout.strip() == "from-a-file-", done.stderr


def test_the_embedded_mode_keeps_var_and_its_files_to_their_owner(tmp_path):
    done = run(tmp_path, ["-c", "import django; django.setup(); from django.db import connection; "
                                "connection.ensure_connection(); connection.cursor().execute('create table t (x)')"])

    assert done.returncode == 0, done.stderr
    var = tmp_path / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    for name in ("consortium.sqlite3", "django-secret-key"):
        assert stat.S_IMODE((var / name).stat().st_mode) == 0o600, name


@pytest.mark.parametrize("value", ["nan", "inf", "1e7", "300", "-1", "soon"])
def test_a_publish_lock_wait_that_is_not_a_bounded_number_of_seconds_refuses_to_start_naming_it(tmp_path, value):
    # Below CELERY_TASK_SOFT_TIME_LIMIT (300 by default): the wait must end inside the task's bound.
    done = run(tmp_path, ["-c", "import django; django.setup()"], PUBLISH_LOCK_WAIT_SECONDS=value)

    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and "PUBLISH_LOCK_WAIT_SECONDS" in done.stderr, done.stderr


def test_a_publish_lock_wait_within_bounds_is_read_as_seconds(tmp_path):
    done = run(tmp_path, ["-c", "import django; django.setup(); from django.conf import settings as s; "
                          "print(s.PUBLISH_LOCK_WAIT_SECONDS)"], PUBLISH_LOCK_WAIT_SECONDS="0.5")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0.5"
