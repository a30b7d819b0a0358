"""The private servers of tests/servers: each answers a real round trip with its own driver,
listens on loopback only, reports a failed start with its log, and frees its ports when
stopped; the Redis failover helpers really replace a master by its replica."""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import start_or_skip
from servers import (
    MongoServer,
    RedisClusterSetup,
    RedisSentinelSetup,
    S3Server,
    ServerProcess,
    ServerStartError,
    free_ports,
    port_is_free,
    start_mongodb,
    start_redis_cluster,
    start_redis_sentinel,
    start_s3,
)
from servers.process import make_workdir

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(port_hex, 16)))
    return found


def _assert_loopback_only(pids: list[int | None], expected_ports: set[int]) -> None:
    sockets: set[tuple[str, int]] = set()
    for pid in pids:
        assert pid is not None
        sockets |= _listening(pid)
    assert {address for address, _ in sockets} == {"127.0.0.1"}, sockets
    assert expected_ports <= {port for _, port in sockets}, sockets


# ---------------------------------------------------------------------------------- MongoDB


def test_mongodb_round_trip_with_unique_and_ttl_indexes(mongodb_server: MongoServer) -> None:
    import pymongo
    from pymongo.errors import DuplicateKeyError

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongodb_server.url, serverSelectionTimeoutMS=5000
    )
    try:
        assert client.server_info()["version"].startswith("8.")
        collection = client["servers_test"][f"round_trip_{uuid.uuid4().hex}"]
        collection.create_index("key", unique=True)
        collection.create_index("expires", expireAfterSeconds=0)
        now = datetime.datetime.now(datetime.timezone.utc)
        collection.insert_one({"key": "kept", "value": b"\x00\xff" * 100})
        with pytest.raises(DuplicateKeyError):
            collection.insert_one({"key": "kept", "value": b"other"})
        found = collection.find_one({"key": "kept"}, {"_id": False})
        assert found == {"key": "kept", "value": b"\x00\xff" * 100}
        collection.insert_one({"key": "expired", "expires": now - datetime.timedelta(seconds=1)})
        collection.insert_one({"key": "later", "expires": now + datetime.timedelta(hours=1)})
        ttl = [index for index in collection.list_indexes() if index["name"] == "expires_1"]
        assert ttl[0]["expireAfterSeconds"] == 0
        assert mongodb_server.sweep_ttl() >= 1
        assert sorted(doc["key"] for doc in collection.find()) == ["kept", "later"]
    finally:
        client.close()


def test_mongodb_listens_on_loopback_only(
    mongodb_server: MongoServer, mongodb_server_url: str
) -> None:
    assert mongodb_server_url == f"mongodb://127.0.0.1:{mongodb_server.port}/"
    _assert_loopback_only([mongodb_server.pid], {mongodb_server.port})


# ------------------------------------------------------------------------------------- S3


def test_s3_round_trip_put_get_list_multipart_delete(s3_server: S3Server, s3_bucket: str) -> None:
    bucket = s3_bucket
    client = s3_server.client()
    try:
        client.put_object(Bucket=bucket, Key="a/one", Body=b"first")
        assert client.get_object(Bucket=bucket, Key="a/one")["Body"].read() == b"first"
        ranged = client.get_object(Bucket=bucket, Key="a/one", Range="bytes=1-3")
        assert ranged["Body"].read() == b"irs"
        for index in range(4):
            client.put_object(Bucket=bucket, Key=f"a/page-{index}", Body=b"x")

        # Paginated listing: five keys under a/, two per page.
        keys: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            page = (
                client.list_objects_v2(
                    Bucket=bucket, Prefix="a/", MaxKeys=2, ContinuationToken=token
                )
                if token
                else client.list_objects_v2(Bucket=bucket, Prefix="a/", MaxKeys=2)
            )
            pages += 1
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        assert keys == ["a/one", "a/page-0", "a/page-1", "a/page-2", "a/page-3"]
        assert pages == 3

        # Multipart: every part but the last must be at least 5 MiB.
        parts_data = [os.urandom(5 * 1024 * 1024), b"tail"]
        upload = client.create_multipart_upload(Bucket=bucket, Key="big")
        parts: list[CompletedPartTypeDef] = []
        for number, data in enumerate(parts_data, start=1):
            part = client.upload_part(
                Bucket=bucket, Key="big", UploadId=upload["UploadId"], PartNumber=number, Body=data
            )
            parts.append({"ETag": part["ETag"], "PartNumber": number})
        client.complete_multipart_upload(
            Bucket=bucket, Key="big", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
        )
        assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(parts_data)

        deleted = client.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in [*keys, "big"]], "Quiet": False},
        )
        assert sorted(item["Key"] for item in deleted.get("Deleted", [])) == sorted([*keys, "big"])
        assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    finally:
        client.close()


