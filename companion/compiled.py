"""Hot statements compiled by the ORM once per database connection, then run with new values.

Building and compiling a query is most of what the ORM spends on a short statement (0.5–0.9 ms
here, against tens of µs for SQLite to run it), and a reply's start runs several. A `Compiled`
statement is built by the ORM once per connection from marker values, remembers which parameters
those markers became, and afterwards only puts the caller's values in their place. The SQL stays
the ORM's own (right for each database vendor), and result rows pass through the ORM's
converters.

    allocate = Compiled(lambda conversation_id: Turn.objects.filter(...).values_list(...).query,
                        conversation_id=uuid.UUID(int=1))
    rows = allocate.rows(conversation_id=some_id)
"""

from __future__ import annotations

import datetime
import functools
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import CharField, Model
from django.db.models.expressions import RawSQL
from django.db.models.sql import InsertQuery, Query
from django.db.models.sql.compiler import SQLCompiler, SQLInsertCompiler, SQLUpdateCompiler

Binder = Callable[[Any, BaseDatabaseWrapper], Any]
Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]
PLANS_ATTRIBUTE = "compiled_plans"
M = TypeVar("M", bound=Model)
_WORD = re.compile(r"[a-z_]+")


@functools.cache
def columns(model: type[Model]) -> tuple[str, ...]:
    """Every column of `model`, for `values_list(*columns(model))` read back by `instance`."""
    return tuple(field.attname for field in model._meta.concrete_fields)


def constant(value: str) -> RawSQL:
    """`value` written into a statement as a string literal instead of bound as a parameter:
    for a filter that a partial index's condition must be seen to imply.

    SQLite uses a partial index for a bound value only by looking at the value itself, and so
    plans such a statement again every time it runs: on the benchmark's server, 99 and 143 µs of
    the database thread for the two busiest statements that look for a conversation's running
    reply through `one_streaming_reply_per_conversation`, against 14 and 30 µs planned once.
    Only for the project's own constants: a value that is not a plain lowercase word is refused.
    """
    if not _WORD.fullmatch(value):
        raise ImproperlyConfigured(f"not a constant to write into SQL: {value!r}")
    # Safe to quote so: a plain word, checked above.
    return RawSQL(f"'{value}'", (), output_field=CharField())  # noqa: S611


def instance(model: type[M], values: Iterable[Any]) -> M | None:
    """The `model` a row's `columns(model)` describe, made as the ORM makes it; None when its
    primary key is NULL (an outer join found nothing)."""
    values = list(values)
    if values[0] is None:
        return None
    return model.from_db(DEFAULT_DB_ALIAS, list(columns(model)), values)


def _as_is(value: Any, connection: BaseDatabaseWrapper) -> Any:
    return value


def _uuid(value: Any, connection: BaseDatabaseWrapper) -> uuid.UUID | None:
    """A UUID however the caller holds it (a URL gives a string), as PostgreSQL takes it."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))


def _uuid_hex(value: Any, connection: BaseDatabaseWrapper) -> str | None:
    """As SQLite stores it (32 hex digits, like Django's UUIDField there)."""
    native = _uuid(value, connection)
    return None if native is None else native.hex


def _datetime(value: datetime.datetime, connection: BaseDatabaseWrapper) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _as_type(kind: type[int]) -> Binder:
    """psycopg's typed integers (`Int4`): PostgreSQL's backend wraps numbers in expressions."""

    def bind(value: Any, connection: BaseDatabaseWrapper) -> Any:
        return None if value is None else kind(value)

    return bind


def _binders(marker: Any, params: tuple[Any, ...]) -> list[Binder]:
    """The ways the ORM may have turned a value into a parameter, most direct first."""
    if isinstance(marker, uuid.UUID):
        return [_uuid, _uuid_hex]
    if isinstance(marker, datetime.datetime):
        return [_as_is, _datetime]
    if isinstance(marker, int) and not isinstance(marker, bool):
        kinds = {type(p) for p in params if isinstance(p, int) and type(p) not in (int, bool)}
        return [_as_is, *(_as_type(kind) for kind in kinds)]
    return [_as_is]


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str, Binder], ...]
    # The ORM's converters of the columns read back, by position (found once: finding them
    # cost more than running a short statement).
    converters: tuple[tuple[int, tuple[Converter, ...], Any], ...]


