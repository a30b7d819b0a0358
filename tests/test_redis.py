"""Redis under the contract kit (fakeredis and the machine's server), plus its own guarantees:
the key scheme, one round trip per call, options, timeouts, secrets, Unix sockets and TLS (on
private redis-server processes this module starts and stops). Fork, threads, secrets and
unreachable servers: the kit's resilience and unreachable-service suites; a cluster and
Sentinel, and a capped pool on each topology: ``test_redis_topologies.py``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import REDIS_URL, require_service

from selinon_like import (
    ConfigError,
    ResultNotFound,
    RetryPolicy,
    StorageError,
    StoragePool,
    StorageUnavailable,
)
from selinon_like.keys import pack_key
from selinon_like.testing import StorageContract, UnreachableServiceContract, connected
from storages.redis import Redis, _chunks, _flow_head, _glob_escape


@contextlib.contextmanager
def _connected(storage: Any) -> Iterator[Any]:
    storage.connect()
    try:
        yield storage
    finally:
        storage.disconnect()


# -- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> Iterator[Any]:
    """A plain redis-py client on the machine's Redis, after a real round trip."""
    clients: list[Any] = []

    def probe() -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        clients.append(client)
        client.ping()

    require_service("Redis", probe)
    yield clients[-1]
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def run_prefix(raw: Any) -> Iterator[str]:
    """The key prefix of this test run; everything under it is deleted at the end."""
    prefix = f"test-{uuid.uuid4().hex}:"
    yield prefix
    doomed = list(raw.scan_iter(match=_glob_escape(prefix) + "*", count=1000))
    for start in range(0, len(doomed), 1000):
        raw.delete(*doomed[start : start + 1000])
    assert not list(raw.scan_iter(match=_glob_escape(prefix) + "*", count=1000))


@pytest.fixture
def prefix(run_prefix: str) -> str:
    """A prefix of this test's own, inside the run's."""
    return f"{run_prefix}{uuid.uuid4().hex[:8]}:"


def _redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise FileNotFoundError("redis-server is not on PATH")
    return path


