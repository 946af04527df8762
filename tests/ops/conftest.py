from __future__ import annotations

from collections.abc import Iterator

import pytest
from consortium_client.webhooks import load_jwks

from consortium.server_keys import server_jwks
from distribution import rendering
from tests.distribution.receiver import Receiver


@pytest.fixture
def receiver(db, settings) -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 over http, whichever database the suite runs on."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_REQUIRE_HTTPS = False
    rendering.clear_caches()
    live = Receiver(public_keys=load_jwks(server_jwks())).start()
    try:
        yield live
    finally:
        live.close()


@pytest.fixture
def committed_db(transactional_db, django_db_serialized_rollback) -> None:
    """Committed rows, for the checks and scrapes that read on threads (or processes) of their own;
    restored afterwards as every transactional test of the suite restores them."""
