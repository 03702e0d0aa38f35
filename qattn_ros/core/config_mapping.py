"""Strict dataclass-from-mapping: unknown keys are refused with the section's name."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

from .errors import ConfigError

T = TypeVar("T")


def from_mapping(cls: type[T], data: dict | None, section: str) -> T:
    """Build dataclass `cls` from a mapping, refusing unknown keys with the section's name."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except TypeError as error:
        raise ConfigError(f"{section}: {error}") from None
