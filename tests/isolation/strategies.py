"""Operations generated from the live schema whose arguments name two tenants' real rows.

`hypothesis-graphql` builds valid documents from the SDL; `operations()` then rewrites the
arguments that name rows (ids, tracking numbers, cursors, page sizes), drawing them from
both tenants: a response that answers one of the other tenant's values with its data leaks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import graphql
import hypothesis_graphql
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

EXAMPLES_ENV = "TENANTQL_FUZZ_EXAMPLES"
POOLER_EXAMPLES_ENV = "TENANTQL_FUZZ_POOLER_EXAMPLES"
# Set (as `make soak` does) to draw new operations on every run instead of the fixed set CI runs:
# a cancelled-statement bug that the fixed set never met was found this way.
RANDOM_ENV = "TENANTQL_FUZZ_RANDOM"


def examples_from_env(name: str, default: int) -> int:
    """How many operations a fuzz test runs: `make soak` raises it through the environment."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# derandomize: CI runs the same operations every time (unless RANDOM_ENV is set); no deadline: a
# request's time is not the property.
settings.register_profile(
    "tenantql-isolation",
    max_examples=examples_from_env(EXAMPLES_ENV, 300),
    derandomize=not os.environ.get(RANDOM_ENV, "").strip(),
    deadline=None,
    database=None,
    print_blob=False,
    # No explain phase: it replays variants of a failure to annotate it, which adds nothing here.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
PROFILE = settings.get_profile("tenantql-isolation")

# Every argument or input field of type ID, and the type of row it names (None: any, for `node`).
# tests/isolation/test_fuzzed_operations.py checks that the live schema has no other.
ID_ARGUMENTS: Mapping[tuple[str, str, str], str | None] = {
    ("Query", "node", "id"): None,
    ("Mutation", "assignDriver", "shipmentId"): "Shipment",
    ("Mutation", "assignDriver", "driverId"): "Driver",
    ("Mutation", "cancelShipment", "id"): "Shipment",
    ("Mutation", "revokeApiKey", "id"): "ApiKey",
    ("Mutation", "changeUserRole", "id"): "User",
    ("Mutation", "deactivateUser", "id"): "User",
}
ID_INPUT_FIELDS: Mapping[tuple[str, str], str] = {
    ("CreateShipmentInput", "customerId"): "Customer",
    ("CreateDriverInput", "vehicleId"): "Vehicle",
    ("RecordTrackingEventInput", "shipmentId"): "Shipment",
}
ID_TYPES = ("Shipment", "Customer", "Driver", "Vehicle", "Tenant", "User", "ApiKey", "AuditEntry", "TrackingEvent")


@dataclass(frozen=True)
class TenantValues:
    """What one tenant's rows offer as argument values."""

    ids: Mapping[str, Sequence[str]]  # type name -> global ids; every type of ID_TYPES, none empty
    raw_ids: Sequence[str]  # the same rows' uuids, as text
    tracking_numbers: Sequence[str]
    cursors: Sequence[str]  # page cursors of its rows
    emails: Sequence[str]


@dataclass(frozen=True)
class ArgumentValues:
    """Values for the rewritten arguments: the acting tenant's own and the other tenant's."""

    own: TenantValues
    other: TenantValues
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    _built: dict[object, st.SearchStrategy[Any]] = field(default_factory=dict, init=False, repr=False)

    def _once(self, key: object, build: Callable[[], st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
        """Each strategy built once: a new one costs more to validate than a draw does."""
        if key not in self._built:
            self._built[key] = build()
        return self._built[key]

    def ids(self, type_name: str | None, *, nullable: bool = False) -> st.SearchStrategy[str | None]:
        """Ids of that type from both tenants (the other's first: failures shrink to them), and strays."""
        if nullable:
            return self._once(("ids or null", type_name), lambda: st.one_of(self.ids(type_name), st.none()))
        return self._once(("ids", type_name), lambda: self._ids(type_name))

    def _ids(self, type_name: str | None) -> st.SearchStrategy[str]:
        names = [type_name] if type_name else list(ID_TYPES)
        everything = [id_ for values in (self.other, self.own) for name in ID_TYPES for id_ in values.ids[name]]
        return st.one_of(
            st.sampled_from(names).flatmap(lambda name: st.sampled_from(self.other.ids[name])),
            st.sampled_from(names).flatmap(lambda name: st.sampled_from(self.own.ids[name])),
            st.sampled_from(everything),  # any type: a wrong type must be as good as missing
            st.sampled_from([*self.other.raw_ids, *self.own.raw_ids]),  # not global ids at all
            st.text(max_size=12),
        )

    def tracking_numbers(self) -> st.SearchStrategy[str]:
        return self._once(
            "tracking_numbers",
            lambda: st.one_of(
                st.sampled_from(self.other.tracking_numbers),
                st.sampled_from(self.own.tracking_numbers),
                st.from_regex(r"TQ[0-9A-F]{10}", fullmatch=True),
            ),
        )

    def new_tracking_numbers(self) -> st.SearchStrategy[str | None]:
        """For createShipment: its own numbers (taken), fresh ones, or none. Never the other
        tenant's: the acting tenant may legitimately hold the same number, and its lists
        would then show a string that is also the other tenant's."""
        return self._once(
            "new_tracking_numbers",
            lambda: st.one_of(
                st.none(),
                st.sampled_from(self.own.tracking_numbers),
                st.from_regex(r"TQ[0-9A-F]{10}", fullmatch=True),
            ),
        )

    def emails(self) -> st.SearchStrategy[str]:
        """For new users and customers: taken own addresses, fresh ones, or text (never the other's, as above)."""
        return self._once(
            "emails",
            lambda: st.one_of(
                st.sampled_from(self.own.emails),
                st.from_regex(r"[a-z]{1,8}@fuzz\.example", fullmatch=True),
                st.text(max_size=12),
            ),
        )

    def cursors(self) -> st.SearchStrategy[str | None]:
        return self._once(
            "cursors",
            lambda: st.one_of(
                st.none(),
                st.sampled_from(self.other.cursors),
                st.sampled_from(self.own.cursors),
                st.text(max_size=12),
            ),
        )

    def dates(self) -> st.SearchStrategy[graphql.ValueNode]:
        days = st.dates(min_value=self.today - timedelta(days=800), max_value=self.today + timedelta(days=30))
        return days.map(lambda day: graphql.StringValueNode(value=day.isoformat()))

    def datetimes(self) -> st.SearchStrategy[graphql.ValueNode]:
        moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
        return moments.map(lambda moment: graphql.StringValueNode(value=moment.isoformat()))


# Page sizes: mostly small, so nested connections stay under the cost limit; now and then out of range.
PAGE_SIZES = st.one_of(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4), st.sampled_from([None, -1, 101]))
EVENT_COUNTS = st.one_of(st.integers(0, 4), st.integers(0, 4), st.sampled_from([-1, 11]))


def value_node(value: str | int | None) -> graphql.ValueNode:
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, int):
        return graphql.IntValueNode(value=str(value))
    return graphql.StringValueNode(value=value)


class _Rewrite(graphql.Visitor):
    """Replace the values of the arguments that name rows with values drawn from `values`."""

    def __init__(self, type_info: graphql.TypeInfo, draw: st.DrawFn, values: ArgumentValues) -> None:
        super().__init__()
        self.type_info = type_info
        self.draw = draw
        self.values = values

    def enter_argument(self, node: graphql.ArgumentNode, *_: Any) -> graphql.ArgumentNode | None:
        parent, definition = self.type_info.get_parent_type(), self.type_info.get_field_def()
        if parent is None or definition is None:
            return None
        field_name = next(name for name, candidate in parent.fields.items() if candidate is definition)
        name = node.name.value
        strategy = self._argument_strategy(parent.name, field_name, name)
        if strategy is None:
            return None
        return graphql.ArgumentNode(name=node.name, value=value_node(self.draw(strategy)))

    def _argument_strategy(self, parent: str, field_name: str, name: str) -> st.SearchStrategy[Any] | None:
        if (parent, field_name, name) in ID_ARGUMENTS:
            return self.values.ids(ID_ARGUMENTS[parent, field_name, name], nullable=self._nullable())
        if (parent, field_name, name) == ("Query", "shipment", "trackingNumber"):
            return self.values.tracking_numbers()
        if name == "first":
            return PAGE_SIZES
        if name == "last":
            return EVENT_COUNTS
        if name == "after":
            return self.values.cursors()
        return None

    def _nullable(self) -> bool:
        """Whether the argument or input field being visited may be null."""
        return not graphql.is_non_null_type(self.type_info.get_input_type())

    def enter_object_field(self, node: graphql.ObjectFieldNode, *_: Any) -> graphql.ObjectFieldNode | None:
        parent = self.type_info.get_parent_input_type()
        if parent is None:
            return None
        key = (graphql.get_named_type(parent).name, node.name.value)
        if key in ID_INPUT_FIELDS:
            strategy: st.SearchStrategy[Any] = self.values.ids(ID_INPUT_FIELDS[key], nullable=self._nullable())
        elif key == ("CreateShipmentInput", "trackingNumber"):
            strategy = self.values.new_tracking_numbers()
        elif key[1] == "email":
            strategy = self.values.emails()
        else:
            return None
        return graphql.ObjectFieldNode(name=node.name, value=value_node(self.draw(strategy)))


def _keep_ast(document: graphql.DocumentNode) -> graphql.DocumentNode:
    return document


def root_fields(schema: graphql.GraphQLSchema) -> list[str]:
    """Every field of Query and Mutation: each is the whole of some generated operations."""
    roots = [schema.query_type, schema.mutation_type]
    return [name for root in roots if root is not None for name in root.fields]


def operations(sdl: str, values: ArgumentValues) -> st.SearchStrategy[str]:
    """Documents of one root field each (so every field gets its share) or of several, rewritten."""
    schema = graphql.build_schema(sdl)
    scalars = {"Date": values.dates(), "DateTime": values.datetimes()}

    def documents(fields: list[str] | None) -> st.SearchStrategy[graphql.DocumentNode]:
        return hypothesis_graphql.from_schema(schema, fields=fields, custom_scalars=scalars, print_ast=_keep_ast)

    single = st.sampled_from(root_fields(schema)).flatmap(lambda name: documents([name]))
    several = documents(None)

    @st.composite
    def rewritten(draw: st.DrawFn) -> str:
        document = draw(st.one_of(single, several))
        type_info = graphql.TypeInfo(schema)
        document = graphql.visit(document, graphql.TypeInfoVisitor(type_info, _Rewrite(type_info, draw, values)))
        return graphql.print_ast(document)

    return rewritten()


def _is_id(type_: graphql.GraphQLInputType) -> bool:
    return graphql.get_named_type(type_).name == "ID"


def id_fields_of(schema: graphql.GraphQLSchema) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    """Every ID-typed argument (type, field, argument) and input field (input type, field) of a schema."""
    arguments: set[tuple[str, str, str]] = set()
    inputs: set[tuple[str, str]] = set()
    for type_name, type_ in schema.type_map.items():
        if type_name.startswith("__"):
            continue
        if isinstance(type_, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType):
            for field_name, definition in type_.fields.items():
                arguments |= {
                    (type_name, field_name, name) for name, arg in definition.args.items() if _is_id(arg.type)
                }
        elif isinstance(type_, graphql.GraphQLInputObjectType):
            inputs |= {(type_name, name) for name, input_field in type_.fields.items() if _is_id(input_field.type)}
    return arguments, inputs


__all__ = [
    "EXAMPLES_ENV",
    "ID_ARGUMENTS",
    "ID_INPUT_FIELDS",
    "ID_TYPES",
    "POOLER_EXAMPLES_ENV",
    "PROFILE",
    "ArgumentValues",
    "TenantValues",
    "examples_from_env",
    "id_fields_of",
    "operations",
    "root_fields",
]
