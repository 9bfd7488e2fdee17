"""Planner statistics that make SQLite choose the directory's selective indexes.

Without ``ANALYZE`` data SQLite guesses that ``org_id = ? AND kind = ?``
narrows ``scim_resources`` to a handful of rows, and then scans a whole tenant
for ``externalId eq``, for a value-index filter or for validating k member
ids, instead of looking up the few matching rows: O(tenant) instead of O(k).
The SQLite documentation's remedy ("Manual Control Of Query Plans Using
SQLITE_STAT Tables") is to give it statistics describing the data's shape:
a tenant holds many rows; a name, an id or an indexed value holds few.

:func:`seed_sqlite_planner_statistics` writes them once, after the tables are
created (``hub-scim db upgrade`` and the test fixtures call it). Real
statistics from ``ANALYZE`` or ``PRAGMA optimize`` are never overwritten.
PostgreSQL keeps its own statistics (autovacuum) and needs nothing.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# (table, indexed columns) -> sqlite_stat1 "stat": the row count, then the
# average number of rows per distinct value of each leading column prefix.
_SHAPE: dict[tuple[str, tuple[str, ...]], str] = {
    ("scim_resources", ("id",)): "1000000 1",
    ("scim_resources", ("org_id", "kind", "name_key")): "1000000 100000 50000 1",
    ("scim_resources", ("org_id", "kind", "external_id")): "1000000 100000 50000 2",
    ("scim_resources", ("org_id", "kind", "created_at")): "1000000 100000 50000 2",
    ("scim_resources", ("org_id", "kind", "id")): "1000000 100000 50000 1",
    ("scim_attribute_values", ("org_id", "path", "value_key")): "10000000 1000000 100000 2",
    ("scim_attribute_values", ("resource_id", "path", "element")): "10000000 10 2 1",
    ("group_members", ("group_id", "user_id")): "1000000 1000 1",
    ("group_members", ("user_id", "group_id")): "1000000 10 1",
}
_TABLES = sorted({table for table, _columns in _SHAPE})


def seed_sqlite_planner_statistics(connection: Connection) -> bool:
    """Write the statistics of :data:`_SHAPE` unless the database has its own.

    Answers whether it wrote them. Does nothing on other databases. The
    connection's caller commits.
    """
    if connection.dialect.name != "sqlite":
        return False
    connection.execute(text("ANALYZE sqlite_schema"))  # creates sqlite_stat1 if missing
    placeholders = ", ".join(f":t{index}" for index in range(len(_TABLES)))
    tables = {f"t{index}": table for index, table in enumerate(_TABLES)}
    existing = connection.scalar(
        text(f"SELECT count(*) FROM sqlite_stat1 WHERE tbl IN ({placeholders})"),  # noqa: S608
        tables,
    )
    if existing:
        return False
    for table in _TABLES:
        for index_name in _index_names(connection, table):
            columns = tuple(
                row[2]
                for row in connection.execute(
                    text("SELECT * FROM pragma_index_info(:name)"), {"name": index_name}
                )
            )
            stat = _SHAPE.get((table, columns))
            if stat is not None:
                connection.execute(
                    text("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (:tbl, :idx, :stat)"),
                    {"tbl": table, "idx": index_name, "stat": stat},
                )
    connection.execute(text("ANALYZE sqlite_schema"))  # reload them into this connection
    return True


def _index_names(connection: Connection, table: str) -> list[str]:
    return [
        row[1]
        for row in connection.execute(
            text("SELECT * FROM pragma_index_list(:table)"), {"table": table}
        )
    ]


_DIRECTORY_TABLES = ("scim_resources", "scim_attribute_values", "group_members")


def refresh_postgresql_statistics(connection: Connection, *, threshold: float = 0.1) -> list[str]:
    """ANALYZE the directory tables whose rows changed by more than ``threshold`` since.

    PostgreSQL's autovacuum does this on its own (and should stay on); where
    it is off, or right after a bulk load, plans chosen on stale statistics
    can scan a whole tenant for a one-row lookup. Cheap to call when nothing
    changed: one query on ``pg_stat_user_tables``. Answers the tables analyzed;
    does nothing on other databases.
    """
    if connection.dialect.name != "postgresql":
        return []
    stale = [
        row[0]
        for row in connection.execute(
            text(
                "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(:tables) "
                "AND n_mod_since_analyze > :threshold * GREATEST(n_live_tup, 50)"
            ),
            {"tables": list(_DIRECTORY_TABLES), "threshold": threshold},
        )
    ]
    for table in stale:
        connection.execute(text(f"ANALYZE {table}"))
    return stale
