"""Compression of stored results (SPEC section 9, the ``compression`` key of a storage).

``none`` (the default), ``gzip`` (standard library), ``zstd`` (extra ``zstd``: the
``zstandard`` package) or ``lz4`` (extra ``lz4``: the ``lz4`` package), given by name or as a
mapping ``{codec, level, threshold}``. A serialized result shorter than ``threshold`` bytes
(default 1,024) is stored as it is: below about a kilobyte the codecs' own framing eats most
of the gain, and every read would pay for decompressing. A result the codec does not make
smaller is stored as it is too.

Which codec compressed a record is written in its header (:mod:`selinon_like.envelope`), so
records stay readable whatever ``compression`` says later. The codec libraries are imported on
first use: a configuration naming ``zstd`` loads without the package, and the first record
that needs it fails with an error naming the extra to install.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from selinon_like.errors import ConfigError, StorageError

__all__ = ["CODEC_IDS", "COMPRESSION_KEYS", "NO_COMPRESSION", "Compression", "decompress"]

# The number each codec is known by in a record header: never renumber.
CODEC_IDS: dict[str, int] = {"none": 0, "gzip": 1, "zstd": 2, "lz4": 3}
_CODEC_NAMES = {number: name for name, number in CODEC_IDS.items()}
COMPRESSION_KEYS = ("codec", "level", "threshold")
# Each codec's levels and default: gzip's 6 is zlib's own default, zstd's 3 the library's,
# lz4 frame's 0 its fast mode (its high-compression levels run 3-16).
_LEVELS: dict[str, tuple[int, int, int]] = {
    "gzip": (0, 9, 6),
    "zstd": (-7, 22, 3),
    "lz4": (0, 16, 0),
}
_EXTRAS = {"zstd": ("zstandard", "zstd"), "lz4": ("lz4.frame", "lz4")}


def _missing(codec: str, exc: ModuleNotFoundError) -> StorageError:
    module, extra = _EXTRAS[codec]
    return StorageError(
        f"the {codec} codec needs the module {module!r}, which is not installed; install it "
        f"with: pip install 'selinon-like[{extra}]'"
    )


def _gzip_compress(data: bytes, level: int) -> bytes:
    # zlib with a gzip wrapper (wbits 31): the format of the gzip module, without its
    # per-call file object.
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _gzip_decompress(data: bytes) -> bytes:
    return zlib.decompress(data, 47)  # 32 + 15: gzip or zlib header, detected


def _zstd_compress(data: bytes, level: int) -> bytes:
    try:
        import zstandard
    except ModuleNotFoundError as exc:
        raise _missing("zstd", exc) from exc
    # A compressor per call: one object is not safe to share between threads, and building
    # one costs a few microseconds against milliseconds for a result above the threshold.
    compressed: bytes = zstandard.ZstdCompressor(level=level).compress(data)
    return compressed


def _zstd_decompress(data: bytes) -> bytes:
    try:
        import zstandard
    except ModuleNotFoundError as exc:
        raise _missing("zstd", exc) from exc
    # The frame carries the content size (written by compress()), so the output is sized
    # from it in one allocation.
    decompressed: bytes = zstandard.ZstdDecompressor().decompress(data)
    return decompressed


def _lz4_compress(data: bytes, level: int) -> bytes:
    try:
        import lz4.frame
    except ModuleNotFoundError as exc:
        raise _missing("lz4", exc) from exc
    compressed: bytes = lz4.frame.compress(data, compression_level=level, store_size=True)
    return compressed


def _lz4_decompress(data: bytes) -> bytes:
    try:
        import lz4.frame
    except ModuleNotFoundError as exc:
        raise _missing("lz4", exc) from exc
    decompressed: bytes = lz4.frame.decompress(data)
    return decompressed


_COMPRESS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gzip_compress,
    "zstd": _zstd_compress,
    "lz4": _lz4_compress,
}
_DECOMPRESS: dict[int, Callable[[bytes], bytes]] = {
    CODEC_IDS["gzip"]: _gzip_decompress,
    CODEC_IDS["zstd"]: _zstd_decompress,
    CODEC_IDS["lz4"]: _lz4_decompress,
}


def codec_name(codec_id: int) -> str:
    """The name of a codec number from a record header (``"#7"`` for an unknown one)."""
    return _CODEC_NAMES.get(codec_id, f"#{codec_id}")


def decompress(codec_id: int, data: bytes) -> bytes:
    """``data`` decompressed by the codec numbered ``codec_id`` (0: returned as it is).

    ``ValueError`` for an unknown codec number; the codec's own error for data it cannot
    decompress; :class:`StorageError` naming the extra when the codec is not installed."""
    if codec_id == 0:
        return data
    try:
        decode = _DECOMPRESS[codec_id]
    except KeyError:
        raise ValueError(f"unknown compression codec number {codec_id}") from None
    return decode(data)


@dataclass(frozen=True)
class Compression:
    """A storage's ``compression``: the codec, its level, and the smallest serialized result
    (in bytes) worth compressing."""

    codec: str = "none"
    level: int | None = None
    threshold: int = 1024

    def __post_init__(self) -> None:
        if self.codec not in CODEC_IDS:
            raise ConfigError(
                f"unknown compression codec {self.codec!r}; choose one of " + ", ".join(CODEC_IDS),
                key="compression.codec",
            )
        if self.level is not None:
            if self.codec == "none":
                raise ConfigError(
                    "a level needs a codec (gzip, zstd or lz4)", key="compression.level"
                )
            low, high, _default = _LEVELS[self.codec]
            if isinstance(self.level, bool) or not isinstance(self.level, int):
                raise ConfigError(
                    f"must be a whole number, not {self.level!r}", key="compression.level"
                )
            if not low <= self.level <= high:
                raise ConfigError(
                    f"{self.codec} levels run from {low} to {high}, not {self.level}",
                    key="compression.level",
                )
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, int)
            or self.threshold < 0
        ):
            raise ConfigError(
                f"must be a whole number of bytes >= 0, not {self.threshold!r}",
                key="compression.threshold",
            )

    @classmethod
    def from_config(cls, value: Any) -> Compression:
        """From the YAML value: left out or ``none``, a codec name, or a mapping with
        ``codec`` (required), ``level`` and ``threshold``. Bad values are a
        :class:`ConfigError` naming the key."""
        if value is None or value is False:
            return NO_COMPRESSION
        if isinstance(value, str):
            return cls(codec=value.strip().lower())
        if isinstance(value, Mapping):
            unknown = [key for key in value if key not in COMPRESSION_KEYS]
            if unknown:
                raise ConfigError(
                    f"unknown key {unknown[0]!r} under 'compression'; allowed: "
                    + ", ".join(COMPRESSION_KEYS),
                    key=f"compression.{unknown[0]}",
                )
            codec = value.get("codec")
            if not isinstance(codec, str):
                raise ConfigError(
                    f"'codec' must be one of {', '.join(CODEC_IDS)}, not {codec!r}",
                    key="compression.codec",
                )
            threshold = value.get("threshold", 1024)
            return cls(codec=codec.strip().lower(), level=value.get("level"), threshold=threshold)
        raise ConfigError(
            f"'compression' must be a codec name ({', '.join(CODEC_IDS)}) or a mapping "
            f"{{codec, level, threshold}}, not {value!r:.80}",
            key="compression",
        )

    @property
    def enabled(self) -> bool:
        return self.codec != "none"

    def compress(self, data: bytes) -> tuple[int, bytes]:
        """``(codec number, bytes to store)``: ``data`` compressed, or ``(0, data)`` when it is
        under the threshold, compression is off, or the codec did not make it smaller."""
        if self.codec == "none" or len(data) < self.threshold:
            return 0, data
        level = self.level if self.level is not None else _LEVELS[self.codec][2]
        packed = _COMPRESS[self.codec](data, level)
        if len(packed) >= len(data):
            return 0, data
        return CODEC_IDS[self.codec], packed

    def __str__(self) -> str:
        if self.codec == "none":
            return "none"
        level = f", level {self.level}" if self.level is not None else ""
        return f"{self.codec}{level}, threshold {self.threshold}"


NO_COMPRESSION = Compression()