def _start(args: list[str], ready: Callable[[], Any]) -> subprocess.Popen[bytes]:
    """A private redis-server, returned once ``ready()`` succeeds against it."""
    process = subprocess.Popen(
        [_redis_server_binary(), "--save", "", "--appendonly", "no", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            ready()
            return process
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise
            time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


PRIVATE_PASSWORD = f"priv-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def unix_server(raw: Any) -> Iterator[str]:
    """A private redis-server listening only on a Unix socket, with a password; its path."""
    directory = tempfile.mkdtemp(prefix="slr-", dir="/tmp")  # socket paths stop at 107 bytes
    path = os.path.join(directory, "redis.sock")
    processes: list[subprocess.Popen[bytes]] = []

    def probe() -> None:
        import redis

        def ready() -> None:
            with redis.Redis(unix_socket_path=path, password=PRIVATE_PASSWORD) as client:
                client.ping()

        processes.append(
            _start(
                [
                    "--port", "0", "--unixsocket", path, "--unixsocketperm", "700",
                    "--requirepass", PRIVATE_PASSWORD, "--dir", directory,
                ],
                ready,
            )
        )  # fmt: skip

    require_service("redis-server (private, Unix socket)", probe)
    yield path
    for process in processes:
        _stop(process)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def unix_raw(unix_server: str) -> Iterator[Any]:
    import redis

    client = redis.Redis(unix_socket_path=unix_server, password=PRIVATE_PASSWORD)
    yield client
    client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def tls_server(raw: Any) -> Iterator[tuple[int, str]]:
    """A private redis-server speaking only TLS with a self-signed certificate for
    127.0.0.1: its port and the certificate (the CA to trust)."""
    directory = tempfile.mkdtemp(prefix="slr-tls-")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    port = _free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def probe() -> None:
        import redis

        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

        def ready() -> None:
            with redis.Redis(port=port, ssl=True, ssl_ca_certs=cert) as client:
                client.ping()

        processes.append(
            _start(
                [
                    "--port", "0", "--tls-port", str(port), "--tls-cert-file", cert,
                    "--tls-key-file", key, "--tls-ca-cert-file", cert,
                    "--tls-auth-clients", "no", "--dir", directory,
                ],
                ready,
            )
        )  # fmt: skip

    require_service("redis-server (private, TLS)", probe)
    yield port, cert
    for process in processes:
        _stop(process)
    shutil.rmtree(directory, ignore_errors=True)


# -- the contract ------------------------------------------------------------------------------


class TestRedisOnFakeredis(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Redis]:
        fakeredis = pytest.importorskip("fakeredis")
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        yield from connected(Redis.from_client(client))  # type: ignore[misc]
        client.close()

    @pytest.fixture
    def storage_factory(self) -> Callable[[], Redis]:
        """A fakeredis server lives in one process: a forked child gets one of its own."""
        import fakeredis

        return lambda: Redis.from_client(fakeredis.FakeRedis(server=fakeredis.FakeServer()))


@pytest.mark.redis
class TestRedisOnServer(StorageContract, UnreachableServiceContract):
    @pytest.fixture
    def storage(self, prefix: str) -> Iterator[Redis]:
        yield from connected(Redis(url=REDIS_URL, key_prefix=prefix))  # type: ignore[misc]

    @pytest.fixture(params=["url", "password"])
    def unreachable_storage(
        self, request: pytest.FixtureRequest, unreachable_port: int, secret: str
    ) -> Redis:
        """The secret in the URL's credentials, or in the ``password`` option: the two reach
        redis-py by different paths, and either could end up in a message."""
        if request.param == "url":
            url = f"redis://worker:{secret}@127.0.0.1:{unreachable_port}/0"
            return Redis(url=url, socket_timeout=1, socket_connect_timeout=1)
        return Redis(
            host="127.0.0.1",
            port=unreachable_port,
            password=secret,
            socket_timeout=1,
            socket_connect_timeout=1,
        )


# -- keys --------------------------------------------------------------------------------------


@pytest.fixture
def storage(prefix: str) -> Iterator[Any]:
    yield from connected(Redis(url=REDIS_URL, key_prefix=prefix))


@pytest.mark.redis
def test_keys_are_the_prefix_a_kind_and_the_packed_triple(storage: Any, raw: Any) -> None:
    record_id = storage.store("a:b", "c/d", "e f", {"v": 1})
    assert record_id == storage.key_prefix + "r:" + pack_key("a:b", "c/d", "e f")
    assert raw.get(record_id) == b'{"v":1}'
    error_id = storage.store_error({"x": 1}, "a:b", "c/d", "e f", RuntimeError("boom"))
    assert error_id == storage.key_prefix + "e:" + pack_key("a:b", "c/d", "e f")
    assert json.loads(raw.get(error_id))["message"] == "boom"
    storage.delete("a:b", "c/d", "e f")
    assert raw.exists(record_id) == 0 and raw.exists(error_id) == 1
    assert storage.retrieve_error("a:b", "c/d", "e f")["message"] == "boom"


@pytest.mark.redis
def test_two_flows_with_the_same_task_id_keep_two_results(storage: Any) -> None:
    """Selinon keyed by task id alone, so the second flow overwrote the first."""
    storage.store("flow1", "Task", "same-id", "one")
    storage.store("flow2", "Task", "same-id", "two")
    assert storage.retrieve("flow1", "Task", "same-id") == "one"
    assert storage.retrieve("flow2", "Task", "same-id") == "two"


@pytest.mark.redis
@pytest.mark.parametrize("literal", ["g[a]*:", "q?\\x", "*", "[^x]-]", "a\\*b"])
def test_glob_escape_matches_only_the_literal(raw: Any, prefix: str, literal: str) -> None:
    wanted = prefix + literal + "tail"
    decoys = [prefix + "ga:tail", prefix + "qa\\x" + "tail", prefix + "a\\\\b" + "tail"]
    decoys += [prefix + "x" + "tail", prefix + "]" + "tail", prefix + "a*b" + "tail"]
    raw.mset({key: b"1" for key in [wanted, *decoys]})
    found = {k.decode() for k in raw.scan_iter(match=_glob_escape(prefix + literal) + "*")}
    assert found == {wanted}


@pytest.mark.redis
def test_iter_keys_never_strays_outside_prefix_or_flow(raw: Any, prefix: str) -> None:
    globby = Redis(url=REDIS_URL, key_prefix=prefix + "g[a]*:")
    plain = Redis(url=REDIS_URL, key_prefix=prefix + "ga:")
    for adapter in (globby, plain):
        adapter.connect()
    try:
        plain.store("f", "t", "1", 1)
        for flow in ("f*", "fa", "f?", "f[a]", "f"):
            globby.store(flow, "t", "1", flow)
        globby.store_error(None, "f*", "t", "error-only", ValueError("x"))
        raw.set(prefix + "g[a]*:r:not-a-packed-key", b"1")  # a stranger under the prefix
        assert set(globby.iter_keys("f*")) == {("f*", "t", "1")}
        assert set(globby.iter_keys("f[a]")) == {("f[a]", "t", "1")}
        assert set(globby.iter_keys()) == {(f, "t", "1") for f in ("f*", "fa", "f?", "f[a]", "f")}
        assert set(plain.iter_keys()) == {("f", "t", "1")}
    finally:
        globby.disconnect()
        plain.disconnect()


@pytest.mark.parametrize("flow", ["", "f", "a:b/c", "1:x/", "ž"])
def test_flow_head_starts_every_packed_key_of_the_flow(flow: str) -> None:
    assert pack_key(flow, "task", "id").startswith(_flow_head(flow))
    assert not pack_key(flow + "x", "task", "id").startswith(_flow_head(flow))


# -- one round trip ------------------------------------------------------------------------------


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], list[bytes]]:
    """Record every request a storage's connections send (one flush = one round trip)."""

    def spy(storage: Any) -> list[bytes]:
        sent: list[bytes] = []
        pool = storage._client.connection_pool
        connection = pool.get_connection()
        pool.release(connection)
        original = type(connection).send_packed_command

        def send(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
            chunks = [command] if isinstance(command, (bytes, str)) else list(command)
            sent.append(b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks))
            return original(self, command, *args, **kwargs)

        monkeypatch.setattr(type(connection), "send_packed_command", send)
        return sent

    return spy


