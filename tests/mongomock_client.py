"""mongomock clients for the MongoDB adapter's fast tests, and the one shim they need.

mongomock 4.3's ``bulk_write`` hands each request its bulk builder, and pymongo >= 4.11's
``ReplaceOne`` passes that builder a ``sort`` argument mongomock's ``add_replace`` does not
take. The shim lets ``add_replace`` accept ``sort`` when it is unset (the adapter never sets
it) and refuse it otherwise, so a test cannot pass on a sort mongomock would ignore. It lives
here, not in the adapter: production code talks to pymongo only.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import mongomock
from mongomock.collection import BulkOperationBuilder

__all__ = ["mongomock_client"]


def _accept_unset_sort() -> None:
    original: Callable[..., Any] = BulkOperationBuilder.add_replace
    if "sort" in inspect.signature(original).parameters:
        return  # a mongomock that knows the argument, or the shim already in place

    @functools.wraps(original)
    def add_replace(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("mongomock cannot sort the target of a ReplaceOne")
        return original(self, *args, **kwargs)

    # functools.wraps copied the original signature: drop it, so the check above sees "sort".
    del add_replace.__wrapped__
    setattr(BulkOperationBuilder, "add_replace", add_replace)  # noqa: B010 - patching a class


_accept_unset_sort()


def mongomock_client() -> mongomock.MongoClient[dict[str, Any]]:
    """A new in-process fake server: its data live as long as the client object."""
    return mongomock.MongoClient()
