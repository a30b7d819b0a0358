"""Selinon 1.4's storage adapters as shipped, and the smallest shims that make them run.

Every builder returns an object with this project's call shape (``store(flow, task, id,
result)``, ``retrieve(flow, task, id)``, ``connect()``); Selinon's ``store`` takes a leading
``node_args`` argument, passed as None. A builder with ``shim=False`` imports and configures
the adapter exactly as Selinon ships it, so what fails on current drivers fails there, and the
runner records the text. Each shim is described where it is applied.
"""

from __future__ import annotations

import sys
import types
import uuid
from typing import Any


class _Call:
    """Adapts Selinon's ``store(node_args, flow, task, id, result)`` to our shape."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def connect(self) -> None:
        self.adapter.connect()

    def store(self, flow: str, task: str, task_id: str, result: Any) -> Any:
        return self.adapter.store(None, flow, task, task_id, result)

    def retrieve(self, flow: str, task: str, task_id: str) -> Any:
        return self.adapter.retrieve(flow, task, task_id)


def selinon_memory() -> _Call:
    from selinon.storages.memory import InMemoryStorage

    return _Call(InMemoryStorage())


def selinon_redis(url: str, shim: bool = False) -> _Call:
    from redis.connection import parse_url
    from selinon.storages import redis as module
    from selinon.storages.redis import Redis

    if shim:
        # Shim: redis-py 6+ dropped Redis(charset=..., errors=...), which Selinon always
        # passes; the module's ``redis`` replaced by one whose Redis drops those two.
        import redis

        class _Redis(redis.Redis):
            def __init__(self, *args: Any, charset: Any = None, errors: Any = None, **kw: Any):
                super().__init__(*args, **kw)

        module.redis = types.SimpleNamespace(Redis=_Redis)  # type: ignore[attr-defined]

    options = parse_url(url)
    return _Call(Redis(host=options["host"], port=options["port"], db=options["db"]))


def selinon_sql(url: str, table: str, shim: bool) -> _Call:
    """Selinon ships a PostgreSQL adapter only (JSONB columns, fixed table ``result``)."""
    if not url.startswith("postgresql"):
        raise RuntimeError("Selinon 1.4 has no adapter for this database (PostgreSQL only)")
    if shim:
        # Shim 1: sqlalchemy_utils (a Selinon extra dependency, not in current installs) is
        # used only for database_exists/create_database; the database exists here.
        fake = types.ModuleType("sqlalchemy_utils")
        fake.database_exists = lambda url: True  # type: ignore[attr-defined]
        fake.create_database = lambda url: None  # type: ignore[attr-defined]
        sys.modules.setdefault("sqlalchemy_utils", fake)
    from selinon.storages.postgresql import adapter, models

    if shim:
        # Shim 2: SQLAlchemy 2 removed create_engine(encoding=...); drop that argument.
        # Shim 3: the fixed table name ``result`` renamed to a private one (shared server).
        real = adapter.create_engine
        adapter.create_engine = lambda u, encoding=None, **kw: real(u, **kw)  # type: ignore[assignment]
        models.Result.__table__.name = table  # type: ignore[attr-defined]
    return _Call(adapter.PostgreSQL(url))


def selinon_mongodb(url: str, db_name: str) -> _Call:
    """As shipped, on the server at ``url`` (Selinon takes a host and a port, not a URL)."""
    from urllib.parse import urlsplit

    from selinon.storages.mongodb import MongoDB

    parts = urlsplit(url)
    return _Call(MongoDB(db_name + "_selinon", "results", parts.hostname, parts.port or 27017))


def selinon_mongodb_needs_a_server() -> _Call:
    raise RuntimeError(
        "Selinon 1.4's MongoDB adapter builds MongoClient(host, port) itself: as shipped it "
        "cannot use mongomock"
    )


def selinon_mongomock() -> _Call:
    import mongomock
    from selinon.storages import mongodb

    # Shim: the module's MongoClient replaced with mongomock's.
    mongodb.MongoClient = lambda host, port: mongomock.MongoClient()  # type: ignore[assignment]
    return _Call(mongodb.MongoDB(f"bench_{uuid.uuid4().hex[:8]}", "results"))


def selinon_s3(endpoint: str, creds: dict[str, str], shim: bool) -> _Call:
    from selinon.storages.s3 import S3

    bucket = f"selinon-bench-{uuid.uuid4().hex[:8]}"
    adapter = S3(bucket, endpoint_url=endpoint, serialize_json=True, **creds)
    if shim:
        # Shim: connect() creates a missing bucket with LocationConstraint=None, which current
        # botocore rejects; the bucket is created beforehand, so connect() only checks it.
        import boto3

        boto3.client("s3", endpoint_url=endpoint, **creds).create_bucket(Bucket=bucket)
    return _Call(adapter)


def celery_mongomock() -> Any:
    """Celery's MongoDB backend with its client replaced by mongomock's (no server here)."""
    import celery
    import mongomock

    app = celery.Celery("bench", broker="memory://", backend="mongodb://localhost/celerybench")
    backend = app.backend
    backend._connection = mongomock.MongoClient()
    return backend
