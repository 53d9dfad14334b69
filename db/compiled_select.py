"""SQLAlchemy Core SELECTs compiled once and run on the asyncpg connection directly.

SQLAlchemy's async execution carries each statement through a greenlet, its execution
context and its result machinery: measured at about 0.29 ms of CPU for a one-row lookup
whose asyncpg round trip costs 0.06 ms, on every statement of every request. A request's
reads are a handful of fixed statements (the DataLoaders' batches), so `TenantDB` keeps
SQLAlchemy as the compiler of their SQL and runs them on the driver itself:

- a statement is compiled once per shape with the engine's dialect (the same SQL text,
  casts and parameter order SQLAlchemy would send) and kept, by identity for module-level
  statements and by SQLAlchemy's own cache key for statements built per call;
- parameters go through each bind's type processor, and each column of the result through
  its type's result processor, as SQLAlchemy's execution applies them (an enum column comes
  back as its Python enum, a `Numeric(asdecimal=False)` as a float);
- rows are named tuples: `row.status` reads like a SQLAlchemy `Row`.

Only plain Core SELECTs take this path. Writes (Python-side column defaults, RETURNING),
ORM statements and statements whose SQL is finished at execution time (expanding `IN`,
literal-rendered parameters) stay with SQLAlchemy, and `compiled_select` answers None.
`tests/db/test_compiled_select.py` runs every loader statement both ways and compares the rows.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

# The type oid PostgreSQL reports for a column declared with these types: the driver's numeric
# result processors choose between float and Decimal conversion by it, as SQLAlchemy does from
# the cursor's description.
_TYPE_OIDS = {"NUMERIC": 1700, "DECIMAL": 1700, "FLOAT": 701, "DOUBLE PRECISION": 701, "REAL": 700}
_SHAPES_KEPT = 512  # statements built per call, by cache key; module-level ones are kept by identity


class CompiledSelect:
    """One SELECT's SQL, its positional parameters and how to turn its records into rows."""

    __slots__ = ("__weakref__", "_compiled", "_make_row", "_names", "_processors", "_row_processors", "sql")

    def __init__(self, statement: Select[Any], dialect: Dialect, cache_key: Any) -> None:
        # As SQLAlchemy compiles for execution: with the cache key, whose bind parameters later
        # statements of the same shape bring their own values in.
        compiled = statement._compiler(dialect, cache_key=cache_key)
        self._compiled = compiled
        self.sql: str = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._processors = tuple(compiled.binds[name].type._cached_bind_processor(dialect) for name in self._names)
        columns = compiled._result_columns
        self._make_row = namedtuple("Row", [column.keyname for column in columns], rename=True)._make  # type: ignore[misc]
        processors = [_result_processor(column.type, dialect) for column in columns]
        self._row_processors: tuple[tuple[int, Callable[[Any], Any]], ...] = tuple(
            (index, processor) for index, processor in enumerate(processors) if processor is not None
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


class CompiledSelects:
    """The compiled form of each SELECT a `TenantDB` runs, made once per shape, per engine."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._by_identity: weakref.WeakKeyDictionary[Any, CompiledSelect | None] = weakref.WeakKeyDictionary()
        self._by_shape: OrderedDict[Any, CompiledSelect | None] = OrderedDict()

    def find(self, statement: Any, params: Mapping[str, Any]) -> tuple[CompiledSelect, list[Any]] | None:
        """The compiled statement and its arguments, or None when SQLAlchemy must run it."""
        try:
            known = self._by_identity[statement]
        except KeyError:
            pass
        except TypeError:  # not weakly referenceable: never one of ours
            return None
        else:
            return (known, known.arguments(params)) if known is not None else None
        if not _plain_select(statement):
            return None
        cache_key = statement._generate_cache_key()
        if cache_key is None:
            return None
        if cache_key.key in self._by_shape:
            compiled = self._by_shape[cache_key.key]
            self._by_shape.move_to_end(cache_key.key)
        else:
            compiled = self._by_shape[cache_key.key] = _compile(statement, self.dialect, cache_key)
            if len(self._by_shape) > _SHAPES_KEPT:
                self._by_shape.popitem(last=False)
        if compiled is None:
            return None
        if all(bind.value is None and bind.callable is None for bind in cache_key.bindparams):
            # Every value comes with the call (a module-level loader statement): known by identity from now on.
            self._by_identity[statement] = compiled
            return compiled, compiled.arguments(params)
        return compiled, compiled.arguments(params, cache_key.bindparams)


_per_engine: weakref.WeakKeyDictionary[Any, CompiledSelects] = weakref.WeakKeyDictionary()


def compiled_selects(engine: AsyncEngine) -> CompiledSelects:
    """The compiled SELECTs of `engine`, shared by all its transactions."""
    selects = _per_engine.get(engine.sync_engine)
    if selects is None:
        selects = _per_engine[engine.sync_engine] = CompiledSelects(engine.dialect)
    return selects


def _plain_select(statement: Any) -> bool:
    return isinstance(statement, Select) and statement._propagate_attrs.get("compile_state_plugin") != "orm"


def _compile(statement: Select[Any], dialect: Dialect, cache_key: Any) -> CompiledSelect | None:
    compiled = CompiledSelect(statement, dialect, cache_key)
    inner = compiled._compiled
    if inner.literal_execute_params or inner.post_compile_params:
        return None  # finished at execution time: SQLAlchemy's job
    return compiled


def _result_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    declared = dialect.type_compiler_instance.process(type_).split("(")[0].strip().upper()
    return type_._cached_result_processor(dialect, _TYPE_OIDS.get(declared))


__all__ = ["CompiledSelect", "CompiledSelects", "compiled_selects"]
