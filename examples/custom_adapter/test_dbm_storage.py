"""The custom adapter proves it behaves like the built-in ones with the contract kit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dbm_storage import DbmStorage

from selinon_like import StoragePool
from selinon_like.testing import (
    BulkContract,
    DeleteContract,
    ErrorRecordsContract,
    ExpiryContract,
    ListingContract,
    PurgeContract,
    ResultsContract,
    StreamingContract,
)


# The suites of what a dbm file offers (DbmStorage.capabilities(): RecordStorage builds them
# all on read/write/remove/scan). StorageContract would add resilience, whose fork test a dbm
# file fails by design: each process's instance keeps its own index of the file, so a child's
# writes never reach the parent's. No service: no UnreachableServiceContract.
class TestDbmStorage(
    ResultsContract,
    ErrorRecordsContract,
    ListingContract,
    DeleteContract,
    BulkContract,
    StreamingContract,
    ExpiryContract,
    PurgeContract,
):
    concurrency_per_thread = 50

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[DbmStorage]:
        storage = DbmStorage(filename=str(tmp_path / "results"))
        storage.connect()
        yield storage
        storage.disconnect()


def test_it_loads_from_yaml(tmp_path: Path) -> None:
    config = tmp_path / "storages.yml"
    config.write_text(
        "storages:\n"
        "  - name: Local\n"
        "    import: dbm_storage\n"
        "    classname: DbmStorage\n"
        "    configuration:\n"
        f"      filename: {tmp_path / 'db'}\n"
    )
    with StoragePool.from_yaml(config) as pool:
        storage = pool.get_connected_storage("Local")
        assert isinstance(storage, DbmStorage)
        storage.store("flow", "task", "1", {"ok": True})
        assert storage.retrieve("flow", "task", "1") == {"ok": True}
        storage.store_error(None, "flow", "task", "1", RuntimeError("boom"))
        assert list(storage.iter_error_keys("flow")) == [("flow", "task", "1")]
