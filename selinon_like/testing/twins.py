"""The suite of an async adapter that stands for a blocking one (SPEC section 10): the
blocking class names it in ``async_adapter``, the async pool builds it from the blocking
adapter's YAML entry, and the two share one configuration and one layout, so either reads
what the other stored.

Subclass :class:`AsyncTwinContract` and supply two fixtures:

``blocking_entry``
    the YAML entry of the blocking adapter as a dict (``import``, ``classname``,
    ``configuration``; no ``name``), reaching the service the test may write to;
``bad_configuration``
    a ``configuration`` both adapters must refuse (``ConfigError`` or ``TypeError``, when
    built or at ``connect()``): parametrize it for several.

::

    class TestMyTwins(AsyncTwinContract):
        @pytest.fixture
        def blocking_entry(self):
            return {"import": "myapp.storages", "classname": "MyStorage",
                    "configuration": {"url": "redis://localhost"}}

        @pytest.fixture(params=[{"url": 5}, {"url": "x", "bogus": 1}])
        def bad_configuration(self, request):
            return request.param

Each test works under a flow name of its own (``flow``) and builds its instances through the
pools, as a program would.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any, cast

import pytest

from selinon_like.aio.pool import AsyncStoragePool
from selinon_like.aio.storage import AsyncDataStorage
from selinon_like.errors import ConfigError, ResultNotFound
from selinon_like.importing import import_object
from selinon_like.pool import StoragePool
from selinon_like.storage import DataStorage
from selinon_like.testing.base import ContractBase

__all__ = ["AsyncTwinContract"]

# Over the ceiling both instances get in the records test: stored in chunks.
_CHUNKED_CEILING = 4096
_BIG = {"rows": [{"n": n, "text": "the same words again"} for n in range(400)]}
_BLOB = b"0123456789abcdef" * 4096

# Run with -W error by the closing test: the async pool built from the entry, calls
# gathered, a stream left unread, a listing left early, then the pool closed, or (argv[3]
# "leave") left open, which must be reported: unclosed resources warn.
_CLOSING = """
import asyncio, gc, json, sys
from selinon_like.aio import AsyncStoragePool

entry, flow, close = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "close"

async def main():
    pool = AsyncStoragePool.from_dict({"storages": [entry]})
    storage = await pool.get_connected_storage(entry["name"])
    keys = [(flow, "t", str(n)) for n in range(20)]
    await asyncio.gather(*(storage.store(*key, {"n": n}) for n, key in enumerate(keys)))
    assert len(await storage.retrieve_many(keys)) == len(keys)
    await storage.store_error(None, flow, "t", "0", ValueError("x"))
    if {"store_stream", "retrieve_stream"} <= type(storage).capabilities():
        await storage.store_stream(flow, "t", "blob", [b"x" * 100_000])
        await storage.retrieve_stream(flow, "t", "blob")  # left unread
        keys.append((flow, "t", "blob"))
    async for _key in storage.iter_keys(flow):
        break  # a listing left early
    await storage.delete_many(keys)
    if close:
        await pool.disconnect_all()

