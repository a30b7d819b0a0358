"""The delete suite: ``delete`` and ``delete_many``."""

from __future__ import annotations

import pytest

from selinon_like.errors import ResultNotFound
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase, failure, offers, require

__all__ = ["DeleteContract"]


class DeleteContract(ContractBase):
    """``delete`` removes one result (``ResultNotFound`` when there is none) and nothing else;
    ``delete_many`` removes many and counts them. Runs when the adapter offers ``delete``
    (``delete_many`` then has a default); skips naming it otherwise."""

    def test_delete_removes_the_result(self, storage: DataStorage, flow: str) -> None:
        require(storage, "delete")
        storage.store(flow, "task", "id", 1)
        storage.store(flow, "task", "other", 2)
        assert storage.delete(flow, "task", "id") is None
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "id")
        assert storage.retrieve(flow, "task", "other") == 2
        with pytest.raises(ResultNotFound):
            storage.delete(flow, "task", "id")

    def test_deleting_a_missing_result_raises_result_not_found(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "delete")
        with pytest.raises(ResultNotFound) as info:
            storage.delete(flow, "task", "never")
        assert isinstance(info.value, LookupError)

    def test_a_result_can_be_stored_again_after_delete(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "delete")
        storage.store(flow, "task", "id", {"first": 1})
        storage.delete(flow, "task", "id")
        storage.store(flow, "task", "id", {"second": 2})
        assert storage.retrieve(flow, "task", "id") == {"second": 2}

    def test_delete_leaves_the_error_record_and_the_listing_right(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "delete")
        storage.store(flow, "task", "id", 1)
        storage.store(flow, "task", "kept", 2)
        if offers(storage, "store_error", "retrieve_error"):
            storage.store_error(None, flow, "task", "id", failure())
        storage.delete(flow, "task", "id")
        if offers(storage, "store_error", "retrieve_error"):
            assert storage.retrieve_error(flow, "task", "id")["message"]
        if offers(storage, "iter_keys"):
            assert list(storage.iter_keys(flow)) == [(flow, "task", "kept")]

    def test_non_str_key_parts_are_type_errors(self, storage: DataStorage, flow: str) -> None:
        require(storage, "delete")
        storage.store(flow, "task", "id", 1)
        with pytest.raises(TypeError):
            storage.delete(flow, None, "id")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            storage.delete_many([(flow, "task", 1)])  # type: ignore[list-item]
        assert storage.retrieve(flow, "task", "id") == 1

    def test_delete_many_removes_and_counts(self, storage: DataStorage, flow: str) -> None:
        require(storage, "delete_many")
        storage.store_many([(flow, "task", str(i), i) for i in range(10)])
        doomed = [(flow, "task", str(i)) for i in range(0, 10, 2)]
        assert storage.delete_many([*doomed, (flow, "task", "missing")]) == 5
        assert storage.retrieve_many([(flow, "task", str(i)) for i in range(10)]) == {
            (flow, "task", str(i)): i for i in range(1, 10, 2)
        }
        assert storage.delete_many(doomed) == 0
        assert storage.delete_many([]) == 0
