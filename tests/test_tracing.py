"""Trace events and pool statistics."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from selinon_like import ConfigError, ResultNotFound, StoragePool

EVENTS: list[dict[str, Any]] = []
GLOBAL_EVENTS: list[dict[str, Any]] = []
LOCK = threading.Lock()


def record(event: dict[str, Any]) -> None:
    with LOCK:
        EVENTS.append(event)


def record_global(event: dict[str, Any]) -> None:
    GLOBAL_EVENTS.append(event)


def explode(event: dict[str, Any]) -> None:
    raise RuntimeError("tracer bug")


@pytest.fixture(autouse=True)
def _clear() -> None:
    EVENTS.clear()
    GLOBAL_EVENTS.clear()


def pool(tmp_path: Path, **storage: Any) -> StoragePool:
    return StoragePool.from_dict(
        {
            "trace": "test_tracing:record_global",
            "storages": [
                {
                    "name": "Files",
                    "classname": "filesystem",
                    "configuration": {"path": str(tmp_path)},
                    "trace": "test_tracing:record",
                    **storage,
                }
            ],
        }
    )


def test_every_operation_emits_a_structured_event(tmp_path: Path) -> None:
    storage = pool(tmp_path, cache={"max_size": 10}).get_connected_storage("Files")
    storage.store("flow", "task", "1", {"secret_body": "not traced"})
    storage.retrieve("flow", "task", "1")
    storage.store_error(None, "flow", "task", "2", ValueError("x"))
    storage.delete("flow", "task", "1")
    with pytest.raises(ResultNotFound):
        storage.retrieve("flow", "task", "1")
    storage.disconnect()
    kinds = [event["event"] for event in EVENTS]
    assert kinds[0] == "connect"
    for kind in ("store", "cache_hit", "store_error", "delete", "cache_miss", "retrieve"):
        assert kind in kinds
    assert kinds[-1] == "disconnect"
    store = next(event for event in EVENTS if event["event"] == "store")
    assert store["storage"] == "Files"
    assert (store["flow_name"], store["task_name"], store["task_id"]) == ("flow", "task", "1")
    assert store["duration"] >= 0 and store["error"] is None
    assert "not traced" not in repr(EVENTS)
    missing = [e for e in EVENTS if e["event"] == "retrieve" and e["error"]]
    assert missing and "ResultNotFound" in missing[0]["error"]
    assert "error" not in kinds, "a plain not-found is not an error event"
    assert [e["event"] for e in GLOBAL_EVENTS] == kinds, "global tracers see the same events"


class Failing:
    pass


def test_failures_and_retries_are_traced_without_secrets(tmp_path: Path) -> None:
    pool_ = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Flaky",
                    "import": "test_pool",
                    "classname": "FlakyStorage",
                    "configuration": {"failures": 5},
                    "retry": {"attempts": 2, "backoff": 0.001},
                    "trace": "test_tracing:record",
                }
            ]
        }
    )
    storage = pool_.get_connected_storage("Flaky")
    with pytest.raises(Exception, match="connection reset"):
        storage.store("f", "t", "1", 1)
    kinds = [event["event"] for event in EVENTS]
    assert kinds.count("retry") == 1
    error = next(event for event in EVENTS if event["event"] == "error")
    assert error["operation"] == "store" and "StorageUnavailable" in error["error"]
    stats = pool_.stats()["Flaky"]
    assert stats["retries"] == 1
    assert stats["operations"]["store"]["errors"] == 1


def test_a_broken_tracer_never_breaks_storage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = pool(tmp_path, trace="test_tracing:explode").get_connected_storage("Files")
    storage.store("f", "t", "1", 1)
    assert storage.retrieve("f", "t", "1") == 1
    assert "tracer bug" in caplog.text


def test_stats_count_operations_with_percentiles(tmp_path: Path) -> None:
    p = pool(tmp_path, cache={"max_size": 100})
    storage = p.get_connected_storage("Files")
    for i in range(20):
        storage.store("f", "t", str(i), i)
    for i in range(20):
        storage.retrieve("f", "t", str(i))
    stats = p.stats()["Files"]
    assert stats["operations"]["store"]["count"] == 20
    assert stats["operations"]["store"]["errors"] == 0
    assert stats["operations"]["store"]["p50_ms"] <= stats["operations"]["store"]["p99_ms"]
    assert stats["cache"] == {"hits": 20, "misses": 0}


@pytest.mark.parametrize(
    ("trace", "message"),
    [
        ("test_tracing:nothing_here", "nothing_here"),
        ("test_tracing:Failing.x", "Failing.x"),
        (5, "dotted path"),
    ],
)
def test_bad_trace_paths_are_config_errors(tmp_path: Path, trace: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="trace") as info:
        pool(tmp_path, trace=trace)
    assert message in str(info.value)
