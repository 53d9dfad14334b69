"""Relations loaded ahead of their fields, kept on the objects they belong to.

A resolver that returns a page (the shipments connection, for one) can load the relations
its query asks of every item in a few batched statements and keep each result on the item,
in a dict attribute named `prefetched`. A type whose objects carry that dict promises, for
each of its fields with a resolver: when `prefetched` holds `prefetch_key(field, arguments)`,
the resolver returns exactly that value. The resolvers keep the promise by looking there
first; the planned execution (`schema.execution`) relies on it to read the value without
calling the resolver at all.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

PREFETCHED = "prefetched"


def prefetch_key(field_name: str, arguments: Mapping[str, Any]) -> Hashable:
    """The field's name, followed by its argument values in the schema's order when it has any."""
    return (field_name, *arguments.values()) if arguments else field_name


__all__ = ["PREFETCHED", "prefetch_key"]