@pytest.mark.redis
def test_each_call_is_one_round_trip(storage: Any, round_trips: Any) -> None:
    storage.ping()
    sent = round_trips(storage)
    storage.store("f", "t", "1", {"a": 1})
    assert len(sent) == 1 and sent[0].startswith(b"*3\r\n$3\r\nSET\r\n")  # no GET first
    storage.retrieve("f", "t", "1")
    storage.store_error(None, "f", "t", "1", ValueError("x"))
    storage.retrieve_error("f", "t", "1")
    storage.delete("f", "t", "1")
    assert len(sent) == 5
    sent.clear()
    storage.store_many([("f", "t", str(i), i) for i in range(2500)])
    assert len(sent) == 1 and sent[0].count(b"MSET") == 3
    sent.clear()
    assert len(storage.retrieve_many([("f", "t", str(i)) for i in range(2500)])) == 2500
    assert len(sent) == 1
    sent.clear()
    doomed = [("f", "t", str(i)) for i in range(2400, 2600)] + [
        ("f", "t", str(i)) for i in range(1200)
    ]
    assert storage.delete_many(doomed) == 1300  # 100 of them were never stored
    assert len(sent) == 1 and sent[0].count(b"DEL") == 2
    assert storage.retrieve_many(doomed) == {} and len(list(storage.iter_keys("f"))) == 1200


@pytest.mark.redis
def test_a_store_runs_exactly_one_set_on_the_server(unix_server: str, unix_raw: Any) -> None:
    storage: Any = Redis(unix_socket_path=unix_server, password=PRIVATE_PASSWORD, expire=60)
    storage.connect()
    storage.ping()
    unix_raw.config_resetstat()
    storage.store("f", "t", "1", 1)
    storage.store_many([("f", "t", str(i), i) for i in range(10)])
    stats = unix_raw.info("commandstats")
    storage.disconnect()
    assert stats["cmdstat_set"]["calls"] == 11
    assert [name for name in stats if not name.startswith("cmdstat_config")] == ["cmdstat_set"]


@pytest.mark.redis
def test_store_many_and_retrieve_many_in_bulk(storage: Any) -> None:
    items: list[tuple[str, str, str, Any]] = [
        ("f", f"t{i % 7}", str(i), {"i": i, "blob": "x" * (i % 50)}) for i in range(3001)
    ]
    items.append(("f", "t0", "0", "replaced"))  # a later item for the same key wins
    ids = storage.store_many(items)
    assert ids == [storage.key_prefix + "r:" + pack_key(*item[:3]) for item in items]
    found = storage.retrieve_many([item[:3] for item in items] + [("f", "t0", "nope")])
    assert len(found) == 3001 and found[("f", "t0", "0")] == "replaced"
    assert found[("f", "t4", "3000")] == {"i": 3000, "blob": "x" * 0}


