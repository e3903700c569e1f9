"""Reading a spec mapping field by field: each read names its path in the error.

``SpecReader`` reads one mapping against the dataclass it becomes: a missing key takes
the field's default (or is an error when the field has none), each typed read checks the
value's type and range, and ``done`` refuses keys that were not read, so a typo is an
error rather than a silent default. Every error is an ``InvalidSpecError`` naming the
field path, the value and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, fields, is_dataclass
from typing import Any

from codejury.control.errors import InvalidSpecError

# A Kubernetes resource quantity such as "500m", "4", "16Gi" (positive, no exponent form).
_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class _Missing:
    """Stands for an absent key in error messages."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


class SpecReader:
    """One mapping of the spec at ``path``, read against the dataclass ``cls``: a missing
    key takes the field's default (or is an error when the field has none), and ``done``
    refuses keys that were not read."""

    def __init__(self, data: object, path: str, cls: type) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InvalidSpecError(
                path, data, "is not a mapping", f"write {path} as a mapping of field: value"
            )
        self._data = data
        self._path = path
        self._fields = {f.name: f for f in fields(cls)}
        self._read: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self._path}.{key}"

    def get(self, key: str) -> Any:
        self._read.add(key)
        if key in self._data:
            return self._data[key]
        spec_field = self._fields[key]
        if spec_field.default is not MISSING:
            return spec_field.default
        if spec_field.default_factory is not MISSING:
            return spec_field.default_factory()
        help_text = spec_field.metadata.get("help", "")
        raise InvalidSpecError(
            self.path(key), _MISSING, "is required", f"set it ({help_text.rstrip('.')})"
        )

    def sub(self, key: str, cls: type) -> SpecReader:
        value = self.get(key)
        if is_dataclass(value) and not isinstance(value, type):  # the field's default
            value = asdict(value)
        return SpecReader(as_lists(value), self.path(key), cls)

    def sequence(self, key: str) -> list[Any]:
        value = self.get(key)
        if not isinstance(value, (list, tuple)):
            raise InvalidSpecError(self.path(key), value, "is not a list", "write it as a list")
        return list(value)

    def text(self, key: str, *, allow_empty: bool = False) -> str:
        return read_text(self.get(key), self.path(key), allow_empty=allow_empty)

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.get(key)
        if value not in choices:
            raise InvalidSpecError(
                self.path(key), value, "is not a known value", f"use one of {list(choices)}"
            )
        return str(value)

    def integer(self, key: str, *, minimum: int, maximum: int | None = None) -> int:
        value = self.get(key)
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        if not is_whole(value) or value < minimum or (maximum is not None and value > maximum):
            raise InvalidSpecError(
                self.path(key), value, f"is not a whole number {bounds}", f"set it {bounds}"
            )
        return int(value)

    def number(
        self,
        key: str,
        *,
        minimum: float,
        maximum: float = math.inf,
        exclusive_min: bool = False,
        exclusive_max: bool = False,
    ) -> float:
        value = self.get(key)
        low = f"{'>' if exclusive_min else '>='} {minimum}"
        high = "" if maximum == math.inf else f" and {'<' if exclusive_max else '<='} {maximum}"
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > minimum if exclusive_min else value >= minimum)
            and (value < maximum if exclusive_max else value <= maximum)
        )
        if not ok:
            raise InvalidSpecError(
                self.path(key), value, f"is not a number {low}{high}", f"set it {low}{high}"
            )
        return float(value)

    def quantity(self, key: str) -> str:
        value = self.get(key)
        text = str(value) if is_whole(value) or isinstance(value, float) else value
        if (
            not isinstance(text, str)
            or not _QUANTITY.match(text)
            or float(re.sub(r"[a-zA-Z]+$", "", text)) <= 0
        ):
            raise InvalidSpecError(
                self.path(key),
                value,
                "is not a positive Kubernetes quantity",
                "write it like '4', '500m' (CPU) or '16Gi' (memory)",
            )
        return text

    def done(self) -> None:
        unknown = sorted(str(k) for k in self._data if k not in self._read)
        if unknown:
            raise InvalidSpecError(
                self.path(unknown[0]),
                self._data[unknown[0]],
                f"is not a field of {self._path}",
                f"remove it, or use one of {sorted(self._fields)}",
            )


def read_text(value: object, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise InvalidSpecError(path, value, "is not a non-empty string", "set it to a name")
    return value


def is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_lists(value: Any) -> Any:
    """Tuples to lists, recursively (what JSON and YAML give back)."""
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_lists(v) for v in value]
    return value
