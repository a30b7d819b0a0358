"""``Redis``: one Redis string per result, one per error record, through redis-py's pool — on
one server, a Redis Cluster, or the master a set of Sentinels names.

:class:`RedisBase` holds what this blocking adapter and its asyncio twin
(:class:`storages.aio.redis.AsyncRedis`, on ``redis.asyncio``) share: the configuration and
its checks, the pools (redis-py and ``redis.asyncio`` have the same pool and Sentinel
classes), the key layout, the purge script, the error classification, and the bulk calls,
the purge and the listing written once as steps (:mod:`selinon_like.steps`) that each adapter
drives, blocking or awaited; each adapter writes only its driver calls."""

from __future__ import annotations

import abc
import codecs
import functools
import importlib
import logging
import math
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

from selinon_like import options
from selinon_like.envelope import RecordError, expiry_of, has_header, header_length
from selinon_like.errors import ConfigError
from selinon_like.importing import missing_driver
from selinon_like.keys import Key, pack_key, unpack_key
from selinon_like.masking import mask_url, scrub
from selinon_like.records import ERRORS, RESULTS, Kind, RecordStorage, RunsSteps
from selinon_like.steps import END, Emit, Pull, Steps, run
from selinon_like.storage import StorageBase

__all__ = ["Redis", "RedisBase"]

R = TypeVar("R", bound="RedisBase")
# (hash slot, command): what the bulk calls send; the slot is -1 off a cluster.
Command = tuple[int, tuple[Any, ...]]

log = logging.getLogger("selinon_like")

_SCHEMES = ("redis://", "rediss://", "unix://")
_CERT_REQS = ("required", "optional", "none")
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")
# store_many sends one MSET per this many results, or per this many bytes of them.
_CHUNK_KEYS = 1000
_CHUNK_BYTES = 16 * 1024 * 1024
# A value larger than this goes to the socket from its own buffer, not copied into a request.
_OWN_BUFFER = 64 * 1024
_SENTINELS_EXAMPLE = "[[sentinel-1, 26379], [sentinel-2, 26379]]"
# GETRANGE of this many bytes holds any record header (18 + a 255-byte serializer name).
_HEADER_BYTES = 512
# purge's keys per script call (Redis runs nothing else meanwhile: about a millisecond).
_PURGE_KEYS = 1000
# Checks each key of KEYS as selinon_like.envelope reads a header (magic and version, the
# CRC-32 of the header, the expiry at bytes 7-14 in ms) and deletes it when it expired at
# ARGV[1] (ms; ARGV[2] == "1": a dry run, count only); how many. Redis runs a script as one
# step, so no store comes between a key's check and its delete; a key without a valid header
# is left as it is.
_PURGE_SCRIPT = r"""
local now = tonumber(ARGV[1])
local dry = ARGV[2] == '1'
local crcs = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if bit.band(c, 1) == 1 then
      c = bit.bxor(bit.rshift(c, 1), 0xEDB88320)
    else
      c = bit.rshift(c, 1)
    end
  end
  crcs[i] = c
end
local found = 0
for _, key in ipairs(KEYS) do
  local head = redis.call('GETRANGE', key, 0, 272)
  if #head >= 18 and string.sub(head, 1, 4) == '\255SL\1' then
    local stop = 14 + string.byte(head, 6)
    if #head >= stop + 4 then
      local crc = -1
      for i = 1, stop do
        crc = bit.bxor(bit.rshift(crc, 8), crcs[bit.band(bit.bxor(crc, string.byte(head, i)), 255)])
      end
      local b1, b2, b3, b4 = string.byte(head, stop + 1, stop + 4)
      local stored = bit.bor(bit.lshift(b1, 24), bit.lshift(b2, 16), bit.lshift(b3, 8), b4)
      if bit.bnot(crc) == bit.tobit(stored) then
        local expires = 0
        for i = 7, 14 do expires = expires * 256 + string.byte(head, i) end
        if expires <= now then
          if not dry then redis.call('DEL', key) end
          found = found + 1
        end
      end
    end
  end
end
return found
"""


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _flow_head(flow_name: str) -> str:
    """The start every packed key of ``flow_name`` shares: ``pack_key(flow_name, "", "")``
    is that head followed by the packed empty task, ``0:/``."""
    return pack_key(flow_name, "", "")[:-3]


def _chunks(values: Sequence[bytes]) -> Iterator[tuple[int, int]]:
    """``(start, end)`` slices of at most ``_CHUNK_KEYS`` values or about ``_CHUNK_BYTES``."""
    start = size = 0
    for index, data in enumerate(values):
        size += len(data)
        if index + 1 - start >= _CHUNK_KEYS or size >= _CHUNK_BYTES:
            yield start, index + 1
            start, size = index + 1, 0
    if start < len(values):
        yield start, len(values)


def _addresses(key: str, value: Any) -> list[tuple[str, int]]:
    """``[[host, port], ...]`` (or ``["host:port", ...]``, as an environment variable gives
    them) as ``(host, port)`` pairs."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"must be a non-empty list of [host, port] pairs, e.g. {_SENTINELS_EXAMPLE}", key=key
        )
    found: list[tuple[str, int]] = []
    for item in value:
        if isinstance(item, str) and ":" in item:
            host, _colon, port = item.rpartition(":")
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            host, port = item
        else:
            raise ConfigError(
                f"each sentinel is a [host, port] pair or a 'host:port' string, not {item!r:.80}",
                key=key,
            )
        host = options.as_str(key, host).strip("[]")  # "[::1]:26379" names an IPv6 host
        found.append((host, options.as_int(key, port, minimum=1, maximum=65535)))
    return found


def _url_db(url: str) -> int:
    """The database number a ``redis://`` URL selects (its path or ``?db=``), 0 when none."""
    parts = urlsplit(url)
    given = parse_qs(parts.query).get("db", [parts.path.strip("/")])[0]
    try:
        return int(given) if given else 0
    except ValueError:
        raise ConfigError(f"{mask_url(url)!r} names no database number", key="url") from None


