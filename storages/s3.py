"""``S3Storage``: one object per result in an S3 (or S3-compatible) bucket.

:class:`S3Base` holds what it shares with its async form,
:class:`storages.aio.s3.AsyncS3Storage`: options, object layout, error classification, and
the requests of every operation as steps (:mod:`selinon_like.steps`), driven blocking here."""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import datetime as _dt
import hashlib
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from selinon_like import deadline, options
from selinon_like.errors import ConfigError, StorageError
from selinon_like.importing import missing_driver
from selinon_like.keys import Key, decode_part, encode_part, key_digest
from selinon_like.masking import mask_url, scrub
from selinon_like.records import ERRORS, RESULTS, Kind, RecordStorage, RunsSteps
from selinon_like.steps import END, Emit, Pull, Sleep, Steps, iterate, run
from selinon_like.storage import StorageBase
from selinon_like.streams import DEFAULT_CHUNK_SIZE, Digest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["MAX_KEY_BYTES", "MAX_SEGMENT_BYTES", "MIN_PART_SIZE", "S3Base", "S3Storage"]

T = TypeVar("T")
A = TypeVar("A")

MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
# S3-compatible services that keep an object as a file (or a filer entry) per "/"-separated
# segment of its name refuse a segment longer than a file name may be: SeaweedFS and MinIO
# answer KeyTooLongError past 255 bytes, whatever the whole name's length. AWS takes a
# 1,024-byte segment; a name within both limits works everywhere.
MAX_SEGMENT_BYTES = 255
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part of a multipart upload (but the last)
MAX_PARTS = 10_000  # S3's largest number of parts in one upload
_DELETE_BATCH = 1000  # S3's most objects in one DeleteObjects request
_EXPIRY_META = "expires-at"  # x-amz-meta-expires-at: ms since the epoch, as in the header
_TTL_TAG = "selinon-like-ttl"  # whole days of an expiring object's ttl: a lifecycle rule's filter
_READ_CHUNK = 1024 * 1024
_HASHED = 1 + 64  # "~" and a hex SHA-256: the name of an over-long key or flow
# Room an over-long key's name needs after the prefix: "results/", flow, "/", key.
_LONG_NAME = len("results/") + _HASHED + 1 + _HASHED
_HEADER_PROBE = 64 * 1024  # first bytes read for the header line of an over-long key


class _RedactSecrets(logging.Filter):
    """botocore logs signed requests at DEBUG (``botocore.auth``: the canonical request with
    ``x-amz-security-token``; ``botocore.endpoint``: the headers): mask the secrets every
    connected S3Storage was configured with in those records."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = scrub(message, self.secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


log = logging.getLogger("selinon_like")
_REDACT = _RedactSecrets()
for _name in ("botocore.auth", "botocore.endpoint", "botocore.parsers", "botocore.credentials"):
    logging.getLogger(_name).addFilter(_REDACT)
# KeyTooLongError: a name the service refuses holds no object there (a former name looked up
# on MinIO, see S3Base._former).
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound", "KeyTooLongError"})
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"}
)
_TRANSIENT_BOTOCORE = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "ResponseStreamingError",
)


def _error_code(exc: BaseException) -> tuple[str, int]:
    """The S3 error code and HTTP status of a botocore ``ClientError`` (``("", 0)`` else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", 0
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return code, int(status)


def _is_missing(exc: BaseException) -> bool:
    code, status = _error_code(exc)
    return status == 404 or code in _MISSING_CODES


def _optional_str(key: str, value: Any) -> str | None:
    return None if value is None else options.as_str(key, value)


def _secret(key: str, value: Any) -> str | None:
    # Never echo the value: it is a credential.
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"must be a non-empty string, not {type(value).__name__}", key=key)
    return value


