"""Requests per API token: each kind of request has its own rate; past it a token gets 429
`throttled` with Retry-After, and no other token or member is slowed. The counts are shared by
every server process: files under var/ in embedded mode, Redis in production."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from hashes.models import Statement
from tests.factories import md5

ROOT = Path(__file__).resolve().parents[1]


def submit(actor, *statements):
    return actor.api.post("/api/v1/statements/", {"statements": list(statements)}, format="json")


def test_a_token_over_its_submit_rate_gets_429_throttled_with_retry_after(alice, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "submit": (3, 60)}
    for n in range(3):
        assert submit(alice, alice.statement([md5(n)])).status_code == 202

    refused = submit(alice, alice.statement([md5(3)]))

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert error["details"] == {"retry_after_seconds": int(refused["Retry-After"])}
    assert Statement.objects.count() == 3  # the refused request changed nothing


def test_one_members_flood_never_throttles_another_member(alice, bob, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "submit": (2, 60), "read": (2, 60)}
    statuses = [submit(alice, alice.statement([md5(n)])).status_code for n in range(10)]
    assert statuses[:2] == [202, 202] and set(statuses[2:]) == {429}

    assert submit(bob, bob.statement([md5(1)])).status_code == 202
    assert bob.api.get("/api/v1/feed/").status_code == 200
    assert alice.api.get("/api/v1/feed/").status_code == 200  # another kind of request, counted apart


def test_the_count_is_per_token_and_starts_again_in_the_next_window(alice, settings, monkeypatch):
    from types import SimpleNamespace

    from rest_framework.test import APIClient

    from consortium import ratelimit
    from members.services import token_create

    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "read": (1, 60)}
    clock = [1_000_000.0]
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: clock[0]))
    assert alice.api.get("/api/v1/me/").status_code == 200
    assert alice.api.get("/api/v1/me/").status_code == 429

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(member=alice.member, scopes=['read']).plaintext}")
    assert other.get("/api/v1/me/").status_code == 200
    clock[0] += 60
    assert alice.api.get("/api/v1/me/").status_code == 200


def test_hashing_an_upload_counts_as_media_on_both_endpoints(alice, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "media": (1, 60)}
    text = SimpleUploadedFile("a.txt", b"not an image", content_type="text/plain")
    first = alice.api.post("/api/v1/hash/", {"file": text}, format="multipart")
    assert first.status_code != 429

    upload = alice.api.post("/api/v1/match/", {"file": SimpleUploadedFile("b.txt", b"x")}, format="multipart")
    assert upload.status_code == 429 and upload.json()["error"]["code"] == "throttled"
    queries = alice.api.post("/api/v1/match/", {"signals": [md5(1)]}, format="json")
    assert queries.status_code == 200  # matching signals is not media


def test_an_unreachable_cache_lets_requests_through_instead_of_failing_them(alice, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}

    assert submit(alice, alice.statement([md5(1)])).status_code == 202


COUNT_IN_ANOTHER_PROCESS = (
    "import django; django.setup(); from consortium.ratelimit import window_hit; "
    "print(window_hit('shared', period=3600)[0])"
)


def other_process_hit(tmp_path: Path, **env: str) -> int:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_", "CACHE_"))}
    environ.update({"CONSORTIUM_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "consortium.settings",
                    "INDEX_WARM_ON_START": "false", **env})
    done = subprocess.run([sys.executable, "-c", COUNT_IN_ANOTHER_PROCESS], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_a_cache_that_never_answers_holds_a_request_a_bounded_time_then_lets_it_through(tmp_path):
    """A Redis that takes connections and never answers (hung, or a black hole in the network): each
    attempt gives up after CACHE_SOCKET_TIMEOUT_SECONDS (redis-py's own default is 5 s an attempt)
    and the hit is let through uncounted."""
    import os

    script = ("import django; django.setup(); from django.core.cache import caches; "
              "from consortium.ratelimit import window_hit; print(window_hit('silent', period=60)[0]); "
              "pool = caches['default']._cache.get_client(write=True).connection_pool; "
              "print(pool.connection_kwargs['socket_timeout'], pool.connection_kwargs['socket_connect_timeout'])")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the connections; nothing ever reads or answers
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "CELERY_", "CACHE_"))}
        environ.update({"CONSORTIUM_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "consortium.settings",
                        "INDEX_WARM_ON_START": "false", "CACHE_SOCKET_TIMEOUT_SECONDS": "0.2",
                        "CACHE_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0"})
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environ, capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0.2", "0.2"]  # let through; each attempt bounded by the setting


def test_embedded_processes_share_their_counts_through_files_under_var(tmp_path, settings):
    from consortium.ratelimit import window_hit

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                   "LOCATION": str(tmp_path / "var" / "cache"), "TIMEOUT": None}}
    assert window_hit("shared", period=3600)[0] == 1

    assert other_process_hit(tmp_path) == 2  # its settings' own embedded cache: var/cache
    assert window_hit("shared", period=3600)[0] == 3


def test_the_file_cache_keeps_one_count_per_client_and_kind_not_one_per_window(tmp_path, settings):
    from consortium.ratelimit import window_hit

    location = tmp_path / "cache"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                                   "LOCATION": str(location), "TIMEOUT": None}}
    for window in range(0, 50, 7):  # with idle windows between hits
        window_hit("client", period=60, now=window * 60.0 + 1)
        window_hit("client", period=60, now=window * 60.0 + 2)

    assert len(list(location.glob("*.djcache"))) == 2  # the current count and the pointer to it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_production_counts_in_the_brokers_redis_shared_by_every_process(tmp_path, settings, redis_url):
    from consortium.ratelimit import window_hit

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": redis_url, "KEY_PREFIX": "consortium"}}
    assert window_hit("shared", period=3600)[0] == 1

    # Production settings with only the broker given: the cache is that Redis.
    assert other_process_hit(tmp_path, CELERY_BROKER_URL=redis_url) == 2
    assert window_hit("shared", period=3600)[0] == 3


def test_redis_counts_every_hit_across_a_dropped_connection_and_a_flushed_script_cache(settings, redis_url):
    """Each thread sends its hits on a connection of its own, by the script's digest: a connection
    Redis dropped (a restart) or a script cache it emptied still counts the hit, once, and the
    thread's connection works again afterwards."""
    import redis
    from django.core.cache import caches

    from consortium.ratelimit import lane, window_hit

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": redis_url, "KEY_PREFIX": "consortium"}}
    admin = redis.Redis.from_url(redis_url)
    assert [window_hit("lane", period=3600)[0] for _ in range(3)] == [1, 2, 3]
    admin.script_flush()
    assert window_hit("lane", period=3600)[0] == 4
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    assert window_hit("lane", period=3600)[0] == 5
    assert window_hit("lane", period=3600)[0] == 6
    # A hit interrupted after it was sent (a worker timeout) leaves no reply behind for the next one.
    connection = lane(caches["default"]._cache.get_client(write=True).connection_pool)
    read = connection.read_response
    connection.read_response = lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        window_hit("lane", period=3600)
    del connection.read_response
    assert connection.read_response == read
    assert window_hit("other-lane", period=3600)[0] == 1
    assert window_hit("lane", period=3600)[0] == 8
    # A reply that comes too late (a slow Redis): let through uncounted, never sent twice, since
    # Redis runs the script anyway.
    import redis.exceptions

    connection.read_response = lambda *args, **kwargs: (_ for _ in ()).throw(redis.exceptions.TimeoutError)
    assert window_hit("lane", period=3600)[0] == 0
    del connection.read_response
    assert window_hit("lane", period=3600)[0] == 10  # the late hit counted once (9), then this one
    # The count expires with its window, as before.
    key = next(iter(admin.scan_iter("*lane*")))
    assert 3590 < admin.ttl(key) <= 3601


def test_a_malformed_rate_or_cache_setting_refuses_to_start(tmp_path):
    import os

    for variable, value in (("THROTTLE_SUBMIT", "lots"), ("THROTTLE_READ", "10/fortnight"),
                            ("CACHE_URL", "memcached://127.0.0.1"), ("CACHE_SOCKET_TIMEOUT_SECONDS", "0"),
                            ("CACHE_SOCKET_TIMEOUT_SECONDS", "-1")):
        environ = {**os.environ, "CONSORTIUM_VAR_DIR": str(tmp_path / "var"), variable: value}
        done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0 and variable in done.stderr
