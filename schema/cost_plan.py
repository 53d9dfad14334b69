"""An operation compiled for costing: what it requested, and what the data it returned cost.

A plan keeps only the fields that can cost something (objects, lists, connections, mutations,
and what leads to them), never scalars or `__typename`: the requested cost is summed once, at
compile time, and the actual cost walks the response touching only the keys that can add to it.
`schema.cost` compiles plans from documents; this module only says what one is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, eq=False)
class Fields:
    """The fields of one object type's selection that can cost anything, by response key."""

    fields: tuple[Field, ...]
    requested: int

    def actual(self, data: Any) -> int:
        if type(data) is not dict and not isinstance(data, Mapping):
            return 0
        total = 0
        for planned in self.fields:  # a field's actual cost, inlined: this runs for every object returned
            value = data.get(planned.key)
            if value is None:
                if planned.charged_if_null and planned.key in data:
                    total += planned.own
            elif planned.selection is NOTHING:
                total += planned.own
            elif isinstance(value, list):
                total += planned.own + _items_cost(planned.selection, value)
            else:
                total += planned.own + planned.selection.actual(value)
        return total


@dataclass(frozen=True, slots=True, eq=False)
class AnyOf:
    """An interface's or union's selection: as dear as the dearest possible type."""

    options: tuple[Fields, ...]
    requested: int

    def actual(self, data: Any) -> int:
        return max(option.actual(data) for option in self.options)


Selection = Fields | AnyOf
NOTHING = Fields((), 0)  # a selection that costs nothing; shared, so `is` tells it


@dataclass(frozen=True, slots=True, eq=False)
class Field:
    """One response key: `own` + `size` x one value's selection, requested; `own` + each value's, actual.

    A list or connection has own = 2 and size = n; an object has size 1; a free list (`edges`)
    has own = 0 and size 1, the connection above it having counted its n."""

    key: str
    own: int
    size: int
    selection: Selection
    charged_if_null: bool  # a mutation ran even when its payload is null

    @property
    def requested(self) -> int:
        return self.own + self.size * self.selection.requested


def _items_cost(selection: Selection, items: list[Any]) -> int:
    total = 0
    for item in items:
        if isinstance(item, list):
            total += _items_cost(selection, item)
        elif item is not None:
            total += selection.actual(item)
    return total


@dataclass(frozen=True, slots=True, eq=False)
class CostPlan:
    """An operation compiled for costing: `requested` before execution, `actual(data)` after it."""

    requested: int
    selection: Selection = field(repr=False)

    def actual(self, data: Mapping[str, Any] | None) -> int:
        """The cost of what was returned; at most `requested` when lists hold at most their n items."""
        return 0 if data is None else self.selection.actual(data)


FREE = CostPlan(0, NOTHING)  # an operation that costs nothing: none selected, or no root type for it


__all__ = ["FREE", "NOTHING", "AnyOf", "CostPlan", "Field", "Fields", "Selection"]
