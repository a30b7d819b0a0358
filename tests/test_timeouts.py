"""Every adapter that talks to a server has finite timeouts by default: a hung server fails a
call instead of hanging it. That a call against a server that never answers (or refuses the
connection) fails within its timeout is the kit's unreachable-service suite, run by each
adapter's contract class with an ``unreachable_storage``."""

from __future__ import annotations

import importlib
import inspect

import pytest

CLASSES = {
    "redis": ("storages.redis", "Redis", ["socket_timeout", "socket_connect_timeout"]),
    "postgresql": ("storages.postgresql", "PostgreSQL", ["connect_timeout"]),
    "mysql": ("storages.mysql", "MySQL", ["connect_timeout"]),
    "s3": ("storages.s3", "S3Storage", ["connect_timeout", "read_timeout"]),
    "mongodb": (
        "storages.mongodb",
        "MongoDB",
        ["server_selection_timeout_ms", "connect_timeout_ms", "socket_timeout_ms"],
    ),
}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_timeouts_have_finite_defaults(name: str) -> None:
    module_name, class_name, timeouts = CLASSES[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    parameters = inspect.signature(cls.__init__).parameters
    for timeout in timeouts:
        default = parameters[timeout].default
        # seconds; milliseconds for MongoDB
        assert isinstance(default, (int, float)) and 0 < default < 3_600_000, (timeout, default)
