"""The bulk suite: ``store_many`` / ``retrieve_many``."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from selinon_like.errors import SerializationError
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase

__all__ = ["BulkContract"]


class BulkContract(ContractBase):
    """``store_many`` stores every item (record ids in order, the last of a repeated key wins,
    one bad result stores nothing) and ``retrieve_many`` returns what is there, by key. Every
    adapter takes it: the base class has defaults that call ``store``/``retrieve`` one by one;
    an adapter's own batched versions must behave the same. ``bulk_items`` sizes the large
    batch (enough to cross the batch size of the built-in adapters)."""

    bulk_items: ClassVar[int] = 1200

    def test_store_many_and_retrieve_many(self, storage: DataStorage, flow: str) -> None:
        items = [(flow, f"task{i % 3}", str(i), {"i": i}) for i in range(50)]
        ids = storage.store_many(items)
        assert len(ids) == 50 and all(isinstance(i, str) and i for i in ids)
        keys = [(f, t, i) for f, t, i, _ in items] + [(flow, "task0", "missing")]
        found = storage.retrieve_many(keys)
        assert found == {(f, t, i): r for f, t, i, r in items}
        assert storage.store_many([]) == []
        assert storage.retrieve_many([]) == {}

    def test_bulk_calls_agree_with_single_calls(self, storage: DataStorage, flow: str) -> None:
        storage.store_many([(flow, "t", "1", {"a": 1}), (flow, "t", "2", [2])])
        assert storage.retrieve(flow, "t", "1") == {"a": 1}
        assert storage.retrieve(flow, "t", "2") == [2]
        storage.store(flow, "t", "3", "three")
        assert storage.retrieve_many([(flow, "t", "3")]) == {(flow, "t", "3"): "three"}

    def test_a_large_batch_round_trips(self, storage: DataStorage, flow: str) -> None:
        items = [
            (flow, "task", str(i), {"i": i, "pad": "x" * (i % 50)}) for i in range(self.bulk_items)
        ]
        assert len(storage.store_many(items)) == len(items)
        keys = [(f, t, i) for f, t, i, _ in items]
        assert storage.retrieve_many(reversed(keys)) == {(f, t, i): r for f, t, i, r in items}

    def test_the_last_of_a_repeated_key_wins(self, storage: DataStorage, flow: str) -> None:
        ids = storage.store_many(
            [(flow, "t", "1", "first"), (flow, "t", "2", 2), (flow, "t", "1", "last")]
        )
        assert len(ids) == 3
        assert storage.retrieve(flow, "t", "1") == "last"
        assert storage.retrieve_many([(flow, "t", "1"), (flow, "t", "1")]) == {
            (flow, "t", "1"): "last"
        }

    def test_store_many_with_a_bad_result_stores_nothing(
        self, storage: DataStorage, flow: str
    ) -> None:
        items = [(flow, "t", "1", 1), (flow, "t", "2", {1, 2}), (flow, "t", "3", 3)]
        with pytest.raises(SerializationError):
            storage.store_many(items)
        assert storage.retrieve_many([(flow, "t", "1"), (flow, "t", "3")]) == {}

    @pytest.mark.parametrize(
        "bad",
        [("f", "t", "1"), ["f", "t", "1", 1], ("f", None, "1", 1), ("f", "t", "", 1)],
        ids=["three-items", "list", "none-part", "empty-id"],
    )
    def test_store_many_refuses_a_bad_item_before_storing_any(
        self, storage: DataStorage, flow: str, bad: Any
    ) -> None:
        with pytest.raises((TypeError, ValueError)):
            storage.store_many([(flow, "t", "good", 1), bad])
        assert storage.retrieve_many([(flow, "t", "good")]) == {}

    def test_retrieve_many_refuses_a_bad_key(self, storage: DataStorage, flow: str) -> None:
        with pytest.raises(TypeError):
            storage.retrieve_many([(flow, "t", "1"), (flow, "t", 1)])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            storage.retrieve_many([(flow, "t")])  # type: ignore[list-item]
