"""SQLAlchemy Core statements compiled once and run on the asyncpg connection directly.

SQLAlchemy's async execution carries each statement through a greenlet, its execution
context and its result machinery: measured at about 0.29 ms of CPU for a one-row lookup
whose asyncpg round trip costs 0.06 ms, on every statement of every request. A request's
statements are a handful of fixed shapes (the DataLoaders' batches, a mutation's UPDATE and
INSERTs), so `TenantDB` keeps SQLAlchemy as the compiler of their SQL and runs them on the
driver itself:

- a statement is compiled once per shape with the engine's dialect, as SQLAlchemy compiles
  it for execution (the same SQL text, casts and parameter order, and for INSERT and UPDATE
  the execution's parameters as column values), and kept by SQLAlchemy's own cache key, and
  by identity for the statement object itself (statements are immutable). Building a
  statement and its cache key on every call costs more than running it here, so the request
  path's frequent statements are module-level, with `bindparam`s for what changes;
- parameters go through each bind's type processor, and each column of the result through
  its type's result processor, as SQLAlchemy's execution applies them (an enum column comes
  back as its Python enum, a `Numeric(asdecimal=False)` as a float);
- rows are named tuples: `row.status` reads like a SQLAlchemy `Row`;
- the driver's errors are raised as SQLAlchemy raises them (`sqlalchemy_error`): an
  `IntegrityError` for a violated constraint, with the driver's error as `orig`.

Only plain Core SELECT, INSERT, UPDATE and DELETE take this path. ORM statements, text,
statements whose SQL is finished at execution time (expanding `IN`, literal-rendered
parameters) and writes with Python-side column defaults stay with SQLAlchemy, and `find`
answers None. `tests/db/test_compiled_statements.py` runs the request path's statements both
ways and compares what they answer.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy import Delete, Insert, Select, Update, exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

# The type oid PostgreSQL reports for a column declared with these types: the driver's numeric
# result processors choose between float and Decimal conversion by it, as SQLAlchemy does from
# the cursor's description.
_TYPE_OIDS = {"NUMERIC": 1700, "DECIMAL": 1700, "FLOAT": 701, "DOUBLE PRECISION": 701, "REAL": 700}
_SHAPES_KEPT = 512  # statements built per call, by cache key; module-level SELECTs are kept by identity
_WRITES = (Insert, Update, Delete)

# PEP 249's error classes by SQLSTATE class, as SQLAlchemy's asyncpg dialect maps the driver's errors.
_ERROR_CLASSES: dict[str, type[exc.DBAPIError]] = {
    "23": exc.IntegrityError,  # integrity constraint violation
    "22": exc.DataError,  # data exception
    "42": exc.ProgrammingError,  # syntax error or access rule violation
    "0A": exc.NotSupportedError,  # feature not supported
    "XX": exc.InternalError,  # internal error
}


class CompiledStatement:
    """One statement's SQL, its positional parameters and how to turn its records into rows."""

    __slots__ = (
        "__weakref__",
        "_compiled",
        "_make_row",
        "_names",
        "_processors",
        "_row_processors",
        "returns_rows",
        "sql",
    )

    def __init__(self, statement: Any, dialect: Dialect, cache_key: Any, column_keys: list[str] | None) -> None:
        # As SQLAlchemy compiles for execution: with the cache key, whose bind parameters later
        # statements of the same shape bring their own values in.
        compiled = statement._compiler(dialect, cache_key=cache_key, column_keys=column_keys)
        self._compiled = compiled
        self.sql: str = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._processors = tuple(compiled.binds[name].type._cached_bind_processor(dialect) for name in self._names)
        columns = compiled._result_columns
        row_type = namedtuple("Row", [column.keyname for column in columns], rename=True)  # type: ignore[misc]
        self._make_row = partial(tuple.__new__, row_type)
        processors = [_result_processor(column.type, dialect) for column in columns]
        self._row_processors: tuple[tuple[int, Callable[[Any], Any]], ...] = tuple(
            (index, processor) for index, processor in enumerate(processors) if processor is not None
        )
        # A write answers rows only for its own RETURNING: the primary key SQLAlchemy returns
        # implicitly from an INSERT is not the caller's.
        self.returns_rows = not isinstance(statement, _WRITES) or bool(statement._returning)

    def finished_at_execution(self) -> bool:
        """Whether SQLAlchemy would still change the SQL or the values when executing it."""
        compiled = self._compiled
        return bool(
            compiled.literal_execute_params
            or compiled.post_compile_params
            or getattr(compiled, "insert_prefetch", None)
            or getattr(compiled, "update_prefetch", None)
        )

    def arguments(self, params: Mapping[str, Any], extracted: Sequence[Any] | None = None) -> list[Any]:
        """The driver's positional arguments for `params`, and for the values bound into the
        statement itself (`extracted`: its cache key's bind parameters) when it has any."""
        values = self._compiled.construct_params(params, extracted_parameters=extracted) if extracted else params
        arguments = []
        for name, processor in zip(self._names, self._processors, strict=True):
            value = values[name]
            arguments.append(processor(value) if processor is not None and value is not None else value)
        return arguments

    def rows(self, records: Sequence[Any]) -> list[Any]:
        """The driver's records as rows with SQLAlchemy's result types."""
        if not self.returns_rows:
            return []
        make_row, processors = self._make_row, self._row_processors
        if not processors:
            return [make_row(record) for record in records]
        rows = []
        for record in records:
            values = list(record)
            for index, processor in processors:
                value = values[index]
                if value is not None:
                    values[index] = processor(value)
            rows.append(make_row(values))
        return rows


