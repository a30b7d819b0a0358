"""The SQL adapter's schema and statements.

:func:`tables` defines the two tables; :class:`TableSql` holds the statements of one of them,
each built with SQLAlchemy Core and compiled once for the engine's dialect (:class:`Sql`:
the driver's SQL text and the order of its parameters). The calls then run that text on
plain DBAPI cursors: no SQLAlchemy in the path of a ``store`` or ``retrieve``.
:func:`batches` cuts bulk writes into statements of bounded size.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from selinon_like.keys import Key, key_digest

if TYPE_CHECKING:
    from sqlalchemy import Table

__all__ = [
    "EXPIRES_AT",
    "KEY_PARTS",
    "PAGE",
    "PURGE_ROWS",
    "Sql",
    "TableSql",
    "add_expiry_column",
    "batches",
    "make_row",
    "row_size",
    "tables",
]

KEY_PARTS = ("flow_name", "task_name", "task_id")
# Bulk writes and IN-list reads send one statement per this many rows (or bytes of data).
BATCH_ROWS = 500
BATCH_BYTES = 8 * 1024 * 1024
STATEMENT_BYTES = 64 * 1024  # room for the SQL text around the values in a statement
PAGE = 1000  # a key listing reads this many keys per statement
PURGE_ROWS = 2000  # purge deletes at most this many expired rows per statement
EXPIRES_AT = "expires_at"  # milliseconds since the epoch (as in the record's header), or NULL
_BIND_CASTS = re.compile(r"(?<=\)s)::VARCHAR\b")  # after a %(name)s parameter


def tables(table_name: str) -> tuple[Table, Table]:
    """The results table and ``<table_name>_errors``, each keyed by the SHA-256 of the key.

    The digest is the primary key: an upsert finds its row by it, and the record id ``store``
    returns is known without asking the database for it. ``expires_at`` (milliseconds since
    the epoch, NULL for a record that never expires) has an index of its own,
    ``<table>_expiry``, by which purging finds expired rows; a table of the first release gets
    both on connect (:func:`add_expiry_column`)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql

    # Keys are unbounded text (binary collation on MySQL so "A" != "a"); the unique index is on
    # their digest, which every dialect can index whatever the key length.
    text = sa.Text().with_variant(
        mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )
    blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")  # >= 64 MB
    digest = sa.CHAR(64).with_variant(mysql.CHAR(64, charset="ascii"), "mysql", "mariadb")
    metadata = sa.MetaData()

    def timestamp(name: str) -> sa.Column[Any]:
        return sa.Column(
            name,
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("CURRENT_TIMESTAMP"),
        )

    def table(name: str, data: str) -> Table:
        return sa.Table(
            name,
            metadata,
            sa.Column("key_digest", digest, primary_key=True),
            *(sa.Column(part, text, nullable=False) for part in KEY_PARTS),
            sa.Column(data, blob, nullable=False),
            timestamp("created_at"),
            timestamp("updated_at"),
            sa.Column(EXPIRES_AT, sa.BigInteger, nullable=True),
            sa.Index(f"{name}_expiry", EXPIRES_AT),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
            mysql_collate="utf8mb4_bin",
        )

    return table(table_name, "result"), table(table_name + "_errors", "error")


def add_expiry_column(connection: Any, table: Table) -> None:
    """Give a table of the first release (no ``expires_at``) the column and its index.
    Another process may be doing the same: its work is taken as done."""
    import sqlalchemy as sa

    def present() -> tuple[bool, bool]:
        inspector = sa.inspect(connection)
        columns = {found["name"] for found in inspector.get_columns(table.name)}
        indexes = {found["name"] for found in inspector.get_indexes(table.name)}
        connection.rollback()  # inspecting began a transaction: end it before any DDL
        return EXPIRES_AT in columns, index.name in indexes

    index = next(index for index in table.indexes if EXPIRES_AT in index.columns)
    has_column, has_index = present()
    if not has_column:
        quote = connection.dialect.identifier_preparer.quote
        column_type = sa.BigInteger().compile(dialect=connection.dialect)
        try:
            connection.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(EXPIRES_AT)} {column_type}"
            )
            connection.commit()
        except sa.exc.DBAPIError:
            connection.rollback()
            if not present()[0]:
                raise
    if not has_index:
        try:
            index.create(connection)
            connection.commit()
        except sa.exc.DBAPIError:
            connection.rollback()
            if not present()[1]:
                raise


