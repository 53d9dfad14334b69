"""`node(id:)`: any object by its global id, if it belongs to the caller's tenant."""

from __future__ import annotations

from typing import Any

from resolvers.context import Context
from resolvers.ids import from_global_id

_LOADERS = {
    "Shipment": "shipment_by_id",
    "Customer": "customer_by_id",
    "Driver": "driver_by_id",
    "Vehicle": "vehicle_by_id",
}


async def load_node(ctx: Context, global_id: str) -> tuple[str, Any] | None:
    """The type name and row a global id names; None for a missing id, a malformed one,
    or one of another tenant, which all look the same from outside."""
    decoded = from_global_id(global_id)
    if decoded is None:
        return None
    type_name, id_ = decoded
    if type_name == "Tenant":
        return (type_name, ctx.tenant) if id_ == ctx.tenant.tenant_id else None
    loader_name = _LOADERS.get(type_name)
    if loader_name is None:
        return None
    row = await getattr(ctx.loaders, loader_name).load((ctx.db.tenant_id, id_))
    return (type_name, row) if row is not None else None


__all__ = ["load_node"]
