"""Serializer fields for request bodies."""

from __future__ import annotations

from collections.abc import Mapping, Sized
from typing import Any

from rest_framework import serializers


class BoundedListField(serializers.ListField):
    """A list refused as soon as it is longer than `max_length`. DRF's ListField checks the length
    only after validating every item, so a request of a million items would be validated item by
    item (seconds of a worker) before being refused."""

    def to_internal_value(self, data: Any) -> list[Any]:
        too_long = (self.max_length is not None and isinstance(data, Sized)
                    and not isinstance(data, (str, Mapping)) and len(data) > self.max_length)
        if too_long:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


BIGINT_MAX = 2**63 - 1


class PositionField(serializers.IntegerField):
    """A seq, an offset or an id in a request: a whole number that PostgreSQL's bigint holds (from
    `min_value`, 0 unless given, to 2**63 - 1). A larger one is a validation_error, not a database
    error: an out-of-range value reached the database and answered 500."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)
