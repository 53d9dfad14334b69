"""Numbers as the tables print them: thousands separated, SQL counts as `n + 2`."""

from __future__ import annotations

from bench.sql_count import TRANSACTION_STATEMENTS, SqlCount


def format_number(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def format_sql(count: SqlCount | None) -> str:
    if count is None:
        return "-"
    per = count.per_request
    shown = f"{per:.0f}" if per == int(per) else f"{per:.2f}"
    return f"{shown} + {TRANSACTION_STATEMENTS}"


__all__ = ["format_number", "format_sql"]
