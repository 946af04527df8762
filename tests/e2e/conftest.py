from __future__ import annotations

import pytest

from .stack import Stack


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
