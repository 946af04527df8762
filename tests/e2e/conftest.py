from __future__ import annotations

import os
from typing import Iterator

import pytest

from . import pgcluster
from .pgcluster import PrivateCluster
from .stack import Stack, free_port


@pytest.fixture
def stack(tmp_path, transactional_db, django_db_serialized_rollback):
    """gunicorn, a Celery worker and beat from deploy/Procfile, on the test database. Serialized
    rollback restores what migrations seeded (the label taxonomy) after earlier transactional tests."""
    (tmp_path / "var").mkdir()
    live = Stack(workdir=tmp_path)
    live.purge_broker()
    try:
        yield live
    finally:
        live.stop()
        for name in ("web", "worker", "beat", "worker2", "media"):
            log = live.logs(name)
            if log:
                print(f"----- {name} log (tail) -----\n{log}")


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of this run's own, which fault tests may restart; dropped when the run
    ends, however it ends. Where none can be made the tests skip, except in CI (CI=true, or
    CONSORTIUM_REQUIRE_PG_FAULTS=1, which .ci/run sets), where that is a failure."""
    reason = pgcluster.unavailable()
    if reason:
        if os.environ.get("CI", "").lower() == "true" or os.environ.get("CONSORTIUM_REQUIRE_PG_FAULTS") == "1":
            pytest.fail(f"{reason}, and CI (CI=true or CONSORTIUM_REQUIRE_PG_FAULTS=1) requires the fault tests",
                        pytrace=False)
        pytest.skip(f"no private PostgreSQL cluster for the fault tests: {reason}")
    cluster = PrivateCluster.create(port=free_port())
    try:
        yield cluster
    finally:
        cluster.drop()
