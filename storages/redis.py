"""``Redis``: one Redis string per result, one per error record, through redis-py's pool."""

from __future__ import annotations

import codecs
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from selinon_like import options
from selinon_like.errors import ConfigError
from selinon_like.importing import missing_driver
from selinon_like.keys import Key, pack_key, unpack_key
from selinon_like.masking import mask_url
from selinon_like.records import ERRORS, RESULTS, Kind, RecordStorage

__all__ = ["Redis"]

_SCHEMES = ("redis://", "rediss://", "unix://")
_CERT_REQS = ("required", "optional", "none")
_GLOB_SPECIAL = re.compile(r"([\\*?\[\]])")
# store_many sends one MSET per this many results, or per this many bytes of them.
_CHUNK_KEYS = 1000
_CHUNK_BYTES = 16 * 1024 * 1024


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _flow_head(flow_name: str) -> str:
    """The start every packed key of ``flow_name`` shares: ``pack_key(flow_name, "", "")``
    is that head followed by the packed empty task, ``0:/``."""
    return pack_key(flow_name, "", "")[:-3]


def _chunks(values: list[bytes]) -> Iterator[tuple[int, int]]:
    """``(start, end)`` slices of at most ``_CHUNK_KEYS`` values or about ``_CHUNK_BYTES``."""
    start = size = 0
    for index, data in enumerate(values):
        size += len(data)
        if index + 1 - start >= _CHUNK_KEYS or size >= _CHUNK_BYTES:
            yield start, index + 1
            start, size = index + 1, 0
    if start < len(values):
        yield start, len(values)


