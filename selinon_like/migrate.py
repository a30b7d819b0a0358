"""Copying every result and error record from one storage to another (``selinon-like copy``).

:func:`copy_storage` works on two connected adapter instances, whatever their services: keys
come from the source's ``iter_keys``; each batch is read with ``retrieve_many`` and written with
``store_many``. Then come the keys of ``iter_error_keys`` (tasks that only failed included):
each record is read with ``retrieve_error`` and stored as it is, time and traceback included,
with ``store_error_record``.

Every decision is taken per key, so a copy that stopped halfway is finished by running it
again: what the destination already holds with equal content is skipped, and a key holding
different content is left alone and counted as failed unless ``overwrite``. An item that cannot
be read or written fails alone; the others of its batch are copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from selinon_like.errors import ResultNotFound
from selinon_like.health import describe_error
from selinon_like.keys import Key
from selinon_like.storage import DataStorage

__all__ = ["CopyFailure", "CopyInterrupted", "CopyReport", "Counts", "copy_storage", "count_items"]

# Worded for the command line, whose --overwrite is copy_storage's overwrite=True.
DIFFERS = "the destination holds a different one (--overwrite replaces it)"
# The fields a record rebuilt by store_error keeps from the original (see _replayed).
_ERROR_FIELDS = ("flow_name", "task_name", "task_id", "exception_type", "message", "node_args")


@dataclass
class Counts:
    """What happened to the items of one kind (results, or error records)."""

    copied: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class CopyFailure:
    """One item not copied: ``what`` is ``"result"`` or ``"error record"``; ``error`` says why
    in one line."""

    what: str
    flow_name: str
    task_name: str
    task_id: str
    error: str


@dataclass
class CopyReport:
    """The outcome of :func:`copy_storage`: counts of results and of error records, the first
    failed items (all of them are counted), and whether the copy was interrupted."""

    results: Counts = field(default_factory=Counts)
    errors: Counts = field(default_factory=Counts)
    failures: list[CopyFailure] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """True when the copy ran to the end and no item failed."""
        return not (self.interrupted or self.results.failed or self.errors.failed)


class CopyInterrupted(KeyboardInterrupt):
    """A :func:`copy_storage` stopped by ``KeyboardInterrupt`` (Ctrl-C, or raised by the
    ``progress`` callback); :attr:`report` is what was done before it stopped."""

    def __init__(self, report: CopyReport) -> None:
        super().__init__("the copy was interrupted; run it again to finish")
        self.report = report


def copy_storage(
    src: DataStorage,
    dst: DataStorage,
    *,
    flow: str | None = None,
    batch_size: int = 500,
    overwrite: bool = False,
    errors: bool = True,
    progress: Callable[[int], object] | None = None,
    describe: Callable[[BaseException], str] | None = None,
    failures_listed: int = 50,
) -> CopyReport:
    """Copy the results, then the error records, of ``src`` into ``dst`` (both connected).

    ``flow`` limits the copy to one flow's keys. Keys are read and written ``batch_size`` at a
    time. With ``overwrite``, what ``dst`` holds under a copied key is replaced; without, an
    equal result or record is skipped and a different one counted as failed. ``errors=False``
    copies results only. ``progress`` is called after each batch with the number of keys it
    held (results first, then error records: :func:`count_items` gives the total). ``describe``
    turns an item's failure into the one line of its :class:`CopyFailure` (default: the error's
    first line with URL passwords masked; pass one that also masks your configuration's
    secrets). The first ``failures_listed`` failed items are listed in the report.

    A destination without ``store_error_record`` gets each record rebuilt with
    ``store_error`` (same exception type name, message and node_args; the original time and
    traceback in its traceback text). A source without ``iter_error_keys`` gives the error
    records of the keys that have a result.

    Returns the :class:`CopyReport`. A ``KeyboardInterrupt`` during the copy is raised as
    :class:`CopyInterrupted` carrying the report so far. An error while listing the source's
    keys is raised as it is (nothing can be copied without them); any other error is the
    failure of one item, recorded in the report."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
    if failures_listed < 0:
        raise ValueError(f"failures_listed cannot be negative, not {failures_listed!r}")
    if src is dst:
        raise ValueError("the source and the destination are the same storage instance")
    report = CopyReport()
    copier = _Copier(src, dst, report, overwrite, errors, describe, failures_listed)

    def run(keys: Iterator[Key], copy_batch: Callable[[list[Key]], None]) -> None:
        while batch := list(islice(keys, batch_size)):
            copy_batch(batch)
            if progress is not None:
                progress(len(batch))

    try:
        run(src.iter_keys(flow), copier.batch)
        if copier.copy_errors:
            run(_error_keys(src, flow), copier.error_batch)
    except KeyboardInterrupt as exc:
        report.interrupted = True
        raise CopyInterrupted(report) from exc
    return report


def count_items(src: DataStorage, *, flow: str | None = None, errors: bool = True) -> int:
    """How many keys :func:`copy_storage` with the same arguments goes through (for a progress
    bar's total): the source's result keys, plus its error record keys with ``errors``. Lists
    the keys, so it costs a full listing of the source."""
    total = sum(1 for _key in src.iter_keys(flow))
    if errors:
        total += sum(1 for _key in _error_keys(src, flow))
    return total


