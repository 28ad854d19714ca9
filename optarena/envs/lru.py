"""A bounded mapping: the suite's caches (outcomes, schedules, legal actions, tool results)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"an LRU cache needs room for at least one entry, not {size}")
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V | None:
        """Store ``value``; returns the value it pushed out, if one was."""
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self.size:
            return self._data.popitem(last=False)[1]
        return None

    def __len__(self) -> int:
        return len(self._data)