def test_store_many_chunks_by_count_and_by_bytes() -> None:
    assert list(_chunks([b"x"] * 2500)) == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert list(_chunks([])) == []
    six_mb = b"\0" * (6 << 20)
    assert list(_chunks([six_mb] * 5)) == [(0, 3), (3, 5)]
    assert list(_chunks([b"x", b"\0" * (20 << 20), b"y"])) == [(0, 2), (2, 3)]


# -- options -------------------------------------------------------------------------------------


def _kwargs(storage: Any) -> dict[str, Any]:
    return dict(storage._client.connection_pool.connection_kwargs)


def test_defaults_are_finite_timeouts_bytes_and_no_driver_retry() -> None:
    import redis

    storage: Any = Redis()
    storage.connect()
    try:
        kwargs = _kwargs(storage)
        pool = storage._client.connection_pool
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)
        assert kwargs["socket_timeout"] == 10.0 and kwargs["socket_connect_timeout"] == 5.0
        assert kwargs["decode_responses"] is False and kwargs["encoding"] == "utf-8"
        assert type(pool) is redis.ConnectionPool
        connection: Any = pool.make_connection()
        assert connection.retry.get_retries() == 0  # the storage's retry policy decides
        assert storage.key_prefix == "selinon:" and storage.expire is None
        assert Redis.thread_safe is True
    finally:
        storage.disconnect()


@pytest.mark.parametrize(
    ("configuration", "expected"),
    [
        ({"charset": "latin-1"}, "latin-1"),
        ({"encoding": "latin-1"}, "latin-1"),
        ({"charset": "utf-8", "encoding": "UTF8"}, "utf-8"),
    ],
)
def test_charset_is_redis_py_encoding(configuration: dict[str, Any], expected: str) -> None:
    storage: Any = Redis(**configuration)
    storage.connect()
    assert _kwargs(storage)["encoding"] == expected
    storage.disconnect()


def test_url_and_fallback_options() -> None:
    storage: Any = Redis(url="redis://cache.internal:6380/3", db=5, password="pw-1")
    storage.connect()
    kwargs = _kwargs(storage)
    storage.disconnect()
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.internal", 6380, 3)
    assert kwargs["password"] == "pw-1"
    from_env: dict[str, Any] = {"db": "5", "max_connections": "7"}  # strings, as ${VARS} give
    storage = Redis(url="redis://u:pw-2@cache.internal", **from_env)
    storage.connect()
    kwargs = _kwargs(storage)
    pool = storage._client.connection_pool
    storage.disconnect()
    assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (5, "u", "pw-2")
    assert type(pool).__name__ == "BlockingConnectionPool" and pool.max_connections == 7


def test_options_from_environment_strings_via_the_pool() -> None:
    pool = StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "R",
                    "import": "storages.redis",
                    "classname": "Redis",
                    "configuration": {
                        "port": "6390",
                        "db": "2",
                        "expire": "60",
                        "socket_timeout": "1.5",
                        "ssl": "false",
                    },
                }
            ]
        }
    )
    storage: Any = pool.config.storages["R"].build()
    assert (storage.port, storage.db, storage.expire, storage.socket_timeout) == (6390, 2, 60, 1.5)


