"""``S3Storage``: one object per result in an S3 (or S3-compatible) bucket."""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import datetime as _dt
import hashlib
import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

from selinon_like import deadline, options
from selinon_like.errors import ConfigError, StorageError
from selinon_like.importing import missing_driver
from selinon_like.keys import Key, decode_part, encode_part, key_digest
from selinon_like.masking import mask_url, scrub
from selinon_like.records import ERRORS, RESULTS, Kind, RecordStorage
from selinon_like.streams import DEFAULT_CHUNK_SIZE, Digest, DigestingReader

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["MAX_KEY_BYTES", "MIN_PART_SIZE", "S3Storage"]

T = TypeVar("T")
A = TypeVar("A")

MAX_KEY_BYTES = 1024  # S3's limit on an object key, in UTF-8 bytes
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
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
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


class S3Storage(RecordStorage):
    """Results as objects in an S3 bucket (AWS, or any S3-compatible service via
    ``endpoint_url``: MinIO, Ceph, moto...).

    Layout: ``<prefix>results/<flow>/<task>/<task_id>`` and ``<prefix>errors/...`` for error
    records, each part encoded by :func:`selinon_like.keys.encode_part` (only ``[a-z0-9_%-]``,
    so ``/``, ``..``, spaces and unicode in a key stay inside its part and under the prefix);
    such an object holds the stored bytes as they are. ``store`` returns the object key.

    S3 object keys stop at 1,024 bytes. A key whose name would be longer is stored as
    ``<prefix>results/<flow>/~<SHA-256 of the key>`` (the flow itself as ``~<its SHA-256>``
    when even that is too long), and its object starts with one line holding the exact key
    as JSON (``["flow", "task", "id"]``, as the ``Filesystem`` adapter's files do), then the
    stored bytes. Reads check that line, so two different keys never share an object;
    ``iter_keys`` reads it (one ranged GET for each such object) to yield the exact key. Keys
    of any length therefore work; short keys keep the plain layout above.

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
        self._client: S3Client | None = None

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        if self._client is not None:
            return
        try:
            import boto3.session
            from botocore.config import Config
        except ModuleNotFoundError as exc:
            raise missing_driver(exc, self.storage_name) from exc
        credentials = self._credentials
        _REDACT.secrets.update(
            value
            for name in ("aws_secret_access_key", "aws_session_token")
            if isinstance(value := credentials[name], str)
        )
        session = boto3.session.Session(
            aws_access_key_id=credentials["aws_access_key_id"],
            aws_secret_access_key=credentials["aws_secret_access_key"],
            aws_session_token=credentials["aws_session_token"],
            region_name=self.region_name,
            profile_name=self.profile_name,
        )
        client = session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            use_ssl=self.use_ssl,
            config=Config(
                connect_timeout=min(self.connect_timeout, self.operation_timeout),
                read_timeout=min(self.read_timeout, self.operation_timeout),
                max_pool_connections=self.max_pool_connections,
                retries={"total_max_attempts": 1, "mode": "standard"},
                s3={"addressing_style": self.addressing_style},  # type: ignore[arg-type]
            ),
        )
        client.meta.events.register("before-call.s3", self._bound_request)
        try:
            self._check_bucket(client)
            if self.lifecycle:
                self._put_lifecycle(client)
        except BaseException:
            client.close()
            raise
        self._client = client

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

    def _check_bucket(self, client: S3Client) -> None:
        try:
            client.head_bucket(Bucket=self.bucket)
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
        constraint = self.location or self.region_name or client.meta.region_name
        try:
            if constraint in (None, "", "us-east-1", "aws-global"):
                client.create_bucket(Bucket=self.bucket)
            else:
                client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={
                        "LocationConstraint": cast("BucketLocationConstraintType", constraint)
                    },
                )
        except Exception as exc:
            # Another process creating it at the same moment is fine.
            if _error_code(exc)[0] != "BucketAlreadyOwnedByYou":
                raise

    def _lifecycle_rule_id(self, kind: Kind) -> str:
        # Rule ids stop at 255 characters; a prefix may be 885 bytes.
        return f"selinon-like-{_sha256(self.prefix + kind)[:24]}-{kind}"

    def _put_lifecycle(self, client: S3Client) -> None:
        """Replace this storage's rules in the bucket's lifecycle configuration, keeping the
        other rules there."""
        try:
            rules = client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
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
            client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": kept}
            )
        else:
            client.delete_bucket_lifecycle(Bucket=self.bucket)

    def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def is_connected(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> S3Client:
        """The boto3 client (for what this adapter does not wrap); connect first."""
        if self._client is None:
            raise StorageError(f"{self.storage_name}: not connected; call connect() first")
        return self._client

    def ping(self) -> bool:
        self.client.head_bucket(Bucket=self.bucket)
        return True

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

    # -- objects --------------------------------------------------------------------------

    def object_key(self, kind: str, flow_name: str, task_name: str, task_id: str) -> str:
        """The object key of a result (``kind="results"``) or error record (``"errors"``):
        the encoded parts, or the key's digest when they pass 1,024 bytes."""
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
            tail = (
                f"{kind}/{encode_part(flow_name)}/{encode_part(task_name)}/{encode_part(task_id)}"
            )
            if self._prefix_size + len(tail) <= MAX_KEY_BYTES:
                return self.prefix + tail, b""
        return f"{self._flow_dir(kind, flow_name)}~{key_digest(*key)}", _header(key)

    def _flow_dir(self, kind: str, flow_name: str) -> str:
        """The "directory" of a flow's over-long keys: the encoded flow when the name fits."""
        room = MAX_KEY_BYTES - self._prefix_size - len(kind) - 3 - _HASHED  # "/", "_", "/"
        if len(flow_name) <= room:
            token = encode_part(flow_name)
            if len(token) <= room + 1:
                return f"{self.prefix}{kind}/{token}/"
        return f"{self.prefix}{kind}/~{_sha256(flow_name)}/"

    def _put(self, name: str, data: bytes | bytearray, expires_at: float | None = None) -> str:
        # botocore takes a bytearray body (the stubs say bytes only); streams save a copy.
        if expires_at is None:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data)  # type: ignore[arg-type]
            return name
        days = _ttl_days(expires_at - self.record_codec.clock())
        self.client.put_object(
            Bucket=self.bucket,
            Key=name,
            Body=data,  # type: ignore[arg-type]
            Metadata={_EXPIRY_META: str(math.ceil(expires_at * 1000))},
            Expires=_dt.datetime.fromtimestamp(expires_at, _dt.timezone.utc),
            Tagging=f"{_TTL_TAG}={days}",
        )
        return name

    def _get(self, name: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise
        with contextlib.closing(response["Body"]) as body:
            return body.read()

    def _exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        return True

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

    # -- the primitives -------------------------------------------------------------------

    def read(self, kind: Kind, key: Key) -> bytes | None:
        name, header = self._locate(kind, key)
        return _unwrapped(self._get(name), header)

    def write(self, kind: Kind, key: Key, data: bytes, expires_at: float | None = None) -> str:
        name, header = self._locate(kind, key)
        return self._put(name, header + data if header else data, expires_at)

    def remove(self, kind: Kind, key: Key) -> bool:
        name = self.object_key(kind, *key)
        # DeleteObject succeeds for a missing object, so look first.
        if not self._exists(name):
            return False
        self.client.delete_object(Bucket=self.bucket, Key=name)
        return True

    def read_many(self, kind: Kind, keys: Sequence[Key]) -> list[bytes | None]:
        located = [self._locate(kind, key) for key in keys]
        unique = list(dict.fromkeys(name for name, _header in located))
        found = dict(zip(unique, self._parallel(self._get, unique), strict=True))
        return [_unwrapped(found[name], header) for name, header in located]

    def write_many(
        self, kind: Kind, items: Sequence[tuple[Key, bytes]], expires_at: float | None = None
    ) -> list[str]:
        # Every name is made before the first request.
        objects = []
        for key, data in items:
            name, header = self._locate(kind, key)
            objects.append((name, header + data if header else data))
        # A key given twice keeps its last result, as stores one after the other would: only
        # that one is sent, so two concurrent PUTs of one key never race.
        last = dict(objects)
        self._parallel(lambda name: self._put(name, last[name], expires_at), list(last))
        return [name for name, _data in objects]

    def remove_many(self, kind: Kind, keys: Sequence[Key]) -> int:
        names = list(dict.fromkeys(self.object_key(kind, *key) for key in keys))
        # DeleteObjects reports a missing object as deleted: the overlapped HEADs tell which
        # were there, and only those are deleted, up to 1,000 in each request.
        found = self._parallel(self._exists, names)
        present = [name for name, there in zip(names, found, strict=True) if there]
        for start in range(0, len(present), _DELETE_BATCH):
            batch = present[start : start + _DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": name} for name in batch], "Quiet": True},
            )
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"{self.storage_name}: {len(errors)} of {len(batch)} objects were not "
                    f"deleted; the first, {first.get('Key', '')!r}: {first.get('Code', '')} "
                    f"{first.get('Message', '')}".rstrip()
                )
        return len(present)

    def purge(self, kind: Kind, now: float, dry_run: bool) -> Iterator[int]:
        """By the objects' expiry metadata, a page of 1,000 at a time: overlapped HEADs, then
        one ``DeleteObjects`` of the expired ones, each on the condition of its ETag."""
        due = math.floor(now * 1000)
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{kind}/"):
            names = [entry["Key"] for entry in page.get("Contents", [])]
            heads = self._parallel(self._expiry_and_etag, names)
            expired = [
                (name, etag)
                for name, (expires, etag) in zip(names, heads, strict=True)
                if expires is not None and expires <= due
            ]
            if dry_run or not expired:
                yield len(expired)
                continue
            response = self.client.delete_objects(
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
            yield len(expired) - len(errors)  # PreconditionFailed: stored again meanwhile

    def _expiry_and_etag(self, name: str) -> tuple[int | None, str]:
        """The expiry (ms) in an object's metadata (None: none, or the object is gone) and
        its ETag."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=name)
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

    def scan(self, kind: Kind, flow_name: str | None) -> Iterator[Key]:
        """The keys of the objects under ``<prefix><kind>/`` (of one flow if given)."""
        base = f"{self.prefix}{kind}/"
        if flow_name is None:
            starts = [base]
        else:
            plain = f"{base}{encode_part(flow_name)}/"
            # A flow too long to head its over-long keys' names has them under its digest.
            starts = list(dict.fromkeys((plain, self._flow_dir(kind, flow_name))))
            starts = [start for start in starts if len(start.encode()) < MAX_KEY_BYTES]
        paginator = self.client.get_paginator("list_objects_v2")
        for start in starts:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for entry in page.get("Contents", []):
                    key = self._key_of(kind, entry["Key"], entry["Key"][len(base) :])
                    if key is not None:
                        yield key

    def _key_of(self, kind: Kind, name: str, tail: str) -> Key | None:
        """The key of the object ``name`` (``tail`` after ``<prefix><kind>/``); ``None`` for
        an object this adapter did not write."""
        parts = tail.split("/")
        if len(parts) == 3 and all(part.startswith("_") for part in parts):
            try:
                return decode_part(parts[0]), decode_part(parts[1]), decode_part(parts[2])
            except ValueError:
                return None
        if len(parts) == 2 and _is_hashed(parts[1]):
            key = self._stored_key(name)
            # The key must name this very object: a foreign or misplaced one is skipped.
            if key is not None and self._locate(kind, key)[0] == name:
                return key
        return None

    def _stored_key(self, name: str) -> Key | None:
        """The key in the header line of an over-long key's object, read with ranged GETs
        (``None`` when there is no such line, or no object any more)."""
        size = _HEADER_PROBE
        while True:
            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=name, Range=f"bytes=0-{size - 1}"
                )
            except Exception as exc:
                # InvalidRange: an empty object, which has no header.
                if _is_missing(exc) or _error_code(exc)[0] == "InvalidRange":
                    return None
                raise
            with contextlib.closing(response["Body"]) as body:
                data = body.read()
            end = data.find(b"\n")
            if end >= 0:
                return _parse_header(data[:end])
            if len(data) < size or not data.startswith(b'["'):
                return None  # no header line, or not one of ours: read no further
            size *= 16

    # -- streams --------------------------------------------------------------------------

    def store_stream(
        self, flow_name: str, task_name: str, task_id: str, chunks: Iterable[bytes]
    ) -> Digest:
        name, header = self._locate("results", (flow_name, task_name, task_id))
        client, part_size = self.client, self.part_size
        reader = DigestingReader(chunks)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []

        def send(data: bytearray) -> None:
            nonlocal upload_id
            if upload_id is None:
                upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=name)["UploadId"]
            number = len(parts) + 1
            if number > MAX_PARTS:
                raise StorageError(
                    f"{self.storage_name}: the stream needs more than {MAX_PARTS} parts of "
                    f"{part_size} bytes; raise part_size"
                )
            response = self._retrying(
                lambda: client.upload_part(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,  # type: ignore[arg-type]  # a bytearray: see _put
                )
            )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})

        try:
            # An over-long key's header line goes first, outside the digest.
            for chunk in itertools.chain((header,), reader):
                # Fill the part exactly, copying each byte once (S3-compatible services such
                # as R2 want every part but the last of the same size).
                rest = memoryview(chunk)
                while rest:
                    room = part_size - len(buffer)
                    buffer += rest[:room]
                    rest = rest[room:]
                    if len(buffer) == part_size:
                        send(buffer)
                        buffer = bytearray()
            if upload_id is None:
                # Shorter than one part: a single PUT, made only once the stream has ended.
                self._retrying(lambda: self._put(name, buffer))
            else:
                if buffer:
                    send(buffer)
                client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                # Best effort: what cannot be aborted now is left to a bucket lifecycle rule.
                with contextlib.suppress(Exception):
                    client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            raise
        return reader.digest()

    def _retrying(self, call: Callable[[], T]) -> T:
        """Retry one request of a stream (its bytes are still in hand) under the retry policy."""
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                if not self.is_transient(exc) or attempt + 1 >= self.retry_policy.attempts:
                    raise
                time.sleep(self.retry_policy.delay(attempt))
                attempt += 1

    def retrieve_stream(self, flow_name: str, task_name: str, task_id: str) -> Iterator[bytes]:
        key = (flow_name, task_name, task_id)
        name, header = self._locate("results", key)
        # Look now, so a missing result fails this call rather than the first next().
        if not self._exists(name):
            raise self.not_found(*key)
        return self._chunks(name, header, key)

    def _chunks(self, name: str, header: bytes, key: Key) -> Iterator[bytes]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            if _is_missing(exc):  # deleted since retrieve_stream() looked
                raise self.not_found(*key) from None
            raise
        with contextlib.closing(response["Body"]) as body:
            if header:
                # Read the header line whole (a read may return less than asked).
                seen = b""
                while len(seen) < len(header) and (more := body.read(len(header) - len(seen))):
                    seen += more
                if seen != header:  # not this key's object (see _unwrapped)
                    raise self.not_found(*key)
            yield from body.iter_chunks(_READ_CHUNK)


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
