"""SQLAlchemy Core as the query builder, the raw driver as the executor.

Tables and statements are written with SQLAlchemy Core (so there is one schema, migrated by
Alembic, and no hand-written SQL dialect), but they are not executed through SQLAlchemy's
engine: each statement is compiled once per dialect into its SQL text, its positional
parameters and the column types' converters, and then run on the driver itself (stdlib
``sqlite3`` or ``asyncpg``). Measured on the benchmark machine, SQLAlchemy's async engine
over aiosqlite spent about 1 ms of CPU per statement (the greenlet bridge, the connection
thread, the execution context), which capped the server at about 60 answered messages a
second; a compiled statement on the raw driver costs tens of microseconds
(docs/performance-history.md).

Conversions are SQLAlchemy's own: bind and result processors come from the column types
for the dialect (``UTCDateTime``, ``JSON``, ``Boolean`` ...), so a row written here reads
the same through SQLAlchemy (Alembic, tests) and the other way round.

Statements are cached by identity: module-level statements with :func:`sqlalchemy.bindparam`
placeholders compile once; a statement built per call (rare paths, tests) compiles per call.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

CACHE_SIZE = 1000


Row = Any
"""A row: a named tuple whose fields are the statement's column keys (like SQLAlchemy's)."""


def _picker(names: Sequence[str]) -> Callable[[Mapping[str, Any]], Sequence[Any]]:
    """A function giving the values of ``names`` in order, as a sequence."""
    if not names:
        return lambda _: ()
    if len(names) == 1:
        name = names[0]
        return lambda given: (given[name],)
    return itemgetter(*names)


Converters = tuple[tuple[int, Callable[[Any], Any]], ...]
"""(position, converter) for the values that have one (SQLAlchemy's bind or result
processors); None values are never converted."""


def _converted(values: list[Any], converters: Converters) -> list[Any]:
    """``values``, converted in place where a converter applies."""
    for index, convert in converters:
        value = values[index]
        if value is not None:
            values[index] = convert(value)
    return values


class Compiled:
    """One statement for one dialect (for an INSERT, for one set of given columns).

    Attributes:
        sql: the SQL text with positional placeholders.
        returns_rows: whether the statement yields rows (SELECT, or RETURNING).
    """

    __slots__ = ("_defaults", "_pick", "_processors", "_readers", "_row", "returns_rows", "sql")

    def __init__(self, statement: Executable, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=dialect,
            column_keys=list(keys) if keys else None,
            compile_kwargs={"render_postcompile": True},
        )
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        embedded = compiled.construct_params(_check=False)
        column_defaults = {
            column.key: column.default.arg
            for column in getattr(compiled, "insert_prefetch", ())
            if column.default is not None and column.default.is_scalar
        }
        bind_names: list[str] = []
        converters: list[tuple[int, Callable[[Any], Any]]] = []
        for index, name in enumerate(compiled.positiontup or ()):
            bind = compiled.binds.get(name)
            if bind is not None:
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    converters.append((index, processor))
            bind_names.append(name)
        # Every name with its default (None when it has none): a call's parameters are laid
        # over these, and one C-level getter picks the values in order. A column's own
        # default comes first: SQLAlchemy leaves its placeholder None, for its executor to
        # fill in, which this layer replaces.
        self._defaults = {
            name: column_defaults[name] if name in column_defaults else embedded.get(name)
            for name in bind_names
        }
        self._pick: Callable[[Mapping[str, Any]], Sequence[Any]] = _picker(bind_names)
        self._processors: Converters = tuple(converters)
        # Rows come from a SELECT or an explicit RETURNING (an INSERT on PostgreSQL may carry
        # an implicit RETURNING of its key, which is not asked for here).
        columns = list(getattr(statement, "exported_columns", ()))
        kind: Any = statement
        self.returns_rows = bool(columns) and bool(kind.is_select or kind.is_dml)
        self._row: Callable[[Iterable[Any]], Row] | None = None
        self._readers: Converters = ()
        if self.returns_rows:
            names = [getattr(c, "key", None) or c.name or f"c{i}" for i, c in enumerate(columns)]
            row_type: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]
            self._row = row_type._make
            processors = [
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
            ]
            self._readers = tuple((i, p) for i, p in enumerate(processors) if p is not None)

    def bind(self, params: Mapping[str, Any] | None) -> list[Any]:
        """The positional parameters for ``params`` (by bind name), converted for the driver."""
        values = list(self._pick({**self._defaults, **params} if params else self._defaults))
        return _converted(values, self._processors)

    def rows(self, raw: Iterable[Sequence[Any]]) -> list[Row]:
        """The driver's rows as named tuples, with the column types' conversions."""
        make = self._row
        assert make is not None
        readers = self._readers
        if not readers:
            return [make(r) for r in raw]
        return [make(_converted(list(r), readers)) for r in raw]


class StatementCache:
    """Compiled statements of one dialect, by statement identity (LRU, bounded).

    An entry keeps its statement alive, so an id is never reused while it is cached.
    """

    def __init__(self, dialect: Dialect, size: int = CACHE_SIZE) -> None:
        self.dialect = dialect
        self._size = size
        self._entries: OrderedDict[tuple[int, tuple[str, ...]], tuple[Executable, Compiled]] = (
            OrderedDict()
        )

    def get(self, statement: Executable, params: Mapping[str, Any] | None) -> Compiled:
        """The compiled form of ``statement``; an INSERT of given values compiles per set of
        given columns (an ``INSERT … SELECT`` names its columns itself, and its SELECT may
        hold other statements' columns, which must not become the INSERT's)."""
        keys: tuple[str, ...] = ()
        insert = getattr(statement, "is_insert", False)
        if params and insert and getattr(statement, "select", None) is None:
            keys = tuple(sorted(params))
        key = (id(statement), keys)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry[1]
        compiled = Compiled(statement, self.dialect, keys)
        self._entries[key] = (statement, compiled)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return compiled


class Result:
    """What a statement gave back: its rows (if any), the number of rows it changed, and
    (SQLite, an ``INSERT`` without ``RETURNING``) the key of the row it inserted last."""

    __slots__ = ("_rows", "lastrowid", "rowcount")

    def __init__(
        self, rows: list[Row] | None = None, rowcount: int = -1, lastrowid: int | None = None
    ) -> None:
        self._rows = rows or []
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)

    def all(self) -> list[Row]:
        return list(self._rows)

    def one(self) -> Row:
        """The only row.

        Raises:
            LookupError: no row, or more than one.
        """
        if len(self._rows) != 1:
            raise LookupError(f"expected exactly one row, got {len(self._rows)}")
        return self._rows[0]

    def first(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        """The first column of the only row.

        Raises:
            LookupError: no row, or more than one.
        """
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        """The first column of the only row, or None when there is no row."""
        if not self._rows:
            return None
        return self.scalar_one()

    def scalars(self) -> list[Any]:
        """The first column of every row."""
        return [r[0] for r in self._rows]
