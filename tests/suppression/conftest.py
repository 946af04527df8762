"""The suppression list in tests: entries listed the way an operator lists them (the service the
command and the admin call), as (type, value) pairs."""

from __future__ import annotations

from typing import Callable

import pytest

from suppression.entries import entry_row
from suppression.services import AddResult, benign_entries_add


@pytest.fixture
def listing(db) -> Callable[..., AddResult]:
    def add(*entries: tuple[str, str], actor=None, reason: str = "known benign") -> AddResult:
        return benign_entries_add(entries=[entry_row(t, v, reason) for t, v in entries], actor=actor)

    return add
