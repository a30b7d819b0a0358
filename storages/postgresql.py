"""``PostgreSQL``: :class:`~storages.sql.SqlStorage` for PostgreSQL URLs, as in Selinon."""

from __future__ import annotations

from storages.sql import SqlStorage

__all__ = ["STREAM_CHUNK_BYTES", "PostgreSQL"]

STREAM_CHUNK_BYTES = 1024 * 1024
"""The size of a stream's chunk rows on PostgreSQL (4 MiB elsewhere,
:data:`selinon_like.chunks.STREAM_CHUNK_BYTES`). psycopg and libpq hold what a call sends or
reads several times over: a ``bytea`` comes back as hex text, twice its size, kept whole in
libpq's result and its input buffer beside the bytes decoded from it, and a value sent grows
libpq's output buffer to the next power of two. Raw psycopg, measured 2026-12-02: reading two
4 MiB rows (a stream's read batch) raised the peak RSS by 36 MB, two 1 MiB rows by 9 MB;
writing 4 MiB rows by 12 MB, 1 MiB rows by 3 MB. 256 MB through ``store_stream`` and
``retrieve_stream`` (benchmarks/bench_streaming.py) grew the peak RSS by 66-73 MB with 4 MiB
chunks (budget 64), 29 MB with 2 MiB, 9 MB with 1 MiB, at the same throughput. (Results in
psycopg's binary format would halve what a read holds: 16 MB for the two 4 MiB rows.)"""


class PostgreSQL(SqlStorage):
    """:class:`~storages.sql.SqlStorage` for PostgreSQL, under Selinon's class name.

    Accepts only ``postgresql://`` and ``postgres://`` URLs (both use psycopg 3, installed by
    ``pip install 'selinon-like[postgresql]'``; ``postgresql+psycopg2://`` and other drivers
    work when installed). Results go to ``bytea`` columns (up to 1 GB each), ``store`` is an
    ``INSERT … ON CONFLICT DO UPDATE``; everything else is as in
    :class:`~storages.sql.SqlStorage`. :class:`~selinon_like.aio.AsyncStoragePool` uses its
    async form, :class:`storages.aio.postgresql.AsyncPostgreSQL` (psycopg's
    ``AsyncConnection``), with the same configuration and tables.

    Configuration (``echo``, ``table_name``, ``pool_size`` and ``max_overflow`` as in
    :class:`~storages.sql.SqlStorage`):

    ``connection_string`` (str, required)
        e.g. ``postgresql://user:password@host:5432/db`` (the password is never shown).
    ``encoding`` (str, default none)
        the client encoding (``client_encoding``), e.g. ``utf-8``.
    ``connect_timeout`` (float, default ``10``)
        seconds to wait for a connection (rounded up to whole seconds, at least 2).
    ``statement_timeout`` (float, default none)
        seconds a statement may run (PostgreSQL's ``statement_timeout``). libpq has no read
        timeout, so a watchdog shuts the socket of a call still waiting after this plus
        ``connect_timeout`` (300 s plus ``connect_timeout`` without it): a hung server fails
        the call with :class:`~selinon_like.StorageUnavailable` instead of hanging it.

    Example (Selinon's, unchanged)::

        storages:
          - name: MySqlStorage
            classname: PostgreSQL
            import: storages.postgresql
            configuration:
              connection_string: postgres://postgres:postgres@postgres:5432/postgres
              encoding: utf-8
              echo: false
    """

    schemes = ("postgresql", "postgres")
    async_adapter = "storages.aio.postgresql:AsyncPostgreSQL"  # what AsyncStoragePool builds

    def chunk_bytes(self, stream: bool) -> int:
        """A stream's chunk rows hold :data:`STREAM_CHUNK_BYTES` at most."""
        size = super().chunk_bytes(stream)
        return min(size, STREAM_CHUNK_BYTES) if stream else size