class _NotConnected:
    """Stands in for the client while disconnected, so the hot path needs no check."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("the storage is not connected: call connect() first")


_NOT_CONNECTED = _NotConnected()


class Redis(RecordStorage):
    """Results in Redis, one string key per result: ``SET``/``GET``, one round trip each.

    Keys: ``<key_prefix>r:<packed key>`` for results and ``<key_prefix>e:<packed key>`` for
    error records, where the packed key is :func:`selinon_like.keys.pack_key` of the exact
    ``(flow_name, task_name, task_id)`` — length-prefixed, so ``("a:b", "c", "d")`` and
    ``("a", "b:c", "d")`` stay two keys. The record id returned by ``store`` is the Redis key.
    Values are the serializer's bytes (JSON by default); error records are JSON.
    The adapter writes the primitives of :class:`~selinon_like.records.RecordStorage` (``GET``,
    ``SET``, ``DEL``, ``SCAN``); serialization and error records come from there. ``iter_keys``
    walks the prefix with ``SCAN`` (never ``KEYS``); ``store_many`` is one round trip (``MSET``
    per 1,000 results, or ``SET … EX`` each with ``expire``, pipelined without ``MULTI``),
    ``retrieve_many`` one ``MGET`` and ``delete_many`` one ``DEL`` per 1,000 keys.

    ``connect()`` builds redis-py's thread-safe connection pool (no I/O: the first command
    opens a socket); a forked child gets its own instance and pool from the
    :class:`~selinon_like.StoragePool`. Connection errors, timeouts and a server still loading
    its data set are transient: retried under the storage's ``retry`` policy, then raised as
    :class:`~selinon_like.StorageUnavailable`. redis-py's own retries are off, so ``retry``
    is the one knob. A wrong password is not transient: a plain ``StorageError`` at once.

    Configuration (where to connect: ``url``, or ``unix_socket_path``, or ``host``/``port``):

    ``host`` (str, default ``"localhost"``), ``port`` (int, default ``6379``)
        the TCP server.
    ``unix_socket_path`` (str, default none)
        connect through this Unix socket instead of TCP.
    ``url`` (str, default none)
        ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS) or
        ``unix:///path/to/socket?db=N``; instead of ``host``/``port``/``unix_socket_path``/
        ``ssl``. Values in the URL win over ``db``, ``username`` and ``password``.
    ``db`` (int, default ``0``)
        the database number.
    ``username`` (str, default none), ``password`` (str, default none)
        ACL user and password (``AUTH``). Never shown in a ``repr``, log or error message.
    ``charset`` / ``encoding`` (str, default ``"utf-8"``)
        how redis-py encodes key strings (``charset`` is Selinon's name for the same option;
        give one). ``errors`` (str, default ``"strict"``): its encoding error handler.
    ``socket_timeout`` (float seconds, default ``10``), ``socket_connect_timeout`` (float
    seconds, default ``5``)
        finite, so a dead server never hangs a worker.
    ``ssl`` (bool, default ``false``)
        TLS over TCP (implied by a ``rediss://`` URL).
    ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` (str paths, default none)
        CA bundle to verify the server with; client certificate and key.
    ``ssl_cert_reqs`` (``required``, ``optional`` or ``none``; default ``required``),
    ``ssl_check_hostname`` (bool, default ``true``)
        how strictly the server certificate is checked.
    ``key_prefix`` (str, default ``"selinon:"``)
        prepended to every key; give each application (or test run) its own.
    ``expire`` (int seconds, default none)
        a time to live on every stored result and error record (``SET … EX``); none keeps
        them until deleted.
    ``max_connections`` (int, default unlimited)
        caps the connection pool; a thread finding every connection busy waits for one (up to
        ``socket_timeout``) instead of failing.

    Tests may hand the adapter a ready client (``fakeredis.FakeRedis()``, or one built with
    options this adapter does not expose) with :meth:`from_client`; it must not decode
    responses, and ``disconnect()`` leaves it to its owner.

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
    """

    thread_safe = True  # redis-py's ConnectionPool hands each thread its own connection

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
        self._tls = self._check_target()
        self._prefixes: dict[Kind, str] = {
            RESULTS: self.key_prefix + "r:",
            ERRORS: self.key_prefix + "e:",
        }
        self._client: Any = _NOT_CONNECTED
        self._injected: Any = None
        self._connected = False

    @classmethod
    def from_client(cls, client: Any, **configuration: Any) -> Redis:
        """An adapter using ``client`` (a ``redis.Redis``-compatible object that returns
        bytes, e.g. ``fakeredis.FakeRedis()``) instead of building its own on ``connect()``.
        The other options (``key_prefix``, ``expire``) apply; ``disconnect()`` does not close
        the client."""
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

    def _check_target(self) -> bool:
        """Refuse contradictory connection options; whether the connection uses TLS."""
        tls = self.ssl
        if self.url is not None:
            if not self.url.startswith(_SCHEMES):
                raise ConfigError(
                    f"{mask_url(self.url)!r} is not a Redis URL: it must start with "
                    + ", ".join(_SCHEMES),
                    key="url",
                )
            given = [
                name
                for name in ("host", "port", "unix_socket_path")
                if getattr(self, name) is not None
            ] + (["ssl"] if self.ssl else [])
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
            given = [name for name in ("host", "port") if getattr(self, name) is not None]
            if given or self.ssl:
                raise ConfigError(
                    f"give either unix_socket_path or {', '.join(given or ['ssl'])}, not both",
                    key="unix_socket_path",
                )
        tls_options = [
            name
            for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
            if getattr(self, name) is not None
        ] + [
            name
            for name, default in (("ssl_cert_reqs", "required"), ("ssl_check_hostname", True))
            if getattr(self, name) != default
        ]
        if tls_options and not tls:
            raise ConfigError("TLS options need ssl: true (or a rediss:// url)", key=tls_options[0])
        return tls

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        if self._connected:
            return
        if self._injected is not None:
            self._client = self._injected
        else:
            try:
                import redis
            except ModuleNotFoundError as exc:
                raise missing_driver(exc, self.storage_name) from exc
            self._client = redis.Redis(connection_pool=self._make_pool(redis))
        self._connected = True

    def _make_pool(self, redis: Any) -> Any:
        kwargs: dict[str, Any] = {
            "db": self.db if self.db is not None else 0,
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "encoding": self.encoding,
            "encoding_errors": self.errors,
            "decode_responses": False,
        }
        if self._tls:
            kwargs.update(
                ssl_ca_certs=self.ssl_ca_certs,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_cert_reqs=self.ssl_cert_reqs,
                ssl_check_hostname=self.ssl_check_hostname,
            )
        pool_class = redis.ConnectionPool
        if self.max_connections is not None:
            pool_class = redis.BlockingConnectionPool
            kwargs.update(max_connections=self.max_connections, timeout=self.socket_timeout)
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

    def disconnect(self) -> None:
        if not self._connected:
            return
        client, self._client = self._client, _NOT_CONNECTED
        self._connected = False
        if client is not self._injected:
            client.connection_pool.disconnect()

    def is_connected(self) -> bool:
        return self._connected

    def is_transient(self, exc: BaseException) -> bool:
        errors = sys.modules.get("redis.exceptions")  # never import the driver just to classify
        if errors is not None:
            if isinstance(exc, (errors.AuthenticationError, errors.AuthorizationError)):
                return False  # a ConnectionError subclass, but retrying cannot fix it
            # BusyLoadingError (the server is loading its data set) is a ConnectionError;
            # ReadOnlyError is what a replica answers during a failover.
            if isinstance(exc, (errors.ConnectionError, errors.TimeoutError, errors.ReadOnlyError)):
                return True
        return super().is_transient(exc)

    def ping(self) -> bool:
        return bool(self._client.ping())

    # -- primitives -----------------------------------------------------------------------

    def read(self, kind: Kind, key: Key) -> bytes | None:
        data: bytes | None = self._client.execute_command(
            "GET", self._prefixes[kind] + pack_key(*key)
        )
        return data

    def write(self, kind: Kind, key: Key, data: bytes) -> str:
        name = self._prefixes[kind] + pack_key(*key)
        if self.expire is None:
            self._client.execute_command("SET", name, data)
        else:
            self._client.execute_command("SET", name, data, "EX", self.expire)
        return name

    def remove(self, kind: Kind, key: Key) -> bool:
        return bool(self._client.execute_command("DEL", self._prefixes[kind] + pack_key(*key)))

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        prefix = self._prefixes[kind]
        values: list[bytes | None] = self._client.execute_command(
            "MGET", *[prefix + pack_key(*key) for key in keys]
        )
        return values

    def write_many(self, kind: Kind, items: Sequence[tuple[Key, bytes]]) -> list[str]:
        prefix = self._prefixes[kind]
        names = [prefix + pack_key(*key) for key, _data in items]
        commands: list[tuple[Any, ...]] = []
        if self.expire is not None:
            commands += (
                ("SET", name, data, "EX", self.expire)
                for name, (_key, data) in zip(names, items, strict=True)
            )
        else:
            # MSET in chunks: one command per chunk rather than per result (redis-py spends
            # more time packing a command than Redis spends running it).
            values = [data for _key, data in items]
            for start, end in _chunks(values):
                args: list[Any] = [None] * (2 * (end - start))
                args[0::2] = names[start:end]
                args[1::2] = values[start:end]
                commands.append(("MSET", *args))
        self._send(commands)
        return names

    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        prefix = self._prefixes[kind]
        names = [prefix + pack_key(*key) for key in keys]
        commands = [
            ("DEL", *names[start : start + _CHUNK_KEYS])
            for start in range(0, len(names), _CHUNK_KEYS)
        ]
        return sum(self._send(commands))

    def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run ``commands`` in one round trip: alone, or in a pipeline without ``MULTI``
        (each command is idempotent on its own); their replies."""
        if len(commands) == 1:
            return [self._client.execute_command(*commands[0])]
        if not commands:
            return []
        with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            replies: list[Any] = pipe.execute()
        return replies

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        """The keys stored under the kind's prefix, by ``SCAN`` (never ``KEYS``)."""
        kind_prefix = self._prefixes[kind]
        head = kind_prefix + ("" if flow_name is None else _flow_head(flow_name))
        prefix = kind_prefix.encode(self.encoding, self.errors)
        seen: set[Key] = set()  # SCAN may return a key twice while Redis resizes its table
        for raw in self._client.scan_iter(match=_glob_escape(head) + "*", count=1000):
            if not raw.startswith(prefix):
                continue
            try:
                key = unpack_key(raw[len(prefix) :].decode(self.encoding, self.errors))
            except ValueError:
                continue  # not one of ours, though under our prefix
            if key in seen or (flow_name is not None and key[0] != flow_name):
                continue
            seen.add(key)
            yield key