class CompiledStatements:
    """The compiled form of each statement a `TenantDB` runs, made once per shape, per engine."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        # Per statement object (they are immutable): the column keys it was compiled for (an INSERT's
        # or UPDATE's parameter names; None for the rest), its compiled form, and the values bound
        # inside it (its cache key's bind parameters; None when every value comes with the call).
        self._by_identity: weakref.WeakKeyDictionary[Any, tuple[Any, CompiledStatement, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._by_shape: OrderedDict[Any, CompiledStatement | None] = OrderedDict()

    def find(self, statement: Any, params: Mapping[str, Any]) -> tuple[CompiledStatement, list[Any]] | None:
        """The compiled statement and its arguments, or None when SQLAlchemy must run it."""
        try:
            known = self._by_identity.get(statement)
        except TypeError:  # not weakly referenceable: never one of ours
            return None
        # An INSERT or UPDATE takes the execution's parameters as column values, as SQLAlchemy's does.
        column_keys = tuple(sorted(params)) if isinstance(statement, (Insert, Update)) else None
        if known is not None and known[0] == column_keys:
            return known[1], known[1].arguments(params, known[2])
        if not _core_statement(statement):
            return None
        cache_key = statement._generate_cache_key()
        if cache_key is None:
            return None
        shape = (cache_key.key, column_keys)
        if shape in self._by_shape:
            compiled = self._by_shape[shape]
            self._by_shape.move_to_end(shape)
        else:
            keys = list(column_keys) if column_keys is not None else None
            compiled = self._by_shape[shape] = _compile(statement, self.dialect, cache_key, keys)
            if len(self._by_shape) > _SHAPES_KEPT:
                self._by_shape.popitem(last=False)
        if compiled is None:
            return None
        bound = cache_key.bindparams
        if all(bind.value is None and bind.callable is None for bind in bound):
            bound = None  # every value comes with the call
        # Known by identity from now on: a module-level statement is found again without its cache key.
        self._by_identity[statement] = (column_keys, compiled, bound)
        return compiled, compiled.arguments(params, bound)


_per_engine: weakref.WeakKeyDictionary[Any, CompiledStatements] = weakref.WeakKeyDictionary()


def compiled_statements(engine: AsyncEngine) -> CompiledStatements:
    """The compiled statements of `engine`, shared by all its transactions."""
    statements = _per_engine.get(engine.sync_engine)
    if statements is None:
        statements = _per_engine[engine.sync_engine] = CompiledStatements(engine.dialect)
    return statements


DriverError = (asyncpg.PostgresError, asyncpg.InterfaceError)


def sqlalchemy_error(sql: str, arguments: Sequence[Any], error: Exception) -> exc.DBAPIError:
    """The driver's error as SQLAlchemy would raise it from its own execution, `orig` being the driver's.

    A connection that is gone (closed, or lost mid-statement) is marked invalidated, as
    SQLAlchemy marks it, so callers that catch SQLAlchemy's errors (the usage
    flusher) and `db.engine.database_unavailable` read it as they always did."""
    state = getattr(error, "sqlstate", None) or ""
    gone = state.startswith("08") or "connection is closed" in str(error)  # class 08: connection exception
    if isinstance(error, asyncpg.InterfaceError):
        return exc.InterfaceError(sql, list(arguments), error, connection_invalidated=gone)
    default = exc.OperationalError if state[:2] in ("08", "40", "53", "57") else exc.DBAPIError
    error_class = _ERROR_CLASSES.get(state[:2], default)
    return error_class(sql, list(arguments), error, connection_invalidated=gone)


def _core_statement(statement: Any) -> bool:
    return isinstance(statement, (Select, *_WRITES)) and statement._propagate_attrs.get("compile_state_plugin") != "orm"


def _compile(
    statement: Any, dialect: Dialect, cache_key: Any, column_keys: list[str] | None
) -> CompiledStatement | None:
    compiled = CompiledStatement(statement, dialect, cache_key, column_keys)
    return None if compiled.finished_at_execution() else compiled


def _result_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    declared = dialect.type_compiler_instance.process(type_).split("(")[0].strip().upper()
    return type_._cached_result_processor(dialect, _TYPE_OIDS.get(declared))


__all__ = ["CompiledStatement", "CompiledStatements", "DriverError", "compiled_statements", "sqlalchemy_error"]