def make_row(key: Key, column: str, data: bytes, expires_at: float | None = None) -> dict[str, Any]:
    """The parameters of one row: the key, its digest, ``data`` under ``column`` and the
    expiry time (seconds since the epoch, stored as milliseconds like the header's)."""
    flow_name, task_name, task_id = key
    return {
        "key_digest": key_digest(flow_name, task_name, task_id),
        "flow_name": flow_name,
        "task_name": task_name,
        "task_id": task_id,
        column: data,
        EXPIRES_AT: None if expires_at is None else math.ceil(expires_at * 1000),
    }


def row_size(row: dict[str, Any], column: str) -> int:
    """Roughly what a row adds to an INSERT statement, before escaping."""
    key_size = len(row["flow_name"]) + len(row["task_name"]) + len(row["task_id"])
    return len(row[column]) + key_size * 4 + 200


def batches(
    rows: list[dict[str, Any]], column: str, max_bytes: int
) -> Iterator[list[dict[str, Any]]]:
    """``rows`` in order, in lists of at most ``BATCH_ROWS`` rows and about ``max_bytes``
    (a row larger than that goes alone)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        size_of_row = row_size(row, column)
        if batch and (len(batch) >= BATCH_ROWS or size + size_of_row > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += size_of_row
    if batch:
        yield batch


@dataclasses.dataclass(frozen=True)
class Sql:
    """A Core statement compiled once for the engine's dialect, then run on DBAPI cursors."""

    text: str
    names: tuple[str, ...] | None  # positional paramstyles: the parameters in order
    bound: dict[str, Any]  # the values bound in the statement itself (IN lists, LIMIT)
    # Whether it returns rows (a SELECT); None: ask the cursor (psycopg's description
    # builds a column object per column on every call).
    rows: bool | None = None

    @classmethod
    def compile(cls, stmt: Any, dialect: Any) -> Sql:
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        # psycopg's dialect casts every string parameter (%(x)s::VARCHAR); psycopg sends str
        # as text already, and the casts cost PostgreSQL ~10 µs a statement.
        text = str(compiled)
        if dialect.name == "postgresql":
            text = _BIND_CASTS.sub("", text)
        names = tuple(compiled.positiontup or ()) if compiled.positional else None
        bound = {name: value for name, value in compiled.params.items() if value is not None}
        rows = bool(stmt.is_select or getattr(compiled, "effective_returning", None))
        return cls(text, names, bound, rows)

    def args(self, values: dict[str, Any] | None = None) -> Any:
        """The driver's parameters: ``values`` by name, with the statement's own."""
        if values is None or self.bound:
            values = {**self.bound, **(values or {})}
        return values if self.names is None else tuple(values[name] for name in self.names)

    def execute(self, cursor: Any, values: dict[str, Any]) -> None:
        """Run the statement on a DBAPI cursor with ``values``."""
        cursor.execute(self.text, self.args(values))

    def execute_many(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        """Run the statement once per row (psycopg pipelines them; PyMySQL makes multi-row
        INSERTs of about 1 MB). The upserts of psycopg and PyMySQL do better: see
        :class:`~storages.sql.dialects.PgArrayUpsert` and ``MySqlUpsert``."""
        cursor.executemany(self.text, [self.args(row) for row in rows])

    def in_list(self, values: list[Any]) -> Any:
        """The driver's parameters for a statement whose only ones are an IN list."""
        return self.args(dict(zip(self.bound, values, strict=True)))


@dataclasses.dataclass(frozen=True)
class TableSql:
    """The statements of one table (results or errors), compiled at connect(); the IN-list
    selects and deletes and the key pages on first use, once per size."""

    table: Table
    column: str  # "result" or "error"
    dialect: Any
    upsert: Sql | None  # None: the generic update-then-insert
    update: Sql
    insert: Sql
    load: Sql
    delete: Sql
    _cache: dict[Any, Sql] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def compile(cls, dialect: Any, table: Table, column: str, upsert_style: str) -> TableSql:
        """The statements of ``table`` whose data column is ``column``; ``upsert_style`` is
        ``on_conflict`` (PostgreSQL, SQLite), ``mysql`` (ON DUPLICATE KEY) or ``generic``."""
        import sqlalchemy as sa

        names = ("key_digest", *KEY_PARTS, column, EXPIRES_AT)
        values: dict[str, Any] = {k: sa.bindparam(k) for k in names}
        by_digest = table.c.key_digest == sa.bindparam("key_digest")
        now = sa.func.now()
        upsert = None
        if upsert_style == "on_conflict":
            from sqlalchemy.dialects import postgresql, sqlite

            module: Any = postgresql if dialect.name == "postgresql" else sqlite
            insert = module.insert(table).values(values)
            on_conflict = insert.on_conflict_do_update(
                index_elements=[table.c.key_digest],
                set_={
                    column: insert.excluded[column],
                    EXPIRES_AT: insert.excluded[EXPIRES_AT],
                    "updated_at": now,
                },
            )
            upsert = Sql.compile(on_conflict, dialect)
        elif upsert_style == "mysql":
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            my = mysql_insert(table).values(values)
            on_duplicate = my.on_duplicate_key_update(
                {
                    column: my.inserted[column],
                    EXPIRES_AT: my.inserted[EXPIRES_AT],
                    "updated_at": now,
                }
            )
            upsert = Sql.compile(on_duplicate, dialect)
        update = sa.update(table).where(by_digest)
        return cls(
            table=table,
            column=column,
            dialect=dialect,
            upsert=upsert,
            update=Sql.compile(
                update.values(
                    {
                        column: sa.bindparam(column),
                        EXPIRES_AT: sa.bindparam(EXPIRES_AT),
                        "updated_at": now,
                    }
                ),
                dialect,
            ),
            insert=Sql.compile(sa.insert(table).values(values), dialect),
            load=Sql.compile(sa.select(table.c[column]).where(by_digest), dialect),
            delete=Sql.compile(sa.delete(table).where(by_digest), dialect),
        )

    def select_in(self, count: int) -> Sql:
        """``SELECT key_digest, <column> … WHERE key_digest IN (<count> digests)``."""
        return self._in_list("select", count)

    def delete_in(self, count: int) -> Sql:
        """``DELETE … WHERE key_digest IN (<count> digests)``."""
        return self._in_list("delete", count)

    def _in_list(self, what: str, count: int) -> Sql:
        stmt = self._cache.get((what, count))
        if stmt is None:
            import sqlalchemy as sa

            table = self.table
            placeholders = [f"d{n}" for n in range(count)]  # bound values, replaced per call
            where = table.c.key_digest.in_(placeholders)
            if what == "select":
                query: Any = sa.select(table.c.key_digest, table.c[self.column]).where(where)
            else:
                query = sa.delete(table).where(where)
            stmt = self._cache[(what, count)] = Sql.compile(query, self.dialect)
        return stmt

    def purge(self) -> Sql:
        """Delete at most :data:`PURGE_ROWS` rows whose ``expires_at`` is at or before
        ``now`` (ms). The condition is in the DELETE's own WHERE, which the database checks on
        the row it deletes: a row stored again meanwhile, with a later expiry, stays."""
        stmt = self._cache.get("purge")
        if stmt is None:
            import sqlalchemy as sa

            table = self.table
            due = table.c[EXPIRES_AT] <= sa.bindparam("now")
            query: Any
            if self.dialect.name in ("mysql", "mariadb"):
                # MySQL takes no LIMIT in an IN subquery, but a LIMIT on the DELETE itself.
                query = sa.delete(table).where(due).with_dialect_options(mysql_limit=PURGE_ROWS)
            else:
                some = sa.select(table.c.key_digest).where(due).limit(PURGE_ROWS)
                query = sa.delete(table).where(table.c.key_digest.in_(some), due)
            stmt = self._cache["purge"] = Sql.compile(query, self.dialect)
        return stmt

    def count_due(self) -> Sql:
        """``SELECT count(*)`` of the rows whose ``expires_at`` is at or before ``now``."""
        stmt = self._cache.get("count_due")
        if stmt is None:
            import sqlalchemy as sa

            table = self.table
            query = (
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c[EXPIRES_AT] <= sa.bindparam("now"))
            )
            stmt = self._cache["count_due"] = Sql.compile(query, self.dialect)
        return stmt

    def key_page(self, by_flow: bool) -> Sql:
        """A page of keys after the digest ``last`` (of the flow ``flow`` if ``by_flow``), in
        digest order."""
        stmt = self._cache.get(("keys", by_flow))
        if stmt is None:
            import sqlalchemy as sa

            table = self.table
            query = (
                sa.select(table.c.key_digest, *(table.c[part] for part in KEY_PARTS))
                .where(table.c.key_digest > sa.bindparam("last"))
                .order_by(table.c.key_digest)
                .limit(PAGE)
            )
            if by_flow:
                query = query.where(table.c.flow_name == sa.bindparam("flow"))
            stmt = Sql.compile(query, self.dialect)
            self._cache[("keys", by_flow)] = stmt
        return stmt
