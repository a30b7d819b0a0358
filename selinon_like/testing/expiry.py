"""The expiry and record-format suites (SPEC section 9): ``ttl``, ``compression`` and serializer
changes on existing records, which every adapter takes; ``purge_expired``, which an adapter may
offer.

Time is a :class:`MovableClock` given to the storage (``set_record_format(clock=...)``, the
``clock`` fixture), so a ``ttl`` of one second expires by moving the clock, with no sleep. An
adapter whose service expires values itself (Redis, MongoDB) is given expiry times by that clock
too, one second ahead of the real time: nothing the tests look at vanishes under them.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from selinon_like.compression import Compression
from selinon_like.envelope import NO_EXPIRY, Expiry
from selinon_like.errors import ResultNotFound, StorageError
from selinon_like.records import RESULTS, RecordStorage
from selinon_like.serializers import JSON, PICKLE
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase, MovableClock, failure, offers, require

__all__ = ["ExpiryContract", "MovableClock", "PurgeContract"]


def _compressible(size: int) -> dict[str, list[dict[str, object]]]:
    """A task-like result of about ``size`` bytes of JSON that compresses well."""
    rows = [
        {"id": n, "status": "done", "score": n % 7, "tags": ["a", "b"]} for n in range(size // 50)
    ]
    return {"rows": rows}


class ExpiryContract(ContractBase):
    """A result past its ``ttl`` is never returned, whether or not it was removed; storing
    again renews or removes its expiry; records stay readable when ``compression`` or the
    serializer change. Needs nothing beyond the five methods of SPEC section 2 (the record
    format is the layers'): every adapter takes it. Error records under ``ttl`` are
    :class:`~selinon_like.testing.ErrorRecordsContract`'s, ``purge_expired`` is
    :class:`PurgeContract`'s."""

    ttl_compression: ClassVar[str] = "gzip"  # the codec switched on and off (stdlib: always there)

    def test_an_expired_result_is_not_returned_before_any_purge(
        self, storage: DataStorage, clock: MovableClock, flow: str
    ) -> None:
        storage.set_record_format(ttl=Expiry(results=1))
        storage.store(flow, "task", "id", {"v": 1})
        storage.store_many([(flow, "task", "bulk", 2)])
        assert storage.retrieve(flow, "task", "id") == {"v": 1}
        clock.advance(0.999)
        assert storage.retrieve(flow, "task", "bulk") == 2
        clock.advance(0.002)
        with pytest.raises(ResultNotFound) as info:
            storage.retrieve(flow, "task", "id")
        assert "'id'" in str(info.value) and storage.storage_name in str(info.value)
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "bulk")
        keys = [(flow, "task", "id"), (flow, "task", "bulk")]
        assert storage.retrieve_many(keys) == {}

    def test_storing_again_renews_or_removes_the_expiry(
        self, storage: DataStorage, clock: MovableClock, flow: str
    ) -> None:
        storage.set_record_format(ttl=Expiry(results=1))
        storage.store(flow, "task", "renewed", "first")
        storage.store(flow, "task", "forever", "first")
        clock.advance(0.8)
        storage.store(flow, "task", "renewed", "second")
        storage.set_record_format(ttl=NO_EXPIRY)
        storage.store(flow, "task", "forever", "second")
        clock.advance(0.8)
        assert storage.retrieve(flow, "task", "renewed") == "second"
        clock.advance(10**6)
        assert storage.retrieve(flow, "task", "forever") == "second"
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "renewed")

    def test_an_expired_result_can_be_stored_again(
        self, storage: DataStorage, clock: MovableClock, flow: str
    ) -> None:
        storage.set_record_format(ttl=Expiry(results=1))
        storage.store(flow, "task", "id", "old")
        clock.advance(2)
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "id")
        storage.store(flow, "task", "id", "new")
        assert storage.retrieve(flow, "task", "id") == "new"

    def test_compression_switched_on_and_off_keeps_every_record_readable(
        self, storage: DataStorage, clock: MovableClock, flow: str
    ) -> None:
        big = _compressible(20_000)
        small = {"v": "x" * 10}
        storage.store(flow, "task", "plain", big)
        storage.set_record_format(compression=Compression(self.ttl_compression, threshold=512))
        storage.store(flow, "task", "packed", big)
        storage.store(flow, "task", "small", small)
        assert storage.retrieve(flow, "task", "plain") == big
        assert storage.retrieve(flow, "task", "packed") == big
        if isinstance(storage, RecordStorage):
            packed = storage.read(RESULTS, (flow, "task", "packed"))
            assert packed is not None and len(packed) < len(JSON.dumps(big)) // 3
            assert storage.read(RESULTS, (flow, "task", "small")) == JSON.dumps(small)
        storage.set_record_format(compression=Compression())
        assert storage.retrieve(flow, "task", "packed") == big
        assert storage.retrieve_many([(flow, "task", "packed"), (flow, "task", "small")]) == {
            (flow, "task", "packed"): big,
            (flow, "task", "small"): small,
        }

    def test_records_stay_readable_when_the_serializer_changes(
        self, storage: DataStorage, clock: MovableClock, flow: str
    ) -> None:
        storage.serializer = JSON
        storage.store(flow, "task", "json", {"written": "as json"})
        storage.serializer = PICKLE
        storage.store(flow, "task", "pickle", {"a", "set"})
        assert storage.retrieve(flow, "task", "json") == {"written": "as json"}
        assert storage.retrieve(flow, "task", "pickle") == {"a", "set"}
        storage.set_record_format(compression=Compression(self.ttl_compression, threshold=0))
        storage.store(flow, "task", "both", ("t", 1))
        assert storage.retrieve(flow, "task", "both") == ("t", 1)
        storage.serializer = JSON
        assert storage.retrieve(flow, "task", "json") == {"written": "as json"}
        with pytest.raises(StorageError, match="pickle"):  # JSON storages never unpickle
            storage.retrieve(flow, "task", "pickle")


