"""Typed helpers for SIMD128 f32x4 / i32x4 code on top of `op`.

Every helper returns an `Expr` of type `v128` (or `f32` for lane extraction and horizontal
reductions). Loads and stores are not here: kernels load vectors through the strategy's
lowering (`Buffer.load_at(addr, ty="v128")`) so SIMD works with every strategy.

`for_lanes` is the common loop shape of vector kernels: a vector body over the largest
multiple of the vector width and a scalar body for the tail, so any size works.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.codegen.expr import Expr, Operand, const, op
from harness.codegen.function import FunctionBuilder, Var

V = "v128"
LANES = 4  # f32 / i32 lanes in a v128
VBYTES = 16


def _v(x: Expr) -> Expr:
    if x.ty != V:
        raise TypeError(f"expected a v128 operand, got {x.ty}")
    return x


# -- construction ---------------------------------------------------------------------------
def splat(x: Operand) -> Expr:
    """f32x4.splat of an f32 expression or a Python number."""
    s = x if isinstance(x, Expr) else const(float(x), "f32")
    if s.ty != "f32":
        raise TypeError(f"f32x4.splat needs an f32, got {s.ty}")
    return op("f32x4.splat", s, ty=V)


def splat_i32(x: Operand) -> Expr:
    s = x if isinstance(x, Expr) else const(int(x), "i32")
    return op("i32x4.splat", s, ty=V)


def fconst(value: float) -> Expr:
    """An f32x4 constant with `value` in every lane."""
    lane = const(float(value), "f32").wat[len("(f32.const "):-1]
    return Expr(f"(v128.const f32x4 {lane} {lane} {lane} {lane})", V)


def zero() -> Expr:
    return Expr("(v128.const i32x4 0 0 0 0)", V)


# -- f32x4 arithmetic -----------------------------------------------------------------------
def add(a: Expr, b: Expr) -> Expr:
    return op("f32x4.add", _v(a), _v(b), ty=V)


def sub(a: Expr, b: Expr) -> Expr:
    return op("f32x4.sub", _v(a), _v(b), ty=V)


def mul(a: Expr, b: Expr) -> Expr:
    return op("f32x4.mul", _v(a), _v(b), ty=V)


def div(a: Expr, b: Expr) -> Expr:
    return op("f32x4.div", _v(a), _v(b), ty=V)


def fmax(a: Expr, b: Expr) -> Expr:
    """Lane-wise max (NaN-propagating, like scalar `f32.max`)."""
    return op("f32x4.max", _v(a), _v(b), ty=V)


def fmin(a: Expr, b: Expr) -> Expr:
    return op("f32x4.min", _v(a), _v(b), ty=V)


def pmax(a: Expr, b: Expr) -> Expr:
    """Pseudo-max `a < b ? b : a`: one `maxps` on x86, where IEEE `f32x4.max` (NaN and
    signed-zero rules) costs a sequence of about eight instructions. A NaN in `a` is kept,
    a NaN in `b` is dropped."""
    return op("f32x4.pmax", _v(a), _v(b), ty=V)


def pmin(a: Expr, b: Expr) -> Expr:
    """Pseudo-min `b < a ? b : a` (one `minps`). A NaN in `a` is kept, in `b` dropped."""
    return op("f32x4.pmin", _v(a), _v(b), ty=V)


def relu(a: Expr) -> Expr:
    """max(a, 0) lane-wise via `pmax` (NaN stays NaN; -0 stays -0, which equals 0)."""
    return pmax(a, zero())


def neg(a: Expr) -> Expr:
    return op("f32x4.neg", _v(a), ty=V)


def sqrt(a: Expr) -> Expr:
    return op("f32x4.sqrt", _v(a), ty=V)


def nearest(a: Expr) -> Expr:
    """Round to nearest, ties to even."""
    return op("f32x4.nearest", _v(a), ty=V)


def madd(acc: Expr, a: Expr, b: Expr) -> Expr:
    """acc + a * b (two roundings: SIMD128 has no FMA)."""
    return add(acc, mul(a, b))


# -- integer lanes and conversions ---------------------------------------------------------
def i32_add(a: Expr, b: Expr) -> Expr:
    return op("i32x4.add", _v(a), _v(b), ty=V)


def i32_sub(a: Expr, b: Expr) -> Expr:
    return op("i32x4.sub", _v(a), _v(b), ty=V)


def i32_shl(a: Expr, bits: int) -> Expr:
    return op("i32x4.shl", _v(a), const(bits, "i32"), ty=V)


def i32_shr_s(a: Expr, bits: int) -> Expr:
    return op("i32x4.shr_s", _v(a), const(bits, "i32"), ty=V)


def trunc_sat_i32(a: Expr) -> Expr:
    """f32 lanes to i32 lanes, saturating (NaN -> 0); never traps."""
    return op("i32x4.trunc_sat_f32x4_s", _v(a), ty=V)


# -- lanes and reductions ------------------------------------------------------------------
def extract(a: Expr, lane: int) -> Expr:
    """f32 value of one lane."""
    if not 0 <= lane < LANES:
        raise ValueError(f"lane {lane} out of range")
    return op(f"f32x4.extract_lane {lane}", _v(a), ty="f32")


def shuffle32(a: Expr, b: Expr, lanes: tuple[int, int, int, int]) -> Expr:
    """i8x16.shuffle picking 32-bit lanes: 0-3 from `a`, 4-7 from `b`."""
    if len(lanes) != LANES or any(not 0 <= x < 8 for x in lanes):
        raise ValueError(f"bad 32-bit lane selection {lanes}")
    bytes_ = " ".join(str(4 * x + i) for x in lanes for i in range(4))
    return op(f"i8x16.shuffle {bytes_}", _v(a), _v(b), ty=V)


def _reduce(a: Expr, combine: Callable[[Expr, Expr], Expr], fb: FunctionBuilder,
            tmp: Var) -> Expr:
    # (a0+a2, a1+a3, ., .) then lane0 + lane1: two shuffles, two ops, one extract
    fb.set(tmp, a)
    fb.set(tmp, combine(tmp, shuffle32(tmp, tmp, (2, 3, 2, 3))))
    return extract(combine(tmp, shuffle32(tmp, tmp, (1, 1, 1, 1))), 0)


def hsum(fb: FunctionBuilder, a: Expr, tmp: Var) -> Expr:
    """Sum of the four lanes as an f32; `tmp` is a v128 local the reduction may clobber."""
    return _reduce(a, add, fb, tmp)


def hmax(fb: FunctionBuilder, a: Expr, tmp: Var) -> Expr:
    """Max of the four lanes as an f32."""
    return _reduce(a, fmax, fb, tmp)


# -- loops ------------------------------------------------------------------------------------
def for_lanes(fb: FunctionBuilder, i: Var, n: int, vector: Callable[[], None],
              scalar: Callable[[], None], start: int = 0) -> None:
    """`for i in range(start, n)`: `vector()` for each full group of four elements (i steps
    by 4), then `scalar()` for each remaining element (i steps by 1)."""
    split = start + (n - start) // LANES * LANES
    with fb.for_range(i, start, split, LANES):
        vector()
    if split < n:
        with fb.for_range(i, split, n):
            scalar()
