"""InMemoryStorage under the whole contract kit, plus what is particular to it.

The kit's resilience suite runs here too: eight threads on one instance, and forked children
whose own instances start empty (the parent's results stay the parent's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from selinon_like.testing import StorageContract, connected
from storages.memory import InMemoryStorage


class TestInMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[InMemoryStorage]:
        yield from connected(InMemoryStorage())


def test_echo_logs_each_store(caplog: pytest.LogCaptureFixture) -> None:
    storage = InMemoryStorage(echo=True)
    storage.connect()
    with caplog.at_level("INFO", logger="selinon_like"):
        storage.store("f", "t", "1", {"a": 1})
    assert "stored" in caplog.text


def test_disconnect_then_is_connected_false() -> None:
    storage = InMemoryStorage()
    assert storage.is_connected() is False
    storage.connect()
    storage.disconnect()
    storage.disconnect()
    assert storage.is_connected() is False


def test_results_are_private_to_an_instance() -> None:
    one: Any = InMemoryStorage()
    two: Any = InMemoryStorage()
    one.store("f", "t", "1", 1)
    with pytest.raises(LookupError):
        two.retrieve("f", "t", "1")