@pytest.mark.parametrize(
    ("configuration", "key"),
    [
        ({"port": "http"}, "port"),
        ({"port": 0}, "port"),
        ({"db": -1}, "db"),
        ({"expire": 0}, "expire"),
        ({"socket_timeout": 0}, "socket_timeout"),
        ({"socket_timeout": None}, "socket_timeout"),
        ({"socket_connect_timeout": "forever"}, "socket_connect_timeout"),
        ({"max_connections": 0}, "max_connections"),
        ({"charset": "klingon"}, "charset"),
        ({"charset": "utf-8", "encoding": "latin-1"}, "charset"),
        ({"errors": "shrug"}, "errors"),
        ({"url": "http://localhost:6379"}, "url"),
        ({"url": "redis://localhost", "host": "other"}, "host"),
        ({"url": "redis://localhost", "ssl": True}, "ssl"),
        ({"url": "redis://localhost/0?password=pw-in-query"}, "url"),
        ({"unix_socket_path": "/tmp/r.sock", "port": 6379}, "unix_socket_path"),
        ({"ssl_ca_certs": "/etc/ca.pem"}, "ssl_ca_certs"),
        ({"ssl_cert_reqs": "none"}, "ssl_cert_reqs"),
        ({"ssl": True, "ssl_cert_reqs": "maybe"}, "ssl_cert_reqs"),
        ({"unix_socket_path": "/tmp/r.sock", "ssl_check_hostname": False}, "ssl_check_hostname"),
        ({"key_prefix": 5}, "key_prefix"),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(
    configuration: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Redis(**configuration)
    assert info.value.key == key
    assert "pw-in-query" not in str(info.value)


def test_an_unknown_option_is_a_config_error_from_the_pool() -> None:
    with pytest.raises(ConfigError, match="hots"):
        StoragePool.from_dict(
            {"storages": [{"name": "R", "classname": "redis", "configuration": {"hots": "x"}}]}
        )


def test_the_registered_name_is_redis() -> None:
    pool = StoragePool.from_dict({"storages": [{"name": "Results", "classname": "redis"}]})
    assert type(pool.config.storages["Results"].build()) is Redis


# -- connection state, injected clients ----------------------------------------------------------


def test_an_injected_client_is_used_and_left_open() -> None:
    fakeredis = pytest.importorskip("fakeredis")
    client = fakeredis.FakeRedis()
    storage: Any = Redis.from_client(client, key_prefix="p:", expire=30)
    assert storage.is_connected() is False
    storage.connect()
    storage.store("f", "t", "1", [1])
    assert client.get("p:r:" + pack_key("f", "t", "1")) == b"[1]"
    assert 0 < client.ttl("p:r:" + pack_key("f", "t", "1")) <= 30
    storage.disconnect()
    storage.disconnect()
    assert storage.is_connected() is False and client.ping() is True
    storage.connect()
    assert storage.retrieve("f", "t", "1") == [1]
    client.close()


def test_a_disconnected_storage_says_so() -> None:
    storage: Any = Redis()
    with pytest.raises(StorageError, match="not connected"):
        storage.store("f", "t", "1", 1)
    storage.connect()
    storage.disconnect()
    with pytest.raises(StorageError, match="not connected"):
        storage.retrieve("f", "t", "1")


# -- failures ------------------------------------------------------------------------------------


def test_transient_errors_are_classified() -> None:
    from redis import exceptions

    storage = Redis()
    assert storage.is_transient(exceptions.ConnectionError("reset"))
    assert storage.is_transient(exceptions.TimeoutError("slow"))
    assert storage.is_transient(exceptions.BusyLoadingError("loading"))
    assert storage.is_transient(exceptions.ReadOnlyError("replica"))
    assert storage.is_transient(ConnectionRefusedError())
    assert not storage.is_transient(exceptions.AuthenticationError("invalid password"))
    assert not storage.is_transient(exceptions.ResponseError("WRONGTYPE"))
    assert not storage.is_transient(ValueError())


@pytest.mark.redis
def test_a_wrong_password_never_shows(raw: Any, caplog: pytest.LogCaptureFixture) -> None:
    # The server has no password for its default user, so a user it does not know is how
    # credentials are wrong there.
    secret, user = f"wrong-{uuid.uuid4().hex}", f"nobody-{uuid.uuid4().hex[:8]}"
    for storage in (
        Redis(url=REDIS_URL, username=user, password=secret),
        Redis(url=REDIS_URL.replace("redis://", f"redis://{user}:{secret}@", 1)),
    ):
        assert secret not in repr(storage)
        storage.connect()
        with caplog.at_level("DEBUG"), pytest.raises(StorageError) as info:
            storage.store("f", "t", "1", 1)
        assert not isinstance(info.value, StorageUnavailable)  # retrying cannot fix it
        assert secret not in str(info.value) and secret not in repr(info.value)
        assert secret not in repr(storage) and secret not in caplog.text
        storage.disconnect()


@pytest.mark.redis
def test_a_wrong_password_on_a_server_that_requires_one(unix_server: str) -> None:
    secret = f"wrong-{uuid.uuid4().hex}"
    storage: Any = Redis(unix_socket_path=unix_server, password=secret)
    storage.connect()
    with pytest.raises(StorageError) as info:
        storage.ping()
    assert "invalid" in str(info.value) or "WRONGPASS" in str(info.value)
    assert secret not in str(info.value) and not isinstance(info.value, StorageUnavailable)
    storage.disconnect()


# -- sockets and TLS -----------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("how", ["unix_socket_path", "url"])
def test_unix_socket_is_really_used(unix_server: str, unix_raw: Any, raw: Any, how: str) -> None:
    import redis

    prefix = f"unix-{uuid.uuid4().hex}:"
    if how == "url":
        storage: Any = Redis(
            url=f"unix://{unix_server}?db=1", password=PRIVATE_PASSWORD, key_prefix=prefix
        )
    else:
        storage = Redis(
            unix_socket_path=unix_server, password=PRIVATE_PASSWORD, db=1, key_prefix=prefix
        )
    with _connected(storage):
        record_id = storage.store("f", "t", "1", {"via": how})
        assert storage.retrieve("f", "t", "1") == {"via": how}
    with redis.Redis(unix_socket_path=unix_server, password=PRIVATE_PASSWORD, db=1) as db1:
        assert db1.get(record_id) == b'{"via":"%s"}' % how.encode()
    assert unix_raw.get(record_id) is None  # db 0 of the private server
    assert raw.get(record_id) is None  # the TCP server never saw it


@pytest.mark.redis
@pytest.mark.parametrize("how", ["rediss", "ssl"])
def test_tls(tls_server: tuple[int, str], how: str) -> None:
    port, cert = tls_server
    if how == "rediss":
        storage: Any = Redis(url=f"rediss://127.0.0.1:{port}/0", ssl_ca_certs=cert)
    else:
        storage = Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=cert)
    with _connected(storage):
        storage.store("f", "t", "1", {"tls": True})
        assert storage.retrieve("f", "t", "1") == {"tls": True}
    untrusted: Any = Redis(host="127.0.0.1", port=port, ssl=True)
    untrusted.retry_policy = RetryPolicy(attempts=1)
    with _connected(untrusted), pytest.raises(StorageError, match="certificate"):
        untrusted.ping()


# -- expiry and size -----------------------------------------------------------------------------


@pytest.mark.redis
def test_expire_sets_a_ttl_on_results_and_errors(raw: Any, prefix: str) -> None:
    with _connected(Redis(url=REDIS_URL, key_prefix=prefix, expire=120)) as storage:
        ids = [storage.store("f", "t", "1", 1)]
        ids += storage.store_many([("f", "t", str(i), i) for i in range(2, 5)])
        ids.append(storage.store_error(None, "f", "t", "1", ValueError("x")))
    with _connected(Redis(url=REDIS_URL, key_prefix=prefix)) as forever:
        kept = forever.store("f", "t", "kept", 1)
        kept_many = forever.store_many([("f", "t", "kept2", 2)])
    for record_id in ids:
        assert 0 < raw.ttl(record_id) <= 120
    assert raw.ttl(kept) == -1 and raw.ttl(kept_many[0]) == -1


@pytest.mark.redis
def test_a_16_mb_result_round_trips(storage: Any, raw: Any) -> None:
    result = {"blob": "é" * (8 * 1024 * 1024), "n": list(range(1000))}
    record_id = storage.store("f", "t", "big", result)
    assert raw.strlen(record_id) > 16 * 1024 * 1024
    assert storage.retrieve("f", "t", "big") == result
    assert storage.retrieve_many([("f", "t", "big")]) == {("f", "t", "big"): result}


# -- the pool ------------------------------------------------------------------------------------


def _pool(prefix: str, **configuration: Any) -> StoragePool:
    return StoragePool.from_dict(
        {
            "storages": [
                {
                    "name": "Results",
                    "import": "storages.redis",
                    "classname": "Redis",
                    "configuration": {"url": REDIS_URL, "key_prefix": prefix, **configuration},
                }
            ],
            "tasks": [{"name": "Routed", "storage": "Results"}],
        }
    )


@pytest.mark.redis
def test_routed_pool_calls(prefix: str) -> None:
    with _pool(prefix) as pool:
        record_id = pool.store("flow", "Routed", "1", {"r": 1})
        assert pool.retrieve("flow", "Routed", "1") == {"r": 1}
        pool.store_error(None, "flow", "Routed", "1", KeyError("k"))
        assert pool.retrieve_error("flow", "Routed", "1")["exception_type"] == "builtins.KeyError"
        pool.delete("flow", "Routed", "1")
        with pytest.raises(ResultNotFound):
            pool.retrieve("flow", "Routed", "1")
        assert record_id.startswith(prefix + "r:")
        assert pool.check()[0].ok is True
