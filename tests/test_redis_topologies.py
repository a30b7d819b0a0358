"""The Redis adapter on its three topologies: one server, a Redis Cluster (``cluster: true``) and
a master followed through Sentinel (``sentinels`` + ``service_name``). The contract kit on the
cluster and on Sentinel (fork, threads; secrets, a refused and a silent port: its
unreachable-service suite); eight threads on a capped pool on all three topologies; bulk calls
across hash slots in one pipeline per node, listing over every primary, options, error classes,
and four threads storing while a master is SIGTERMed.

The cluster and Sentinel servers are the suite's own (``tests/servers``, fixtures in
``conftest.py``): a 6-node cluster, and one master, one replica and three sentinels, started
once per session."""

from __future__ import annotations

import collections
import contextlib
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import REDIS_URL, require_service
from servers import FailoverReport, RedisClusterSetup, RedisSentinelSetup

from selinon_like import ConfigError, RetryPolicy, StorageError, StoragePool, StorageUnavailable
from selinon_like.keys import Key, pack_key
from selinon_like.testing import StorageContract, UnreachableServiceContract, connected
from storages.redis import Redis, _glob_escape, _resp

# -- configurations ------------------------------------------------------------------------------


def _cluster_config(cluster: RedisClusterSetup, prefix: str, node: int = 0) -> dict[str, Any]:
    host, port = cluster.startup_nodes[node]
    return {"cluster": True, "host": host, "port": port, "key_prefix": prefix}


def _sentinel_config(setup: RedisSentinelSetup, prefix: str) -> dict[str, Any]:
    return {
        "sentinels": [list(address) for address in setup.sentinel_addresses],
        "service_name": setup.service_name,
        "key_prefix": prefix,
    }


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def on_cluster(redis_cluster: RedisClusterSetup, prefix: str) -> Iterator[Any]:
    yield from connected(Redis(**_cluster_config(redis_cluster, prefix)))


@pytest.fixture
def on_sentinel(redis_sentinel: RedisSentinelSetup, prefix: str) -> Iterator[Any]:
    yield from connected(Redis(**_sentinel_config(redis_sentinel, prefix)))


@pytest.fixture(params=[pytest.param("server", marks=pytest.mark.redis), "cluster", "sentinel"])
def topology(request: pytest.FixtureRequest, prefix: str) -> Iterator[dict[str, Any]]:
    """The configuration of each topology, under a prefix of the test's own; what the test
    stored under it is deleted after (the server is shared with other tests)."""
    if request.param == "server":
        require_service("Redis", lambda: _ping(REDIS_URL))
        configuration: dict[str, Any] = {"url": REDIS_URL, "key_prefix": prefix}
    elif request.param == "cluster":
        configuration = _cluster_config(request.getfixturevalue("redis_cluster"), prefix)
    else:
        configuration = _sentinel_config(request.getfixturevalue("redis_sentinel"), prefix)
    yield configuration
    with _connected(Redis(**configuration)) as storage:
        client = storage._client
        for name in list(client.scan_iter(match=_glob_escape(prefix) + "*", count=1000)):
            client.delete(name)  # one by one: a cluster refuses a DEL across slots


def _ping(url: str) -> None:
    import redis

    with redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3) as client:
        client.ping()


class TestRedisOnCluster(StorageContract, UnreachableServiceContract):
    @pytest.fixture
    def storage(self, on_cluster: Redis) -> Redis:
        return on_cluster

    @pytest.fixture
    def unreachable_storage(self, unreachable_port: int, secret: str) -> Redis:
        return Redis(
            cluster=True,
            host="127.0.0.1",
            port=unreachable_port,
            password=secret,
            socket_timeout=1,
            socket_connect_timeout=1,
        )


class TestRedisOnSentinel(StorageContract, UnreachableServiceContract):
    @pytest.fixture
    def storage(self, on_sentinel: Redis) -> Redis:
        return on_sentinel

    @pytest.fixture
    def unreachable_storage(self, unreachable_port: int, secret: str) -> Redis:
        return Redis(
            sentinels=[["127.0.0.1", unreachable_port]],
            service_name="results",
            password=secret,
            sentinel_password=secret,
            socket_timeout=1,
            socket_connect_timeout=1,
        )


