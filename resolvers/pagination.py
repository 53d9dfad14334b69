"""Keyset pagination: a cursor is the sort key of the last row seen, so pages stay stable under inserts."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, select, tuple_

from resolvers.errors import BadUserInput

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            created_at, _, id_ = raw.partition("|")
            return cls(datetime.fromisoformat(created_at), uuid.UUID(id_))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadUserInput("`after` is not a cursor this API gave out") from None

    @classmethod
    def of(cls, row: Row[Any]) -> Cursor:
        return cls(row.created_at, row.id)


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int
    after: Cursor | None

    @classmethod
    def parse(cls, first: int | None, after: str | None) -> PageRequest:
        if first is None:
            first = DEFAULT_PAGE_SIZE
        if first < 0 or first > MAX_PAGE_SIZE:
            raise BadUserInput(f"`first` must be between 0 and {MAX_PAGE_SIZE}")
        return cls(first, Cursor.decode(after) if after else None)

    def after_clause(self, created_at: ColumnElement[Any], id_: ColumnElement[Any], *, newest_first: bool) -> Any:
        """The keyset condition: rows strictly past the cursor in the page's order."""
        if self.after is None:
            return None
        key = tuple_(created_at, id_)
        bound = tuple_(self.after.created_at, self.after.id)
        return key < bound if newest_first else key > bound


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool

    @classmethod
    def from_rows(cls, rows: list[Any], first: int) -> Page[Any]:
        """`rows` were fetched with LIMIT first + 1: the extra row only says there is more."""
        return cls(items=list(rows[:first]), has_next_page=len(rows) > first)


async def fetch_page(db: Any, table: Any, request: PageRequest, *where: Any, newest_first: bool) -> Page[Row[Any]]:
    """One page of a tenant's rows in (created_at, id) order, in one statement."""
    if request.first == 0:
        return Page([], False)
    order = (table.c.created_at.desc(), table.c.id.desc()) if newest_first else (table.c.created_at, table.c.id)
    conditions = [table.c.tenant_id == db.tenant_id, *where]
    if (after := request.after_clause(table.c.created_at, table.c.id, newest_first=newest_first)) is not None:
        conditions.append(after)
    statement = select(table).where(*conditions).order_by(*order).limit(request.first + 1)
    return Page.from_rows(list(await db.all(statement)), request.first)


__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "Cursor", "Page", "PageRequest", "fetch_page"]