class _NotConnected:
    """Stands in for the client while disconnected, so the hot path needs no check."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("the storage is not connected: call connect() first")


_NOT_CONNECTED = _NotConnected()


class RedisBase(StorageBase):
    """What :class:`Redis` and :class:`storages.aio.redis.AsyncRedis` share (module
    docstring): the options (documented on :class:`Redis`) and their ``ConfigError``
    messages, the pools, the key layout, the error classification, and the bulk calls, the
    purge and the listing as steps. A subclass writes ``connect``/``disconnect``/``ping``,
    the single-key primitives and three driver calls: :meth:`_make_cluster`,
    :meth:`_pipeline` and :meth:`_node_connection`."""

    thread_safe = True  # redis-py's pools hand each thread its own connection
    # A Redis string stops at 512 MiB (proto-max-bulk-len): larger records go in chunks.
    max_value_bytes: int | None = 512 * 1024 * 1024
    # The pool's cap without max_connections (not on a cluster): see _pool_cap.
    default_max_connections: ClassVar[int | None] = None

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        db: int | None = None,
        password: str | None = None,
        username: str | None = None,
        url: str | None = None,
        unix_socket_path: str | None = None,
        charset: str | None = None,
        encoding: str | None = None,
        errors: str = "strict",
        socket_timeout: float = 10.0,
        socket_connect_timeout: float = 5.0,
        ssl: bool = False,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl_cert_reqs: str = "required",
        ssl_check_hostname: bool = True,
        key_prefix: str = "selinon:",
        expire: int | None = None,
        max_connections: int | None = None,
        cluster: bool = False,
        sentinels: Sequence[Any] | None = None,
        service_name: str | None = None,
        sentinel_username: str | None = None,
        sentinel_password: str | None = None,
        auto_pipeline: bool = True,
    ) -> None:
        def optional(key: str, value: Any) -> str | None:
            return None if value is None else options.as_str(key, value, empty=True) or None

        self.host = optional("host", host)
        self.port = None if port is None else options.as_int("port", port, minimum=1, maximum=65535)
        self.db = None if db is None else options.as_int("db", db, minimum=0)
        self.password = optional("password", password)
        self.username = optional("username", username)
        self.url = optional("url", url)
        self.unix_socket_path = optional("unix_socket_path", unix_socket_path)
        self.encoding = self._encoding(optional("charset", charset), optional("encoding", encoding))
        self.errors = options.as_str("errors", errors)
        try:
            codecs.lookup_error(self.errors)
        except LookupError:
            raise ConfigError(
                f"unknown encoding error handler {self.errors!r}", key="errors"
            ) from None
        self.socket_timeout = self._timeout("socket_timeout", socket_timeout)
        self.socket_connect_timeout = self._timeout(
            "socket_connect_timeout", socket_connect_timeout
        )
        self.ssl = options.as_bool("ssl", ssl)
        self.ssl_ca_certs = optional("ssl_ca_certs", ssl_ca_certs)
        self.ssl_certfile = optional("ssl_certfile", ssl_certfile)
        self.ssl_keyfile = optional("ssl_keyfile", ssl_keyfile)
        self.ssl_cert_reqs = options.as_str("ssl_cert_reqs", ssl_cert_reqs).lower()
        if self.ssl_cert_reqs not in _CERT_REQS:
            raise ConfigError(f"must be one of {', '.join(_CERT_REQS)}", key="ssl_cert_reqs")
        self.ssl_check_hostname = options.as_bool("ssl_check_hostname", ssl_check_hostname)
        self.key_prefix = options.as_str("key_prefix", key_prefix, empty=True)
        self.expire = None if expire is None else options.as_int("expire", expire, minimum=1)
        self.max_connections = (
            None
            if max_connections is None
            else options.as_int("max_connections", max_connections, minimum=1)
        )
        self.cluster = options.as_bool("cluster", cluster)
        self.auto_pipeline = options.as_bool("auto_pipeline", auto_pipeline)
        self.sentinels = None if sentinels is None else _addresses("sentinels", sentinels)
        self.service_name = optional("service_name", service_name)
        self.sentinel_username = optional("sentinel_username", sentinel_username)
        self.sentinel_password = optional("sentinel_password", sentinel_password)
        self._tls = self._check_target()
        self._prefixes: dict[Kind, str] = {
            RESULTS: self.key_prefix + "r:",
            ERRORS: self.key_prefix + "e:",
        }
        self._client: Any = _NOT_CONNECTED
        self._injected: Any = None
        self._sentinel: Any = None
        self._connected = False
        self._scripts = True  # False once the server refused EVAL: purge then uses WATCH

    @classmethod
    def from_client(cls: type[R], client: Any, **configuration: Any) -> R:
        """An adapter using ``client`` (a ``redis.Redis``-compatible object that returns
        bytes, e.g. ``fakeredis.FakeRedis()``, or a ``redis.cluster.RedisCluster`` with
        ``cluster=True``; for :class:`~storages.aio.redis.AsyncRedis` their
        ``redis.asyncio`` forms) instead of building its own on ``connect()``. The other
        options (``key_prefix``, ``expire``) apply; ``disconnect()`` does not close the
        client."""
        storage = cls(**configuration)
        storage._injected = client
        return storage

    # -- options --------------------------------------------------------------------------

    @staticmethod
    def _encoding(charset: str | None, encoding: str | None) -> str:
        if charset and encoding and codecs.lookup(charset) != codecs.lookup(encoding):
            raise ConfigError(
                f"charset {charset!r} and encoding {encoding!r} disagree; they are the same "
                "option (charset is Selinon's name): give one",
                key="charset",
            )
        name = charset or encoding or "utf-8"
        try:
            codecs.lookup(name)
        except LookupError:
            raise ConfigError(
                f"unknown encoding {name!r}", key="charset" if charset else "encoding"
            ) from None
        return name

    @staticmethod
    def _timeout(key: str, value: Any) -> float:
        seconds = options.as_float(key, value)
        if seconds <= 0:
            raise ConfigError(f"must be a number of seconds above 0, not {value!r}", key=key)
        return seconds

    def _given(self, *names: str) -> list[str]:
        return [name for name in names if getattr(self, name) is not None]

    def _check_target(self) -> bool:
        """Refuse contradictory connection options; whether the connection uses TLS."""
        tls = self.ssl
        self._check_topology()
        if self.url is not None:
            if not self.url.startswith(_SCHEMES):
                raise ConfigError(
                    f"{mask_url(self.url)!r} is not a Redis URL: it must start with "
                    + ", ".join(_SCHEMES),
                    key="url",
                )
            given = self._given("host", "port", "unix_socket_path") + (["ssl"] if self.ssl else [])
            if given:
                raise ConfigError(
                    f"give either url or {', '.join(given)}, not both (the URL says where "
                    "to connect; use rediss:// for TLS)",
                    key=given[0],
                )
            # A password in the query string would escape every masking of URLs.
            if "password" in parse_qs(urlsplit(self.url).query):
                raise ConfigError(
                    "put the password in the URL as scheme://user:password@host, or in the "
                    "password option, not in the query string",
                    key="url",
                )
            tls = self.url.startswith("rediss://")
        elif self.unix_socket_path is not None:
            given = self._given("host", "port")
            if given or self.ssl:
                raise ConfigError(
                    f"give either unix_socket_path or {', '.join(given or ['ssl'])}, not both",
                    key="unix_socket_path",
                )
        tls_options = self._given("ssl_ca_certs", "ssl_certfile", "ssl_keyfile") + [
            name
            for name, default in (("ssl_cert_reqs", "required"), ("ssl_check_hostname", True))
            if getattr(self, name) != default
        ]
        if tls_options and not tls:
            raise ConfigError("TLS options need ssl: true (or a rediss:// url)", key=tls_options[0])
        return tls

    def _check_topology(self) -> None:
        """Refuse what a cluster or Sentinel setup cannot take."""
        if self.sentinels is not None:
            if self.cluster:
                raise ConfigError(
                    "give either cluster or sentinels: a Redis Cluster elects its own "
                    "primaries, without Sentinel",
                    key="sentinels",
                )
            given = self._given("host", "port", "url", "unix_socket_path")
            if given:
                raise ConfigError(
                    f"give either sentinels or {', '.join(given)}, not both (the sentinels "
                    "say where the master is)",
                    key=given[0],
                )
            if self.service_name is None:
                raise ConfigError(
                    "sentinels need service_name: the name they monitor the master under",
                    key="service_name",
                )
        else:
            alone = self._given("service_name", "sentinel_username", "sentinel_password")
            if alone:
                raise ConfigError(
                    f"{alone[0]} is an option of a Sentinel setup: give sentinels too",
                    key=alone[0],
                )
        if self.cluster:
            if self.unix_socket_path is not None or (
                self.url is not None and self.url.startswith("unix://")
            ):
                raise ConfigError(
                    "a Redis Cluster is reached over TCP: name a node with host/port or a "
                    "redis:// url",
                    key="unix_socket_path" if self.unix_socket_path is not None else "url",
                )
            if self.db or (self.url is not None and _url_db(self.url)):
                raise ConfigError(
                    "a Redis Cluster has only database 0", key="db" if self.db else "url"
                )

    # -- connection -----------------------------------------------------------------------

    def _new_client(self, driver: str) -> Any:
        """The client ``connect()`` uses: the injected one, or one built with ``driver``
        (``"redis"`` or ``"redis.asyncio"``, which have the same pool and Sentinel classes)."""
        if self._injected is not None:
            return self._injected
        try:
            redis = importlib.import_module(driver)
            importlib.import_module(driver + ".sentinel")
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        if self.cluster:
            return self._make_cluster(redis)
        if self.sentinels is not None:
            return redis.Redis(connection_pool=self._make_sentinel_pool(redis))
        return redis.Redis(connection_pool=self._make_pool(redis))

    @abc.abstractmethod
    def _make_cluster(self, redis: Any) -> Any:
        """The driver's cluster client, seeded with the node the options name."""

    def _server_kwargs(self, username: str | None, password: str | None) -> dict[str, Any]:
        """What a connection to any server takes, a data node's or a sentinel's: these
        credentials, the socket timeouts and the TLS options."""
        socket_timeout, connect_timeout = self._socket_timeouts()
        return {
            "username": username,
            "password": password,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            **self._tls_kwargs(),
        }

    def _connection_kwargs(self) -> dict[str, Any]:
        """What every connection to a data node takes (a single server, every cluster node,
        the master the sentinels name)."""
        kwargs = self._server_kwargs(self.username, self.password)
        kwargs.update(encoding=self.encoding, encoding_errors=self.errors, decode_responses=False)
        cap = self._pool_cap()
        if cap is not None:
            kwargs.update(max_connections=cap, timeout=kwargs["socket_timeout"])
        return kwargs

    def _pool_kwargs(self) -> dict[str, Any]:
        """:meth:`_connection_kwargs` with the database a single server's pool selects."""
        return {**self._connection_kwargs(), "db": self.db if self.db is not None else 0}

    def _pool_cap(self) -> int | None:
        """The most connections the pool opens, a call finding them all busy waiting for one:
        ``max_connections``, else :attr:`default_max_connections` (None: the driver's pool,
        which fails a call past its own cap)."""
        return (
            self.default_max_connections if self.max_connections is None else self.max_connections
        )

    def _socket_timeouts(self) -> tuple[float, float]:
        """``socket_timeout`` and ``socket_connect_timeout``, neither past the
        ``operation_timeout``: redis-py fixes them when it opens a connection, so no single
        wait for the server may outlast a call."""
        limit = self.operation_timeout
        return min(self.socket_timeout, limit), min(self.socket_connect_timeout, limit)

    def default_operation_timeout(self) -> float:
        """``socket_connect_timeout`` + ``socket_timeout``: a connection, then a command."""
        return self.socket_connect_timeout + self.socket_timeout

    def _tls_kwargs(self) -> dict[str, Any]:
        if not self._tls:
            return {}
        return {
            "ssl_ca_certs": self.ssl_ca_certs,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
            "ssl_cert_reqs": self.ssl_cert_reqs,
            "ssl_check_hostname": self.ssl_check_hostname,
        }

    def _make_pool(self, redis: Any) -> Any:
        kwargs = self._pool_kwargs()
        pool_class = redis.ConnectionPool
        if self._pool_cap() is not None:
            pool_class = redis.BlockingConnectionPool
        if self.url is not None:
            return pool_class.from_url(self.url, **kwargs)
        if self.unix_socket_path is not None:
            return pool_class(
                connection_class=redis.UnixDomainSocketConnection,
                path=self.unix_socket_path,
                **kwargs,
            )
        if self.ssl:
            kwargs["connection_class"] = redis.SSLConnection
        return pool_class(host=self.host or "localhost", port=self.port or 6379, **kwargs)

    def _cluster_url(self) -> str:
        """The ``redis://`` (or ``rediss://``) URL of the one node a cluster client is
        seeded with; it discovers the others."""
        if self.url is not None:
            return self.url
        host = self.host or "localhost"
        host = f"[{host}]" if ":" in host else host
        return f"{'rediss' if self._tls else 'redis'}://{host}:{self.port or 6379}"

    @staticmethod
    def _no_retry(redis: Any) -> Any:
        """The driver's ``Retry`` that never retries (redis-py's or ``redis.asyncio``'s): the
        storage's retry policy decides."""
        from redis.backoff import NoBackoff

        return importlib.import_module(redis.__name__ + ".retry").Retry(NoBackoff(), 0)

    def _make_sentinel_pool(self, redis: Any) -> Any:
        """The master's pool: each new connection asks the sentinels where the master is."""
        sentinel_kwargs = self._server_kwargs(self.sentinel_username, self.sentinel_password)
        # A sentinel client retries 10 times by default: one dead sentinel would then hold
        # every connection attempt for seconds before the next one is asked.
        sentinel_kwargs["retry"] = self._no_retry(redis)
        kwargs = self._pool_kwargs()
        if self._tls:
            # The sentinels' clients and the pool pick their SSL connection class from it.
            sentinel_kwargs["ssl"] = kwargs["ssl"] = True
        self._sentinel = redis.sentinel.Sentinel(self.sentinels, sentinel_kwargs=sentinel_kwargs)
        pool_class = redis.sentinel.SentinelConnectionPool
        if self._pool_cap() is not None:
            pool_class = _blocking_sentinel_pool(redis)
        return pool_class(self.service_name, self._sentinel, **kwargs)

    def _detach(self) -> tuple[Any, list[Any]] | None:
        """Forget the client (``disconnect()``): the client and the sentinels' clients to
        close, or None when there is nothing of ours to close."""
        if not self._connected:
            return None
        client, self._client = self._client, _NOT_CONNECTED
        sentinel, self._sentinel = self._sentinel, None
        self._connected = False
        if client is self._injected:
            return None
        return client, list(sentinel.sentinels) if sentinel is not None else []

    def is_connected(self) -> bool:
        return self._connected

    def is_transient(self, exc: BaseException) -> bool:
        errors = sys.modules.get("redis.exceptions")  # never import the driver just to classify
        if errors is not None:
            if isinstance(exc, (errors.AuthenticationError, errors.AuthorizationError)):
                return False  # a ConnectionError subclass, but retrying cannot fix it
            # ConnectionError covers BusyLoadingError (the server is loading its data set),
            # Sentinel's MasterNotFoundError and a pool with no free connection. ReadOnlyError
            # is what a demoted master answers; the cluster errors are a failover or a slot
            # migration in progress (ClusterError: redirected too many times).
            if isinstance(
                exc,
                (
                    errors.ConnectionError,
                    errors.TimeoutError,
                    errors.ReadOnlyError,
                    errors.ClusterDownError,
                    errors.TryAgainError,
                    errors.AskError,
                    errors.ClusterError,
                    errors.SlotNotCoveredError,
                ),
            ):
                return True
            if isinstance(exc, errors.RedisClusterException) and exc.__cause__ is not None:
                # "Redis Cluster cannot be connected": no node answered the slot-map query.
                return self.is_transient(exc.__cause__)
        return super().is_transient(exc)

    def _recover_steps(self) -> Steps[None]:
        """Before a retry on a cluster: read the slot map again (a failover or a slot
        migration may have moved the keys). redis-py does so itself after a failed single
        command, not after a failed bulk call. A failure here is left to the retry to meet."""
        if not self.cluster or not self._connected:
            return
        try:
            yield self._client.nodes_manager.initialize, ()
        except Exception as error:
            reason = scrub(f"{type(error).__name__}: {error}", self._secrets)
            log.debug("%s: refreshing the cluster's slot map failed: %s", self.storage_name, reason)

    def _expiry_args(self, expires_at: float | None) -> tuple[Any, ...]:
        """The arguments a ``SET`` gets for a record expiring at ``expires_at``: ``PX`` of the
        time left by the storage's clock (so a test's moved clock still gets the whole ttl
        from Redis), else ``EX`` of the ``expire`` option, else none."""
        if expires_at is not None:
            left = math.ceil((expires_at - self.record_codec.clock()) * 1000)
            return ("PX", max(1, left))
        if self.expire is not None:
            return ("EX", self.expire)
        return ()

    # -- the bulk calls, the purge and the listing, as steps --------------------------------

    def _read_many_io(self, kind: Kind, keys: Sequence[Key]) -> Steps[list[bytes | None]]:
        """``read_many``: one ``MGET`` (a slot's on a cluster)."""
        prefix = self._prefixes[kind]
        names = [prefix + pack_key(*key) for key in keys]
        groups = self._slot_groups(names)
        replies = yield from self._pipelined_steps(
            [(slot, ("MGET", *[names[i] for i in group])) for slot, group in groups]
        )
        if len(groups) == 1:
            values: list[bytes | None] = replies[0]
            return values
        values = [None] * len(names)
        for (_slot, group), reply in zip(groups, replies, strict=True):
            for index, data in zip(group, reply, strict=True):
                values[index] = data
        return values

    def _write_many_io(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None
    ) -> Steps[list[str]]:
        """``write_many``: ``MSET`` per 1,000 results, or a ``SET`` each with an expiry."""
        prefix = self._prefixes[kind]
        names = [prefix + pack_key(*key) for key, _data in items]
        values = [data for _key, data in items]
        expiry = self._expiry_args(expires_at)
        commands: list[Command] = []
        for slot, group in self._slot_groups(names):
            if expiry:  # MSET sets no expiry: a SET each, pipelined
                commands += ((slot, ("SET", names[i], values[i], *expiry)) for i in group)
                continue
            if len(group) == 1:  # the usual case on a cluster: a slot of its own
                commands.append((slot, ("SET", names[group[0]], values[group[0]])))
                continue
            # MSET in chunks: one command per chunk rather than per result (redis-py spends
            # more time packing a command than Redis spends running it).
            group_names = [names[i] for i in group]
            group_values = [values[i] for i in group]
            for start, end in _chunks(group_values):
                args: list[Any] = [None] * (2 * (end - start))
                args[0::2] = group_names[start:end]
                args[1::2] = group_values[start:end]
                commands.append((slot, ("MSET", *args)))
        yield from self._pipelined_steps(commands)
        return names

    def _remove_many_io(self, kind: Kind, keys: Sequence[Key]) -> Steps[int]:
        """``remove_many``: one ``DEL`` per 1,000 keys (of a slot)."""
        prefix = self._prefixes[kind]
        names = [prefix + pack_key(*key) for key in keys]
        commands = [
            (slot, ("DEL", *[names[i] for i in group[start : start + _CHUNK_KEYS]]))
            for slot, group in self._slot_groups(names)
            for start in range(0, len(group), _CHUNK_KEYS)
        ]
        return sum((yield from self._pipelined_steps(commands)))

    def _purge_io(self, kind: Kind, now: float, dry_run: bool) -> Steps[None]:
        """``purge``, emitting each batch's count. Records with a ``ttl`` carry a ``PX`` and
        Redis drops them itself; this removes what Redis still holds past its header's expiry
        (written with an expiry Redis did not get, or judged by a clock ahead of the
        server's). ``SCAN`` of the kind's prefix, then per 1,000 keys one script per hash
        slot that reads each header, checks it and deletes the expired keys, server-side (one
        round trip, nothing parsed here). On a server without scripting: pipelined
        ``GETRANGE`` of the headers, checked here, then per expired key
        ``WATCH``/``MULTI``/``DEL``, which fails if the key was stored again."""
        prefix = self._prefixes[kind]
        names = Pull(self._client.scan_iter(match=_glob_escape(prefix) + "*", count=1000))
        batch: list[str] = []
        while True:
            raw = yield names
            if raw is not END:
                batch.append(
                    raw.decode(self.encoding, self.errors) if isinstance(raw, bytes) else raw
                )
            if batch and (raw is END or len(batch) >= _PURGE_KEYS):
                yield Emit((yield from self._purge_names_steps(kind, batch, now, dry_run)))
                batch = []
            if raw is END:
                return

    def _purge_names_steps(
        self, kind: Kind, names: list[str], now: float, dry_run: bool
    ) -> Steps[int]:
        if self._scripts:
            due = math.floor(now * 1000)
            commands = [
                (
                    slot,
                    (
                        "EVAL",
                        _PURGE_SCRIPT,
                        len(group),
                        *[names[i] for i in group],
                        due,
                        int(dry_run),
                    ),
                )
                for slot, group in self._slot_groups(names)
            ]
            try:
                return sum((yield from self._pipelined_steps(commands)))
            except Exception as exc:
                if self.cluster or "unknown command" not in str(exc).lower():
                    raise
                self._scripts = False  # a server without scripting (EVAL disabled or absent)
        return (yield from self._purge_checked_here_steps(kind, names, now, dry_run))

    def _purge_checked_here_steps(
        self, kind: Kind, names: list[str], now: float, dry_run: bool
    ) -> Steps[int]:
        heads = yield from self._pipelined_steps(
            [(self._slot(name), ("GETRANGE", name, 0, _HEADER_BYTES - 1)) for name in names]
        )
        expired: list[tuple[str, bytes]] = []
        for name, head in zip(names, heads, strict=True):
            if not head or not has_header(head):
                continue
            try:
                expires = expiry_of(head)
                header = head[: header_length(head)]
            except RecordError as exc:
                where = self._described(kind, name, exc)
                log.warning("%s: purge leaves it in place", where)
                continue
            if expires is not None and expires <= now:
                expired.append((name, header))
        if dry_run or not expired:
            return len(expired)
        return (yield from self._delete_if_header_watched_steps(expired))

    def _delete_if_header_watched_steps(self, expired: list[tuple[str, bytes]]) -> Steps[int]:
        """Per key: ``WATCH``, check the header is still the one judged expired (a record
        stored meanwhile has another expiry, so another header), ``DEL`` in
        ``MULTI``/``EXEC``, which fails if the key changed after the ``WATCH``."""
        from redis.exceptions import WatchError

        removed = 0
        for name, header in expired:
            pipe = self._client.pipeline(transaction=True)
            try:
                yield pipe.watch, (name,)
                if (yield pipe.getrange, (name, 0, len(header) - 1)) != header:
                    continue
                pipe.multi()
                pipe.delete(name)
                removed += int((yield pipe.execute, ())[0])
            except WatchError:
                continue  # stored again meanwhile: a new record, not ours to remove
            finally:
                yield pipe.reset, ()  # the connection back to the pool
        return removed

    def _scan_io(self, kind: Kind, flow_name: str | None) -> Steps[None]:
        """``scan``, emitting each key: the keys stored under the kind's prefix, by ``SCAN``
        (never ``KEYS``); on a cluster, of every primary."""
        kind_prefix = self._prefixes[kind]
        head = kind_prefix + ("" if flow_name is None else _flow_head(flow_name))
        prefix = kind_prefix.encode(self.encoding, self.errors)
        # SCAN may return a key twice while Redis resizes its table, or while a replica takes
        # over from its primary.
        seen: set[Key] = set()
        raws = Pull(self._client.scan_iter(match=_glob_escape(head) + "*", count=1000))
        while (raw := (yield raws)) is not END:
            if not raw.startswith(prefix):
                continue
            try:
                key = unpack_key(raw[len(prefix) :].decode(self.encoding, self.errors))
            except ValueError:
                continue  # not one of ours, though under our prefix
            if key in seen or (flow_name is not None and key[0] != flow_name):
                continue
            seen.add(key)
            yield Emit(key)

    def _slot(self, name: str) -> int:
        if not self.cluster:
            return -1
        from redis.crc import key_slot

        return int(key_slot(name.encode(self.encoding, self.errors)))

    def _described(self, kind: Kind, name: str, exc: RecordError) -> object:
        try:
            key = unpack_key(name[len(self._prefixes[kind]) :])
        except ValueError:
            return f"{self.storage_name}: {name!r}: {exc.reason}"
        return exc.located(self.storage_name, key, "result" if kind == RESULTS else "error record")

    def _slot_groups(self, names: list[str]) -> list[tuple[int, Sequence[int]]]:
        """The positions of ``names`` that one multi-key command may take together, with
        their hash slot: all of them on one server (slot ``-1``); on a cluster, those of each
        slot (a multi-key command must stay in one)."""
        if not self.cluster:
            return [(-1, range(len(names)))]
        # redis-py's own hashing (hash tag included) of the bytes _resp sends, without the
        # client's keyslot: it encodes with the client's encoder, a call more per key.
        from redis.crc import key_slot

        encoding, errors = self.encoding, self.errors
        slots: dict[int, list[int]] = {}
        for index, name in enumerate(names):
            slot = key_slot(name.encode(encoding, errors))
            group = slots.get(slot)
            if group is None:
                slots[slot] = [index]
            else:
                group.append(index)
        return list(slots.items())

    def _pipelined_steps(self, commands: list[Command]) -> Steps[list[Any]]:
        """Run ``(slot, command)`` pairs in one round trip (one per node on a cluster); their
        replies, in order. Each command is idempotent on its own: no ``MULTI``."""
        if len(commands) == 1:
            return [(yield self._client.execute_command, commands[0][1])]
        if not commands:
            return []
        if self.cluster:
            return (yield from self._by_node_steps(commands))
        replies: list[Any] = yield self._pipeline, (commands,)
        return replies

    @abc.abstractmethod
    def _pipeline(self, commands: list[Command]) -> Any:
        """The replies of ``commands`` sent in one pipeline without ``MULTI`` (one server)."""

    @abc.abstractmethod
    def _node_connection(self, node: Any) -> tuple[Any, Callable[[Any], Any]]:
        """A connection to cluster ``node`` from its pool, and what gives it back."""

    @abc.abstractmethod
    def _read_replies(self, connection: Any, count: int) -> Any:
        """The next ``count`` replies on ``connection``, in order; the first error reply
        raised (the rest left unread: the caller drops the connection)."""

    def _by_node_steps(self, commands: list[Command]) -> Steps[list[Any]]:
        """A pipeline per node: every node's commands are sent in one write, all nodes'
        before any reply is read, so the nodes work at the same time.

        Not redis-py's ``ClusterPipeline``, which spends about twice the CPU per command
        (routing each one again) and, when a node fails, replays the failed commands one by
        one; here a failure (a dead node, ``MOVED`` after a failover) fails the whole call,
        the connections it used are dropped (their replies are unread), and the retry policy
        runs it again after ``recover()`` refreshed the slot map."""
        nodes_manager = self._client.nodes_manager
        # The slot map read as is, not through get_node_from_slot (a check of its arguments
        # for deprecated ones and a lock, per call): redis-py replaces the map whole, or
        # changes a slot's list of nodes in place without emptying it, so a lookup sees
        # the old owner or the new one; an old one answers MOVED, which fails the call.
        owners = nodes_manager.slots_cache
        by_node: dict[str, tuple[Any, list[int]]] = {}
        for position, (slot, _command) in enumerate(commands):
            try:
                node = owners[slot][0]
            except (KeyError, IndexError):
                node = nodes_manager.get_node_from_slot(slot)  # SlotNotCoveredError
            group = by_node.get(node.name)
            if group is None:
                by_node[node.name] = (node, [position])
            else:
                group[1].append(position)
        replies: list[Any] = [None] * len(commands)
        taken: list[tuple[Any, Callable[[Any], Any], list[int]]] = []
        try:
            for node, positions in by_node.values():
                connection, release = self._node_connection(node)
                taken.append((connection, release, positions))
                packed = _resp([commands[p][1] for p in positions], self.encoding, self.errors)
                yield connection.send_packed_command, (packed,)
            for connection, _release, positions in taken:
                # Raw replies (MSET's OK, DEL's count, MGET's values), a node's in one step.
                node_replies = yield self._read_replies, (connection, len(positions))
                for p, reply in zip(positions, node_replies, strict=True):
                    replies[p] = reply
        except BaseException:
            for connection, _release, _positions in taken:
                yield connection.disconnect, ()
            raise
        finally:
            for connection, release, _positions in taken:
                release(connection)
        return replies