# -- the cluster: slots, nodes, pipelines --------------------------------------------------------


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """Every request any redis-py connection flushes, as ``(server port, bytes)``: one entry
    is one write to one node."""
    from redis.connection import Connection

    sent: list[tuple[int, bytes]] = []
    original: Callable[..., Any] = Connection.send_packed_command

    def send(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        chunks = [command] if isinstance(command, (bytes, str)) else list(command)
        data = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
        sent.append((self.port, data))
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", send)
    return sent


def _primary_ports(cluster: RedisClusterSetup) -> set[int]:
    return {node.port for node in cluster.primaries()}


def test_bulk_calls_send_one_pipeline_per_node(
    on_cluster: Any, redis_cluster: RedisClusterSetup, sends: list[tuple[int, bytes]]
) -> None:
    items = [("bulk", f"t{i % 5}", str(i), {"i": i}) for i in range(1500)]
    keys = [item[:3] for item in items]
    slots = collections.Counter(
        on_cluster._client.keyslot(on_cluster.key_prefix + "r:" + pack_key(*key)) for key in keys
    )
    assert len(slots) > 1000  # the keys really are spread over the slots
    primaries = _primary_ports(redis_cluster)
    on_cluster.store_many(items)  # every node's connection opened (and its handshake sent)
    on_cluster.delete_many(keys)
    sends.clear()

    on_cluster.store_many(items)
    assert sorted(port for port, _ in sends) == sorted(primaries)  # one write per primary
    # One command per slot: MSET where a slot holds several of the keys, SET where it holds one
    mset = sum(data.count(b"\r\n$4\r\nMSET\r\n") for _, data in sends)
    single = sum(data.count(b"\r\n$3\r\nSET\r\n") for _, data in sends)
    shared = sum(1 for count in slots.values() if count > 1)
    assert (mset, single) == (shared, len(slots) - shared) and shared > 0
    sends.clear()
    found = on_cluster.retrieve_many([*keys, ("bulk", "t0", "missing")])
    assert found == {item[:3]: item[3] for item in items}
    assert sorted(port for port, _ in sends) == sorted(primaries)
    sends.clear()
    assert on_cluster.delete_many([*keys[:1000], ("bulk", "t0", "missing")]) == 1000
    assert sorted(port for port, _ in sends) == sorted(primaries)
    assert on_cluster.retrieve_many(keys) == {item[:3]: item[3] for item in items[1000:]}


def test_expire_stores_many_with_set_ex_on_every_node(
    redis_cluster: RedisClusterSetup, prefix: str, sends: list[tuple[int, bytes]]
) -> None:
    with _connected(Redis(**_cluster_config(redis_cluster, prefix), expire=90)) as storage:
        storage.store_many([("ttl", "t", str(i), i) for i in range(300)])  # connections opened
        sends.clear()
        ids = storage.store_many([("ttl", "t", str(i), i) for i in range(300)])
        assert sum(data.count(b"SET") for _, data in sends) == 300
        assert len(sends) == len(_primary_ports(redis_cluster))
        ttls = [storage._client.ttl(record_id) for record_id in ids]
        assert all(0 < ttl <= 90 for ttl in ttls)


def test_a_hash_tag_in_the_prefix_keeps_every_key_in_one_slot(
    redis_cluster: RedisClusterSetup, sends: list[tuple[int, bytes]]
) -> None:
    tagged = f"{{{uuid.uuid4().hex[:8]}}}:"
    with _connected(Redis(**_cluster_config(redis_cluster, tagged))) as storage:
        storage.store("tag", "t", "0", 0)  # the connection opened
        sends.clear()
        storage.store_many([("tag", "t", str(i), i) for i in range(2500)])
        assert len(sends) == 1 and sends[0][1].count(b"MSET") == 3  # one node, 3 chunks
        sends.clear()
        assert len(storage.retrieve_many([("tag", "t", str(i)) for i in range(2500)])) == 2500
        assert len(sends) == 1 and sends[0][1].count(b"MGET") == 1
        storage.delete_many([("tag", "t", str(i)) for i in range(2500)])


def test_iter_keys_lists_the_keys_of_every_primary(
    on_cluster: Any, redis_cluster: RedisClusterSetup
) -> None:
    keys = [("listed", "t", str(i)) for i in range(300)]
    on_cluster.store_many([(*key, 1) for key in keys])
    on_cluster.store_error(None, "listed", "t", "error-only", ValueError("x"))
    holding = set()
    for node in redis_cluster.primaries():
        with node.client() as raw:
            if any(True for _ in raw.scan_iter(match=on_cluster.key_prefix + "r:*", count=1000)):
                holding.add(node.port)
    assert holding == _primary_ports(redis_cluster)
    assert sorted(on_cluster.iter_keys("listed")) == sorted(keys)
    assert list(on_cluster.iter_error_keys()) == [("listed", "t", "error-only")]


def test_any_node_can_be_named_replicas_and_urls_included(
    redis_cluster: RedisClusterSetup, prefix: str
) -> None:
    replica = redis_cluster.replica_of(redis_cluster.primaries()[0])
    by_url = Redis(cluster=True, url=f"redis://127.0.0.1:{replica.port}", key_prefix=prefix)
    by_host = Redis(**_cluster_config(redis_cluster, prefix, node=len(redis_cluster.nodes) - 1))
    with _connected(by_url) as first, _connected(by_host) as second:
        first.store("named", "t", "1", "via a replica's address")
        assert second.retrieve("named", "t", "1") == "via a replica's address"
        assert first.ping() is True


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_bulk_requests_are_the_bytes_redis_py_would_send(encoding: str) -> None:
    from redis.connection import Connection

    commands: list[tuple[Any, ...]] = [
        ("SET", "plain", b"x" * 10),
        ("MSET", "big", b"\0" * (200 * 1024), "empty", b"", "é", b"\xff"),
        ("SET", "ttl", b"v", "EX", 60),
        ("MGET", "a", "b"),
        ("DEL", "big"),
    ]
    buffers = _resp(commands, encoding, "strict")
    redis_py: Any = Connection(encoding=encoding)  # type: ignore[no-untyped-call]
    packed = redis_py.pack_commands(commands)
    assert b"".join(buffers) == b"".join(packed)
    assert len(buffers) == 3 and buffers[1] is commands[1][2]  # the large value is not copied


def test_a_stale_slot_map_is_read_again_before_the_retry(
    on_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """As after a failover the client has not heard of yet: every slot is believed to be on
    one primary, the others answer MOVED, and the retry goes by a fresh map."""
    client = on_cluster._client
    manager = client.nodes_manager
    first = client.get_primaries()[0]
    true_owner = {slot: nodes[0].name for slot, nodes in manager.slots_cache.items()}
    for slot in list(manager.slots_cache):
        manager.slots_cache[slot] = [first]
    items = [("stale", "t", str(i), i) for i in range(600)]
    with caplog.at_level("WARNING", logger="selinon_like"):
        on_cluster.store_many(items)
    assert "MovedError" in caplog.text and "retry 1 of" in caplog.text
    assert {slot: nodes[0].name for slot, nodes in manager.slots_cache.items()} == true_owner
    assert on_cluster.retrieve_many([item[:3] for item in items]) == {
        item[:3]: item[3] for item in items
    }
    assert on_cluster.delete_many([item[:3] for item in items]) == 600


def test_bulk_calls_hash_keys_as_the_cluster_does(on_cluster: Any) -> None:
    """The slots the bulk calls group keys by (hashed here, not by redis-py's client) are the
    server's own, a hash tag in a task name and non-ASCII names included."""
    names = [
        on_cluster.key_prefix + "r:" + pack_key(*key)
        for key in [
            ("f", "t", "1"),
            ("f", "{tag}", "1"),
            ("f", "{tag}", "2"),
            ("f", "{}", "1"),
            ("f", "{unclosed", "1"),
            ("f", "x}{y}", "1"),
            ("flöw", "täsk", "ü"),
            ("f", "t", "\u20ac" * 30),
        ]
    ]
    by_server = {
        name: int(on_cluster._client.execute_command("CLUSTER KEYSLOT", name.encode()))
        for name in names
    }
    grouped = {names[i]: slot for slot, group in on_cluster._slot_groups(names) for i in group}
    assert grouped == by_server
    assert by_server[names[1]] == by_server[names[2]]  # the tag alone is hashed


def test_store_many_over_every_slot_range_needs_no_redirection(
    on_cluster: Any, redis_cluster: RedisClusterSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys in every primary's slot range go straight to their owner: a key sent to another
    node would answer MOVED, which the call would log as a retry."""
    items = [("spread", f"t{i % 7}", str(i), {"i": i}) for i in range(4000)]
    with caplog.at_level("WARNING", logger="selinon_like"):
        on_cluster.store_many(items)
        found = on_cluster.retrieve_many([item[:3] for item in items])
    assert "retry" not in caplog.text
    assert found == {item[:3]: item[3] for item in items}
    holding = collections.Counter()
    for node in redis_cluster.primaries():
        with node.client() as raw:
            holding[node.port] = sum(
                1 for _ in raw.scan_iter(match=_glob_escape(on_cluster.key_prefix) + "*")
            )
    assert sum(holding.values()) == 4000 and min(holding.values()) > 1000
    assert on_cluster.delete_many([item[:3] for item in items]) == 4000


def test_store_many_writes_the_records_single_stores_write(on_cluster: Any) -> None:
    values: list[Any] = [{"i": 1}, "é" * 100, [None, True, 1.5], "x" * 70_000, {}]
    single = [("bytes", "one", str(i), value) for i, value in enumerate(values)]
    bulk = [("bytes", "many", str(i), value) for i, value in enumerate(values)]
    for item in single:
        on_cluster.store(*item)
    on_cluster.store_many(bulk)
    get = on_cluster._client.get
    prefix = on_cluster.key_prefix + "r:"
    for one, many in zip(single, bulk, strict=True):
        assert get(prefix + pack_key(*one[:3])) == get(prefix + pack_key(*many[:3])) is not None


def test_a_moved_reply_amid_a_nodes_replies_drops_its_connections(
    on_cluster: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slot believed to be on the wrong primary: its MOVED reply comes amid that node's
    other replies. The call fails there, every connection it sent on is dropped (replies
    unread), and the retry, on a fresh slot map, stores everything; later calls read their
    own replies, not the ones left behind."""
    from redis.connection import Connection

    client = on_cluster._client
    manager = client.nodes_manager
    items = [("moved", "t", str(i), i) for i in range(900)]
    on_cluster.store_many(items)  # every node's connection opened
    names = [on_cluster.key_prefix + "r:" + pack_key(*item[:3]) for item in items]
    groups = on_cluster._slot_groups(names)
    wrong = client.get_primaries()[0]
    # A slot of another node, among the middle of the wrong node's commands.
    theirs = [slot for slot, _group in groups if manager.slots_cache[slot][0] is not wrong]
    stale = theirs[len(theirs) // 2]
    true_owner = manager.slots_cache[stale][0].name
    manager.slots_cache[stale] = [wrong]
    dropped: list[int] = []
    original = Connection.disconnect

    def disconnect(self: Any, *args: Any, **kwargs: Any) -> Any:
        dropped.append(self.port)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "disconnect", disconnect)
    changed = [(*item[:3], -item[3]) for item in items]
    with caplog.at_level("WARNING", logger="selinon_like"):
        on_cluster.store_many(changed)
    assert "MovedError" in caplog.text and "retry 1 of" in caplog.text
    # Each node's connection (the slot map's refresh may close others too: a replica's).
    assert {node.port for node in client.get_primaries()} <= set(dropped)
    assert manager.slots_cache[stale][0].name == true_owner
    for _ in range(3):
        assert on_cluster.retrieve_many([item[:3] for item in items]) == {
            item[:3]: item[3] for item in changed
        }
    assert on_cluster.delete_many([item[:3] for item in items]) == 900


# -- Sentinel ------------------------------------------------------------------------------------


def test_sentinel_writes_go_to_the_master_they_name(
    on_sentinel: Any, redis_sentinel: RedisSentinelSetup
) -> None:
    record_id = on_sentinel.store("sentinel", "t", "1", {"where": "master"})
    with redis_sentinel.current_master().client() as master:
        assert master.get(record_id) == b'{"where":"master"}'
    assert on_sentinel._client.connection_pool.service_name == redis_sentinel.service_name


def test_sentinels_may_be_host_port_strings(
    redis_sentinel: RedisSentinelSetup, prefix: str
) -> None:
    addresses = [f"{host}:{port}" for host, port in redis_sentinel.sentinel_addresses]
    storage = Redis(
        sentinels=addresses, service_name=redis_sentinel.service_name, key_prefix=prefix
    )
    with _connected(storage):
        storage.store("strings", "t", "1", 1)
        assert storage.retrieve("strings", "t", "1") == 1


def test_a_wrong_sentinel_password_never_shows(
    redis_sentinel: RedisSentinelSetup, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The sentinels have no password for their default user (which then takes any), so a
    # user they do not know is how credentials are wrong there.
    secret = f"sentinel-{uuid.uuid4().hex}"
    storage = Redis(
        **_sentinel_config(redis_sentinel, prefix),
        sentinel_username=f"nobody-{uuid.uuid4().hex[:8]}",
        sentinel_password=secret,
    )
    storage.retry_policy = RetryPolicy(attempts=2, backoff=0.01)
    assert secret not in repr(storage)
    with _connected(storage), caplog.at_level("DEBUG"), pytest.raises(StorageError) as info:
        storage.store("f", "t", "1", 1)
    assert "No master found" in str(info.value)  # the sentinels refused to answer
    assert secret not in str(info.value) and secret not in caplog.text


# -- options and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configuration", "key"),
    [
        ({"cluster": True, "unix_socket_path": "/tmp/r.sock"}, "unix_socket_path"),
        ({"cluster": True, "url": "unix:///tmp/r.sock"}, "url"),
        ({"cluster": True, "db": 2}, "db"),
        ({"cluster": True, "url": "redis://node:7000/3"}, "url"),
        ({"cluster": True, "url": "redis://node:7000/?db=1"}, "url"),
        ({"cluster": "sometimes"}, "cluster"),
        ({"sentinels": [["s1", 26379]]}, "service_name"),
        ({"sentinels": [["s1", 26379]], "service_name": "m", "host": "h"}, "host"),
        ({"sentinels": [["s1", 26379]], "service_name": "m", "url": "redis://h"}, "url"),
        ({"sentinels": [["s1", 26379]], "service_name": "m", "cluster": True}, "sentinels"),
        ({"sentinels": "s1:26379", "service_name": "m"}, "sentinels"),
        ({"sentinels": [], "service_name": "m"}, "sentinels"),
        ({"sentinels": [["s1"]], "service_name": "m"}, "sentinels"),
        ({"sentinels": [["s1", 0]], "service_name": "m"}, "sentinels"),
        ({"sentinels": ["s1"], "service_name": "m"}, "sentinels"),
        ({"sentinels": [[5, 26379]], "service_name": "m"}, "sentinels"),
        ({"service_name": "m"}, "service_name"),
        ({"sentinel_password": "pw-sentinel"}, "sentinel_password"),
    ],
)
def test_bad_topology_options_are_config_errors(configuration: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Redis(**configuration)
    assert info.value.key == key
    assert "pw-sentinel" not in str(info.value)


def test_topology_options_are_parsed() -> None:
    from_env: dict[str, Any] = {"db": "3", "cluster": "false"}  # strings, as ${VARS} give
    storage = Redis(
        sentinels=[["s1", "26379"], ("s2", 26380), "[::1]:26381", "s4:26382"],
        service_name="results",
        sentinel_username="watcher",
        sentinel_password="pw-sentinel",
        **from_env,
    )
    assert storage.sentinels == [("s1", 26379), ("s2", 26380), ("::1", 26381), ("s4", 26382)]
    assert (storage.db, storage.cluster, storage.service_name) == (3, False, "results")
    assert "pw-sentinel" not in repr(storage)
    on: dict[str, Any] = {"cluster": "true"}
    assert Redis(**on, url="redis://node:7000/0").cluster is True


def test_topologies_build_the_matching_redis_py_clients() -> None:
    import redis
    from redis.sentinel import SentinelConnectionPool

    sentinel: Any = Redis(
        sentinels=[["127.0.0.1", _free_port()]],
        service_name="results",
        password="pw-master",
        sentinel_password="pw-sentinel",
        socket_timeout=1.5,
    )
    sentinel.connect()  # no I/O: the first command asks the sentinels
    try:
        pool = sentinel._client.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "results"
        assert pool.connection_kwargs["password"] == "pw-master"
        (watcher,) = sentinel._sentinel.sentinels
        kwargs = watcher.connection_pool.connection_kwargs
        assert (kwargs["password"], kwargs["socket_timeout"]) == ("pw-sentinel", 1.5)
        assert watcher.connection_pool.make_connection().retry.get_retries() == 0
        assert isinstance(sentinel._client, redis.Redis)
    finally:
        sentinel.disconnect()
    assert sentinel._sentinel is None and sentinel.is_connected() is False


def test_cluster_and_sentinel_errors_are_classified() -> None:
    from redis import exceptions
    from redis.sentinel import MasterNotFoundError

    storage = Redis(cluster=True)
    transient = [
        exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        exceptions.MasterDownError("MASTERDOWN"),
        exceptions.TryAgainError("TRYAGAIN"),
        exceptions.MovedError("3999 127.0.0.1:6381"),
        exceptions.AskError("3999 127.0.0.1:6381"),
        exceptions.ClusterError("TTL exhausted."),
        exceptions.SlotNotCoveredError('Slot "3" is not covered by the cluster.'),
        exceptions.MaxConnectionsError("Too many connections"),
        MasterNotFoundError("No master found for 'results'"),
    ]
    for error in transient:
        assert storage.is_transient(error), error
    unreachable = exceptions.RedisClusterException("Redis Cluster cannot be connected.")
    unreachable.__cause__ = exceptions.ConnectionError("Connection refused")
    assert storage.is_transient(unreachable)
    assert not storage.is_transient(exceptions.RedisClusterException("No targets were found"))
    assert not storage.is_transient(exceptions.ClusterCrossSlotError("CROSSSLOT"))
    assert not storage.is_transient(exceptions.AuthenticationError("WRONGPASS"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- threads -------------------------------------------------------------------------------


def test_eight_threads_share_one_capped_instance(topology: dict[str, Any]) -> None:
    import redis

    pool = _pool({**topology, "max_connections": 2})  # fewer connections than threads: they wait
    seen: set[int] = set()

    def work(worker: int) -> None:
        storage = pool.get_connected_storage("Results")
        seen.add(id(storage))
        for i in range(250):
            storage.store("threads", f"w{worker}", str(i), {"w": worker, "i": i})

    try:
        assert _threads(8, work) == [] and len(seen) == 1
        storage: Any = pool.get_connected_storage("Results")
        keys = [("threads", f"w{w}", str(i)) for w in range(8) for i in range(250)]
        found = storage.retrieve_many(keys)
        assert [found[key] for key in keys] == [
            {"w": w, "i": i} for w in range(8) for i in range(250)
        ]
        assert len(set(storage.iter_keys("threads"))) == 2000
        if storage.cluster:
            pools = [node.redis_connection.connection_pool for node in storage._client.get_nodes()]
        else:
            pools = [storage._client.connection_pool]
        assert all(isinstance(pool, redis.BlockingConnectionPool) for pool in pools)
        assert {pool.max_connections for pool in pools} == {2}
        assert all(len(pool._connections) <= 2 for pool in pools)
    finally:
        pool.disconnect_all()


# -- failover ----------------------------------------------------------------------------------

# Long enough to outlast a failover (about 10 s of waits, no jitter so it is the same each run).
PATIENT: dict[str, Any] = {"attempts": 16, "backoff": 0.1, "max_backoff": 1.0, "jitter": False}
# Gives up within a few tens of milliseconds: calls during the failover must fail.
IMPATIENT: dict[str, Any] = {"attempts": 3, "backoff": 0.02, "max_backoff": 0.02, "jitter": False}


def _pool(configuration: dict[str, Any], retry: dict[str, Any] | None = None) -> StoragePool:
    entry: dict[str, Any] = {
        "name": "Results",
        "import": "storages.redis",
        "classname": "Redis",
        "configuration": configuration,
    }
    if retry is not None:
        entry["retry"] = retry
    return StoragePool.from_dict({"storages": [entry]})


@dataclass
class _Writer:
    """One thread storing ``(flow, writer, i)`` until told to stop: one result a call, or
    ``batch`` of them with ``store_many``."""

    storage: Any
    name: str
    batch: int = 1
    acked: dict[Key, int] = field(default_factory=dict)
    failures: list[tuple[float, StorageUnavailable]] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)
    slowest: float = 0.0
    count: int = 0

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            items = [
                ("failover", self.name, str(i), i)
                for i in range(self.count, self.count + self.batch)
            ]
            started = time.monotonic()
            try:
                if self.batch == 1:
                    self.storage.store(*items[0])
                else:
                    self.storage.store_many(items)
                self.acked.update((item[:3], item[3]) for item in items)
            except StorageUnavailable as exc:
                self.failures.append((time.monotonic() - started, exc))
            except BaseException as exc:
                self.unexpected.append(exc)
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.count += self.batch


def _through_failover(
    configuration: dict[str, Any], fail_over: Callable[[], FailoverReport], what: str
) -> None:
    """Four patient writers (one of them storing in bulk) and two impatient ones store while
    ``fail_over`` SIGTERMs the master; then every acknowledged store is read back, and the
    failures are checked."""
    patient, impatient = _pool(configuration, PATIENT), _pool(configuration, IMPATIENT)
    # The fourth patient writer stores 20 results a call: bulk calls meet the failover too.
    writers = [
        _Writer(patient.get_connected_storage("Results"), f"p{w}", batch=20 if w == 3 else 1)
        for w in range(4)
    ]
    writers += [_Writer(impatient.get_connected_storage("Results"), f"i{w}") for w in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=writer.run, args=(stop,)) for writer in writers]
    for thread in threads:
        thread.start()
    try:
        _wait(lambda: all(writer.count >= 50 for writer in writers), 20)
        before = [writer.count for writer in writers]
        report = fail_over()
        after = [writer.count for writer in writers]
        # The failed-over cluster must take writes again from every writer.
        _wait(lambda: all(w.count >= n + 50 for w, n in zip(writers, after, strict=True)), 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    try:
        assert [writer.unexpected for writer in writers] == [[]] * 6
        assert all(n > b for n, b in zip(after, before, strict=True))  # kept writing during it
        reader = patient.get_connected_storage("Results")
        acked = {key: value for writer in writers for key, value in writer.acked.items()}
        assert reader.retrieve_many(list(acked)) == acked  # no acknowledged store was lost
        assert not any(writer.failures for writer in writers[:4])  # the policy outlasted it
        failures = [failure for writer in writers[4:] for failure in writer.failures]
        assert failures, "the impatient writers never met the failover"
        policy = RetryPolicy(**IMPATIENT)
        least = sum(policy.delay(retry) for retry in range(policy.attempts - 1))
        for seconds, error in failures:
            assert "after 3 attempts" in str(error) and seconds >= least
        patient_slowest = max(writer.slowest for writer in writers[:4])
        retries = patient.stats()["Results"]["retries"]
    finally:
        patient.disconnect_all()
        impatient.disconnect_all()
    sys.stdout.write(
        f"\n{what}: replica serving {report.seconds:.2f} s after SIGTERM (old master exited at "
        f"{report.exit_seconds:.2f} s, back as a replica at {report.rejoin_seconds or 0:.2f} s); "
        f"slowest acknowledged store {patient_slowest:.2f} s, {retries} retries, "
        f"{len(acked)} stores acknowledged and read back, {len(failures)} impatient calls "
        "ended as StorageUnavailable\n"
    )


def test_four_writers_through_a_cluster_failover(
    redis_cluster: RedisClusterSetup, prefix: str
) -> None:
    redis_cluster.wait_healthy()
    _through_failover(_cluster_config(redis_cluster, prefix), redis_cluster.fail_over, "cluster")


def test_four_writers_through_a_sentinel_failover(
    redis_sentinel: RedisSentinelSetup, prefix: str
) -> None:
    redis_sentinel.wait_healthy()
    _through_failover(
        _sentinel_config(redis_sentinel, prefix), redis_sentinel.fail_over, "sentinel"
    )


# -- helpers -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _connected(storage: Any) -> Iterator[Any]:
    storage.connect()
    try:
        yield storage
    finally:
        storage.disconnect()


def _threads(count: int, work: Callable[[int], Any]) -> list[BaseException]:
    failures: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(worker: int) -> None:
        barrier.wait()
        try:
            work(worker)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _wait(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {seconds} s")
        time.sleep(0.01)
