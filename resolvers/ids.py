"""Relay global ids: opaque to clients, `TypeName:uuid` inside."""

from __future__ import annotations

import base64
import binascii
import uuid


def to_global_id(type_name: str, id_: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{id_}".encode()).decode().rstrip("=")


def from_global_id(global_id: str) -> tuple[str, uuid.UUID] | None:
    """The type and uuid a global id names, or None for anything that is not one of ours."""
    if not isinstance(global_id, str) or len(global_id) > 200:
        return None
    try:
        decoded = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
        type_name, _, raw = decoded.partition(":")
        return type_name, uuid.UUID(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def id_of(global_id: str, type_name: str) -> uuid.UUID | None:
    """The uuid of a global id if it names a `type_name`; a wrong type is as good as missing."""
    decoded = from_global_id(global_id)
    if decoded is None or decoded[0] != type_name:
        return None
    return decoded[1]


__all__ = ["from_global_id", "id_of", "to_global_id"]
