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
def redis_cluster() -> Iterator[Service]:
    """A private 6-node Redis Cluster (3 primaries, 3 replicas; ``tests.servers``), started
    here and stopped on exit. Raw is redis-py's ``RedisCluster`` (store_many: its pipeline,
    which groups the commands by node); ours is the Redis adapter with ``cluster: true``. The
    keys carry no hash tag, so a store_many of 1,000 spreads over the three primaries."""
    from tests.servers import start_redis_cluster

    service = Service("Redis Cluster (3 primaries, 3 replicas)")
    service.failures.append(
        "Selinon 1.4 and Celery 5 have no Redis Cluster result backend: raw and ours only"
    )
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    with start_redis_cluster() as cluster:
        raw: Any = cluster.client()  # redis-py's cluster pipeline() is untyped

        def raw_many(items: list[tuple[str, Any]]) -> None:
            pipe = raw.pipeline()
            for k, r in items:
                pipe.set(prefix + "raw:" + k, json.dumps(r).encode())
            pipe.execute()

        service.systems.append(
            System(
                "raw RedisCluster",
                lambda k, r: raw.set(prefix + "raw:" + k, json.dumps(r).encode()),
                lambda k: json.loads(raw.get(prefix + "raw:" + k)),
                raw_many,
            )
        )
        host, port = cluster.startup_nodes[0]  # any node: the adapter discovers the others
        conf = {"cluster": True, "host": host, "port": port, "key_prefix": prefix}
        direct, pool = _pool("storages.redis", "Redis", conf)
        service.systems += _adapter_systems(direct, pool)
        try:
            yield service
        finally:
            pool.disconnect_all()
            direct.disconnect()
            raw.close()


@contextlib.contextmanager
def mongodb() -> Iterator[Service]:
    """MongoDB on a server: the one SELINON_LIKE_MONGODB_URL names, else a private SecantusDB
    (``tests.servers``, a MongoDB-wire-compatible server on WiredTiger) started here and
    stopped on exit. Raw pymongo upserts ``{_id: key, v: JSON bytes}`` (store_many: one
    unordered ``bulk_write`` of such upserts) and reads by ``_id``, its writes acknowledged
    once journaled (write concern ``j: true``) as the adapter's are by default (``journal``):
    an acknowledged result survives a crash of the server. Without it a raw store skipped the
    fsync ours waits for (4.5x a store's time on this machine under others' disk load, 1.7x
    on an idle one), and pool/raw measured that choice rather than the adapter. Ours also
    holds the key's three fields, under no index (the ``_id``, the key's digest, keeps one
    document per key)."""
    import pymongo
    from pymongo.write_concern import WriteConcern

    from benchmarks import selinon_shims
    from benchmarks.bench_mongodb import mongodb_server

    db = f"bench_{uuid.uuid4().hex[:8]}"
    elsewhere = "SELINON_LIKE_MONGODB_URL" in os.environ
    with mongodb_server() as (_label, url):
        service = Service(f"MongoDB ({'SELINON_LIKE_MONGODB_URL' if elsewhere else 'SecantusDB'})")
        client: Any = pymongo.MongoClient(url)
        coll = client[db].get_collection("raw", write_concern=WriteConcern(j=True))

        def raw_store(k: str, r: Any) -> None:
            coll.replace_one({"_id": k}, {"_id": k, "v": json.dumps(r).encode()}, upsert=True)

        def raw_many(items: list[tuple[str, Any]]) -> None:
            requests = [
                pymongo.ReplaceOne({"_id": k}, {"_id": k, "v": json.dumps(r).encode()}, upsert=True)
                for k, r in items
            ]
            coll.bulk_write(requests, ordered=False)

        service.systems.append(
            System(
                "raw pymongo",
                raw_store,
                lambda k: json.loads(coll.find_one({"_id": k}, {"_id": 0, "v": 1})["v"]),
                raw_many,
            )
        )
        direct, pool = _pool("storages.mongodb", "MongoDB", {"url": url, "db_name": db})
        service.systems += _adapter_systems(direct, pool)
        _selinon(service, lambda: selinon_shims.selinon_mongodb(url, db), None)
        try:
            service.systems.append(_celery_system(_celery(_with_database(url, db + "_celery"))))
        except Exception as exc:
            service.failures.append(f"celery mongodb backend: {exc!r}"[:200])
        try:
            yield service
        finally:
            service.close()
            pool.disconnect_all()
            direct.disconnect()
            for name in client.list_database_names():
                if name.startswith(db):
                    client.drop_database(name)
            client.close()