class Compiled:
    """One statement: `build(**markers)` returns the ORM query it is made from.

    Markers must be values no other parameter of the statement equals (a UUID, a datetime, an
    unusual integer); a marker that cannot be found is an error when the statement is first
    compiled, not a silently fixed value. Values are bound as given, without the field's own
    preparation, and a None compared in a WHERE clause matches nothing (`= NULL`): pass what the
    column holds. `returning` adds a RETURNING clause to an UPDATE or an INSERT of one row
    (SQLite 3.35+ and PostgreSQL both have it); see `insert_query` for INSERTs.
    """

    def __init__(
        self,
        build: Callable[..., Query],
        *,
        returning: Sequence[str] = (),
        using: str = DEFAULT_DB_ALIAS,
        **markers: Any,
    ) -> None:
        self._build = build
        self._returning = tuple(returning)
        self.using = using
        self._markers = markers

    def rows(self, **values: Any) -> list[tuple[Any, ...]]:
        """Run the statement with these values for its markers; the rows it returns."""
        connection = connections[self.using]
        # Kept on the connection (one per thread), so they go when it goes: a plan's converters
        # refer to its connection, and a mapping held here would keep both alive for good.
        plans: dict[Compiled, _Plan] = connection.__dict__.setdefault(PLANS_ATTRIBUTE, {})
        plan = plans.get(self)
        if plan is None:
            plan = plans[self] = self._compile(connection)
        params = list(plan.params)
        for index, name, bind in plan.slots:
            params[index] = bind(values[name], connection)
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            rows = cursor.fetchall() if cursor.description else []
        if not plan.converters:
            return [tuple(row) for row in rows]
        converted = []
        for row in rows:
            cells = list(row)
            for position, converters, expression in plan.converters:
                cell = cells[position]
                for convert in converters:
                    cell = convert(cell, expression, connection)
                cells[position] = cell
            converted.append(tuple(cells))
        return converted

    def _compile(self, connection: BaseDatabaseWrapper) -> _Plan:
        compiler = self._build(**self._markers).get_compiler(connection=connection)
        if isinstance(compiler, SQLInsertCompiler):
            sql, params = self._insert_sql(compiler, connection)
        else:
            sql, compiled_params = compiler.as_sql()
            params = tuple(compiled_params)
        if self._returning and not isinstance(compiler, SQLInsertCompiler):
            if not isinstance(compiler, SQLUpdateCompiler):
                raise ImproperlyConfigured("RETURNING is only added to an UPDATE or an INSERT")
            names = ", ".join(connection.ops.quote_name(name) for name in self._returning)
            sql = f"{sql} RETURNING {names}"
        slots: list[tuple[int, str, Binder]] = []
        for name, marker in self._markers.items():
            for bind in _binders(marker, params):
                bound = bind(marker, connection)
                hits = [i for i, p in enumerate(params) if type(p) is type(bound) and p == bound]
                if hits:
                    slots += [(i, name, bind) for i in hits]
                    break
            else:
                raise ImproperlyConfigured(f"marker {name!r} is not a parameter of: {sql}")
        if len({index for index, _, _ in slots}) != len(slots):
            raise ImproperlyConfigured(f"two markers share a parameter of: {sql}")
        reads = not self._returning and not isinstance(
            compiler, (SQLUpdateCompiler, SQLInsertCompiler)
        )
        return _Plan(sql, params, tuple(slots), _converters(compiler) if reads else ())

    def _insert_sql(
        self, compiler: SQLInsertCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, tuple[Any, ...]]:
        if self._returning:
            if not connection.features.can_return_columns_from_insert:
                raise ImproperlyConfigured(f"{connection.vendor} cannot return inserted columns")
            meta = compiler.query.get_meta()
            compiler.returning_fields = [meta.get_field(name) for name in self._returning]
        statements = compiler.as_sql()
        if len(statements) != 1 or compiler.returning_params:
            raise ImproperlyConfigured("a compiled INSERT is one statement of one row")
        sql, params = statements[0]
        return sql, tuple(params)


def insert_query(model: type[M], values: dict[str, Any]) -> InsertQuery:
    """The INSERT of one `model` row with these column values (`attname`s, all but the primary
    key), for `Compiled`. Raw: fields' `pre_save` (auto_now) does not run, the caller's values
    are the row, so pass timestamps too."""
    fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
    # A column left out would be compiled in with its default, the same for every row.
    missing = {f.attname for f in fields} - set(values)
    if missing:
        raise ImproperlyConfigured(f"no marker for {sorted(missing)} of {model.__name__}")
    query = InsertQuery(model)
    query.insert_values(fields, [model(**values)], raw=True)
    return query


def _converters(compiler: SQLCompiler) -> tuple[tuple[int, tuple[Converter, ...], Any], ...]:
    fields = [selected[0] for selected in compiler.select[0 : compiler.col_count]]
    if compiler.has_composite_fields(fields):
        raise ImproperlyConfigured("a compiled statement cannot read composite fields")
    found = compiler.get_converters(fields)
    return tuple((position, tuple(convs), expr) for position, (convs, expr) in found.items())