class S3Base(StorageBase):
    """What :class:`S3Storage` and its async form
    (:class:`storages.aio.s3.AsyncS3Storage`) share: the options (documented on
    :class:`S3Storage`) and their ``ConfigError`` messages, the client's settings, the object
    layout (names, the header line of an over-long key, expiry metadata, lifecycle rules), the
    error classification, and every operation that makes requests, as steps
    (:mod:`selinon_like.steps`) each adapter drives. A request is the step
    ``(self._request, (operation, arguments))``: a boto3 client's method answers it, an
    aiobotocore client's method gives an awaitable. A subclass writes ``connect``,
    ``disconnect``, ``ping``, the primitives (each one line driving a step) and
    :meth:`_overlapped`."""

    def __init__(
        self,
        bucket: str,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        profile_name: str | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        location: str | None = None,
        use_ssl: bool | str | None = None,
        prefix: str = "",
        create_bucket: bool | str = False,
        addressing_style: str = "auto",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_pool_connections: int = 10,
        part_size: int = DEFAULT_CHUNK_SIZE,
        lifecycle: bool | str = False,
    ) -> None:
        self.bucket = options.as_str("bucket", bucket)
        self._credentials = {
            "aws_access_key_id": _secret("aws_access_key_id", aws_access_key_id),
            "aws_secret_access_key": _secret("aws_secret_access_key", aws_secret_access_key),
            "aws_session_token": _secret("aws_session_token", aws_session_token),
        }
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            missing = (
                "aws_secret_access_key" if aws_secret_access_key is None else "aws_access_key_id"
            )
            raise ConfigError(
                "aws_access_key_id and aws_secret_access_key go together: give both, or "
                "neither to use the standard AWS credential chain",
                key=missing,
            )
        if aws_session_token is not None and aws_access_key_id is None:
            raise ConfigError(
                "a session token needs aws_access_key_id and aws_secret_access_key",
                key="aws_session_token",
            )
        self.profile_name = _optional_str("profile_name", profile_name)
        self.region_name = _optional_str("region_name", region_name)
        self.endpoint_url = _optional_str("endpoint_url", endpoint_url)
        self.location = _optional_str("location", location)
        self.use_ssl = True if use_ssl is None else options.as_bool("use_ssl", use_ssl)
        if self.endpoint_url is not None:
            scheme = urlsplit(self.endpoint_url).scheme
            if scheme not in ("http", "https"):
                raise ConfigError(
                    f"must be an http:// or https:// URL, not {mask_url(self.endpoint_url)!r}",
                    key="endpoint_url",
                )
            if scheme == "http" and use_ssl is not None and self.use_ssl:
                raise ConfigError(
                    "use_ssl is true but endpoint_url is plain http://; use an https:// "
                    "endpoint or set use_ssl: false",
                    key="use_ssl",
                )
        self.prefix = options.as_str("prefix", prefix, empty=True)
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        self._prefix_size = len(self.prefix.encode("utf-8"))
        if self._prefix_size + _LONG_NAME > MAX_KEY_BYTES:
            raise ConfigError(
                f"is {self._prefix_size} bytes (with its '/'); at most "
                f"{MAX_KEY_BYTES - _LONG_NAME} leave room for S3's {MAX_KEY_BYTES}-byte object "
                "keys",
                key="prefix",
            )
        self.create_bucket = options.as_bool("create_bucket", create_bucket)
        self.addressing_style = options.as_str("addressing_style", addressing_style)
        if self.addressing_style not in ("auto", "path", "virtual"):
            raise ConfigError(
                f"must be auto, path or virtual, not {addressing_style!r}", key="addressing_style"
            )
        self.connect_timeout = options.as_float("connect_timeout", connect_timeout, minimum=0.001)
        self.read_timeout = options.as_float("read_timeout", read_timeout, minimum=0.001)
        self.max_pool_connections = options.as_int(
            "max_pool_connections", max_pool_connections, minimum=1
        )
        self.part_size = options.as_int(
            "part_size", part_size, minimum=MIN_PART_SIZE, maximum=5 * 1024**3
        )
        self.lifecycle = options.as_bool("lifecycle", lifecycle)
        self._client: Any = None

    # -- connection -----------------------------------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        """The keyword arguments of botocore's ``Config`` (aiobotocore's ``AioConfig``):
        the timeouts, never longer than ``operation_timeout``, the pool, no retries of its
        own."""
        return {
            "connect_timeout": min(self.connect_timeout, self.operation_timeout),
            "read_timeout": min(self.read_timeout, self.operation_timeout),
            "max_pool_connections": self.max_pool_connections,
            "retries": {"total_max_attempts": 1, "mode": "standard"},
            "s3": {"addressing_style": self.addressing_style},
        }

    def _credential_options(self) -> dict[str, Any]:
        """The credentials given (``None`` each when not), their secrets masked from
        botocore's logs from now on."""
        credentials = self._credentials
        _REDACT.secrets.update(
            value
            for name in ("aws_secret_access_key", "aws_session_token")
            if isinstance(value := credentials[name], str)
        )
        return dict(credentials)

    def _connect_steps(self, client: Any, close: Callable[[], Any]) -> Steps[None]:
        """Take ``client`` as this storage's once the bucket is there (created with
        ``create_bucket``) and the lifecycle rules are in place; ``close`` it otherwise."""
        client.meta.events.register("before-call.s3", self._bound_request)
        self._client = client
        try:
            yield from self._s3_check_bucket_steps()
            if self.lifecycle:
                yield from self._s3_put_lifecycle_steps()
        except BaseException:
            self._client = None
            yield close, ()
            raise

    def _bound_request(
        self, context: dict[str, Any], params: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """botocore's ``before-call``: within a call, a request waits for its reply no longer
        than the call's deadline leaves (botocore reads ``read_timeout`` from the request's
        context; the client's own applies otherwise). Its body, already in memory, goes
        without ``Expect: 100-continue``: botocore would first wait up to 1 s for the interim
        answer, on top of the read timeout."""
        left = deadline.remaining()
        if left is None:
            return
        if params is not None:
            params.get("headers", {}).pop("Expect", None)
        if left < self.read_timeout:
            context["read_timeout"] = left

    def default_operation_timeout(self) -> float:
        """``connect_timeout`` + ``read_timeout``: a connection, then a request's reply."""
        return self.connect_timeout + self.read_timeout

    def is_connected(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> Any:
        """The boto3 (or aiobotocore) client, for what this adapter does not wrap; connect
        first."""
        if self._client is None:
            raise StorageError(f"{self.storage_name}: not connected; call connect() first")
        return self._client

    def is_transient(self, exc: BaseException) -> bool:
        if super().is_transient(exc):
            return True
        # Only classify what botocore raised; never import it just to look.
        exceptions = sys.modules.get("botocore.exceptions")
        if exceptions is None:
            return False
        if isinstance(exc, tuple(getattr(exceptions, name, ()) for name in _TRANSIENT_BOTOCORE)):
            return True
        if isinstance(exc, exceptions.ClientError):
            code, status = _error_code(exc)
            return status >= 500 or code in _TRANSIENT_CODES
        return False

    def _request(self, operation: str, arguments: dict[str, Any]) -> Any:
        """Send one request: the client's reply (an awaitable of it from aiobotocore)."""
        return getattr(self.client, operation)(**arguments)

    def _s3(self, operation: str, **arguments: Any) -> tuple[Any, tuple[Any, ...]]:
        """The step of one request."""
        return self._request, (operation, arguments)

    def _overlapped(self, steps: Callable[[A], Steps[T]], args: Sequence[A]) -> Any:
        """``[steps(a) driven for a in args]``, overlapped on up to ``max_pool_connections``
        requests (a blocking adapter's list, an async one's awaitable of it)."""
        raise NotImplementedError

    def _s3_check_bucket_steps(self) -> Steps[None]:
        try:
            yield self._s3("head_bucket", Bucket=self.bucket)
            return
        except Exception as exc:
            if not _is_missing(exc):
                raise
        where = mask_url(self.endpoint_url) if self.endpoint_url else "AWS S3"
        if not self.create_bucket:
            raise StorageError(
                f"{self.storage_name}: the bucket {self.bucket!r} does not exist at {where}; "
                "create it, or set create_bucket: true"
            )
        constraint = self.location or self.region_name or self.client.meta.region_name
        try:
            if constraint in (None, "", "us-east-1", "aws-global"):
                yield self._s3("create_bucket", Bucket=self.bucket)
            else:
                yield self._s3(
                    "create_bucket",
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": constraint},
                )
        except Exception as exc:
            # Another process creating it at the same moment is fine.
            if _error_code(exc)[0] != "BucketAlreadyOwnedByYou":
                raise

    def _lifecycle_rule_id(self, kind: Kind) -> str:
        # Rule ids stop at 255 characters; a prefix may be 885 bytes.
        return f"selinon-like-{_sha256(self.prefix + kind)[:24]}-{kind}"

    def _s3_put_lifecycle_steps(self) -> Steps[None]:
        """Replace this storage's rules in the bucket's lifecycle configuration, keeping the
        other rules there."""
        try:
            reply = yield self._s3("get_bucket_lifecycle_configuration", Bucket=self.bucket)
            rules = reply["Rules"]
        except Exception as exc:
            if _error_code(exc)[0] != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        ours = {self._lifecycle_rule_id(kind): kind for kind in (RESULTS, ERRORS)}
        kept: list[Any] = [rule for rule in rules if rule.get("ID") not in ours]
        for rule_id, kind in ours.items():
            days = _ttl_days(self.record_codec.ttl.of(kind))
            if days is None:
                continue
            kept.append(
                {
                    "ID": rule_id,
                    "Status": "Enabled",
                    "Filter": {
                        "And": {
                            "Prefix": f"{self.prefix}{kind}/",
                            "Tags": [{"Key": _TTL_TAG, "Value": str(days)}],
                        }
                    },
                    "Expiration": {"Days": days},
                }
            )
        if kept == rules:
            return
        if kept:
            yield self._s3(
                "put_bucket_lifecycle_configuration",
                Bucket=self.bucket,
                LifecycleConfiguration={"Rules": kept},
            )
        else:
            yield self._s3("delete_bucket_lifecycle", Bucket=self.bucket)

    # -- objects --------------------------------------------------------------------------

    def object_key(self, kind: str, flow_name: str, task_name: str, task_id: str) -> str:
        """The object key of a result (``kind="results"``) or error record (``"errors"``):
        the encoded parts, or the key's digest when they pass 1,024 bytes or one of them 255
        (:data:`MAX_SEGMENT_BYTES`)."""
        return self._locate(kind, (flow_name, task_name, task_id))[0]

    def _locate(self, kind: str, key: Key) -> tuple[str, bytes]:
        """The object name of ``key`` and the header line its object starts with (``b""``
        for a plain name)."""
        flow_name, task_name, task_id = key
        # An encoded part is "_" and at least one character per character of the part, so a
        # key this long is over-long without encoding it (which costs ~50 µs a 1,000 bytes).
        least = len(flow_name) + len(task_name) + len(task_id) + len(kind) + 6
        if self._prefix_size + least <= MAX_KEY_BYTES:
            # The encoded parts are ASCII: their length is their size in bytes.
            flow, task, ident = encode_part(flow_name), encode_part(task_name), encode_part(task_id)
            if max(len(flow), len(task), len(ident)) <= MAX_SEGMENT_BYTES:
                tail = f"{kind}/{flow}/{task}/{ident}"
                if self._prefix_size + len(tail) <= MAX_KEY_BYTES:
                    return self.prefix + tail, b""
        return f"{self._flow_dir(kind, flow_name)}~{key_digest(*key)}", _header(key)

    def _flow_dir(self, kind: str, flow_name: str, segment: int = MAX_SEGMENT_BYTES) -> str:
        """The "directory" of a flow's over-long keys: the encoded flow when it fits the name
        and is at most ``segment`` bytes, else the flow's digest."""
        room = min(segment, MAX_KEY_BYTES - self._prefix_size - len(kind) - 2 - _HASHED)
        if len(flow_name) < room:
            token = encode_part(flow_name)
            if len(token) <= room:
                return f"{self.prefix}{kind}/{token}/"
        return f"{self.prefix}{kind}/~{_sha256(flow_name)}/"

    def _former(self, kind: str, key: Key) -> tuple[str, bytes] | None:
        """Where the layout before :data:`MAX_SEGMENT_BYTES` put ``key`` when it is not where
        it goes now, and that object's header line; ``None`` when the name has not changed.

        That layout bounded only the whole name: a key with a part encoded past 255 bytes got
        its plain name, or the digest under its encoded flow, when they fit 1,024 bytes. Such
        a record, stored on AWS (services with the segment limit refused it), is read at its
        former name when its current one is missing, listed once, replaced by a store and
        deleted with it. Only a digest-named key can have moved: callers ask only for those,
        so plain names cost nothing."""
        flow_name, task_name, task_id = key
        least = len(flow_name) + len(task_name) + len(task_id) + len(kind) + 6
        if self._prefix_size + least <= MAX_KEY_BYTES:
            tail = (
                f"{kind}/{encode_part(flow_name)}/{encode_part(task_name)}/{encode_part(task_id)}"
            )
            if self._prefix_size + len(tail) <= MAX_KEY_BYTES:
                name = self.prefix + tail
                return None if name == self._locate(kind, key)[0] else (name, b"")
        former = self._flow_dir(kind, flow_name, MAX_KEY_BYTES)
        if former == self._flow_dir(kind, flow_name):
            return None
        return f"{former}~{key_digest(*key)}", _header(key)

    def _s3_put_steps(
        self, name: str, data: bytes | bytearray, expires_at: float | None = None
    ) -> Steps[str]:
        # botocore takes a bytearray body (the stubs say bytes only); streams save a copy.
        if expires_at is None:
            yield self._s3("put_object", Bucket=self.bucket, Key=name, Body=data)
            return name
        days = _ttl_days(expires_at - self.record_codec.clock())
        yield self._s3(
            "put_object",
            Bucket=self.bucket,
            Key=name,
            Body=data,
            Metadata={_EXPIRY_META: str(math.ceil(expires_at * 1000))},
            Expires=_dt.datetime.fromtimestamp(expires_at, _dt.timezone.utc),
            Tagging=f"{_TTL_TAG}={days}",
        )
        return name

    def _s3_opened_steps(self, name: str, **arguments: Any) -> Steps[Any]:
        """``get_object``'s reply, its body still to read (``arguments``: more of
        ``get_object``'s, a ``Range``), or None when there is no such object."""
        try:
            return (yield self._s3("get_object", Bucket=self.bucket, Key=name, **arguments))
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise

    def _s3_get_steps(self, name: str, **arguments: Any) -> Steps[bytes | None]:
        """The object's bytes (``arguments``: more of ``get_object``'s, a ``Range``), or
        None when there is none."""
        response = yield from self._s3_opened_steps(name, **arguments)
        if response is None:
            return None
        body = response["Body"]
        try:
            data: bytes = yield body.read, ()
        finally:
            body.close()
        return data

    def _s3_exists_steps(self, name: str) -> Steps[bool]:
        try:
            yield self._s3("head_object", Bucket=self.bucket, Key=name)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def _s3_delete_steps(self, names: Sequence[str]) -> Steps[None]:
        """Delete the objects ``names``, up to 1,000 in each ``DeleteObjects``; one missing
        is no error."""
        for start in range(0, len(names), _DELETE_BATCH):
            batch = names[start : start + _DELETE_BATCH]
            response = yield self._s3(
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
            )
            errors = [e for e in response.get("Errors", []) if e.get("Code") not in _MISSING_CODES]
            if errors:
                first = errors[0]
                raise StorageError(
                    f"{self.storage_name}: {len(errors)} of {len(batch)} objects were not "
                    f"deleted; the first, {first.get('Key', '')!r}: {first.get('Code', '')} "
                    f"{first.get('Message', '')}".rstrip()
                )

    # -- the primitives, as steps ---------------------------------------------------------

    def _read_io(self, kind: Kind, key: Key) -> Steps[bytes | None]:
        name, header = self._locate(kind, key)
        data = yield from self._s3_get_steps(name)
        if data is None and header and (former := self._former(kind, key)) is not None:
            name, header = former
            data = yield from self._s3_get_steps(name)
        return _unwrapped(data, header)

    def _write_io(self, kind: Kind, key: Key, data: bytes, expires_at: float | None) -> Steps[str]:
        name, header = self._locate(kind, key)
        yield from self._s3_put_steps(name, header + data if header else data, expires_at)
        if header:
            yield from self._s3_drop_former_steps(kind, [key])
        return name

    def _s3_drop_former_steps(self, kind: Kind, keys: Sequence[Key]) -> Steps[None]:
        """Delete what the keys (digest-named ones) left at their former names (see
        :meth:`_former`), once their records are stored at the current ones."""
        formers = [former[0] for key in keys if (former := self._former(kind, key)) is not None]
        if len(formers) == 1:
            try:
                yield self._s3("delete_object", Bucket=self.bucket, Key=formers[0])
            except Exception as exc:
                if not _is_missing(exc):
                    raise
        elif formers:
            yield from self._s3_delete_steps(list(dict.fromkeys(formers)))

    def _remove_io(self, kind: Kind, key: Key) -> Steps[bool]:
        name, header = self._locate(kind, key)
        former = self._former(kind, key) if header else None
        found = False
        for there in (name,) if former is None else (name, former[0]):
            # DeleteObject succeeds for a missing object, so look first.
            if (yield from self._s3_exists_steps(there)):
                yield self._s3("delete_object", Bucket=self.bucket, Key=there)
                found = True
        return found

    def _read_many_io(self, kind: Kind, keys: Sequence[Key]) -> Steps[list[bytes | None]]:
        located = [self._locate(kind, key) for key in keys]
        unique = list(dict.fromkeys(name for name, _header in located))
        got = yield self._overlapped, (self._s3_get_steps, unique)
        found = dict(zip(unique, got, strict=True))
        # A digest-named key found nowhere may still be at its former name.
        formers: dict[str, tuple[str, bytes]] = {}
        for key, (name, header) in zip(keys, located, strict=True):
            if header and found[name] is None and name not in formers:
                former = self._former(kind, key)
                if former is not None:
                    formers[name] = former
        headers: dict[str, bytes] = {}
        if formers:
            got = yield self._overlapped, (self._s3_get_steps, [n for n, _h in formers.values()])
            for (name, (_former, header)), data in zip(formers.items(), got, strict=True):
                if data is not None:
                    found[name], headers[name] = data, header
        return [_unwrapped(found[name], headers.get(name, header)) for name, header in located]

    def _write_many_io(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None
    ) -> Steps[list[str]]:
        # Every name is made before the first request.
        objects = []
        moved = []
        for key, data in items:
            name, header = self._locate(kind, key)
            objects.append((name, header + data if header else data))
            if header:
                moved.append(key)
        # A key given twice keeps its last result, as stores one after the other would: only
        # that one is sent, so two concurrent PUTs of one key never race.
        last = dict(objects)

        def put(name: str) -> Steps[str]:
            return self._s3_put_steps(name, last[name], expires_at)

        yield self._overlapped, (put, list(last))
        if moved:
            yield from self._s3_drop_former_steps(kind, moved)
        return [name for name, _data in objects]

    def _remove_many_io(self, kind: Kind, keys: Sequence[Key]) -> Steps[int]:
        # Each key's name, and its former name if it has one.
        names: dict[str, str | None] = {}
        for key in keys:
            name, header = self._locate(kind, key)
            if name not in names:
                former = self._former(kind, key) if header else None
                names[name] = None if former is None else former[0]
        every = [*names, *(former for former in names.values() if former is not None)]
        # DeleteObjects reports a missing object as deleted: the overlapped HEADs tell which
        # were there, and only those are deleted.
        found = yield self._overlapped, (self._s3_exists_steps, every)
        there = dict(zip(every, found, strict=True))
        yield from self._s3_delete_steps([name for name in every if there[name]])
        return sum(
            1
            for name, former in names.items()
            if there[name] or (former is not None and there[former])
        )

    def _pages(self, prefix: str) -> Any:
        """The pages listing the objects under ``prefix`` (an iterable; aiobotocore's: an
        async iterable), 1,000 objects each."""
        paginator = self.client.get_paginator("list_objects_v2")
        return paginator.paginate(Bucket=self.bucket, Prefix=prefix)

    def _purge_io(self, kind: Kind, now: float, dry_run: bool) -> Steps[None]:
        """By the objects' expiry metadata, a page of 1,000 at a time: overlapped HEADs, then
        one ``DeleteObjects`` of the expired ones, each on the condition of its ETag; emits
        each page's count."""
        due = math.floor(now * 1000)
        pages = Pull(self._pages(f"{self.prefix}{kind}/"))
        while (page := (yield pages)) is not END:
            names = [entry["Key"] for entry in page.get("Contents", [])]
            heads = yield self._overlapped, (self._s3_expiry_and_etag_steps, names)
            expired = [
                (name, etag)
                for name, (expires, etag) in zip(names, heads, strict=True)
                if expires is not None and expires <= due
            ]
            if dry_run or not expired:
                yield Emit(len(expired))
                continue
            response = yield self._s3(
                "delete_objects",
                Bucket=self.bucket,
                Delete={
                    "Objects": [{"Key": name, "ETag": etag} for name, etag in expired],
                    "Quiet": True,
                },
            )
            errors = response.get("Errors", [])
            failed = [error for error in errors if error.get("Code") != "PreconditionFailed"]
            if failed:
                first = failed[0]
                raise StorageError(
                    f"{self.storage_name}: {len(failed)} expired objects were not deleted; "
                    f"the first, {first.get('Key', '')!r}: {first.get('Code', '')} "
                    f"{first.get('Message', '')}".rstrip()
                )
            yield Emit(len(expired) - len(errors))  # PreconditionFailed: stored again meanwhile

    def _s3_expiry_and_etag_steps(self, name: str) -> Steps[tuple[int | None, str]]:
        """The expiry (ms) in an object's metadata (None: none, or the object is gone) and
        its ETag."""
        try:
            head = yield self._s3("head_object", Bucket=self.bucket, Key=name)
        except Exception as exc:
            if _is_missing(exc):
                return None, ""
            raise
        value = head.get("Metadata", {}).get(_EXPIRY_META)
        try:
            expires = int(value) if value is not None else None
        except ValueError:
            log.warning(
                "%s: %r has expiry metadata %r; purge leaves it", self.storage_name, name, value
            )
            expires = None
        return expires, head["ETag"]

    def _scan_io(self, kind: Kind, flow_name: str | None) -> Steps[None]:
        """Emits the keys of the objects under ``<prefix><kind>/`` (of one flow if given)."""
        base = f"{self.prefix}{kind}/"
        if flow_name is None:
            starts = [base]
        else:
            plain = f"{base}{encode_part(flow_name)}/"
            # A flow too long to head its over-long keys' names has them under its digest;
            # its former names (see _former) are under the plain one.
            starts = list(dict.fromkeys((plain, self._flow_dir(kind, flow_name))))
            starts = [start for start in starts if len(start.encode()) < MAX_KEY_BYTES]
        for start in starts:
            pages = Pull(self._pages(start))
            while (page := (yield pages)) is not END:
                for entry in page.get("Contents", []):
                    name = entry["Key"]
                    key = yield from self._s3_key_of_steps(kind, name, name[len(base) :])
                    if key is not None:
                        yield Emit(key)

    def _s3_key_of_steps(self, kind: Kind, name: str, tail: str) -> Steps[Key | None]:
        """The key of the object ``name`` (``tail`` after ``<prefix><kind>/``); ``None`` for
        an object this adapter did not write, or at a former name (:meth:`_former`) of a key
        whose current object exists (listed there)."""
        parts = tail.split("/")
        if len(parts) == 3 and all(part.startswith("_") for part in parts):
            try:
                found = decode_part(parts[0]), decode_part(parts[1]), decode_part(parts[2])
            except ValueError:
                return None
            if max(len(parts[0]), len(parts[1]), len(parts[2])) <= MAX_SEGMENT_BYTES:
                return found
            return (yield from self._s3_unless_moved_steps(kind, found))
        if len(parts) == 2 and _is_hashed(parts[1]):
            key = yield from self._s3_stored_key_steps(name)
            if key is None:
                return None
            # The key must name this very object: a foreign or misplaced one is skipped.
            if self._locate(kind, key)[0] == name:
                return key
            former = self._former(kind, key)
            if former is not None and former[0] == name:
                return (yield from self._s3_unless_moved_steps(kind, key))
        return None

    def _s3_unless_moved_steps(self, kind: Kind, key: Key) -> Steps[Key | None]:
        """``key``, listed at its former name, unless its current object exists (then listed
        there instead)."""
        if (yield from self._s3_exists_steps(self._locate(kind, key)[0])):
            return None
        return key

    def _s3_stored_key_steps(self, name: str) -> Steps[Key | None]:
        """The key in the header line of an over-long key's object, read with ranged GETs
        (``None`` when there is no such line, or no object any more)."""
        size = _HEADER_PROBE
        while True:
            try:
                data = yield from self._s3_get_steps(name, Range=f"bytes=0-{size - 1}")
            except Exception as exc:
                # InvalidRange: an empty object, which has no header.
                if _error_code(exc)[0] == "InvalidRange":
                    return None
                raise
            if data is None:
                return None
            end = data.find(b"\n")
            if end >= 0:
                return _parse_header(data[:end])
            if len(data) < size or not data.startswith(b'["'):
                return None  # no header line, or not one of ours: read no further
            size *= 16

    # -- streams --------------------------------------------------------------------------

    def _s3_store_stream_steps(self, key: Key, chunks: Any) -> Steps[Digest]:
        """Upload ``chunks`` (read with :class:`~selinon_like.steps.Pull`: an async iterable
        too, under the async driver) as a multipart upload of ``part_size`` parts, or one PUT
        when shorter than a part; their :class:`Digest`."""
        name, header = self._locate(RESULTS, key)
        part_size = self.part_size
        source = Pull(chunks)
        sha, size = hashlib.sha256(), 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []
        # An over-long key's header line goes first, outside the digest.
        chunk: Any = header
        try:
            while True:
                # Fill the part exactly, copying each byte once (S3-compatible services such
                # as R2 want every part but the last of the same size).
                rest = memoryview(chunk)
                while rest:
                    room = part_size - len(buffer)
                    buffer += rest[:room]
                    rest = rest[room:]
                    if len(buffer) == part_size:
                        if upload_id is None:
                            created = yield self._s3(
                                "create_multipart_upload", Bucket=self.bucket, Key=name
                            )
                            upload_id = created["UploadId"]
                        yield from self._s3_part_steps(name, upload_id, parts, buffer)
                        buffer = bytearray()
                chunk = yield source
                if chunk is END:
                    break
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(
                        f"store_stream() takes an iterable of bytes, got a {type(chunk).__name__}"
                    )
                sha.update(chunk)
                size += len(chunk)
            if upload_id is None:
                # Shorter than one part: a single PUT, made only once the stream has ended.
                yield from self._s3_retried_steps(self._s3_put_steps, name, buffer)
            else:
                if buffer:
                    yield from self._s3_part_steps(name, upload_id, parts, buffer)
                yield self._s3(
                    "complete_multipart_upload",
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except GeneratorExit:
            raise  # closed unfinished: no step can run any more
        except BaseException:
            if upload_id is not None:
                # Best effort: what cannot be aborted now is left to a bucket lifecycle rule.
                with contextlib.suppress(Exception):
                    yield self._s3(
                        "abort_multipart_upload", Bucket=self.bucket, Key=name, UploadId=upload_id
                    )
            raise
        if header:
            yield from self._s3_retried_steps(self._s3_drop_former_steps, RESULTS, [key])
        return Digest(size, sha.hexdigest())

    def _s3_part_steps(
        self, name: str, upload_id: str, parts: list[CompletedPartTypeDef], data: bytearray
    ) -> Steps[None]:
        """Upload ``data`` as the next part (retried: its bytes are still in hand)."""
        number = len(parts) + 1
        if number > MAX_PARTS:
            raise StorageError(
                f"{self.storage_name}: the stream needs more than {MAX_PARTS} parts of "
                f"{self.part_size} bytes; raise part_size"
            )

        def upload() -> Steps[Any]:
            return (
                yield self._s3(
                    "upload_part",
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                )
            )

        response = yield from self._s3_retried_steps(upload)
        parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def _s3_retried_steps(self, steps: Callable[..., Steps[T]], *args: Any) -> Steps[T]:
        """``steps(*args)``, again after a transient error under the retry policy (one
        request of a stream, whose bytes are still in hand)."""
        attempt = 0
        while True:
            try:
                return (yield from steps(*args))
            except Exception as exc:
                if not self.is_transient(exc) or attempt + 1 >= self.retry_policy.attempts:
                    raise
                yield Sleep(self.retry_policy.delay(attempt))
                attempt += 1

    def _s3_chunks_steps(self, key: Key) -> Steps[None]:
        """Emits the bytes of the result streamed under ``key`` (1 MiB chunks);
        ``ResultNotFound`` when there is none."""
        name, header = self._locate(RESULTS, key)
        response = yield from self._s3_opened_steps(name)
        if response is None and header and (former := self._former(RESULTS, key)) is not None:
            name, header = former
            response = yield from self._s3_opened_steps(name)
        if response is None:
            raise self.not_found(*key)
        body = response["Body"]
        try:
            if header:
                # Read the header line whole (a read may return less than asked).
                seen = b""
                while len(seen) < len(header):
                    more = yield body.read, (len(header) - len(seen),)
                    if not more:
                        break
                    seen += more
                if seen != header:  # not this key's object (see _unwrapped)
                    raise self.not_found(*key)
            pieces = Pull(body.iter_chunks(_READ_CHUNK))
            while (piece := (yield pieces)) is not END:
                yield Emit(piece)
        finally:
            body.close()


class S3Storage(S3Base, RunsSteps, RecordStorage):
    """Results as objects in an S3 bucket (AWS, or any S3-compatible service via
    ``endpoint_url``: MinIO, Ceph, moto...).

    Layout: ``<prefix>results/<flow>/<task>/<task_id>`` and ``<prefix>errors/...`` for error
    records, each part encoded by :func:`selinon_like.keys.encode_part` (only ``[a-z0-9_%-]``,
    so ``/``, ``..``, spaces and unicode in a key stay inside its part and under the prefix);
    such an object holds the stored bytes as they are. ``store`` returns the object key.

    S3 object keys stop at 1,024 bytes, and services that keep objects as files (SeaweedFS,
    MinIO) refuse a ``/``-separated segment past 255 bytes (:data:`MAX_SEGMENT_BYTES`). A key
    whose name would pass either limit is stored as ``<prefix>results/<flow>/~<SHA-256 of
    the key>`` (the flow itself as ``~<its SHA-256>`` when its encoded form passes either),
    and its object starts with one line holding the exact key as JSON (``["flow", "task",
    "id"]``, as the ``Filesystem`` adapter's files do), then the stored bytes. Reads check
    that line, so two different keys never share an object; ``iter_keys`` reads it (one
    ranged GET for each such object) to yield the exact key. Keys of any length therefore
    work on any S3-compatible service; short keys keep the plain layout above (a ``prefix``
    is used as given: keep its segments within 255 bytes on such services).

    Earlier releases bounded only the whole name: a key with a part encoded past 255 bytes
    had its plain name (or the digest under its encoded flow) when that fitted 1,024 bytes.
    Such records, stored on AWS, stay readable: a read that misses a digest-named key looks
    at its former name (one more GET, only then), ``iter_keys`` lists such a record once
    (a HEAD tells whether the key's current object exists), a store of the key deletes the
    former object after writing the new one, and ``delete``/``delete_many`` delete both.

    ``store_many``/``retrieve_many`` overlap their requests on up to ``max_pool_connections``
    threads. ``delete_many`` learns which objects exist from overlapped HEAD requests (S3
    reports a missing object as deleted) and deletes those in one request per 1,000.

    ``store_stream`` uploads any iterable of bytes as a multipart upload of ``part_size``
    parts, holding at most one part in memory (a stream shorter than one part is a single
    PUT); a failed upload is aborted, so the previous object stays as it was. Streamed objects
    hold the raw bytes: read them with ``retrieve_stream`` (1 MiB chunks).

    Expiry (``ttl``): S3 cannot expire one object at a given time, so an expiring record's
    object carries its expiry as metadata (``x-amz-meta-expires-at``, milliseconds since the
    epoch, and the HTTP ``Expires`` header) and a tag ``selinon-like-ttl=<days>``.
    ``purge_expired`` lists the kind's objects 1,000 at a time, reads their metadata with
    overlapped HEAD requests and deletes the expired ones in one ``DeleteObjects`` whose every
    object carries the ETag seen: an object stored again meanwhile no longer matches and stays
    (a service that ignores that condition loses the guarantee; AWS and SeaweedFS honour it).
    With ``lifecycle: true``, ``connect()`` also puts a lifecycle rule per kind on the bucket
    (keeping the bucket's other rules) that has S3 itself delete the objects tagged with the
    ttl's whole days, rounded up, that many days after their last write — never before their
    expiry; without a ``ttl`` for a kind, its rule is removed. It needs the
    ``s3:GetLifecycleConfiguration`` and ``s3:PutLifecycleConfiguration`` permissions.

    The client is one boto3 client, safe across threads (``thread_safe = True``). botocore's
    own retries are off: the storage's ``retry:`` policy retries transient errors (connection
    errors, timeouts, 5xx and ``SlowDown``), and ``store_stream`` retries a failed part.

    Configuration:

    ``bucket`` (str, required)
        the bucket name.
    ``aws_access_key_id``, ``aws_secret_access_key`` (str, default none)
        credentials, given both or neither; without them boto3's standard credential chain
        applies (environment, shared files, ``profile_name``, instance roles). Masked everywhere.
    ``aws_session_token`` (str, default none)
        session token of temporary credentials; masked everywhere.
    ``profile_name`` (str, default none)
        the profile of the shared AWS config/credentials files to use.
    ``region_name`` (str, default: boto3's configured region)
        the region of the bucket.
    ``endpoint_url`` (str, default: AWS)
        an S3-compatible service, e.g. ``http://127.0.0.1:9000``; its scheme decides TLS.
    ``location`` (str, default: ``region_name``)
        the ``LocationConstraint`` given when ``create_bucket`` creates the bucket (none is
        sent for ``us-east-1``).
    ``use_ssl`` (bool, default ``true``)
        TLS to AWS. Only an explicit ``false`` (or ``"false"``, ``"no"``, ``"0"``) turns it
        off; ``true`` together with an ``http://`` ``endpoint_url`` is a configuration error.
    ``prefix`` (str, default ``""``)
        put every object under this prefix (a ``/`` is added when missing); at most 885
        bytes, so that the name of an over-long key still fits.
    ``create_bucket`` (bool, default ``false``)
        create a missing bucket on ``connect()``; when off, a missing bucket is an error
        naming it.
    ``addressing_style`` (``auto``, ``path`` or ``virtual``; default ``auto``)
        how the bucket is put in URLs; many S3-compatible services want ``path``.
    ``connect_timeout`` (seconds, default ``10``), ``read_timeout`` (seconds, default ``60``)
        socket timeouts of every request, neither longer than the storage's
        ``operation_timeout`` (default: their sum); within a call a request waits for its
        reply no longer than the call's deadline leaves.
    ``max_pool_connections`` (int, default ``10``)
        HTTP connections kept open, and threads of ``store_many``/``retrieve_many``.
    ``part_size`` (bytes, default 8 MiB, at least 5 MiB)
        the part size of ``store_stream`` uploads (10,000 parts at most: 8 MiB parts carry
        up to 78 GiB).
    ``lifecycle`` (bool, default ``false``)
        keep a bucket lifecycle rule that deletes expired records (see Expiry above).

    Example::

        storages:
          - name: Artifacts
            import: storages.s3
            classname: S3Storage
            configuration:
              bucket: my-results
              region_name: eu-west-1
              prefix: selinon/
              aws_access_key_id: ${AWS_ACCESS_KEY_ID}
              aws_secret_access_key: ${AWS_SECRET_ACCESS_KEY}
              read_timeout: 30
    """

    thread_safe = True  # one boto3 client; botocore clients are thread-safe
    async_adapter = "storages.aio.s3:AsyncS3Storage"

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        if self._client is not None:
            return
        try:
            import boto3.session
            from botocore.config import Config
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        session = boto3.session.Session(
            **self._credential_options(),
            region_name=self.region_name,
            profile_name=self.profile_name,
        )
        client = session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            config=Config(**self._client_options()),
        )
        run(self._connect_steps(client, client.close))

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @property
    def client(self) -> S3Client:
        """The boto3 client (for what this adapter does not wrap); connect first."""
        client: S3Client = super().client
        return client

    def ping(self) -> bool:
        self.client.head_bucket(Bucket=self.bucket)
        return True

    def _overlapped(self, steps: Callable[[A], Steps[T]], args: Sequence[A]) -> list[T]:
        return self._parallel(lambda arg: run(steps(arg)), args)

    def _parallel(self, call: Callable[[A], T], args: Sequence[A]) -> list[T]:
        """``[call(a) for a in args]`` on up to ``max_pool_connections`` threads."""
        if len(args) <= 1:
            return [call(arg) for arg in args]
        workers = min(self.max_pool_connections, len(args))
        with concurrent.futures.ThreadPoolExecutor(workers, "selinon-s3") as executor:
            # Each task runs in a copy of this context: the call's deadline goes with it.
            futures = [executor.submit(contextvars.copy_context().run, call, arg) for arg in args]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    # -- streams --------------------------------------------------------------------------

    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        return run(self._s3_store_stream_steps((flow_name, task_name, task_id), chunks))

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        # The GET is made now, so a missing result fails this call rather than the first next().
        chunks: Iterator[bytes] = iterate(self._s3_chunks_steps((flow_name, task_name, task_id)))
        return chunks


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ttl_days(seconds: float | None) -> int | None:
    """A ttl in the whole days a lifecycle rule counts, rounded up (at least 1)."""
    return None if seconds is None else max(1, math.ceil(seconds / 86400))


_HEX = frozenset("0123456789abcdef")


def _is_hashed(token: str) -> bool:
    """Whether ``token`` is ``~`` and a hex SHA-256, as an over-long key's name ends."""
    return len(token) == _HASHED and token[0] == "~" and _HEX.issuperset(token[1:])


def _header(key: Key) -> bytes:
    """The first line of an over-long key's object: the exact key, as JSON."""
    return json.dumps(list(key), ensure_ascii=True).encode("ascii") + b"\n"


def _parse_header(line: bytes) -> Key | None:
    try:
        parts = json.loads(line)
    except ValueError:
        return None
    if not (isinstance(parts, list) and len(parts) == 3 and all(isinstance(p, str) for p in parts)):
        return None
    return parts[0], parts[1], parts[2]


def _unwrapped(data: bytes | None, header: bytes) -> bytes | None:
    """The stored bytes of an object read as ``data``: after ``header`` for an over-long key,
    whose object must start with it (else it holds another key's record: ``None``)."""
    if data is None or not header:
        return data
    return data[len(header) :] if data.startswith(header) else None
