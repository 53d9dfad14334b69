"""What a mutation returns: the row it made or changed, or the errors that stopped it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FieldError:
    """One `UserError`: `code` is NOT_FOUND, ALREADY_EXISTS or INVALID."""

    field: tuple[str, ...]
    message: str
    code: str


@dataclass(slots=True)
class Outcome(Generic[T]):
    value: T | None = None
    errors: list[FieldError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class Checks:
    """Collects input problems so a client hears about all of them at once."""

    def __init__(self, prefix: tuple[str, ...] = ("input",)) -> None:
        self.prefix = prefix
        self.errors: list[FieldError] = []

    def fail(self, name: str, message: str, code: str = "INVALID") -> None:
        self.errors.append(FieldError((*self.prefix, name), message, code))

    def text(self, name: str, value: str | None, *, required: bool = False, max_length: int = 200) -> str | None:
        if value is None:
            if required:
                self.fail(name, f"{name} is required")
            return None
        value = value.strip()
        if required and not value:
            self.fail(name, f"{name} must not be empty")
        elif len(value) > max_length:
            self.fail(name, f"{name} must be at most {max_length} characters")
        elif "\x00" in value:  # PostgreSQL text cannot store it: refused here, not as a database error
            self.fail(name, f"{name} must not contain NUL characters")
        return value or None

    def email(self, name: str, value: str | None) -> str | None:
        value = self.text(name, value, max_length=320)
        if value is not None and ("@" not in value or value.startswith("@") or value.endswith("@")):
            self.fail(name, f"{name} is not an email address")
        return value

    def number(self, name: str, value: float | None, *, positive: bool = True, maximum: float = 1e6) -> float | None:
        if value is None:
            return None
        if not math.isfinite(value) or value > maximum or (value <= 0 if positive else value < 0):
            bound = "greater than 0" if positive else "at least 0"
            self.fail(name, f"{name} must be {bound} and at most {maximum:g}")
        return value

    def outcome(self) -> Outcome[Any] | None:
        return Outcome(errors=list(self.errors)) if self.errors else None


def not_found(field_path: tuple[str, ...], what: str) -> Outcome[Any]:
    """The one answer for a missing id and another tenant's id: they must be indistinguishable."""
    return Outcome(errors=[FieldError(field_path, f"no {what} with this id", "NOT_FOUND")])


def invalid(field_path: tuple[str, ...], message: str) -> Outcome[Any]:
    return Outcome(errors=[FieldError(field_path, message, "INVALID")])


def already_exists(field_path: tuple[str, ...], message: str) -> Outcome[Any]:
    return Outcome(errors=[FieldError(field_path, message, "ALREADY_EXISTS")])


__all__ = ["Checks", "FieldError", "Outcome", "already_exists", "invalid", "not_found"]
