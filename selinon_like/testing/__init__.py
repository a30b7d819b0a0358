"""The public contract test kit (SPEC section 7): suites by capability, chosen by inheritance.

Prove that an adapter behaves like the built-in ones by subclassing :class:`StorageContract`
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

:class:`StorageContract` is every suite an adapter takes whatever it talks to. Each test of an
optional capability checks ``type(storage).capabilities()`` — the optional operations the class
really implements — and skips, naming the missing method, when the adapter does not offer it: a
five-method adapter (SPEC section 2) passes, its results, bulk, resilience and expiry tests run
and the others skip; an adapter that implements a method and breaks it fails. Or compose the
suites of what the adapter offers, and nothing skips::

    class TestMyStorage(ResultsContract, BulkContract, DeleteContract): ...

An adapter that talks to a service adds :class:`UnreachableServiceContract` and the fixture it
needs, ``unreachable_storage``: an unconnected instance on a port where nothing answers (its
docstring says more)::

    class TestMyStorage(StorageContract, UnreachableServiceContract):
        @pytest.fixture
        def unreachable_storage(self, unreachable_port, secret):
            return MyStorage(host="127.0.0.1", port=unreachable_port, password=secret)

===================================  ==============================================================
suite                                checks
===================================  ==============================================================
:class:`ResultsContract`             connect, keys, overwrite, not-found, serializer, pickle,
                                     concurrency
:class:`ErrorRecordsContract`        ``store_error`` / ``retrieve_error``, error records under
                                     ``ttl``
:class:`ListingContract`             ``iter_keys``, ``iter_error_keys``, ``store_error_record``;
                                     keys of any length
:class:`DeleteContract`              ``delete``, ``delete_many``
:class:`BulkContract`                ``store_many`` / ``retrieve_many``
:class:`StreamingContract`           ``store_stream`` / ``retrieve_stream``, their ``Digest``
:class:`ResilienceContract`          fork, 8 threads on one instance
:class:`ExpiryContract`              ``ttl`` (a :class:`MovableClock`), compression and serializer
                                     changes on stored records
:class:`PurgeContract`               ``purge_expired``
:class:`UnreachableServiceContract`  secrets in failing calls, an unreachable service (not in
                                     :class:`StorageContract`: for an adapter with a service)
===================================  ==============================================================

Every test works under a flow name of its own, so one instance (even on a shared server) can
serve a whole class. :class:`ResilienceContract` uses ``storage_factory`` besides ``storage``,
:class:`UnreachableServiceContract` ``unreachable_storage``, ``secret`` and
``unreachable_timeout``; their docstrings say what each is and its default. Class attributes
size the heavier tests: ``concurrency_threads``, ``concurrency_per_thread``,
``large_result_bytes``, ``bulk_items``, ``stream_bytes``, ``fork_stores``.

Async adapters (SPEC section 10) take the same suites: subclass :class:`AsyncStorageContract`
and supply ``async_storage``, a fixture returning a callable that builds an unconnected async
instance; each test then runs on a :class:`BlockingFacade` of it, and :class:`AsyncContract`
adds what only asyncio has (gathered calls, cancellation, ``async with``). An async adapter
with a service adds :class:`AsyncUnreachableServiceContract` (``unreachable_async_storage``,
and the deadline of an unreachable service). See :mod:`selinon_like.testing.aio`. An async
adapter that stands for a blocking one (its ``async_adapter``) adds
:class:`AsyncTwinContract`: either reads what the other stored, the same configuration errors,
the async pool built from the blocking YAML (:mod:`selinon_like.testing.twins`).
"""

from __future__ import annotations

import pytest

# Before the suites are imported: pytest then rewrites their asserts, so a failing contract
# test shows the values compared, as in the adapter's own test modules.
pytest.register_assert_rewrite(
    *(
        f"selinon_like.testing.{name}"
        for name in (
            "aio",
            "base",
            "bulk",
            "delete",
            "error_records",
            "expiry",
            "listing",
            "resilience",
            "results",
            "streaming",
            "twins",
            "unreachable",
        )
    )
)

from selinon_like.testing.aio import (  # noqa: E402
    AsyncContract,
    AsyncUnreachableServiceContract,
    BlockingFacade,
)
from selinon_like.testing.base import ContractBase, MovableClock, connected, require  # noqa: E402
from selinon_like.testing.bulk import BulkContract  # noqa: E402
from selinon_like.testing.data import (  # noqa: E402
    AWKWARD_KEYS,
    AWKWARD_RESULTS,
    COLLIDING_KEYS,
    LONG_KEYS,
)
from selinon_like.testing.delete import DeleteContract  # noqa: E402
from selinon_like.testing.error_records import ErrorRecordsContract  # noqa: E402
from selinon_like.testing.expiry import ExpiryContract, PurgeContract  # noqa: E402
from selinon_like.testing.listing import ListingContract  # noqa: E402
from selinon_like.testing.resilience import ResilienceContract  # noqa: E402
from selinon_like.testing.results import ResultsContract  # noqa: E402
from selinon_like.testing.streaming import StreamingContract  # noqa: E402
from selinon_like.testing.twins import AsyncTwinContract  # noqa: E402
from selinon_like.testing.unreachable import UnreachableServiceContract  # noqa: E402

__all__ = [
    "AWKWARD_KEYS",
    "AWKWARD_RESULTS",
    "COLLIDING_KEYS",
    "LONG_KEYS",
    "AsyncContract",
    "AsyncStorageContract",
    "AsyncTwinContract",
    "AsyncUnreachableServiceContract",
    "BlockingFacade",
    "BulkContract",
    "ContractBase",
    "DeleteContract",
    "ErrorRecordsContract",
    "ExpiryContract",
    "ListingContract",
    "MovableClock",
    "PurgeContract",
    "ResilienceContract",
    "ResultsContract",
    "StorageContract",
    "StreamingContract",
    "UnreachableServiceContract",
    "connected",
    "require",
]


class StorageContract(
    ResultsContract,
    ErrorRecordsContract,
    ListingContract,
    DeleteContract,
    BulkContract,
    StreamingContract,
    ResilienceContract,
    ExpiryContract,
    PurgeContract,
):
    """Every suite of the kit an adapter takes whatever it talks to (all but
    :class:`UnreachableServiceContract`, which an adapter with a service adds). Subclass it and
    provide a ``storage`` fixture; the tests of a capability the adapter does not offer skip,
    naming the missing method."""


class AsyncStorageContract(AsyncContract, StorageContract):
    """Every suite of :class:`StorageContract` on an async adapter, behind a
    :class:`BlockingFacade`, and the async-only tests of :class:`AsyncContract`. Subclass it and
    provide an ``async_storage`` fixture: a zero-argument callable building an unconnected
    instance (see :mod:`selinon_like.testing.aio`); an adapter with a service adds
    :class:`AsyncUnreachableServiceContract`."""
