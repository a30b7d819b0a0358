"""The public contract test kit (SPEC section 7).

Prove that an adapter behaves like ``InMemoryStorage`` by subclassing :class:`StorageContract`
in a test module and supplying one fixture, ``storage``, that yields a connected instance::

    import pytest
    from selinon_like.testing import StorageContract
    from myapp.storages import MyStorage

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self):
            instance = MyStorage(host="localhost")
            instance.connect()
            yield instance
            instance.disconnect()

Every test works under a flow name of its own, so one instance (even a shared server) can serve
the whole class. Class attributes switch off what an adapter does not offer:
``supports_errors`` (``store_error``/``retrieve_error``), ``supports_delete``,
``supports_iter_keys``, ``supports_error_listing`` (``iter_error_keys``/``store_error_record``);
``concurrency_threads`` × ``concurrency_per_thread`` sizes the
concurrency test; ``large_result_bytes`` the large-result test.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from selinon_like.errors import ResultNotFound, SerializationError
from selinon_like.serializers import PICKLE
from selinon_like.storage import DataStorage

__all__ = ["AWKWARD_KEYS", "AWKWARD_RESULTS", "COLLIDING_KEYS", "StorageContract"]

AWKWARD_RESULTS: list[Any] = [
    {"a": 1, "b": [1, 2, {"c": None}]},
    [],
    {},
    "",
    "žluťoučký kůň 🐎 \u0000 nul",
    0,
    -1,
    2**200,
    -(2**70),
    1.5,
    1e-300,
    True,
    False,
    None,
    {"$set": {"a.b": 1}, "$where": "1", "": "empty key", "a.b.c": [{"$in": [1]}]},
    {"nested": [[[[[[[[[[["deep"]]]]]]]]]]]},
    "x" * 100_000,
]

AWKWARD_KEYS: list[tuple[str, str, str]] = [
    ("flow", "task", "id"),
    ("", "", "id"),
    ("flów 🐍", "tåsk ü", "ïd 中文"),
    ("with space", "with\ttab", "with\nnewline"),
    ("a/b", "c/d", "e/f"),
    ("..", "..", ".."),
    (".", "task", "../../etc/passwd"),
    ("a:b", "c:d", "e:f"),
    ("$ne", "$gt", "$where"),
    ("'; DROP TABLE results; --", "task", "1' OR '1'='1"),
    ("%2F", "%", "%%"),
    ("UPPER", "Upper", "upper"),
    ("f", "t", "x" * 500),
    ("\\", "\\\\", "back\\slash"),
    ("*", "?", "[a-z]"),
]

# Pairs of keys that a naive encoding would merge.
COLLIDING_KEYS: list[tuple[tuple[str, str, str], tuple[str, str, str]]] = [
    (("a:b", "c", "d"), ("a", "b:c", "d")),
    (("a/b", "c", "d"), ("a", "b/c", "d")),
    (("a", "b", "c/d"), ("a", "b/c", "d")),
    (("ab", "", "c"), ("a", "b", "c")),
    (("A", "b", "c"), ("a", "b", "c")),
    (("a", "b", "c"), ("a", "b", "C")),
    (("a b", "c", "d"), ("a_b", "c", "d")),
    (("a%20b", "c", "d"), ("a b", "c", "d")),
    (("_a", "b", "c"), ("a", "b", "c")),
    (("1:a", "b", "c"), ("1", "a", "b/c")),
]


class StorageContract:
    """The behaviour every adapter shares. Subclass it and provide a ``storage`` fixture."""

    supports_errors: bool = True
    supports_delete: bool = True
    supports_iter_keys: bool = True
    supports_error_listing: bool = True
    concurrency_threads: int = 8
    concurrency_per_thread: int = 100
    large_result_bytes: int = 1_000_000

    @pytest.fixture
    def flow(self) -> str:
        """A flow name no other test uses."""
        return f"contract-{uuid.uuid4().hex}"

    # -- connection -------------------------------------------------------------------------

    def test_is_a_connected_data_storage(self, storage: DataStorage) -> None:
        assert isinstance(storage, DataStorage)
        assert storage.is_connected() is True

    def test_connect_is_idempotent(self, storage: DataStorage, flow: str) -> None:
        storage.connect()
        storage.store(flow, "t", "1", {"still": "works"})
        assert storage.retrieve(flow, "t", "1") == {"still": "works"}

    def test_ping_is_a_real_round_trip(self, storage: DataStorage) -> None:
        assert storage.ping() is True

    # -- results ----------------------------------------------------------------------------

    @pytest.mark.parametrize("result", AWKWARD_RESULTS, ids=lambda r: type(r).__name__)
    def test_results_round_trip(self, storage: DataStorage, flow: str, result: Any) -> None:
        storage.store(flow, "task", "id", result)
        back = storage.retrieve(flow, "task", "id")
        assert back == result
        assert type(back) is type(result)

    def test_tuples_come_back_as_lists(self, storage: DataStorage, flow: str) -> None:
        storage.store(flow, "task", "id", {"t": (1, (2, 3))})
        assert storage.retrieve(flow, "task", "id") == {"t": [1, [2, 3]]}

    def test_large_result_round_trips(self, storage: DataStorage, flow: str) -> None:
        result = {"blob": "ab" * (self.large_result_bytes // 2), "n": list(range(1000))}
        storage.store(flow, "task", "big", result)
        assert storage.retrieve(flow, "task", "big") == result

    def test_store_returns_a_record_id(self, storage: DataStorage, flow: str) -> None:
        record_id = storage.store(flow, "task", "id", 1)
        assert isinstance(record_id, str) and record_id

    def test_store_replaces_the_previous_result(self, storage: DataStorage, flow: str) -> None:
        storage.store(flow, "task", "id", {"try": 1})
        storage.store(flow, "task", "id", {"try": 2})
        assert storage.retrieve(flow, "task", "id") == {"try": 2}

    def test_mutating_after_store_changes_nothing(self, storage: DataStorage, flow: str) -> None:
        result: dict[str, Any] = {"items": [1, 2]}
        storage.store(flow, "task", "id", result)
        result["items"].append(3)
        back = storage.retrieve(flow, "task", "id")
        assert back == {"items": [1, 2]}
        back["items"].append(4)
        assert storage.retrieve(flow, "task", "id") == {"items": [1, 2]}

    def test_missing_result_raises_result_not_found(self, storage: DataStorage, flow: str) -> None:
        with pytest.raises(ResultNotFound) as info:
            storage.retrieve(flow, "task", "nope")
        assert isinstance(info.value, LookupError)

    # -- keys -------------------------------------------------------------------------------

    @pytest.mark.parametrize("key", AWKWARD_KEYS, ids=repr)
    def test_awkward_keys_round_trip(
        self, storage: DataStorage, flow: str, key: tuple[str, str, str]
    ) -> None:
        flow_name, task_name, task_id = flow + key[0], key[1], key[2]
        storage.store(flow_name, task_name, task_id, {"key": list(key)})
        assert storage.retrieve(flow_name, task_name, task_id) == {"key": list(key)}
        if self.supports_iter_keys:
            assert (flow_name, task_name, task_id) in set(storage.iter_keys(flow_name))

    @pytest.mark.parametrize("pair", COLLIDING_KEYS, ids=repr)
    def test_distinct_keys_never_collide(
        self,
        storage: DataStorage,
        flow: str,
        pair: tuple[tuple[str, str, str], tuple[str, str, str]],
    ) -> None:
        first, second = ((flow + k[0], k[1], k[2]) for k in pair)
        storage.store(*first, "first")
        storage.store(*second, "second")
        assert storage.retrieve(*first) == "first"
        assert storage.retrieve(*second) == "second"

    @pytest.mark.parametrize("position", [0, 1, 2])
    @pytest.mark.parametrize("bad", [None, 1, b"bytes", {"$ne": None}, ["a"]], ids=repr)
    def test_non_str_key_parts_are_type_errors(
        self, storage: DataStorage, flow: str, position: int, bad: Any
    ) -> None:
        key: list[Any] = [flow, "task", "id"]
        key[position] = bad
        with pytest.raises(TypeError):
            storage.store(key[0], key[1], key[2], "x")
        with pytest.raises(TypeError):
            storage.retrieve(key[0], key[1], key[2])
        if self.supports_iter_keys:
            assert list(storage.iter_keys(flow)) == []

    def test_empty_task_id_is_refused(self, storage: DataStorage, flow: str) -> None:
        with pytest.raises(ValueError):
            storage.store(flow, "task", "", "x")
        with pytest.raises(ValueError):
            storage.retrieve(flow, "task", "")

    def test_keyword_arguments_work(self, storage: DataStorage, flow: str) -> None:
        storage.store(flow_name=flow, task_name="t", task_id="kw", result=[1])
        assert storage.retrieve(flow_name=flow, task_name="t", task_id="kw") == [1]

    # -- serializer -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "bad",
        [object(), {1, 2}, b"bytes", {1: "int key"}, float("nan"), {"a": [{"b": {2}}]}],
        ids=["object", "set", "bytes", "int-key", "nan", "nested-set"],
    )
    def test_unserializable_result_stores_nothing(
        self, storage: DataStorage, flow: str, bad: Any
    ) -> None:
        storage.store(flow, "task", "kept", {"old": True})
        with pytest.raises(SerializationError) as info:
            storage.store(flow, "task", "kept", bad)
        assert storage.retrieve(flow, "task", "kept") == {"old": True}
        with pytest.raises(SerializationError):
            storage.store(flow, "task", "never", bad)
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "never")
        assert "serialize" in str(info.value)

    def test_pickle_serializer_round_trips_python_objects(
        self, storage: DataStorage, flow: str
    ) -> None:
        previous = storage.serializer
        storage.serializer = PICKLE
        try:
            storage.store(flow, "task", "p", {"set": {1, 2}, "bytes": b"\x00\xff", 1: (1, 2)})
            back = storage.retrieve(flow, "task", "p")
        finally:
            storage.serializer = previous
        assert back == {"set": {1, 2}, "bytes": b"\x00\xff", 1: (1, 2)}

    # -- delete -----------------------------------------------------------------------------

    def test_delete_removes_the_result(self, storage: DataStorage, flow: str) -> None:
        if not self.supports_delete:
            pytest.skip("this adapter does not implement delete")
        storage.store(flow, "task", "id", 1)
        storage.store(flow, "task", "other", 2)
        storage.delete(flow, "task", "id")
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "id")
        assert storage.retrieve(flow, "task", "other") == 2
        with pytest.raises(ResultNotFound):
            storage.delete(flow, "task", "id")

    # -- errors -----------------------------------------------------------------------------

    def _failure(self) -> tuple[Any, Any, Any]:
        try:
            raise ValueError("task blew up: disk full")
        except ValueError:
            return sys.exc_info()

    def test_store_error_keeps_a_full_record(self, storage: DataStorage, flow: str) -> None:
        if not self.supports_errors:
            pytest.skip("this adapter does not store errors")
        record_id = storage.store_error({"arg": 1}, flow, "task", "id", self._failure())
        assert isinstance(record_id, str) and record_id
        record = storage.retrieve_error(flow, "task", "id")
        assert record["exception_type"] == "builtins.ValueError"
        assert record["message"] == "task blew up: disk full"
        assert "Traceback" in record["traceback"] and "_failure" in record["traceback"]
        assert record["node_args"] == {"arg": 1}
        assert record["time"]
        assert (record["flow_name"], record["task_name"], record["task_id"]) == (flow, "task", "id")

    def test_errors_never_shadow_results(self, storage: DataStorage, flow: str) -> None:
        if not self.supports_errors:
            pytest.skip("this adapter does not store errors")
        storage.store(flow, "task", "id", {"result": 1})
        storage.store_error(None, flow, "task", "id", self._failure())
        assert storage.retrieve(flow, "task", "id") == {"result": 1}
        storage.store_error(None, flow, "task", "only-error", self._failure())
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "only-error")
        if self.supports_iter_keys:
            assert (flow, "task", "only-error") not in set(storage.iter_keys(flow))

    def test_store_error_takes_an_exception_and_odd_node_args(
        self, storage: DataStorage, flow: str
    ) -> None:
        if not self.supports_errors:
            pytest.skip("this adapter does not store errors")
        storage.store_error({"obj": object()}, flow, "task", "id", KeyError("k"))
        storage.store_error([1], flow, "task", "id", RuntimeError("second"))
        record = storage.retrieve_error(flow, "task", "id")
        assert record["exception_type"] == "builtins.RuntimeError"
        assert record["message"] == "second"
        assert record["node_args"] == [1]

    def test_missing_error_raises_result_not_found(self, storage: DataStorage, flow: str) -> None:
        if not self.supports_errors:
            pytest.skip("this adapter does not store errors")
        storage.store(flow, "task", "id", 1)
        with pytest.raises(ResultNotFound):
            storage.retrieve_error(flow, "task", "id")

    def test_iter_error_keys_lists_error_records_by_flow(
        self, storage: DataStorage, flow: str
    ) -> None:
        if not (self.supports_errors and self.supports_error_listing):
            pytest.skip("this adapter does not list error records")
        other = flow + "-other"
        storage.store(flow, "a", "result-only", 1)
        storage.store(flow, "a", "both", 2)
        storage.store_error(None, flow, "a", "both", self._failure())
        storage.store_error(None, flow, "b", "error-only", self._failure())
        storage.store_error(None, other, "a", "1", self._failure())
        assert sorted(storage.iter_error_keys(flow)) == [
            (flow, "a", "both"),
            (flow, "b", "error-only"),
        ]
        everything = set(storage.iter_error_keys())
        assert {(flow, "a", "both"), (flow, "b", "error-only"), (other, "a", "1")} <= everything
        assert (flow, "a", "result-only") not in everything
        if self.supports_iter_keys:
            assert set(storage.iter_keys(flow)) == {(flow, "a", "result-only"), (flow, "a", "both")}
        with pytest.raises(TypeError):
            storage.iter_error_keys({"$ne": None})  # type: ignore[arg-type]

    def test_store_error_record_round_trips_exactly(self, storage: DataStorage, flow: str) -> None:
        if not (self.supports_errors and self.supports_error_listing):
            pytest.skip("this adapter does not store error records verbatim")
        storage.store_error({"arg": [1, "ü"]}, flow, "task", "id", self._failure())
        record = storage.retrieve_error(flow, "task", "id")
        copy = {**record, "flow_name": flow + "-copy"}
        record_id = storage.store_error_record(copy)
        assert isinstance(record_id, str) and record_id
        back = storage.retrieve_error(flow + "-copy", "task", "id")
        assert back == copy
        assert back["time"] == record["time"] and back["traceback"] == record["traceback"]
        assert storage.retrieve_error(flow, "task", "id") == record
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow + "-copy", "task", "id")
        # A stored record replaces the previous one under its key, as store_error does.
        later = {**copy, "message": "replaced", "time": "2001-02-03T04:05:06+00:00"}
        storage.store_error_record(later)
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
        self, storage: DataStorage, flow: str, bad: Any, error: type[Exception]
    ) -> None:
        if not (self.supports_errors and self.supports_error_listing):
            pytest.skip("this adapter does not store error records verbatim")
        with pytest.raises(error):
            storage.store_error_record(bad)

    @pytest.mark.parametrize(
        ("field", "value", "error"),
        [("flow_name", None, TypeError), ("task_id", 1, TypeError), ("task_id", "", ValueError)],
    )
    def test_store_error_record_checks_the_key_before_any_io(
        self, storage: DataStorage, flow: str, field: str, value: Any, error: type[Exception]
    ) -> None:
        if not (self.supports_errors and self.supports_error_listing):
            pytest.skip("this adapter does not store error records verbatim")
        storage.store_error(None, flow, "task", "id", self._failure())
        record = {**storage.retrieve_error(flow, "task", "id"), field: value}
        with pytest.raises(error):
            storage.store_error_record(record)
        assert list(storage.iter_error_keys(flow)) == [(flow, "task", "id")]

    # -- bulk and listing -------------------------------------------------------------------

    def test_store_many_and_retrieve_many(self, storage: DataStorage, flow: str) -> None:
        items = [(flow, f"task{i % 3}", str(i), {"i": i}) for i in range(50)]
        ids = storage.store_many(items)
        assert len(ids) == 50 and all(isinstance(i, str) and i for i in ids)
        keys = [(f, t, i) for f, t, i, _ in items] + [(flow, "task0", "missing")]
        found = storage.retrieve_many(keys)
        assert found == {(f, t, i): r for f, t, i, r in items}
        assert storage.store_many([]) == []
        assert storage.retrieve_many([]) == {}

    def test_store_many_with_a_bad_result_stores_nothing(
        self, storage: DataStorage, flow: str
    ) -> None:
        items = [(flow, "t", "1", 1), (flow, "t", "2", {1, 2}), (flow, "t", "3", 3)]
        with pytest.raises(SerializationError):
            storage.store_many(items)
        assert storage.retrieve_many([(flow, "t", "1"), (flow, "t", "3")]) == {}

    def test_iter_keys_lists_results_by_flow(self, storage: DataStorage, flow: str) -> None:
        if not self.supports_iter_keys:
            pytest.skip("this adapter does not list keys")
        other = flow + "-other"
        storage.store(flow, "a", "1", 1)
        storage.store(flow, "b", "2", 2)
        storage.store(other, "a", "1", 3)
        assert set(storage.iter_keys(flow)) == {(flow, "a", "1"), (flow, "b", "2")}
        everything = set(storage.iter_keys())
        assert {(flow, "a", "1"), (flow, "b", "2"), (other, "a", "1")} <= everything

    # -- concurrency ------------------------------------------------------------------------

    def test_concurrent_stores_are_all_kept(self, storage: DataStorage, flow: str) -> None:
        threads_n, per_thread = self.concurrency_threads, self.concurrency_per_thread
        failures: list[BaseException] = []
        barrier = threading.Barrier(threads_n)

        def work(worker: int) -> None:
            barrier.wait()
            try:
                for i in range(per_thread):
                    storage.store(flow, f"w{worker}", str(i), {"w": worker, "i": i})
                    if i % 10 == 0:
                        assert storage.retrieve(flow, f"w{worker}", str(i)) == {"w": worker, "i": i}
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        for worker in range(threads_n):
            for i in range(per_thread):
                assert storage.retrieve(flow, f"w{worker}", str(i)) == {"w": worker, "i": i}


def connected(storage: DataStorage) -> Iterator[DataStorage]:
    """Fixture helper: connect, yield, disconnect."""
    storage.connect()
    try:
        yield storage
    finally:
        storage.disconnect()