class Redis(RedisBase, RunsSteps, RecordStorage):
    """Results in Redis, one string key per result: ``SET``/``GET``, one round trip each.

    Keys: ``<key_prefix>r:<packed key>`` for results and ``<key_prefix>e:<packed key>`` for
    error records, where the packed key is :func:`selinon_like.keys.pack_key` of the exact
    ``(flow_name, task_name, task_id)`` — length-prefixed, so ``("a:b", "c", "d")`` and
    ``("a", "b:c", "d")`` stay two keys. The record id returned by ``store`` is the Redis key.
    Values are the stored records (:mod:`selinon_like.envelope`: the serializer's bytes, JSON by
    default, behind a header when ``ttl``, ``compression`` or the serializer call for one).
    The adapter writes the primitives of :class:`~selinon_like.records.RecordStorage` (``GET``,
    ``SET``, ``DEL``, ``SCAN``); serialization and error records come from there. ``iter_keys``
    walks the prefix with ``SCAN`` (never ``KEYS``); ``store_many`` is one round trip (``MSET``
    per 1,000 results, or ``SET … PX``/``EX`` each with a ``ttl`` or ``expire``, pipelined
    without ``MULTI``), ``retrieve_many`` one ``MGET`` and ``delete_many`` one ``DEL`` per
    1,000 keys. A record with a ``ttl`` is stored with ``PX`` of its time left, so Redis frees
    it itself; ``purge_expired`` removes what is left past its header's expiry (see
    :meth:`purge`).

    Three topologies, one key layout (records move between them with ``selinon-like copy``):

    * one server (the default): ``host``/``port``, ``url`` or ``unix_socket_path``;
    * a **Redis Cluster** (``cluster: true``): ``host``/``port`` or ``url`` name any one node,
      the others are discovered (``connect()`` asks that node for the slot map: one round
      trip). Keys spread over the hash slots; a bulk call sends, for each slot, one ``MGET``,
      ``MSET`` (``SET`` for a slot's lone key) or ``DEL`` of that slot's keys, in one pipeline
      per node, every node's at once (a ``{tag}`` in ``key_prefix`` puts every key in one
      slot: one command per 1,000 keys, but one node holds everything). ``iter_keys`` scans
      every primary. Only database 0.
    * a master followed through **Sentinel** (``sentinels`` and ``service_name``): each new
      connection asks the sentinels where the master is, so after a failover the next
      connection reaches the promoted replica.

    ``connect()`` builds redis-py's thread-safe connection pool (no I/O on one server or with
    Sentinel: the first command opens a socket); a forked child gets its own instance and pool
    from the :class:`~selinon_like.StoragePool` and never touches its parent's. Connection
    errors, timeouts, a server still loading its data set, and what a failover looks like from
    the client — a replica's ``READONLY``, ``CLUSTERDOWN``, ``TRYAGAIN``, a redirection loop,
    a slot no node serves yet, no master known to the sentinels — are transient: retried
    under the storage's ``retry`` policy (a cluster client refreshes its slot map before the
    retry), then raised as :class:`~selinon_like.StorageUnavailable`. redis-py's own retries
    are off, so ``retry`` is the one knob: give it the time a failover takes (Redis Cluster's
    ``cluster-node-timeout`` plus an election; Sentinel's ``down-after-milliseconds`` plus
    an election) and calls made during one wait it out instead of failing. A wrong password
    is not transient: a plain ``StorageError`` at once (but sentinels refusing a wrong
    ``sentinel_password`` look like sentinels that know no master, which is retried).

    Configuration (where to connect: ``url``, or ``unix_socket_path``, or ``host``/``port``,
    or ``sentinels``):

    ``host`` (str, default ``"localhost"``), ``port`` (int, default ``6379``)
        the TCP server (with ``cluster``, any node of the cluster).
    ``unix_socket_path`` (str, default none)
        connect through this Unix socket instead of TCP (not with ``cluster``).
    ``url`` (str, default none)
        ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS) or
        ``unix:///path/to/socket?db=N``; instead of ``host``/``port``/``unix_socket_path``/
        ``ssl``. Values in the URL win over ``db``, ``username`` and ``password``.
    ``cluster`` (bool, default ``false``)
        the server is a node of a Redis Cluster: use redis-py's ``RedisCluster``.
    ``sentinels`` (list of ``[host, port]`` pairs, or of ``"host:port"`` strings; default
    none)
        Redis Sentinels that monitor the master; instead of ``host``/``port``/``url``/
        ``unix_socket_path``, and not with ``cluster``. One reachable sentinel is enough.
    ``service_name`` (str, required with ``sentinels``)
        the name the sentinels monitor the master under (``sentinel monitor <name> …``).
    ``sentinel_username`` (str, default none), ``sentinel_password`` (str, default none)
        credentials of the sentinels themselves, when they require them (``requirepass`` in
        ``sentinel.conf``); ``username``/``password`` are the master's. Secret as well.
    ``db`` (int, default ``0``)
        the database number (a cluster has only database 0).
    ``username`` (str, default none), ``password`` (str, default none)
        ACL user and password (``AUTH``) of the server, of every cluster node, or of the
        master the sentinels name. Never shown in a ``repr``, log or error message.
    ``charset`` / ``encoding`` (str, default ``"utf-8"``)
        how redis-py encodes key strings (``charset`` is Selinon's name for the same option;
        give one). ``errors`` (str, default ``"strict"``): its encoding error handler.
    ``socket_timeout`` (float seconds, default ``10``), ``socket_connect_timeout`` (float
    seconds, default ``5``)
        finite, so a dead server never hangs a worker; they apply to every node and every
        sentinel too. Neither is used longer than the storage's ``operation_timeout``
        (default: their sum, a connection and a command), which bounds a whole call: a retry
        starts only while the time left holds another wait as long as the last.
    ``ssl`` (bool, default ``false``)
        TLS over TCP (implied by a ``rediss://`` URL); with ``sentinels``, to the sentinels
        and to the master alike.
    ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` (str paths, default none)
        CA bundle to verify the server with; client certificate and key.
    ``ssl_cert_reqs`` (``required``, ``optional`` or ``none``; default ``required``),
    ``ssl_check_hostname`` (bool, default ``true``)
        how strictly the server certificate is checked.
    ``key_prefix`` (str, default ``"selinon:"``)
        prepended to every key; give each application (or test run) its own.
    ``expire`` (int seconds, default none)
        a time to live on every stored result and error record (``SET … EX``), kept by
        Redis alone; none keeps them until deleted. The storage-level ``ttl`` key (every
        adapter's) is the better knob: it is written in each record too, so a record is never
        returned past it, and it can differ for results and errors. A record with a ``ttl``
        gets ``SET … PX`` of its remaining time instead of ``expire``.
    ``max_connections`` (int, default unlimited)
        caps the connection pool (with ``cluster``, each node's pool); a thread finding every
        connection busy waits for one (up to ``socket_timeout``) instead of failing.
    ``auto_pipeline`` (bool, default ``true``)
        for the async adapter (:class:`~storages.aio.redis.AsyncRedis`): the reads and small
        writes of concurrent calls that would wait for a connection go together, as one
        pipeline (not on a cluster); ``false`` sends each on its own. The blocking adapter
        ignores it: each of its threads' calls sends its own request.

    Tests may hand the adapter a ready client (``fakeredis.FakeRedis()``, or one built with
    options this adapter does not expose) with :meth:`from_client`; it must not decode
    responses, and ``disconnect()`` leaves it to its owner. A ``RedisCluster`` client needs
    ``cluster=True`` beside it.

    The async pool (:class:`selinon_like.aio.AsyncStoragePool`) builds this storage as
    :class:`storages.aio.redis.AsyncRedis`, on ``redis.asyncio``: the same configuration,
    keys and records.

    Example::

        storages:
          - name: Results
            import: storages.redis
            classname: Redis
            configuration:
              host: ${REDIS_HOST:-localhost}
              port: 6379
              db: 0
              password: ${REDIS_PASSWORD:-}
              charset: utf-8
              key_prefix: "myapp:"
              expire: 86400
              socket_timeout: 10
          - name: TLSResults
            import: storages.redis
            classname: Redis
            configuration:
              url: rediss://results.example.com:6380/0
              username: worker
              password: ${REDIS_PASSWORD}
              ssl_ca_certs: /etc/ssl/certs/ca-certificates.crt
          - name: ClusterResults
            import: storages.redis
            classname: Redis
            configuration:
              cluster: true
              host: redis-cluster-0.internal   # any node; the others are discovered
              port: 6379
              password: ${REDIS_PASSWORD}
            retry: {attempts: 8, backoff: 0.25, max_backoff: 2}   # outlasts a failover
          - name: SentinelResults
            import: storages.redis
            classname: Redis
            configuration:
              sentinels: [[sentinel-1.internal, 26379], [sentinel-2.internal, 26379]]
              service_name: results
              password: ${REDIS_PASSWORD}
              sentinel_password: ${SENTINEL_PASSWORD:-}
            retry: {attempts: 8, backoff: 0.25, max_backoff: 2}
    """

    async_adapter = "storages.aio.redis:AsyncRedis"

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        if not self._connected:
            self._client = self._new_client("redis")
            self._connected = True

    def _make_cluster(self, redis: Any) -> Any:
        """A ``RedisCluster`` seeded with the one node named; it reads the slot map now."""
        kwargs = self._connection_kwargs()
        if self.max_connections is not None:
            # redis-py gives each node a pool of this class only for a client built from a
            # URL; a blocking one makes a busy node wait rather than fail.
            kwargs["connection_pool_class"] = redis.BlockingConnectionPool
        # No retry inside redis-py (the storage's retry policy decides), but it still
        # refreshes its slot map on every connection error before raising.
        return redis.RedisCluster(url=self._cluster_url(), retry=self._no_retry(redis), **kwargs)

    def disconnect(self) -> None:
        detached = self._detach()
        if detached is None:
            return
        client, sentinels = detached
        if self.cluster:
            client.close()  # every node's pool
        else:
            client.connection_pool.disconnect()
        for sentinel_client in sentinels:
            sentinel_client.close()

    def recover(self, exc: BaseException) -> None:
        run(self._recover_steps())

    def ping(self) -> bool:
        return bool(self._client.ping())

    # -- primitives -----------------------------------------------------------------------

    def read(self, kind: Kind, key: Key) -> bytes | None:
        data: bytes | None = self._client.execute_command(
            "GET", self._prefixes[kind] + pack_key(*key)
        )
        return data

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        name = self._prefixes[kind] + pack_key(*key)
        self._client.execute_command("SET", name, data, *self._expiry_args(expires_at))
        return name

    def remove(self, kind: Kind, key: Key) -> bool:
        return bool(self._client.execute_command("DEL", self._prefixes[kind] + pack_key(*key)))

    # -- the driver calls of the shared steps -----------------------------------------------

    def _pipeline(self, commands: list[Command]) -> list[Any]:
        with self._client.pipeline(transaction=False) as pipe:
            for _slot, command in commands:
                pipe.execute_command(*command)
            replies: list[Any] = pipe.execute()
        return replies

    def _node_connection(self, node: Any) -> tuple[Any, Callable[[Any], Any]]:
        pool = self._client.get_redis_connection(node).connection_pool
        return pool.get_connection(), pool.release

    def _read_replies(self, connection: Any, count: int) -> list[Any]:
        read = connection.read_response
        return [read() for _ in range(count)]


