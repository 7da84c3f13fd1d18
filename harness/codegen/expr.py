"""Typed WAT expressions with Python operators.

An `Expr` is folded WAT text plus its value type (`i32`, `i64`, `f32`, `f64`, `v128`).
Arithmetic picks the instruction from the type (`a + b` on f32 is `f32.add`); Python
numbers are coerced to constants of the other operand's type. Comparisons return i32.
`==`/`!=` are left alone (Exprs stay hashable); use `.eq()` / `.ne()`.

An i32 operand of an i64 operation is sign-extended (C's promotion of `int` to a 64-bit
`size_t`/pointer), so a kernel's i32 arithmetic adds to a memory64 module's i64 pointers:
the address arithmetic is i64. `Buffer.addr` widens an element index before scaling it;
offsets a kernel computes itself in i32 (`ptr + row * stride`) are widened after, so
they reach 2 GiB into a buffer (strategies refuse larger tensors in their memory64 form).
"""

from __future__ import annotations

import math
from typing import Union

Operand = Union["Expr", int, float]

_SIGNED_INT = {"div": "div_s", "rem": "rem_s", "shr": "shr_s",
               "lt": "lt_s", "gt": "gt_s", "le": "le_s", "ge": "ge_s"}


def _float_text(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(v).hex()


def const(value: int | float, ty: str) -> Expr:
    """A constant of type `ty`."""
    if ty in ("i32", "i64"):
        if isinstance(value, float) and not value.is_integer():
            raise TypeError(f"cannot make {ty} constant from {value!r}")
        return Expr(f"({ty}.const {int(value)})", ty)
    if ty in ("f32", "f64"):
        return Expr(f"({ty}.const {_float_text(float(value))})", ty)
    raise TypeError(f"no scalar constant of type {ty}")


def i32(value: int) -> Expr:
    return const(value, "i32")


def f32(value: float) -> Expr:
    return const(value, "f32")


def op(instr: str, *args: Operand, ty: str) -> Expr:
    """Any instruction, folded: `op("f32x4.add", a, b, ty="v128")`."""
    parts = [a.wat if isinstance(a, Expr) else str(a) for a in args]
    return Expr(f"({instr} {' '.join(parts)})" if parts else f"({instr})", ty)


class Expr:
    """A typed, folded WAT expression."""

    __slots__ = ("ty", "wat")

    def __init__(self, wat: str, ty: str) -> None:
        self.wat = wat
        self.ty = ty

    def __repr__(self) -> str:
        return f"Expr({self.ty}: {self.wat})"

    def _coerce(self, other: Operand) -> Expr:
        if isinstance(other, Expr):
            if other.ty != self.ty:
                if (other.ty, self.ty) == ("i32", "i64"):
                    return other.widen()
                raise TypeError(f"type mismatch: {self.ty} vs {other.ty}")
            return other
        return const(other, self.ty)

    def widen(self) -> Expr:
        """This i32 as an i64 (sign-extended); an i64 as itself."""
        if self.ty == "i64":
            return self
        if self.ty != "i32":
            raise TypeError(f"cannot widen {self.ty} to i64")
        return Expr(f"(i64.extend_i32_s {self.wat})", "i64")

    def _bin(self, name: str, other: Operand, result: str | None = None) -> Expr:
        if isinstance(other, Expr) and (self.ty, other.ty) == ("i32", "i64"):
            return self.widen()._bin(name, other, result)
        o = self._coerce(other)
        if self.ty == "v128":
            raise TypeError("use op('f32x4.<op>', ...) for v128 arithmetic")
        if self.ty in ("i32", "i64"):
            name = _SIGNED_INT.get(name, name)
        return Expr(f"({self.ty}.{name} {self.wat} {o.wat})", result or self.ty)

    def _rbin(self, name: str, other: Operand) -> Expr:
        return self._coerce(other)._bin(name, self)

    def __add__(self, o: Operand) -> Expr:
        if isinstance(o, int) and o == 0 and self.ty in ("i32", "i64"):
            return self
        return self._bin("add", o)

    def __radd__(self, o: Operand) -> Expr:
        return self.__add__(o)

    def __sub__(self, o: Operand) -> Expr:
        if isinstance(o, int) and o == 0 and self.ty in ("i32", "i64"):
            return self
        return self._bin("sub", o)

    def __rsub__(self, o: Operand) -> Expr:
        return self._rbin("sub", o)

    def __mul__(self, o: Operand) -> Expr:
        if isinstance(o, int) and self.ty in ("i32", "i64"):
            if o == 1:
                return self
            if o > 0 and o & (o - 1) == 0:  # power of two: a shift
                return self._bin("shl", o.bit_length() - 1)
        return self._bin("mul", o)

    def __rmul__(self, o: Operand) -> Expr:
        return self.__mul__(o)

    def __truediv__(self, o: Operand) -> Expr:
        return self._bin("div", o)

    def __floordiv__(self, o: Operand) -> Expr:
        if self.ty not in ("i32", "i64"):
            raise TypeError("// is integer division")
        return self._bin("div", o)

    def __mod__(self, o: Operand) -> Expr:
        return self._bin("rem", o)

    def __and__(self, o: Operand) -> Expr:
        return self._bin("and", o)

    def __or__(self, o: Operand) -> Expr:
        return self._bin("or", o)

    def __xor__(self, o: Operand) -> Expr:
        return self._bin("xor", o)

    def __lshift__(self, o: Operand) -> Expr:
        return self._bin("shl", o)

    def __rshift__(self, o: Operand) -> Expr:
        return self._bin("shr", o)

    def __lt__(self, o: Operand) -> Expr:  # type: ignore[override]
        return self._bin("lt", o, "i32")

    def __le__(self, o: Operand) -> Expr:  # type: ignore[override]
        return self._bin("le", o, "i32")

    def __gt__(self, o: Operand) -> Expr:  # type: ignore[override]
        return self._bin("gt", o, "i32")

    def __ge__(self, o: Operand) -> Expr:  # type: ignore[override]
        return self._bin("ge", o, "i32")

    def eq(self, o: Operand) -> Expr:
        return self._bin("eq", o, "i32")

    def ne(self, o: Operand) -> Expr:
        return self._bin("ne", o, "i32")

    def __neg__(self) -> Expr:
        if self.ty in ("f32", "f64"):
            return Expr(f"({self.ty}.neg {self.wat})", self.ty)
        return const(0, self.ty) - self

    def min(self, o: Operand) -> Expr:
        return self._bin("min", o)

    def max(self, o: Operand) -> Expr:
        return self._bin("max", o)

    def unary(self, name: str) -> Expr:
        """`x.unary("sqrt")` -> `(f32.sqrt x)`."""
        return Expr(f"({self.ty}.{name} {self.wat})", self.ty)

    def convert(self, ty: str) -> Expr:
        """Numeric conversion between i32 and f32 (signed)."""
        if (self.ty, ty) == ("i32", "f32"):
            return Expr(f"(f32.convert_i32_s {self.wat})", "f32")
        if (self.ty, ty) == ("f32", "i32"):
            return Expr(f"(i32.trunc_f32_s {self.wat})", "i32")
        if self.ty == ty:
            return self
        raise TypeError(f"no conversion {self.ty} -> {ty}")
