"""Systems per service for ``python -m benchmarks``: raw driver, adapter, pool, Selinon, Celery.

Each system is a ``System(name, store(i, payload), retrieve(i) -> payload, store_many(items))``
built inside a context manager per service, so setup and cleanup (tables, key prefixes,
moto's child process) happen in one place. ``store_many`` is None where the system has none.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks.bench_s3 import moto_server
from selinon_like import StoragePool

FLOW, TASK = "BenchFlow", "Task1"
POSTGRESQL_URL = os.environ.get(
    "SELINON_LIKE_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("SELINON_LIKE_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("SELINON_LIKE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")


@dataclass
class System:
    name: str
    store: Callable[[str, Any], Any]
    retrieve: Callable[[str], Any]
    store_many: Callable[[list[tuple[str, Any]]], Any] | None = None
    note: str = ""


@dataclass
class Service:
    name: str
    systems: list[System] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # text of what broke (Selinon as shipped)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    bulk_only: bool = False  # measured for store_many only (see s3's latency variant)
    bulk_rounds: int = 3  # store_many vs stores, repeated (the median is reported)
    # store_many measured again with CPU idle states on: not where calls make no round trip
    # to another process, or one of 10 ms that a CPU's wake-up cannot change
    idle_pass: bool = True

    def close(self) -> None:
        for close in self.closers:
            with contextlib.suppress(Exception):
                close()


def _adapter_systems(storage: Any, pool: StoragePool) -> list[System]:
    routed = pool.get_connected_storage("Bench")
    return [
        System(
            "adapter",
            lambda k, r: storage.store(FLOW, TASK, k, r),
            lambda k: storage.retrieve(FLOW, TASK, k),
            lambda items: storage.store_many([(FLOW, TASK, k, r) for k, r in items]),
        ),
        System(
            "pool",
            lambda k, r: routed.store(FLOW, TASK, k, r),
            lambda k: routed.retrieve(FLOW, TASK, k),
            lambda items: routed.store_many([(FLOW, TASK, k, r) for k, r in items]),
        ),
    ]


def _pool(
    import_: str,
    classname: str,
    configuration: dict[str, Any],
    direct_configuration: dict[str, Any] | None = None,
) -> tuple[Any, StoragePool]:
    """The adapter called directly, and a pool holding another instance of it (with
    ``direct_configuration`` the direct one gets its own place to write)."""
    entry = {"name": "Bench", "import": import_, "classname": classname}
    pool = StoragePool.from_dict({"storages": [{**entry, "configuration": configuration}]})
    direct = StoragePool.from_dict(
        {"storages": [{**entry, "configuration": direct_configuration or configuration}]}
    ).get_connected_storage("Bench")
    return direct, pool


def _celery(backend_url: str, **conf: Any) -> Any:
    import celery

    app = celery.Celery("bench", broker="memory://", backend=backend_url, set_as_current=False)
    app.conf.update(result_extended=False, **conf)
    return app.backend


def _celery_system(backend: Any) -> System:
    return System(
        "celery",
        lambda k, r: backend.store_result(k, r, "SUCCESS"),
        lambda k: backend._get_task_meta_for(k)["result"],
        note=type(backend).__name__,
    )


def _selinon(service: Service, build: Callable[[], Any], shim: Callable[[], Any] | None) -> None:
    """Selinon's adapter as shipped; on failure record the text, then retry with the shim."""
    try:
        storage = build()
        storage.connect()
        storage.store(FLOW, TASK, "probe-" + uuid.uuid4().hex, {"a": 1})
        name, note = "selinon", "as shipped"
    except Exception as exc:
        service.failures.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        if shim is None:
            return
        try:
            storage = shim()
            storage.connect()
            storage.store(FLOW, TASK, "probe-" + uuid.uuid4().hex, {"a": 1})
            name, note = "selinon+shim", "smallest shim, see selinon_shims.py"
        except Exception as exc2:
            service.failures.append(f"with shim: {type(exc2).__name__}: {exc2}"[:200])
            return
    service.closers.append(storage.adapter.disconnect if hasattr(storage, "adapter") else list)
    service.systems.append(
        System(
            name,
            lambda k, r: storage.store(FLOW, TASK, k, r),
            lambda k: storage.retrieve(FLOW, TASK, k),
            note=note,
        )
    )


