"""Typed parameters for plugins: declared once, validated from spec strings, listed by `membench list`."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import SpecError, UnknownNameError


def suggest(name: str, valid: Sequence[str]) -> str:
    """A ` (did you mean 'x'?)` hint, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(kind: str, name: str, valid: Sequence[str]) -> UnknownNameError:
    """The error for an unknown name, naming the closest valid one and listing all."""
    listing = ", ".join(sorted(valid)) or "none"
    return UnknownNameError(f"unknown {kind} {name!r}{suggest(name, valid)}; valid: {listing}")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(raw: str, what: str = "size") -> int:
    """A byte count from `512MiB`, `2G`, `1.5GiB` or `1048576` (binary units); positive."""
    m = _SIZE.match(raw) if isinstance(raw, str) else None
    if not m or (m.group(3) and m.group(3).lower() == "i"):
        raise SpecError(f"{what}: expected a size like 512MiB, 2GiB or a byte count, got {raw!r}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value < 1 or value > 2**62:
        raise SpecError(f"{what}: must be at least 1 byte and sensible, got {raw!r}")
    return int(value)


def _parse_int(raw: str) -> int:
    try:
        return int(raw, 10)
    except ValueError:
        raise SpecError(f"expected an integer, got {raw!r}") from None


def _parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise SpecError(f"expected a boolean (1/0, true/false), got {raw!r}")


@dataclass(frozen=True)
class Param:
    """One declared parameter of a plugin.

    `kind` is "int", "str", "bool" or "choice". `minimum` bounds ints; `choices` bounds
    choice params; `check` is an extra validator for str params (e.g. `sizes=64-32-10`).
    """

    name: str
    kind: str
    default: Any
    doc: str = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    check: Callable[[str], Any] | None = field(default=None, compare=False)

    def convert(self, raw: str) -> Any:
        try:
            if self.kind == "int":
                value: Any = _parse_int(raw)
                if self.minimum is not None and value < self.minimum:
                    raise SpecError(f"must be >= {self.minimum}, got {value}")
                if self.maximum is not None and value > self.maximum:
                    raise SpecError(f"must be <= {self.maximum}, got {value}")
                return value
            if self.kind == "bool":
                return _parse_bool(raw)
            if self.kind == "choice":
                if raw not in self.choices:
                    raise SpecError(f"must be one of {', '.join(self.choices)}, got {raw!r}"
                                    f"{suggest(raw, self.choices)}")
                return raw
            if self.kind == "str":
                return self.check(raw) if self.check else raw
        except SpecError as exc:
            raise SpecError(f"parameter {self.name!r}: {exc}") from None
        raise SpecError(f"parameter {self.name!r}: unsupported kind {self.kind!r}")

    def describe(self) -> str:
        if self.kind == "choice":
            rng = "|".join(self.choices)
        elif self.kind == "int":
            rng = "int" + (f">={self.minimum}" if self.minimum is not None else "")
        else:
            rng = self.kind
        return f"{self.name}={rng} (default {self.default})" + (f": {self.doc}" if self.doc else "")


def resolve_params(owner: str, declared: Sequence[Param], given: Mapping[str, str]) -> dict[str, Any]:
    """Validate raw spec values against declared params; fill in defaults."""
    by_name = {p.name: p for p in declared}
    for key in given:
        if key not in by_name:
            raise unknown(f"parameter of {owner}", key, list(by_name))
    out: dict[str, Any] = {}
    for p in declared:
        out[p.name] = p.convert(given[p.name]) if p.name in given else p.default
    return out
