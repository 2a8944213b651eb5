"""Django's SQLite backend, with its placeholder rewrite done once per statement text.

The ORM writes SQL with `%s` placeholders, and Django's SQLite cursor rewrites them to SQLite's
`?` on every execute with a regular expression that costs ~20–25 ns a character: 87–100 µs for
the 4 KB statement that reads a conversation with its character, persona and scene, twice what
SQLite takes to run it, and ~15 % of a reply's start transaction. The ORM gives one query shape
the same text every time, so the rewrite of each recent text is kept.

Its cursors also answer what the ORM asks of every statement (`description`, the `fetch`
methods, `close`, ...) directly rather than through Django's wrapper's `__getattr__`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db.backends import utils
from django.db.backends.sqlite3 import base

# Longer texts (an IN of thousands of ids, say) are rare and would crowd out the hot statements.
LONGEST_KEPT = 16_384


@functools.lru_cache(maxsize=512)
def _qmark(query: str) -> str:
    # Django's own rewrite (which reads nothing of the cursor it is a method of); the stubs do
    # not declare it.
    rewritten: str = base.SQLiteCursorWrapper.convert_query(None, query)  # type: ignore[attr-defined]
    return rewritten


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: Sequence[str] | None = None) -> str:
        if param_names is None and len(query) <= LONGEST_KEPT:
            return _qmark(query)
        rewritten: str = super().convert_query(query, param_names=param_names)  # type: ignore[misc]
        return rewritten


class CursorWrapper(utils.CursorWrapper):
    """Django's cursor wrapper, with what the ORM reads of every statement defined on it.

    Django's finds each of them through `__getattr__`, which Python calls only once the
    attribute's ordinary lookup has failed, and that failure builds and formats an
    AttributeError first: ~0.5 µs a name, ~2 µs a statement (its `description`, `fetchall` and
    `close`). Each does here what Django's `__getattr__` does: the `fetch` methods turn the
    driver's errors into Django's; the rest pass through. (Django's debug cursor, which logs
    queries, is left as it is.)"""

    @property
    def description(self) -> Any:
        return self.cursor.description

    @property
    def rowcount(self) -> int:
        count: int = self.cursor.rowcount
        return count

    @property
    def lastrowid(self) -> Any:
        return self.cursor.lastrowid

    def fetchone(self) -> Any:
        with self.db.wrap_database_errors:
            return self.cursor.fetchone()

    def fetchmany(self, size: int | None = None) -> list[Any]:
        with self.db.wrap_database_errors:
            rows: list[Any] = (
                self.cursor.fetchmany() if size is None else self.cursor.fetchmany(size)
            )
            return rows

    def fetchall(self) -> list[Any]:
        with self.db.wrap_database_errors:
            rows: list[Any] = self.cursor.fetchall()
            return rows

    def close(self) -> None:
        self.cursor.close()


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: Any = None) -> SQLiteCursorWrapper:
        cursor: SQLiteCursorWrapper = self.connection.cursor(factory=SQLiteCursorWrapper)
        return cursor

    def make_cursor(self, cursor: Any) -> CursorWrapper:
        return CursorWrapper(cursor, self)
