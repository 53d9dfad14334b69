"""The cost directives of the GraphQL cost directive specification (IBM; Apollo's demand control).

Declared on the schema so clients see them in the SDL, and read by `schema.cost` to
override the default cost rules for one field or type.
"""

from __future__ import annotations

import strawberry
from strawberry.schema_directive import Location

from resolvers.pagination import DEFAULT_PAGE_SIZE


@strawberry.schema_directive(
    locations=[
        Location.FIELD_DEFINITION,
        Location.OBJECT,
        Location.SCALAR,
        Location.ENUM,
        Location.ARGUMENT_DEFINITION,
        Location.INPUT_FIELD_DEFINITION,
    ],
    description="The cost of this field or type, replacing the default (objects 1, scalars 0).",
)
class Cost:
    weight: str


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    description="How many items a list field returns: the value of a slicing argument, or an assumed size.",
)
class ListSize:
    assumed_size: int | None = None
    slicing_arguments: list[str] | None = None
    sized_fields: list[str] | None = None
    require_one_slicing_argument: bool = True


# A page holds `first` items, the pagination default when not given: how connections are costed.
PAGE_SIZE = ListSize(assumed_size=DEFAULT_PAGE_SIZE, slicing_arguments=["first"])

__all__ = ["PAGE_SIZE", "Cost", "ListSize"]
