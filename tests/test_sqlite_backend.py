"""The project's SQLite backend: Django's, with each statement's placeholder rewrite made once."""

import pytest
from django.db import connection
from django.db.backends.sqlite3 import base as django_sqlite

from companion.db.sqlite3.base import LONGEST_KEPT, SQLiteCursorWrapper, _qmark

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's backend"),
]

STATEMENTS = [
    "SELECT %s",
    "SELECT %s, %s WHERE 1 = %s",
    "SELECT '100%%', %s",
    "SELECT '%%s', %s",
    "SELECT 'no placeholders'",
]


def djangos(query: str) -> str:
    rewritten: str = django_sqlite.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")
    return rewritten


def test_the_project_talks_to_sqlite_through_its_own_cursor():
    with connection.cursor() as cursor:
        assert isinstance(cursor.cursor, SQLiteCursorWrapper)


def test_a_statements_rewrite_is_djangos_and_is_made_once():
    with connection.cursor() as cursor:
        rewrite = cursor.cursor.convert_query
        for query in STATEMENTS:
            assert rewrite(query) == djangos(query)
        before = _qmark.cache_info()
        again = [rewrite(query) for query in STATEMENTS]
        assert _qmark.cache_info().hits - before.hits == len(STATEMENTS)
        assert again == [djangos(query) for query in STATEMENTS]


def test_statements_run_as_django_runs_them():
    with connection.cursor() as cursor:
        cursor.execute("SELECT '100%%', %s", [7])
        assert cursor.fetchone() == ("100%", 7)
        cursor.execute("SELECT %(a)s, %(b)s", {"a": 1, "b": "two"})  # named: not kept
        assert cursor.fetchone() == (1, "two")
        cursor.execute("CREATE TEMP TABLE numbers (n INTEGER)")
        cursor.executemany("INSERT INTO numbers VALUES (%s)", [[1], [2]])
        cursor.execute("SELECT SUM(n) FROM numbers WHERE n > %s", [0])
        assert cursor.fetchone() == (3,)
        # A text too long to keep is rewritten each time, the same way.
        long = "SELECT %s" + " " * LONGEST_KEPT
        before = _qmark.cache_info()
        cursor.execute(long, [3])
        assert cursor.fetchone() == (3,)
        assert _qmark.cache_info().currsize == before.currsize
        assert _qmark.cache_info().misses == before.misses