@contextlib.contextmanager
def memory() -> Iterator[Service]:
    from benchmarks import selinon_shims

    service = Service("memory", idle_pass=False)
    raw: dict[str, bytes] = {}
    service.systems.append(
        System(
            "raw dict+json",
            lambda k, r: raw.__setitem__(k, json.dumps(r).encode()),
            lambda k: json.loads(raw[k]),
        )
    )
    direct, pool = _pool("storages.memory", "InMemoryStorage", {})
    service.systems += _adapter_systems(direct, pool)
    _selinon(service, selinon_shims.selinon_memory, None)
    service.systems.append(_celery_system(_celery("cache+memory://")))
    yield service
    pool.disconnect_all()


def _raw_sql(service: Service, kind: str, url: str, table: str) -> System:
    """The DBAPI driver doing the same work as our SQL adapters: an upsert of the JSON bytes
    (a store overwrites), a select by key, store_many as one transaction of ``executemany``.

    One connection per thread (the 8-thread rows share this system), opened on first use, in
    autocommit; every one opened is closed by ``service.close()``. ``url`` is the SQLAlchemy
    URL the other systems use (environment overrides apply); only its parts are read here.
    """
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    connect: Callable[[], Any]
    if kind == "sqlite":
        import sqlite3

        driver, mark, blob, begin = "sqlite3", "?", "BLOB", "BEGIN IMMEDIATE"

        def connect() -> Any:
            # timeout= is SQLite's busy timeout: writers from 8 threads wait, not fail
            conn = sqlite3.connect(
                parts.database or "", timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            return conn

    elif kind == "postgresql":
        import psycopg

        driver, mark, blob, begin = "psycopg", "%s", "BYTEA", "BEGIN"
        params: dict[str, Any] = {
            "host": parts.host,
            "port": parts.port,
            "user": parts.username,
            "password": parts.password,
            "dbname": parts.database,
            **{k: v for k, v in parts.query.items() if isinstance(v, str)},
        }

        def connect() -> Any:
            kwargs = {k: v for k, v in params.items() if v is not None}
            return psycopg.connect(**kwargs, autocommit=True)

    else:
        import pymysql

        driver, mark, blob, begin = "PyMySQL", "%s", "LONGBLOB", "BEGIN"

        def connect() -> Any:
            return pymysql.connect(
                host=parts.host or "localhost",
                port=parts.port or 3306,
                user=parts.username,
                password=parts.password or "",
                database=parts.database,
                autocommit=True,
            )

    on_conflict = (
        "ON DUPLICATE KEY UPDATE v = VALUES(v)"
        if kind == "mysql"
        else "ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    )
    upsert = f"INSERT INTO {table} (k, v) VALUES ({mark}, {mark}) {on_conflict}"
    select = f"SELECT v FROM {table} WHERE k = {mark}"
    local = threading.local()
    opened: list[Any] = []
    lock = threading.Lock()

    def conn() -> Any:
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = connect()
            with lock:
                opened.append(c)
        return c

    def close_all() -> None:
        with lock:
            conns = opened[:]
            opened.clear()
        for c in conns:
            with contextlib.suppress(Exception):
                c.close()

    service.closers.append(close_all)
    with contextlib.closing(conn().cursor()) as cur:
        cur.execute(f"CREATE TABLE {table} (k VARCHAR(255) PRIMARY KEY, v {blob})")

    def store(k: str, r: Any) -> None:
        with contextlib.closing(conn().cursor()) as cur:
            cur.execute(upsert, (k, json.dumps(r).encode()))

    def retrieve(k: str) -> Any:
        with contextlib.closing(conn().cursor()) as cur:
            cur.execute(select, (k,))
            row = cur.fetchone()
        if row is None:
            raise KeyError(k)
        return json.loads(row[0])

    def store_many(items: list[tuple[str, Any]]) -> None:
        rows = [(k, json.dumps(r).encode()) for k, r in items]
        with contextlib.closing(conn().cursor()) as cur:
            cur.execute(begin)
            try:
                cur.executemany(upsert, rows)
            except BaseException:
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    return System(f"raw {driver}", store, retrieve, store_many)


@contextlib.contextmanager
def sql(kind: str) -> Iterator[Service]:
    import sqlalchemy as sa

    from benchmarks import selinon_shims

    table = f"bench_{uuid.uuid4().hex[:8]}"
    celery_tables = {
        "database_table_names": {"task": f"{table}_ct", "group": f"{table}_cg"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            url = f"sqlite:///{tmp}/raw.sqlite"
            conf: dict[str, Any] = {"path": f"{tmp}/bench.sqlite", "table_name": table}
            classname, module = "SQLite", "storages.sql"
        else:
            url = POSTGRESQL_URL if kind == "postgresql" else MYSQL_URL
            conf = {"connection_string": url, "table_name": table}
            classname = "PostgreSQL" if kind == "postgresql" else "MySQL"
            module = f"storages.{kind}"
        service = Service({"sqlite": "SQLite file", "mysql": "MariaDB"}.get(kind, "PostgreSQL"))
        engine = sa.create_engine(url)  # for the DROP TABLEs at the end only
        service.systems.append(_raw_sql(service, kind, url, f"{table}_raw"))
        direct, pool = _pool(module, classname, conf)
        service.systems += _adapter_systems(direct, pool)
        sel_url = url
        _selinon(
            service,
            lambda: selinon_shims.selinon_sql(sel_url, f"{table}_sel", shim=False),
            (lambda: selinon_shims.selinon_sql(sel_url, f"{table}_sel", shim=True))
            if kind == "postgresql"
            else None,
        )
        cel_url = "db+" + url.replace(f"{tmp}/raw", f"{tmp}/celery")
        service.systems.append(_celery_system(_celery(cel_url, **celery_tables)))
        try:
            yield service
        finally:
            service.close()  # Selinon's session holds a transaction open: end it first
            pool.disconnect_all()
            with engine.begin() as c:
                for name in (f"{table}_raw", table, f"{table}_errors", f"{table}_sel"):
                    c.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
                for name in (f"{table}_ct", f"{table}_cg"):
                    c.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
            engine.dispose()


@contextlib.contextmanager
def redis_service() -> Iterator[Service]:
    import redis

    from benchmarks import selinon_shims

    service = Service("Redis")
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    raw = redis.Redis.from_url(REDIS_URL)

    def raw_many(items: list[tuple[str, Any]]) -> None:
        pipe = raw.pipeline(transaction=False)
        for k, r in items:
            pipe.set(prefix + "raw:" + k, json.dumps(r).encode())
        pipe.execute()

    service.systems.append(
        System(
            "raw redis-py",
            lambda k, r: raw.set(prefix + "raw:" + k, json.dumps(r).encode()),
            lambda k: json.loads(raw.get(prefix + "raw:" + k)),  # type: ignore[arg-type]
            raw_many,
        )
    )
    direct, pool = _pool("storages.redis", "Redis", {"url": REDIS_URL, "key_prefix": prefix})
    service.systems += _adapter_systems(direct, pool)
    _selinon(
        service,
        lambda: selinon_shims.selinon_redis(REDIS_URL),
        lambda: selinon_shims.selinon_redis(REDIS_URL, shim=True),
    )
    service.systems.append(_celery_system(_celery(REDIS_URL)))
    try:
        yield service
    finally:
        pool.disconnect_all()
        raw.flushdb()  # db 9 is this benchmark's own
        raw.close()


@contextlib.contextmanager
def mongodb() -> Iterator[Service]:
    import mongomock

    from benchmarks import selinon_shims

    # mongomock runs every query, and its unique index check, as a scan of the collection:
    # one bulk round only, and every system writes a collection of its own, so that none
    # scans more documents than another.
    service = Service("MongoDB (mongomock, not a server)", bulk_rounds=1, idle_pass=False)
    coll = mongomock.MongoClient()["bench"]["raw"]
    service.systems.append(
        System(
            "raw mongomock",
            lambda k, r: coll.replace_one({"_id": k}, {"_id": k, "r": r}, upsert=True),
            lambda k: coll.find_one({"_id": k})["r"],  # type: ignore[index]
            lambda items: coll.insert_many([{"_id": k, "r": r} for k, r in items]),
        )
    )
    db = f"bench_{uuid.uuid4().hex[:8]}"
    direct, pool = _pool(
        "storages.mongodb",
        "MongoDB",
        {"url": "mongomock://b", "db_name": db},
        {"url": "mongomock://b", "db_name": db + "_direct"},
    )
    service.systems += _adapter_systems(direct, pool)
    _selinon(service, selinon_shims.selinon_mongodb, selinon_shims.selinon_mongodb_shimmed)
    try:
        service.systems.append(_celery_system(selinon_shims.celery_mongomock()))
    except Exception as exc:
        service.failures.append(f"celery mongodb backend on mongomock: {exc!r}"[:200])
    yield service
    pool.disconnect_all()


@contextlib.contextmanager
def s3(latency: float = 0.0) -> Iterator[Service]:
    """S3 on moto's HTTP server. With ``latency`` (seconds slept by the server before each
    answer, as a real S3's 10-50 ms of network and service time) only store_many is
    measured: bare moto spends ~3 ms of CPU per request in one process, so overlapping
    requests cannot pay off there, while they do against a service that waits."""
    import boto3

    from benchmarks import selinon_shims

    name = "S3 (moto HTTP server)"
    if latency:
        name = f"S3 (moto HTTP server + {latency * 1e3:.0f} ms latency)"
    # moto is slow: once
    service = Service(name, bulk_only=bool(latency), bulk_rounds=1, idle_pass=not latency)
    creds = {
        "aws_access_key_id": "AKIABENCHMARK",
        "aws_secret_access_key": "benchmark-secret",
        "region_name": "us-east-1",
    }
    with moto_server(latency) as (endpoint, _pid):
        client = boto3.client("s3", endpoint_url=endpoint, **creds)
        bucket = "bench-raw"
        client.create_bucket(Bucket=bucket)
        service.systems.append(
            System(
                "raw boto3",
                lambda k, r: client.put_object(Bucket=bucket, Key=k, Body=json.dumps(r).encode()),
                lambda k: json.loads(client.get_object(Bucket=bucket, Key=k)["Body"].read()),
            )
        )
        conf = {
            "bucket": "selinon-like-bench",
            "endpoint_url": endpoint,
            "create_bucket": True,
            **creds,
        }
        direct, pool = _pool("storages.s3", "S3Storage", conf)
        service.systems += _adapter_systems(direct, pool)
        if service.bulk_only:
            try:
                yield service
            finally:
                pool.disconnect_all()
            return
        _selinon(
            service,
            lambda: selinon_shims.selinon_s3(endpoint, creds, shim=False),
            lambda: selinon_shims.selinon_s3(endpoint, creds, shim=True),
        )
        try:
            os.environ.setdefault("AWS_ACCESS_KEY_ID", creds["aws_access_key_id"])
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", creds["aws_secret_access_key"])
            client.create_bucket(Bucket="bench-celery")
            backend = _celery(
                "s3://",
                s3_bucket="bench-celery",
                s3_endpoint_url=endpoint,
                s3_region="us-east-1",
                s3_access_key_id=creds["aws_access_key_id"],
                s3_secret_access_key=creds["aws_secret_access_key"],
            )
            service.systems.append(_celery_system(backend))
        except Exception as exc:
            service.failures.append(f"celery s3 backend: {exc!r}"[:200])
        try:
            yield service
        finally:
            pool.disconnect_all()


SERVICES: dict[str, Callable[[], contextlib.AbstractContextManager[Service]]] = {
    "memory": memory,
    "sqlite": lambda: sql("sqlite"),
    "postgresql": lambda: sql("postgresql"),
    "mariadb": lambda: sql("mysql"),
    "redis": redis_service,
    "mongodb": mongodb,
    "s3": s3,
    "s3-latency": lambda: s3(latency=0.01),
}
