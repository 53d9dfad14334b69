"""Relay building blocks: the Node interface, edges, connections and page info."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry

from resolvers.pagination import Cursor, Page

T = TypeVar("T")


@strawberry.interface(description="An object with a global id, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    last_row: strawberry.Private[Any]  # the page's last row, or None for an empty page

    @strawberry.field
    def end_cursor(self) -> str | None:
        return Cursor.of(self.last_row).encode() if self.last_row is not None else None


def _cursor(self: Edge[Any]) -> str:
    return Cursor.of(self.row).encode()


@strawberry.type
class Edge(Generic[T]):
    """A node and where it sits in its page. The cursor is encoded only when asked for: most
    pages are read without cursors, and encoding fifty of them was a measurable part of one."""

    cursor: str = strawberry.field(resolver=_cursor)
    node: T
    row: strawberry.Private[Any]


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[Any], convert: Callable[[Any], T]) -> Connection[T]:
        return cls(
            edges=[Edge(row=row, node=convert(row)) for row in page.items],
            page_info=PageInfo(has_next_page=page.has_next_page, last_row=page.items[-1] if page.items else None),
        )


__all__ = ["Connection", "Edge", "Node", "PageInfo"]