class PurgeContract(ContractBase):
    """``purge_expired`` removes the records past their ``ttl`` and nothing else, reporting
    its progress; a dry run counts them and removes nothing. For an adapter that offers
    ``purge_expired`` (each test skips, naming it, otherwise)."""

    def test_purge_removes_expired_records_and_nothing_else(
        self, storage: DataStorage, clock: MovableClock, flow: str
    ) -> None:
        require(storage, "purge_expired")
        storage.set_record_format(ttl=Expiry(results=1, errors=1))
        storage.store_many([(flow, "task", f"old-{n}", n) for n in range(5)])
        if offers(storage, "store_error"):
            storage.store_error(None, flow, "task", "old-0", failure())
        storage.set_record_format(ttl=Expiry(results=100))
        storage.store(flow, "task", "young", "y")
        storage.set_record_format(ttl=NO_EXPIRY)
        storage.store(flow, "task", "forever", "f")
        clock.advance(2)
        ours = 5 + offers(storage, "store_error")

        found = storage.purge_expired(dry_run=True)
        assert found >= ours  # a shared service may hold other tests' expired records too
        clock_stays = clock.now
        counts: list[int] = []
        removed = storage.purge_expired(progress=counts.append)
        assert clock.now == clock_stays
        assert removed >= ours and sum(counts) == removed and all(n > 0 for n in counts)
        assert storage.retrieve(flow, "task", "young") == "y"
        assert storage.retrieve(flow, "task", "forever") == "f"
        if offers(storage, "iter_keys"):
            assert sorted(storage.iter_keys(flow)) == [
                (flow, "task", "forever"),
                (flow, "task", "young"),
            ]
        if offers(storage, "iter_error_keys"):
            assert list(storage.iter_error_keys(flow)) == []
        assert storage.purge_expired(dry_run=True) == 0
        clock.advance(100)
        assert storage.purge_expired() >= 1
        assert storage.retrieve(flow, "task", "forever") == "f"
        with pytest.raises(ResultNotFound):
            storage.retrieve(flow, "task", "young")

    def test_a_dry_run_removes_nothing(
        self, storage: DataStorage, clock: MovableClock, flow: str
    ) -> None:
        require(storage, "purge_expired")
        storage.set_record_format(ttl=Expiry(results=1))
        storage.store(flow, "task", "id", 1)
        clock.advance(2)
        assert storage.purge_expired(dry_run=True) >= 1
        clock.now -= 2  # back before the expiry: the record is still there
        assert storage.retrieve(flow, "task", "id") == 1
