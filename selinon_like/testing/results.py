"""The results suite: what the five required methods promise, on every adapter."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from selinon_like.errors import ResultNotFound, SerializationError
from selinon_like.keys import Key
from selinon_like.serializers import PICKLE
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase
from selinon_like.testing.data import AWKWARD_KEYS, AWKWARD_RESULTS, COLLIDING_KEYS

__all__ = ["ResultsContract"]


class ResultsContract(ContractBase):
    """``connect``/``retrieve``/``store`` and ``ping``: connection, round trips of odd results
    and keys, overwrite, not-found, key checks, the serializer (JSON and pickle) and concurrent
    calls. Needs nothing beyond the five methods of SPEC section 2: every adapter takes it."""

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
    def test_awkward_keys_round_trip(self, storage: DataStorage, flow: str, key: Key) -> None:
        flow_name, task_name, task_id = flow + key[0], key[1], key[2]
        storage.store(flow_name, task_name, task_id, {"key": list(key)})
        assert storage.retrieve(flow_name, task_name, task_id) == {"key": list(key)}

    @pytest.mark.parametrize("pair", COLLIDING_KEYS, ids=repr)
    def test_distinct_keys_never_collide(
        self, storage: DataStorage, flow: str, pair: tuple[Key, Key]
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
