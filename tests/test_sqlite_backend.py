"""The project's SQLite backend: Django's, with each statement's placeholder rewrite made once,
and cursors that answer the ORM's reads of every statement themselves."""

import sqlite3

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db import utils as db_utils
from django.db.backends import utils
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


def test_the_orm_reads_its_statements_without_djangos_wrapper_fallback(monkeypatch):
    # Django's wrapper finds these through `__getattr__`, after a failed lookup that formats an
    # AttributeError; this backend's cursor has them itself.
    def fallback(self, name):
        raise AssertionError(f"{name} went through CursorWrapper.__getattr__")

    monkeypatch.setattr(utils.CursorWrapper, "__getattr__", fallback)
    user = User.objects.create_user("reader", password="x")
    User.objects.create_user("second reader", password="x")
    assert User.objects.filter(pk=user.pk).update(first_name="Ann") == 1  # rowcount
    assert [u.first_name for u in User.objects.filter(pk=user.pk)] == ["Ann"]  # fetchmany
    assert list(User.objects.order_by("pk").values_list("username", flat=True)) == [
        "reader",
        "second reader",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s, %s", [1, "two"])
        assert [column[0] for column in cursor.description] == ["?", "?"]
        assert cursor.fetchall() == [(1, "two")]
        cursor.execute("CREATE TEMP TABLE numbers (n INTEGER)")
        cursor.execute("INSERT INTO numbers VALUES (%s)", [5])
        assert cursor.lastrowid == 1
        assert cursor.rowcount == 1
    assert User.objects.filter(username="second reader").delete()[0] == 1


@pytest.mark.parametrize("fetch", ["fetchone", "fetchmany", "fetchall"])
def test_a_drivers_error_while_fetching_is_djangos_as_before(fetch):
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    cursor.close()
    with pytest.raises(db_utils.ProgrammingError) as raised:
        getattr(cursor, fetch)()
    assert isinstance(raised.value.__cause__, sqlite3.ProgrammingError)
