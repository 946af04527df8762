"""Shared fixtures: a fixed cast of members (alice and bob are platforms, homeoffice is the
government member, charlie is outside every sharing group), each with a token and a signing key."""

from __future__ import annotations

from typing import Callable

import pytest
from django.test.utils import override_settings
from rest_framework.test import APIClient

from consortium import celery_app
from hashes.services.pipeline import drain
from members.models import SharingGroup
from tests.actors import Actor, make_actor


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every transactional test runs with serialized rollback, whether it asks for it or not.

    A transactional test ends by flushing the database. With serialized rollback the flush leaves it
    empty, and the next such test starts by loading the rows the migrations made (content types,
    permissions, the admin roles) under the primary keys they had then. Without, the test starts
    from whatever the last one left (nothing, after one with), and its flush has Django's
    post_migrate recreate content types and permissions under new keys, sequences running on: the
    next test with serialized rollback then fails to load its rows, each (app_label, model) being
    there already under another key (IntegrityError on django_content_type), and so does every one
    after it. pytest-django runs the transactional tests after all others, which therefore start
    from the migrated database as it was."""
    from pytest_django.fixtures import validate_django_db

    for item in items:
        marker = item.get_closest_marker("django_db")
        transaction, reset_sequences, databases, serialized_rollback, available_apps = (
            validate_django_db(marker) if marker else (False, False, None, False, None))
        fixtures = getattr(item, "fixturenames", ())
        transactional = transaction or reset_sequences or "transactional_db" in fixtures or "live_server" in fixtures
        if transactional and not (serialized_rollback or "django_db_serialized_rollback" in fixtures):
            item.add_marker(pytest.mark.django_db(
                transaction=True, reset_sequences=reset_sequences, databases=databases,
                serialized_rollback=True, available_apps=available_apps), append=False)


@pytest.fixture(autouse=True)
def celery_eager():
    """Unit tests drive the pipeline in-process (see `pipeline`); end-to-end tests run real workers."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture(scope="session", autouse=True)
def server_key_file(django_db_setup) -> None:
    """The server's signing key where the settings look for it. Embedded mode creates it on first
    use; production mode (CI's second run, or a run against PostgreSQL alone) refuses to, and a run
    must not depend on an earlier one having made it."""
    from consortium.server_keys import ensure_key_file

    with override_settings(CONSORTIUM_SIGNING_KEY_CREATE=True):
        ensure_key_file()


@pytest.fixture(autouse=True)
def plain_http(settings):
    """The test client speaks plain http, which production mode would redirect to https (CI runs the
    suite in production mode too); that redirect is tested in tests/test_deploy_settings.py."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(scope="session")
def plain_http_middleware() -> override_settings:
    """Plain http while the live server builds its middleware (see `live_server`)."""
    plain = override_settings(SECURE_SSL_REDIRECT=False)
    plain.enable()
    return plain


@pytest.fixture(scope="session")
def live_server(plain_http_middleware, live_server):
    """pytest-django's live server (tests/browser, tests/pytx, tests/client), started with
    SECURE_SSL_REDIRECT off. It builds its middleware once, when it starts, and SecurityMiddleware
    reads that setting then: in production mode (CI's second run) it would redirect every client to
    https, which the live server does not speak. The per-test `plain_http` fixture comes too late for
    it. Started, the setting goes back."""
    plain_http_middleware.disable()
    return live_server


@pytest.fixture(autouse=True)
def fresh_rate_counts(settings, request):
    """Each test counts requests (throttles, quotas' fast lane) from zero, in a cache of its own:
    member and token ids repeat from one test database to the next. tests/test_throttling.py tests
    the shared caches themselves."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": request.node.nodeid}}


@pytest.fixture(autouse=True)
def fresh_match_indexes(settings, tmp_path):
    """Each test has its own database, so this process's match indexes start from nothing, and
    their snapshot file (hashes/matching.py) lives in the test's own directory."""
    from hashes.matching import indexes

    settings.INDEX_SNAPSHOT_DIR = tmp_path / "index"
    indexes.reset()
    yield
    indexes.reset()


@pytest.fixture
def actor_factory(db) -> Callable[..., Actor]:
    return make_actor


@pytest.fixture
def alice(db) -> Actor:
    return make_actor("alice")


@pytest.fixture
def bob(db) -> Actor:
    return make_actor("bob")


@pytest.fixture
def charlie(db) -> Actor:
    return make_actor("charlie")


@pytest.fixture
def homeoffice(db) -> Actor:
    return make_actor("homeoffice", kind="government")


@pytest.fixture
def trusted_group(alice: Actor, bob: Actor) -> SharingGroup:
    """alice and bob share some statements only with each other."""
    group = SharingGroup.objects.create(slug="trusted", name="Trusted")
    group.members.set([alice.member, bob.member])
    return group


@pytest.fixture
def pipeline() -> Callable[[], None]:
    """Run verification and publishing in this process until nothing is left."""
    return drain


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()
