"""The error-records suite: ``store_error`` / ``retrieve_error``, and error records under
``ttl``."""

from __future__ import annotations

import pytest

from selinon_like.envelope import Expiry
from selinon_like.errors import ResultNotFound
from selinon_like.serializers import PICKLE
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase, MovableClock, failure, require

__all__ = ["ErrorRecordsContract"]


class ErrorRecordsContract(ContractBase):
    """``store_error`` keeps a full record that ``retrieve_error`` returns; errors never shadow
    results; an error record outlives a result of shorter ``ttl`` and expires after its own.
    Runs when the adapter offers both methods (each test skips, naming the missing
    one, otherwise)."""

    def test_store_error_keeps_a_full_record(self, storage: DataStorage, flow: str) -> None:
        require(storage, "store_error", "retrieve_error")
        record_id = storage.store_error({"arg": 1}, flow, "task", "id", failure())
        assert isinstance(record_id, str) and record_id
        record = storage.retrieve_error(flow, "task", "id")
        assert record["exception_type"] == "builtins.ValueError"
        assert record["message"] == "task blew up: disk full"
        assert "Traceback" in record["traceback"] and "failure" in record["traceback"]
        assert record["node_args"] == {"arg": 1}
        assert record["time"]
        assert (record["flow_name"], record["task_name"], record["task_id"]) == (flow, "task", "id")

    def test_errors_never_shadow_results(self, storage: DataStorage, flow: str) -> None:
        require(storage, "store_error", "retrieve_error")
        storage.store(flow, "task", "id", {"result": 1})
        storage.store_error(None, flow, "task", "id", failure())
        assert storage.retrieve(flow, "task", "id") == {"result": 1}
        storage.store_error(None, flow, "task", "only-error", failure())
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "only-error")
        storage.store(flow, "task", "id", {"result": 2})  # a later result leaves the error
        assert storage.retrieve_error(flow, "task", "id")["message"] == "task blew up: disk full"

    def test_store_error_takes_an_exception_and_odd_node_args(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "store_error", "retrieve_error")
        storage.store_error({"obj": object()}, flow, "task", "id", KeyError("k"))
        storage.store_error([1], flow, "task", "id", RuntimeError("second"))
        record = storage.retrieve_error(flow, "task", "id")
        assert record["exception_type"] == "builtins.RuntimeError"
        assert record["message"] == "second"
        assert record["node_args"] == [1]

    def test_records_do_not_depend_on_the_result_serializer(
        self, storage: DataStorage, flow: str
    ) -> None:
        require(storage, "store_error", "retrieve_error")
        previous = storage.serializer
        storage.serializer = PICKLE
        try:
            storage.store_error({"arg": "ü"}, flow, "task", "id", failure())
        finally:
            storage.serializer = previous
        record = storage.retrieve_error(flow, "task", "id")
        assert record["node_args"] == {"arg": "ü"} and record["message"]

    def test_missing_error_raises_result_not_found(self, storage: DataStorage, flow: str) -> None:
        require(storage, "retrieve_error")
        storage.store(flow, "task", "id", 1)
        with pytest.raises(ResultNotFound):
            storage.retrieve_error(flow, "task", "id")

    @pytest.mark.parametrize("bad", [None, 1, b"bytes"], ids=repr)
    def test_non_str_key_parts_are_type_errors(
        self, storage: DataStorage, flow: str, bad: object
    ) -> None:
        require(storage, "store_error", "retrieve_error")
        with pytest.raises(TypeError):
            storage.store_error(None, flow, bad, "id", failure())  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            storage.retrieve_error(flow, "task", bad)  # type: ignore[arg-type]

    def test_error_records_are_kept_while_results_expire(
        self, storage: DataStorage, clock: MovableClock, flow: str
    ) -> None:
        require(storage, "store_error", "retrieve_error")
        storage.set_record_format(ttl=Expiry(results=1, errors=60))
        storage.store(flow, "task", "id", "result")
        storage.store_error(None, flow, "task", "id", failure())
        clock.advance(2)
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "id")
        assert storage.retrieve_error(flow, "task", "id")["message"] == "task blew up: disk full"
        clock.advance(60)
        with pytest.raises(ResultNotFound) as info:
            storage.retrieve_error(flow, "task", "id")
        assert "error record" in str(info.value)
