"""Every transactional test starts from the rows the migrations made, under the keys they had then,
whether it asks for serialized rollback or not (the rule in the root conftest). These run in file
order, as pytest-django keeps it among transactional tests: the one without serialized rollback
comes after one with, whose flush left the database empty, and before another with, which loads
those rows again by key."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType


def assert_migrated_rows() -> None:
    auditor = Group.objects.get(name="Auditor")  # audit migration 0003, extended by media 0002
    assert auditor.permissions.filter(content_type__app_label="media", codename="view_mediajob").exists()
    assert ContentType.objects.filter(app_label="admin", model="logentry").exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_transactional_test_with_serialized_rollback_starts_from_the_migrated_rows():
    assert_migrated_rows()


def test_one_without_starts_from_them_too(transactional_db):
    assert_migrated_rows()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_and_the_next_one_with_serialized_rollback_loads_them_again():
    assert_migrated_rows()