def test_s3_rejects_a_wrong_secret(s3_server: S3Server, s3_bucket: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    bucket = s3_bucket
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="not-the-secret",
        region_name=s3_server.region,
    )
    try:
        with pytest.raises(ClientError) as caught:
            client.list_objects_v2(Bucket=bucket)
        assert caught.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    finally:
        client.close()


def test_s3_deleting_a_bucket_with_objects_frees_its_name(s3_server: S3Server) -> None:
    from botocore.exceptions import ClientError

    bucket = s3_server.new_bucket("deleted")
    client = s3_server.client()
    try:
        client.put_object(Bucket=bucket, Key="left/behind", Body=b"x")
        s3_server.delete_bucket(bucket)
        with pytest.raises(ClientError) as caught:
            client.head_bucket(Bucket=bucket)
        assert caught.value.response["Error"]["Code"] == "404"
        assert bucket not in [item["Name"] for item in client.list_buckets()["Buckets"]]
    finally:
        client.close()


def test_s3_listens_on_loopback_only(s3_server: S3Server) -> None:
    # weed's defaults listen on every interface: every component's port is set, and bound
    # to 127.0.0.1.
    _assert_loopback_only([s3_server.pid], set(s3_server.ports.values()))


# ---------------------------------------------------------------------------- Redis Cluster


def _keys_on_every_primary(cluster: Any, primaries: int) -> list[str]:
    keys = [f"servers-test:{uuid.uuid4().hex}:{index}" for index in range(30)]
    ports = {cluster.get_node_from_key(key).port for key in keys}
    assert len(ports) == primaries, "30 random keys should spread over every primary"
    return keys


def test_redis_cluster_round_trip_across_slots(redis_cluster: RedisClusterSetup) -> None:
    assert len(redis_cluster.nodes) == 6
    primaries = redis_cluster.primaries()
    assert len(primaries) == 3
    assert {redis_cluster.replica_of(primary).port for primary in primaries}.isdisjoint(
        {primary.port for primary in primaries}
    )
    # Any: redis-py's cluster pipeline is untyped.
    client: Any = redis_cluster.client(socket_timeout=5)
    try:
        keys = _keys_on_every_primary(client, 3)
        for key in keys:
            client.set(key, key.encode() * 2)
        assert [client.get(key) for key in keys] == [key.encode() * 2 for key in keys]

        pipeline = client.pipeline()
        for key in keys:
            pipeline.set(key, b"piped:" + key.encode())
        for key in keys:
            pipeline.get(key)
        results = pipeline.execute()
        assert results[: len(keys)] == [True] * len(keys)
        assert results[len(keys) :] == [b"piped:" + key.encode() for key in keys]
        assert client.delete(*keys) == len(keys)
    finally:
        client.close()


def test_redis_cluster_listens_on_loopback_only(redis_cluster: RedisClusterSetup) -> None:
    expected = {node.port for node in redis_cluster.nodes}
    expected |= {node.bus_port for node in redis_cluster.nodes if node.bus_port is not None}
    _assert_loopback_only([node.pid for node in redis_cluster.nodes], expected)