def _error_keys(src: DataStorage, flow: str | None) -> Iterator[Key]:
    """The keys of the source's error records, tasks that only failed included."""
    try:
        return src.iter_error_keys(flow)
    except NotImplementedError:
        # An adapter that cannot list its error records: those beside a result, at least.
        return src.iter_keys(flow)


class _Copier:
    """Copies one batch of keys at a time into the report's counts."""

    def __init__(
        self,
        src: DataStorage,
        dst: DataStorage,
        report: CopyReport,
        overwrite: bool,
        copy_errors: bool,
        describe: Callable[[BaseException], str] | None,
        failures_listed: int,
    ) -> None:
        self.src, self.dst = src, dst
        self.report = report
        self.overwrite = overwrite
        self.copy_errors = copy_errors
        self.describe = describe or (lambda exc: describe_error(exc, {}))
        self.failures_listed = failures_listed
        # Whether the destination stores a record verbatim; else store_error replays it.
        self.exact = True

    def batch(self, keys: list[Key]) -> None:
        found, unreadable = self._read(keys)
        # A key deleted from the source since it was listed has nothing left to copy.
        self.report.results.skipped += len(keys) - len(found) - unreadable
        self._write(found)

    def error_batch(self, keys: list[Key]) -> None:
        for key in keys:
            if not self.copy_errors:  # the source turned out to keep no error records
                return
            self._copy_error(key)

    def _read(self, keys: list[Key]) -> tuple[dict[Key, Any], int]:
        """The results found, and how many keys could not be read."""
        try:
            return self.src.retrieve_many(keys), 0
        except Exception:  # find the culprit: one key at a time
            pass
        found: dict[Key, Any] = {}
        unreadable = 0
        for key in keys:
            try:
                found[key] = self.src.retrieve(*key)
            except ResultNotFound:
                pass
            except Exception as exc:
                unreadable += 1
                self._fail(self.report.results, "result", key, self.describe(exc))
        return found, unreadable

    def _write(self, found: dict[Key, Any]) -> None:
        results = self.report.results
        if not self.overwrite and found:
            try:
                present = self.dst.retrieve_many(list(found))
            except Exception as exc:
                reason = self.describe(exc)
                for key in found:
                    self._fail(results, "result", key, reason)
                return
            for key, existing in present.items():
                if existing == self._as_stored(found[key]):
                    results.skipped += 1
                else:
                    self._fail(results, "result", key, DIFFERS)
                del found[key]
        if not found:
            return
        items = [(*key, value) for key, value in found.items()]
        try:
            self.dst.store_many(items)
            results.copied += len(items)
            return
        except Exception:  # store_many stores nothing when one item is bad: find it
            pass
        for flow, task, task_id, value in items:
            try:
                self.dst.store(flow, task, task_id, value)
                results.copied += 1
            except Exception as exc:
                self._fail(results, "result", (flow, task, task_id), self.describe(exc))

    def _as_stored(self, value: Any) -> Any:
        """``value`` as the destination would return it (a JSON storage gives tuples back
        as lists), so equal content compares equal across serializers."""
        try:
            return self.dst.serializer.loads(self.dst.serializer.dumps(value))
        except Exception:
            return value

    def _copy_error(self, key: Key) -> None:
        counts = self.report.errors
        try:
            record = self.src.retrieve_error(*key)
        except ResultNotFound:
            return
        except NotImplementedError:
            self.copy_errors = False  # the source keeps no error records
            return
        except Exception as exc:
            self._fail(counts, "error record", key, self.describe(exc))
            return
        try:
            if not self.overwrite:
                try:
                    existing = self.dst.retrieve_error(*key)
                except ResultNotFound:
                    pass
                else:
                    if _same_error(existing, record):
                        counts.skipped += 1
                    else:
                        self._fail(counts, "error record", key, DIFFERS)
                    return
            if self.exact:
                try:
                    self.dst.store_error_record(record)
                except NotImplementedError:
                    self.exact = False
            if not self.exact:
                self.dst.store_error(record.get("node_args"), *key, _replayed(record))
            counts.copied += 1
        except Exception as exc:
            self._fail(counts, "error record", key, self.describe(exc))

    def _fail(self, counts: Counts, what: str, key: Key, reason: str) -> None:
        counts.failed += 1
        if len(self.report.failures) < self.failures_listed:
            self.report.failures.append(CopyFailure(what, *key, reason))


def _same_error(existing: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """``existing`` is ``record``: an exact copy, or one :func:`_replayed` rebuilt from it."""
    if existing == record:
        return True
    return all(existing.get(name) == record.get(name) for name in _ERROR_FIELDS) and (
        f"first recorded at {record.get('time')}" in str(existing.get("traceback"))
    )


def _replayed(record: Mapping[str, Any]) -> tuple[Any, Any, None]:
    """For a destination without ``store_error_record``: an exc_info for ``store_error`` that
    reproduces a stored record (the same exception type name, message and node_args); the
    original traceback and time travel as exception notes (Python 3.11+)."""
    type_name = record.get("exception_type")
    if not type_name:
        return (None, None, None)
    module, _, qualname = str(type_name).rpartition(".")
    replica = type(qualname, (Exception,), {"__module__": module, "__qualname__": qualname})
    exc = replica(str(record.get("message", "")))
    exc.__notes__ = [  # shown by Python 3.11+
        f"copied error record, first recorded at {record.get('time')}",
        *(
            [f"original traceback:\n{record['traceback'].rstrip()}"]
            if record.get("traceback")
            else []
        ),
    ]
    return (replica, exc, None)
