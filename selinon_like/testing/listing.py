"""The listing suite: ``iter_keys``, ``iter_error_keys`` and ``store_error_record`` — what
``selinon-like copy`` and ``ls`` stand on."""

from __future__ import annotations

from typing import Any

import pytest

from selinon_like.errors import ResultNotFound
from selinon_like.keys import Key
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase, failure, offers, require
from selinon_like.testing.data import AWKWARD_KEYS, LONG_KEYS

__all__ = ["ListingContract"]


class ListingContract(ContractBase):
    """Keys listed by flow, each exactly as stored, long ones too; error keys apart from
    result keys; error records stored verbatim. Each test runs when the adapter offers the
    methods it uses (``iter_keys``; ``iter_error_keys`` and ``store_error``;
    ``store_error_record`` and ``retrieve_error``) and skips naming the missing one
    otherwise."""

    # -- result keys ------------------------------------------------------------------------

    def test_iter_keys_lists_results_by_flow(self, storage: DataStorage, flow: str) -> None:
        require(storage, "iter_keys")
        other = flow + "-other"
        storage.store(flow, "a", "1", 1)
        storage.store(flow, "b", "2", 2)
        storage.store(other, "a", "1", 3)
        assert sorted(storage.iter_keys(flow)) == [(flow, "a", "1"), (flow, "b", "2")]
        everything = set(storage.iter_keys())
        assert {(flow, "a", "1"), (flow, "b", "2"), (other, "a", "1")} <= everything

    def test_a_flow_that_prefixes_another_lists_only_its_own(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "iter_keys")
        storage.store(flow, "t", "1", 1)
        storage.store(flow + "x", "t", "1", 1)
        storage.store(flow[:-1], "t", "1", 1)
        assert list(storage.iter_keys(flow)) == [(flow, "t", "1")]

    @pytest.mark.parametrize("key", AWKWARD_KEYS, ids=repr)
    def test_awkward_keys_are_listed_exactly(
        self, storage: DataStorage, flow: str, key: Key
    ) -> None:
        require(storage, "iter_keys")
        stored = (flow + key[0], key[1], key[2])
        storage.store(*stored, 1)
        assert list(storage.iter_keys(stored[0])) == [stored]

    @pytest.mark.parametrize("key", LONG_KEYS, ids=["long-id", "long-all", "long-cjk-flow"])
    def test_keys_of_any_length_are_stored_listed_and_deleted(
        self, storage: DataStorage, flow: str, key: Key
    ) -> None:
        """SPEC: any ``str`` triple, whatever its length (a service's name limits included),
        and ``iter_keys`` yields the exact triple."""
        require(storage, "iter_keys")
        key = (flow + key[0], key[1], key[2])
        storage.store(*key, {"v": 1})
        assert storage.retrieve(*key) == {"v": 1}
        assert list(storage.iter_keys(key[0])) == [key]
        assert list(storage.iter_keys(key[0] + "x")) == []
        if offers(storage, "store_error", "retrieve_error", "iter_error_keys"):
            storage.store_error(None, *key, failure())
            assert storage.retrieve_error(*key)["task_id"] == key[2]
            assert list(storage.iter_error_keys(key[0])) == [key]
        missing = (key[0], key[1], "missing")
        assert storage.retrieve_many([key, missing]) == {key: {"v": 1}}
        storage.store_many([(*key, 2), (*key, 3)])
        assert storage.retrieve(*key) == 3
        if offers(storage, "store_stream", "retrieve_stream"):
            storage.store_stream(*key, [b"raw ", b"bytes"])
            assert b"".join(storage.retrieve_stream(*key)) == b"raw bytes"
        if offers(storage, "delete_many"):
            assert storage.delete_many([key, key]) == 1
            with pytest.raises(ResultNotFound):
                storage.retrieve(*key)
            assert list(storage.iter_keys(key[0])) == []

    def test_long_keys_one_character_apart_never_meet(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "iter_keys")
        keys = [(flow, "t", "x" * 2000 + end) for end in "ab"]
        keys.append((flow, "t" * 2000 + "a", "x"))
        keys.append((flow + "f" * 2000, "t", "x"))
        storage.store_many([(*key, n) for n, key in enumerate(keys)])
        assert storage.retrieve_many(keys) == {key: n for n, key in enumerate(keys)}
        assert sorted(storage.iter_keys(flow)) == sorted(keys[:3])
        assert list(storage.iter_keys(keys[3][0])) == [keys[3]]

    def test_refused_keys_leave_nothing_listed(self, storage: DataStorage, flow: str) -> None:
        require(storage, "iter_keys")
        for bad in (None, 1, b"bytes", {"$ne": None}):
            with pytest.raises(TypeError):
                storage.store(flow, bad, "id", "x")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                storage.store_many([(flow, "task", bad, "x")])  # type: ignore[list-item]
        with pytest.raises(ValueError):
            storage.store(flow, "task", "", "x")
        assert list(storage.iter_keys(flow)) == []

    def test_iter_keys_refuses_a_flow_name_that_is_not_a_str(self, storage: DataStorage) -> None:
        require(storage, "iter_keys")
        with pytest.raises(TypeError):
            storage.iter_keys({"$ne": None})  # type: ignore[arg-type]

    def test_error_records_are_not_listed_as_results(self, storage: DataStorage, flow: str) -> None:
        require(storage, "iter_keys", "store_error")
        storage.store(flow, "task", "both", 1)
        storage.store_error(None, flow, "task", "both", failure())
        storage.store_error(None, flow, "task", "only-error", failure())
        assert list(storage.iter_keys(flow)) == [(flow, "task", "both")]

    # -- error keys -------------------------------------------------------------------------

    def test_iter_error_keys_lists_error_records_by_flow(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "iter_error_keys", "store_error")
        other = flow + "-other"
        storage.store(flow, "a", "result-only", 1)
        storage.store(flow, "a", "both", 2)
        storage.store_error(None, flow, "a", "both", failure())
        storage.store_error(None, flow, "b", "error-only", failure())
        storage.store_error(None, other, "a", "1", failure())
        assert sorted(storage.iter_error_keys(flow)) == [
            (flow, "a", "both"),
            (flow, "b", "error-only"),
        ]
        everything = set(storage.iter_error_keys())
        assert {(flow, "a", "both"), (flow, "b", "error-only"), (other, "a", "1")} <= everything
        assert (flow, "a", "result-only") not in everything
        with pytest.raises(TypeError):
            storage.iter_error_keys({"$ne": None})  # type: ignore[arg-type]

    # -- error records stored verbatim ------------------------------------------------------

    def test_store_error_record_round_trips_exactly(self, storage: DataStorage, flow: str) -> None:
        require(storage, "store_error_record", "store_error", "retrieve_error")
        storage.store_error({"arg": [1, "ü"]}, flow, "task", "id", failure())
        record = storage.retrieve_error(flow, "task", "id")
        copy = {**record, "flow_name": flow + "-copy"}
        record_id = storage.store_error_record(copy)  # type: ignore[arg-type]
        assert isinstance(record_id, str) and record_id
        back = storage.retrieve_error(flow + "-copy", "task", "id")
        assert back == copy
        assert back["time"] == record["time"] and back["traceback"] == record["traceback"]
        assert storage.retrieve_error(flow, "task", "id") == record
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow + "-copy", "task", "id")
        # A stored record replaces the previous one under its key, as store_error does.
        later = {**copy, "message": "replaced", "time": "2001-02-03T04:05:06+00:00"}
        storage.store_error_record(later)  # type: ignore[arg-type]
        assert storage.retrieve_error(flow + "-copy", "task", "id") == later

    @pytest.mark.parametrize(
        ("bad", "error"),
        [
            (None, TypeError),
            ([("flow_name", "f")], TypeError),
            ({"flow_name": "f", "task_name": "t", "task_id": "i"}, ValueError),
            ("record", TypeError),
        ],
        ids=["none", "list", "missing-fields", "str"],
    )
    def test_store_error_record_refuses_what_is_not_a_record(
        self, storage: DataStorage, bad: Any, error: type[Exception]
    ) -> None:
        require(storage, "store_error_record")
        with pytest.raises(error):
            storage.store_error_record(bad)

    @pytest.mark.parametrize(
        ("field", "value", "error"),
        [("flow_name", None, TypeError), ("task_id", 1, TypeError), ("task_id", "", ValueError)],
    )
    def test_store_error_record_checks_the_key_before_any_io(
        self, storage: DataStorage, flow: str, field: str, value: Any, error: type[Exception]
    ) -> None:
        require(storage, "store_error_record", "store_error", "retrieve_error", "iter_error_keys")
        storage.store_error(None, flow, "task", "id", failure())
        record = {**storage.retrieve_error(flow, "task", "id"), field: value}
        with pytest.raises(error):
            storage.store_error_record(record)  # type: ignore[arg-type]
        assert list(storage.iter_error_keys(flow)) == [(flow, "task", "id")]