def test_redis_cluster_fail_over_promotes_the_replica(redis_cluster: RedisClusterSetup) -> None:
    client = redis_cluster.client(socket_timeout=5)
    try:
        keys = _keys_on_every_primary(client, 3)
        for key in keys:
            client.set(key, b"before")
    finally:
        client.close()
    victim = redis_cluster.primary_for_key(keys[0])
    replica = redis_cluster.replica_of(victim)

    report = redis_cluster.fail_over(victim)

    print(f"\nRedis Cluster failover: {report}")
    assert report.old_master == victim.address
    assert report.new_master == replica.address
    # A primary is only declared failed after cluster-node-timeout without an answer.
    assert redis_cluster.node_timeout_ms / 1000 <= report.seconds < 30
    assert report.rejoin_seconds is not None and report.rejoin_seconds >= report.seconds
    assert replica.role() == "master"
    assert victim.role() == "slave"
    assert redis_cluster.replica_of(replica) is victim
    assert redis_cluster.is_healthy()
    # SIGTERM lets the primary wait for its replica to catch up, so no write is lost.
    client = redis_cluster.client(socket_timeout=5)
    try:
        assert [client.get(key) for key in keys] == [b"before"] * len(keys)
        assert client.delete(*keys) == len(keys)
    finally:
        client.close()


# --------------------------------------------------------------------------------- Sentinel


def _close_sentinel(sentinel: Any, *clients: Any) -> None:
    for client in clients:
        client.connection_pool.disconnect()
    for sentinel_client in sentinel.sentinels:
        sentinel_client.close()


def test_redis_sentinel_master_for_round_trip(redis_sentinel: RedisSentinelSetup) -> None:
    # Any: redis-py's Sentinel is untyped.
    sentinel: Any = redis_sentinel.client(socket_timeout=5)
    master = sentinel.master_for(redis_sentinel.service_name, socket_timeout=5)
    replica = sentinel.slave_for(redis_sentinel.service_name, socket_timeout=5)
    try:
        key = f"servers-test:{uuid.uuid4().hex}"
        assert master.set(key, b"value")
        assert master.get(key) == b"value"
        assert master.wait(1, 5000) == 1  # the one replica acknowledged the write
        assert replica.get(key) == b"value"
        master.delete(key)
    finally:
        _close_sentinel(sentinel, master, replica)


def test_redis_sentinel_listens_on_loopback_only(redis_sentinel: RedisSentinelSetup) -> None:
    nodes = [redis_sentinel.master, redis_sentinel.replica, *redis_sentinel.sentinels]
    _assert_loopback_only([node.pid for node in nodes], {node.port for node in nodes})


def test_redis_sentinel_fail_over_promotes_the_replica(redis_sentinel: RedisSentinelSetup) -> None:
    redis_sentinel.wait_healthy()
    old_master = redis_sentinel.current_master()
    replica = (
        redis_sentinel.replica if old_master is redis_sentinel.master else redis_sentinel.master
    )
    epoch = redis_sentinel.config_epoch()
    sentinel: Any = redis_sentinel.client(socket_timeout=5)
    master = sentinel.master_for(redis_sentinel.service_name, socket_timeout=5)
    key = f"servers-test:{uuid.uuid4().hex}"
    try:
        master.set(key, b"before")

        report = redis_sentinel.fail_over()

        print(f"\nSentinel failover: {report}")
        # fail_over() returned only once every sentinel named the replica and it served as
        # master; the report says which nodes those were.
        assert (report.old_master, report.new_master) == (old_master.address, replica.address)
        now_master = redis_sentinel.current_master()
        epochs = redis_sentinel.config_epoch() - epoch
        if epochs == 1:
            # The one failover: the promoted replica is master, the old master its replica.
            assert now_master is replica
            assert old_master.role() == "slave"
        else:
            # On a loaded machine the sentinels may find the new master silent for their
            # 1 s down-after while the old one rejoins, and fail over again, back to it.
            # Each failover must still have left one master and its replica.
            assert epochs == 2 and now_master is old_master, (epochs, now_master)
            assert replica.role() == "slave"
        assert now_master.role() == "master"
        # The sentinels wait down-after-milliseconds (1 s) before they call the master down.
        assert 1.0 <= report.seconds < 30
        assert redis_sentinel.is_healthy()
        # The same master_for client follows the sentinels to the new master, and the write
        # made before the failover is there (SIGTERM let the master sync its replica first).
        assert master.get(key) == b"before"
        master.delete(key)
    finally:
        _close_sentinel(sentinel, master)


# ------------------------------------------------------------------------- start and stop


Starter = Callable[[], Any]


