"""Fixtures for the members tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def admin_client(client, django_user_model):
    """A superuser logged in with force_login; it has no password, as hashing one only costs time."""
    client.force_login(django_user_model.objects.create_superuser("admin", "admin@example.org", None))
    return client
