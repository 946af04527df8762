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