def _with_database(url: str, database: str) -> str:
    """``url`` (``mongodb://host:port/...``) naming ``database`` as its path."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@contextlib.contextmanager
def mongodb_fake() -> Iterator[Service]:
    """MongoDB on mongomock, an in-process fake (labelled so): it runs every query, and our
    unique key index's check, as a scan of the collection, so its figures show CPU costs in
    this process, not a server's. Our adapter gets the client through ``from_client``."""
    import mongomock

    from benchmarks import selinon_shims
    from storages.mongodb import MongoDB

    # The tests' mongomock client carries the shim mongomock needs for bulk_write.
    from tests.mongomock_client import mongomock_client

    # One bulk round only, and every system writes a collection of its own, so that none
    # scans more documents than another.
    service = Service("MongoDB on mongomock (fake)", bulk_rounds=1, idle_pass=False)
    coll: Any = mongomock.MongoClient()["bench"]["raw"]
    service.systems.append(
        System(
            "raw mongomock",
            lambda k, r: coll.replace_one({"_id": k}, {"_id": k, "r": r}, upsert=True),
            lambda k: coll.find_one({"_id": k})["r"],
            lambda items: coll.insert_many([{"_id": k, "r": r} for k, r in items]),
        )
    )
    db = f"bench_{uuid.uuid4().hex[:8]}"
    entry: dict[str, Any] = {"name": "Bench", "import": "storages.mongodb", "classname": "MongoDB"}
    entry["configuration"] = {"db_name": db}
    # A configuration cannot bring a client: the pool starts with an instance given to it.
    config = StoragePool.from_dict({"storages": [entry]}).config
    pool = StoragePool(config, {"Bench": MongoDB.from_client(mongomock_client(), db_name=db)})
    direct = MongoDB.from_client(mongomock_client(), db_name=db + "_direct")
    direct.connect()
    service.systems += _adapter_systems(direct, pool)
    _selinon(service, selinon_shims.selinon_mongodb_needs_a_server, selinon_shims.selinon_mongomock)
    try:
        service.systems.append(_celery_system(selinon_shims.celery_mongomock()))
    except Exception as exc:
        service.failures.append(f"celery mongodb backend on mongomock: {exc!r}"[:200])
    try:
        yield service
    finally:
        pool.disconnect_all()
        direct.disconnect()


@contextlib.contextmanager
def s3() -> Iterator[Service]:
    """S3 on a private SeaweedFS (``weed mini``, its S3 gateway; ``tests.servers``) started
    here and stopped on exit. Each system writes a bucket of its own."""
    import boto3

    from benchmarks import selinon_shims
    from tests.servers import start_s3

    service = Service("S3 (SeaweedFS)")
    with start_s3() as server:
        creds = {
            "aws_access_key_id": server.access_key,
            "aws_secret_access_key": server.secret_key,
            "region_name": server.region,
        }
        endpoint = server.endpoint_url
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        )
        bucket = server.new_bucket("bench-raw")

        def raw_store(k: str, r: Any) -> None:
            client.put_object(Bucket=bucket, Key=k, Body=json.dumps(r).encode())

        service.systems.append(
            System(
                "raw boto3",
                raw_store,
                lambda k: json.loads(client.get_object(Bucket=bucket, Key=k)["Body"].read()),
            )
        )
        conf = {"bucket": server.new_bucket("bench"), **server.client_options()}
        direct, pool = _pool("storages.s3", "S3Storage", conf)
        service.systems += _adapter_systems(direct, pool)
        _selinon(
            service,
            lambda: selinon_shims.selinon_s3(endpoint, creds, shim=False),
            lambda: selinon_shims.selinon_s3(endpoint, creds, shim=True),
        )
        try:
            service.systems.append(_celery_system(_celery_s3(endpoint, creds, server.new_bucket)))
        except Exception as exc:
            service.failures.append(f"celery s3 backend: {exc!r}"[:200])
        try:
            yield service
        finally:
            service.close()
            pool.disconnect_all()
            direct.disconnect()
            client.close()


def _celery_s3(endpoint: str, creds: dict[str, str], new_bucket: Callable[[str], str]) -> Any:
    return _celery(
        "s3://",
        s3_bucket=new_bucket("bench-celery"),
        s3_endpoint_url=endpoint,
        s3_region=creds["region_name"],
        s3_access_key_id=creds["aws_access_key_id"],
        s3_secret_access_key=creds["aws_secret_access_key"],
    )


@contextlib.contextmanager
def s3_fake_latency(latency: float = 0.01) -> Iterator[Service]:
    """store_many only, on moto's S3 server (a fake, labelled so) sleeping ``latency`` seconds
    before each answer, as a remote S3's 10-50 ms of network and service time: what
    overlapping the requests of a store_many gains where a request waits rather than
    computes. On loopback SeaweedFS answers in about a millisecond, so this case needs the
    injected wait."""
    import boto3

    service = Service(
        f"S3 on moto + {latency * 1e3:.0f} ms latency (fake)",
        bulk_only=True,
        bulk_rounds=1,
        idle_pass=False,
    )
    creds = {
        "aws_access_key_id": "AKIABENCHMARK",
        "aws_secret_access_key": "benchmark-secret",
        "region_name": "us-east-1",
    }
    with moto_server(latency) as (endpoint, _pid):
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=creds["aws_access_key_id"],
            aws_secret_access_key=creds["aws_secret_access_key"],
            region_name=creds["region_name"],
        )
        client.create_bucket(Bucket="bench-raw")
        service.systems.append(
            System(
                "raw boto3",
                lambda k, r: client.put_object(
                    Bucket="bench-raw", Key=k, Body=json.dumps(r).encode()
                ),
                lambda k: json.loads(client.get_object(Bucket="bench-raw", Key=k)["Body"].read()),
            )
        )
        conf = {"bucket": "selinon-like-bench", "endpoint_url": endpoint, "create_bucket": True}
        direct, pool = _pool("storages.s3", "S3Storage", {**conf, **creds})
        service.systems += _adapter_systems(direct, pool)
        try:
            yield service
        finally:
            pool.disconnect_all()
            direct.disconnect()
            client.close()


SERVICES: dict[str, Callable[[], contextlib.AbstractContextManager[Service]]] = {
    "memory": memory,
    "sqlite": lambda: sql("sqlite"),
    "postgresql": lambda: sql("postgresql"),
    "mariadb": lambda: sql("mysql"),
    "redis": redis_service,
    "redis-cluster": redis_cluster,
    "mongodb": mongodb,
    "mongodb-fake": mongodb_fake,
    "s3": s3,
    "s3-fake-latency": s3_fake_latency,
}