asyncio.run(main())
gc.collect()
print("ok")
"""


class AsyncTwinContract(ContractBase):
    """An async adapter and the blocking adapter it stands for: the same records, the same
    configuration errors, the async pool built from the blocking YAML, nothing left open
    under ``-W error``. See the module docstring for the fixtures."""

    @pytest.fixture
    def blocking_entry(self) -> dict[str, Any]:
        """The blocking adapter's YAML entry, without ``name``."""
        raise pytest.UsageError(
            f"{type(self).__name__} must define a blocking_entry fixture returning the "
            "blocking adapter's YAML entry as a dict (import, classname, configuration)"
        )

    @pytest.fixture
    def bad_configuration(self) -> dict[str, Any]:
        """A ``configuration`` both adapters refuse."""
        raise pytest.UsageError(
            f"{type(self).__name__} must define a bad_configuration fixture returning a "
            "configuration both adapters refuse"
        )

    @staticmethod
    def _entry(blocking_entry: dict[str, Any], **settings: Any) -> dict[str, Any]:
        return {**blocking_entry, "name": "Twin", **settings}

    @staticmethod
    def _classes(blocking_entry: dict[str, Any]) -> tuple[type[Any], type[Any]]:
        """The blocking adapter's class and the async class it names in ``async_adapter``."""
        path = f"{blocking_entry['import']}:{blocking_entry['classname']}"
        blocking: type[Any] = import_object(path, what="class")
        twin = blocking.async_adapter
        return blocking, import_object(twin, what="class") if isinstance(twin, str) else twin

    def test_the_two_adapters_read_each_others_records(
        self, blocking_entry: dict[str, Any], flow: str
    ) -> None:
        mapping = {"storages": [self._entry(blocking_entry)]}
        with StoragePool.from_dict(mapping) as blocking_pool:
            blocking = blocking_pool.get_connected_storage("Twin")

            async def body() -> None:
                async with AsyncStoragePool.from_dict(mapping) as pool:
                    storage = await pool.get_connected_storage("Twin")
                    for adapter in (storage, blocking):
                        # A record-layer adapter then stores the big result in chunks.
                        cast(Any, adapter).max_value_bytes = _CHUNKED_CEILING
                    await _both_ways(blocking, storage, flow)

            asyncio.run(body())

    def test_the_configuration_and_its_errors_are_the_blocking_adapters(
        self, blocking_entry: dict[str, Any], bad_configuration: dict[str, Any]
    ) -> None:
        async def refusal(cls: type[Any]) -> BaseException:
            try:
                instance = cls(**bad_configuration)
                outcome = instance.connect()
                if asyncio.iscoroutine(outcome):
                    await outcome
            except (ConfigError, TypeError) as exc:
                return exc
            pytest.fail(f"{cls.__qualname__} took {bad_configuration!r}")

        refused = [asyncio.run(refusal(cls)) for cls in self._classes(blocking_entry)]
        assert [type(exc) for exc in refused] == [type(refused[0])] * 2
        assert str(refused[1]) == str(refused[0])
        assert getattr(refused[1], "key", None) == getattr(refused[0], "key", None)

    def test_the_async_pool_builds_it_from_the_blocking_adapters_yaml(
        self, blocking_entry: dict[str, Any], flow: str
    ) -> None:
        entry = self._entry(
            blocking_entry,
            operation_timeout=7,
            retry={"attempts": 5, "backoff": 0.01},
            compression={"codec": "gzip", "threshold": 0},
            ttl=3600,
        )
        async_class = self._classes(blocking_entry)[1]
        mapping = {"storages": [entry], "tasks": [{"name": "t", "storage": "Twin"}]}

        async def main() -> None:
            async with AsyncStoragePool.from_dict(mapping) as pool:
                storage = await pool.get_connected_storage("Twin")
                assert type(storage) is async_class
                assert storage.storage_name == "Twin"
                assert storage.operation_timeout == 7 and storage.retry_policy.attempts == 5
                assert storage.record_codec.ttl is not None
                await pool.store(flow, "t", "1", {"from": "async pool"})
                await pool.store_error(None, flow, "t", "1", ValueError("x"))
            assert not storage.is_connected()

        asyncio.run(main())
        with StoragePool.from_dict(mapping) as pool:
            assert pool.retrieve(flow, "t", "1") == {"from": "async pool"}
            assert pool.retrieve_error(flow, "t", "1")["exception_type"] == "builtins.ValueError"
            pool.delete(flow, "t", "1")

    @pytest.mark.parametrize("close", [True, False], ids=["closed", "left-open"])
    def test_disconnect_closes_everything_under_w_error(
        self, blocking_entry: dict[str, Any], flow: str, close: bool
    ) -> None:
        """In a process of its own under ``-W error``: an unclosed client, connection or
        session would be reported at exit. Left open, it must be: the check can fail."""
        entry = json.dumps(self._entry(blocking_entry))
        mode = "close" if close else "leave"
        done = subprocess.run(
            [sys.executable, "-W", "error", "-c", _CLOSING, entry, flow, mode],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
        if close:
            assert done.stderr == ""
        else:
            assert "ResourceWarning" in done.stderr or "Unclosed" in done.stderr, done.stderr


async def _both_ways(blocking: DataStorage, storage: AsyncDataStorage, flow: str) -> None:
    """Each of the two stores results (small, chunked, in bulk), an error record and (when
    both offer streams) a stream; the other reads them back, lists and deletes them."""
    # Blocking -> async.
    blocking_id = blocking.store(flow, "t", "sync", {"by": "sync"})
    blocking.store(flow, "t", "sync-big", _BIG)
    blocking.store_many([(flow, "t", f"sync-{n}", n) for n in range(3)])
    blocking.store_error({"arg": 1}, flow, "t", "sync", ValueError("sync"))
    assert await storage.retrieve(flow, "t", "sync") == {"by": "sync"}
    assert await storage.retrieve(flow, "t", "sync-big") == _BIG
    assert await storage.retrieve_many([(flow, "t", f"sync-{n}") for n in range(4)]) == {
        (flow, "t", f"sync-{n}"): n for n in range(3)
    }
    assert (await storage.retrieve_error(flow, "t", "sync"))["message"] == "sync"
    # Async -> blocking, under the same record ids.
    assert await storage.store(flow, "t", "sync", {"by": "async"}) == blocking_id
    await storage.store(flow, "t", "async-big", _BIG)
    await storage.store_many([(flow, "t", f"async-{n}", {"n": n}) for n in range(3)])
    await storage.store_error(None, flow, "t", "async", KeyError("async"))
    assert blocking.retrieve(flow, "t", "sync") == {"by": "async"}
    assert blocking.retrieve(flow, "t", "async-big") == _BIG
    assert blocking.retrieve_many([(flow, "t", f"async-{n}") for n in range(3)]) == {
        (flow, "t", f"async-{n}"): {"n": n} for n in range(3)
    }
    assert blocking.retrieve_error(flow, "t", "async")["exception_type"] == "builtins.KeyError"
    streams = {"store_stream", "retrieve_stream"}
    if streams <= type(blocking).capabilities() and streams <= type(storage).capabilities():
        blocking.store_stream(flow, "t", "sync-blob", [_BLOB])
        stream = await storage.retrieve_stream(flow, "t", "sync-blob")
        assert b"".join([chunk async for chunk in stream]) == _BLOB
        await storage.store_stream(flow, "t", "async-blob", [_BLOB[:1000], _BLOB[1000:]])
        assert b"".join(blocking.retrieve_stream(flow, "t", "async-blob")) == _BLOB
    # The same keys listed by either; deleted by one, gone for the other.
    keys = sorted([key async for key in storage.iter_keys(flow)])
    assert keys == sorted(blocking.iter_keys(flow))
    assert sorted([key async for key in storage.iter_error_keys(flow)]) == sorted(
        blocking.iter_error_keys(flow)
    )
    assert await storage.delete_many(keys) == len(keys)
    assert list(blocking.iter_keys(flow)) == []
    with pytest.raises(ResultNotFound):
        blocking.retrieve(flow, "t", "sync-big")