@pytest.mark.parametrize(
    "start",
    [start_mongodb, start_s3, start_redis_cluster, start_redis_sentinel],
    ids=["mongodb", "s3", "redis-cluster", "redis-sentinel"],
)
def test_stop_ends_the_processes_frees_the_ports_and_deletes_the_data(start: Starter) -> None:
    began = time.monotonic()
    server = start_or_skip(start.__name__, start)
    started = time.monotonic() - began
    processes = _processes_of(server)
    ports = set().union(*(_listening(process.pid) for process in processes if process.pid))
    workdir = server.workdir
    assert ports and workdir.is_dir()

    began = time.monotonic()
    server.stop()
    stopped = time.monotonic() - began

    print(f"\n{start.__name__}: started in {started:.2f}s, stopped in {stopped:.2f}s")
    assert not any(process.running for process in processes)
    for pid in (process.pid for process in processes):
        assert pid is not None and not Path(f"/proc/{pid}").exists()
    assert all(port_is_free(port) for _, port in ports), ports
    assert not workdir.exists()


def _processes_of(server: Any) -> list[ServerProcess]:
    if isinstance(server, (MongoServer, S3Server)):
        return [server.process]
    if isinstance(server, RedisClusterSetup):
        return [node.process for node in server.nodes]
    assert isinstance(server, RedisSentinelSetup)
    return [node.process for node in (server.master, server.replica, *server.sentinels)]


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = make_workdir("test")
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def test_a_server_that_exits_reports_its_code_and_log_tail(workdir: Path) -> None:
    script = "import sys; print('cannot bind: address in use', flush=True); sys.exit(3)"
    process = ServerProcess("failing", [sys.executable, "-c", script], workdir=workdir)
    process.start()

    def probe() -> None:
        raise ConnectionRefusedError("not yet")

    with pytest.raises(ServerStartError) as caught:
        process.wait_ready(probe, timeout=30)
    message = str(caught.value)
    assert "failing exited with code 3" in message
    assert "cannot bind: address in use" in message
    assert not process.running


def test_a_server_that_never_gets_ready_is_stopped_and_reported(workdir: Path) -> None:
    script = "import time; print('still loading', flush=True); time.sleep(60)"
    process = ServerProcess("slow", [sys.executable, "-c", script], workdir=workdir)
    process.start()

    def probe() -> None:
        raise ConnectionRefusedError("nothing listens yet")

    began = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        process.wait_ready(probe, timeout=0.5)
    assert time.monotonic() - began < 10
    message = str(caught.value)
    assert "not ready after 0.5s" in message
    assert "ConnectionRefusedError: nothing listens yet" in message
    assert "still loading" in message
    assert not process.running


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(12)
    assert len(set(ports)) == 12
    assert all(port_is_free(port) for port in ports)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[0]))
        taken.listen()
        assert not port_is_free(ports[0])
    with pytest.raises(ValueError, match="at least 1"):
        free_ports(0)


def test_a_start_failure_skips_locally_and_fails_where_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import conftest

    def start() -> None:
        raise ServerStartError("weed exited with code 1 before it was ready")

    monkeypatch.setattr(conftest, "REQUIRE_SERVICES", False)
    with pytest.raises(pytest.skip.Exception, match="weed exited with code 1"):
        start_or_skip("the S3 server", start)
    monkeypatch.setattr(conftest, "REQUIRE_SERVICES", True)
    with pytest.raises(pytest.fail.Exception, match="SELINON_LIKE_REQUIRE_SERVICES=1"):
        start_or_skip("the S3 server", start)


def test_the_helpers_import_without_pytest_or_drivers_and_clean_up_at_exit() -> None:
    # What a benchmark does: import from the repository root, start, and (here) forget to stop.
    script = """
import sys
from tests.servers import start_s3
from tests.servers.process import ServerProcess, make_workdir
loaded = sorted({"pytest", "pymongo", "boto3", "redis"} & set(sys.modules))
assert not loaded, loaded
workdir = make_workdir("leftover")
process = ServerProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                        workdir=workdir)
process.start()
print(process.pid, workdir, flush=True)
"""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid, workdir = done.stdout.split()
    assert not Path(f"/proc/{pid}").exists()
    assert not Path(workdir).exists()
