"""Charge each operation's cost to its tenant's budget: refuse what is too dear or unpayable.

Per operation, after validation and before execution:

1. the requested cost is worked out from the document and variables (`schema.cost`);
   above `max_cost` the operation is refused with MAX_COST_EXCEEDED and charged nothing;
2. the requested cost is charged to the tenant's bucket; if the bucket cannot pay, the
   operation is refused with THROTTLED and a `retryAfter`, and nothing executes;
3. after execution, the difference to the actual cost (what was really returned) is
   given back: one Redis round trip to charge, one to refund, none when nothing is owed.

Both round trips also meter the tenant's usage (`db.usage`), so the usage recorded is the
actual cost. An operation that cost more than it was charged pays no more, but the excess
is metered in this process (no round trip), to be flushed with the rest.

Every response that reached step 1 carries `extensions.cost`. The tenant's budget comes
from its plan in the tenants table, through the tenant context, never from the token.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from graphql import ExecutionResult, GraphQLError, GraphQLSchema
from strawberry.extensions import SchemaExtension

from auth.tenant import TenantContext
from db.buckets import Buckets, Budget, Charge
from db.usage import Meter, PendingUsage, today_number
from resolvers.context import Context
from schema.cost import CostCalculator

MAX_COST_EXCEEDED = "MAX_COST_EXCEEDED"
THROTTLED = "THROTTLED"
MAX_COST = 1_000


@dataclass(slots=True)
class CostPolicy:
    """What every request's CostLimit shares: the buckets, the limit, and what was charged.

    The counters (per tenant slug) are read by `/metrics`; they are per process. `usage` is
    where metered usage waits to be flushed, its `counts` shared with the buckets.
    """

    buckets: Buckets
    max_cost: int = MAX_COST
    usage: PendingUsage | None = None
    points: Counter[str] = field(default_factory=Counter)
    refusals: Counter[tuple[str, str]] = field(default_factory=Counter)
    _calculators: dict[int, CostCalculator] = field(default_factory=dict)

    def calculator(self, schema: GraphQLSchema) -> CostCalculator:
        calculator = self._calculators.get(id(schema))
        if calculator is None:
            calculator = self._calculators[id(schema)] = CostCalculator(schema)
        return calculator


@dataclass(frozen=True, slots=True)
class OperationCost:
    requested: int
    actual: int
    status: Charge

    def as_extension(self) -> dict[str, Any]:
        return {
            "requestedQueryCost": self.requested,
            "actualQueryCost": self.actual,
            "throttleStatus": throttle_status(self.status),
        }


def throttle_status(status: Charge) -> dict[str, Any]:
    return {
        "maximumAvailable": status.budget.capacity,
        "currentlyAvailable": math.floor(status.available),
        "restoreRate": round(status.budget.restore_rate, 3),
    }


def budget_of(tenant: TenantContext) -> Budget:
    return Budget.for_plan(tenant.plan, tenant.rate_limit_per_minute)


class CostLimit(SchemaExtension):
    """Usage: `build_schema(extensions=[lambda: CostLimit(policy)])`, one policy per process."""

    def __init__(self, policy: CostPolicy) -> None:
        self.policy = policy
        self.cost: OperationCost | None = None

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context: Context = execution.context
        tenant, policy = context.tenant, self.policy
        budget, meter = budget_of(tenant), Meter(tenant.tenant_id, tenant.api_key_id)
        plan = policy.calculator(execution.schema._schema).plan(
            execution.graphql_document, execution.variables, execution.operation_name, key=execution.query
        )
        requested = plan.requested
        if requested > policy.max_cost:
            status = await policy.buckets.status(tenant.tenant_id, budget)
            self._refuse(context, status, requested, MAX_COST_EXCEEDED, _over_cost(requested, policy.max_cost))
            yield
            return
        charge = await policy.buckets.charge(tenant.tenant_id, budget, requested, meter=meter)
        if not charge.charged:
            self._refuse(context, charge, requested, THROTTLED, _throttled(requested, charge))
            yield
            return
        context.throttle = charge
        context.unflushed_usage = policy.usage  # so the `usage` field reports what is not flushed yet
        yield
        result = execution.result
        actual = plan.actual(result.data if result is not None else None)
        if requested > actual:
            charge = await policy.buckets.refund(
                tenant.tenant_id, budget, requested - actual, charge=charge, meter=meter
            )
        elif actual > requested and policy.usage is not None:
            day = charge.usage_day if charge.usage_day is not None else today_number()
            policy.usage.counts.add(meter, day, actual - requested)
        context.throttle = charge
        policy.points[tenant.slug] += actual
        self.cost = OperationCost(requested, actual, charge)

    def _refuse(self, context: Context, status: Charge, requested: int, code: str, error: GraphQLError) -> None:
        context.throttle = status
        self.policy.refusals[context.tenant.slug, code] += 1
        self.cost = OperationCost(requested, 0, status)
        # A result set before execution is what Strawberry returns instead of executing.
        self.execution_context.result = ExecutionResult(data=None, errors=[error])

    def get_results(self) -> dict[str, Any]:
        return {"cost": self.cost.as_extension()} if self.cost is not None else {}


def _over_cost(requested: int, max_cost: int) -> GraphQLError:
    return GraphQLError(
        f"The operation's cost is {requested}; at most {max_cost} is allowed. Ask for fewer items "
        "(a smaller `first`) or split the operation.",
        extensions={"code": MAX_COST_EXCEEDED, "requestedQueryCost": requested, "maxCost": max_cost},
    )


def _throttled(requested: int, charge: Charge) -> GraphQLError:
    retry_after = max(1, math.ceil(charge.retry_after))
    if requested > charge.budget.capacity:
        message = f"This operation costs {requested}, more than the tenant's whole budget of {charge.budget.capacity}."
    else:
        message = (
            f"The tenant's budget holds {math.floor(charge.available)} points and this operation costs "
            f"{requested}; retry in {retry_after} s."
        )
    return GraphQLError(
        message,
        extensions={"code": THROTTLED, "retryAfter": retry_after},
    )


__all__ = [
    "MAX_COST",
    "MAX_COST_EXCEEDED",
    "THROTTLED",
    "CostLimit",
    "CostPolicy",
    "OperationCost",
    "budget_of",
    "throttle_status",
]