def _resp(commands: list[tuple[Any, ...]], encoding: str, errors: str) -> list[bytes]:
    """``commands`` (of ``str``, ``bytes`` and ``int`` arguments) as RESP requests, in few
    buffers: small pieces joined, a large value sent from its own buffer rather than copied.

    The protocol's request format is a length-prefixed list; writing it here costs a quarter
    of redis-py's ``pack_commands`` (1.8 ms against 6.6 ms for 1,000 ``SET``), which was half
    the CPU of a bulk call spread over a cluster's slots (a command per slot)."""
    buffers: list[bytes] = []
    pending: list[bytes] = []
    append = pending.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            if isinstance(arg, bytes):
                data = arg
            elif isinstance(arg, str):
                data = arg.encode(encoding, errors)
            else:
                data = str(arg).encode(encoding, errors)
            if len(data) > _OWN_BUFFER:
                append(b"$%d\r\n" % len(data))
                buffers += (b"".join(pending), data)
                pending = [b"\r\n"]
                append = pending.append
            else:  # one piece, not three: the join copies it once more, a small value
                append(b"$%d\r\n%b\r\n" % (len(data), data))
    buffers.append(b"".join(pending))
    return buffers


@functools.cache
def _blocking_sentinel_pool(redis: Any) -> Any:
    """redis-py's Sentinel pool with its blocking pool's wait for a free connection (built on
    first use: the driver is imported lazily)."""

    bases = (redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool)
    return type("BlockingSentinelConnectionPool", bases, {"__module__": __name__})
