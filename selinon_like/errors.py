"""The exception tree of selinon_like (SPEC section 5).

Every error the library raises on purpose is a :class:`SelinonLikeError`. A failed storage
operation is a :class:`StorageError` whose ``__cause__`` is the driver's own exception.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ResultNotFound",
    "ResultTooLarge",
    "SelinonLikeError",
    "SerializationError",
    "StorageError",
    "StorageUnavailable",
    "UnknownStorageError",
]


class SelinonLikeError(Exception):
    """Base of every error raised by selinon_like."""


class ConfigError(SelinonLikeError):
    """The configuration is wrong; the message says where and what to fix.

    ``file``, ``line``, ``storage`` and ``key`` locate the problem when known; ``problems``
    holds every problem found when a whole document was validated at once.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        storage: str | None = None,
        key: str | None = None,
        problems: list[ConfigError] | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.storage = storage
        self.key = key
        self.problems = problems if problems is not None else [self]
        super().__init__(message)

    def located(self) -> str:
        """This problem alone, prefixed with where it is."""
        where = ""
        if self.file is not None or self.line is not None:
            where = f"{self.file or '<config>'}"
            if self.line is not None:
                where += f", line {self.line}"
            where += ": "
        parts = []
        if self.storage is not None:
            parts.append(f"storage {self.storage!r}")
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        context = (", ".join(parts) + ": ") if parts else ""
        return f"{where}{context}{self.message}"

    def with_context(
        self,
        *,
        file: str | None = None,
        line: int | None = None,
        storage: str | None = None,
        key: str | None = None,
    ) -> ConfigError:
        """Fill in whatever location this error does not know yet (returns ``self``)."""
        self.file = self.file if self.file is not None else file
        self.line = self.line if self.line is not None else line
        self.storage = self.storage if self.storage is not None else storage
        self.key = self.key if self.key is not None else key
        return self

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0].located()
        lines = [f"{len(self.problems)} problems in the configuration:"]
        lines += [f"  - {problem.located()}" for problem in self.problems]
        return "\n".join(lines)


class UnknownStorageError(SelinonLikeError):
    """A storage name, or a task with no storage mapped to it, is not in the configuration."""


class StorageError(SelinonLikeError):
    """A storage operation failed; the driver's exception is chained as ``__cause__``."""


class ResultNotFound(StorageError, LookupError):
    """There is no result (or error record) stored under the key."""


class StorageUnavailable(StorageError):
    """The service could not be reached, after the configured retries."""


class SerializationError(StorageError):
    """A result could not be serialized (or a stored one deserialized); nothing was stored."""


class ResultTooLarge(StorageError):
    """A serialized result is larger than the storage's ``max_result_bytes``; raised before
    any I/O, so nothing was stored and the previous result is still there.

    ``size`` is the serialized result's length in bytes, ``limit`` the storage's ceiling."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"the result is {size:,} bytes serialized, over this storage's max_result_bytes "
            f"of {limit:,}; nothing was stored (raise max_result_bytes, or store it with "
            "store_stream)"
        )

    def __reduce__(self) -> tuple[type[ResultTooLarge], tuple[int, int]]:
        return (type(self), (self.size, self.limit))  # picklable, as other errors are
