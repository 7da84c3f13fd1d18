"""Transcendentals for kernels: wasm has `sqrt` but no `exp`.

`exp`: Cody-Waite range reduction x = n*ln2 + r (|r| <= ln2/2, ln2 split in two so
n*ln2_hi is exact) and the Cephes `expf` degree-5 minimax polynomial,
e^r = 1 + r + r^2 * P(r); then 2^n is applied as two exact power-of-two multiplies
(2^(n>>1) * 2^(n - (n>>1))) so that results near the overflow and underflow limits are
neither spuriously infinite nor flushed early.

Accuracy (f32 arithmetic without FMA, exactly as the wasm code executes it; checked
against NumPy's float64 exp by tests/test_mathlib.py):
- max relative error 8.1e-8 (< 1 ulp; 1.35 units of 2^-24) wherever e^x is a normal f32
  (x in [-87.33, 88.72]);
- subnormal results (x in [-103.9, -87.34]) err by at most 1.1e-45 absolute (one
  subnormal step); x < -104 gives +0 (true value below 1e-45), x > 88.73 gives +inf,
  -inf gives 0, NaN gives NaN. No input traps.

`sigmoid(x) = 1 / (1 + e^-x)` and `silu(x) = x / (1 + e^-x)` inherit exp's error plus
two roundings (relative error < 3e-7 for x > -88.7); both saturate for |x| large. For
x < -88.7, e^-x overflows, so sigmoid gives +0 and silu gives -0 (true magnitudes below
1e-36 there; absolute error under 1e-36).
`rsqrt(x) = 1 / sqrt(x)` (two correctly rounded operations, < 1 ulp).

Each function has a scalar (f32) and a vector (f32x4) form with identical arithmetic,
so the scalar and SIMD variants of a kernel produce the same bits. They emit statements
into `fb` using locals named after `tag`, and return an expression that reads those
locals: consume it (store it or set a local) before calling again with the same tag.
"""

from __future__ import annotations

from harness.codegen import simd
from harness.codegen.expr import Expr, const, op
from harness.codegen.function import FunctionBuilder

#: x is clamped to this range before reduction (see module docstring)
EXP_LO, EXP_HI = -104.0, 88.73
_LOG2E = 1.44269504088896341
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4  # ln2 = hi + lo; hi has 9 significant bits
# 1.5 * 2^23: adding it rounds |v| < 2^22 to an integer (ties to even) held in the low
# mantissa bits, so bits(v + MAGIC) - bits(MAGIC) is that integer: round and convert in
# two cheap ops (f32x4.nearest + i32x4.trunc_sat_f32x4_s lower to long x86 sequences)
_MAGIC = 12582912.0
_MAGIC_BITS = 0x4B400000
# Cephes expf coefficients, highest degree first
_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
      1.6666665459e-1, 5.0000001201e-1)


def _vc(value: float) -> Expr:
    return simd.fconst(value)


def exp(fb: FunctionBuilder, x: Expr, tag: str = "exp") -> Expr:
    """e^x for an f32 or a v128 (f32x4) expression."""
    if x.ty == "v128":
        return _exp_v(fb, x, tag)
    if x.ty != "f32":
        raise TypeError(f"exp of {x.ty}")
    xc = fb.local(f"{tag}_x", "f32")
    t = fb.local(f"{tag}_t", "f32")
    n = fb.local(f"{tag}_n", "f32")
    r = fb.local(f"{tag}_r", "f32")
    ni = fb.local(f"{tag}_ni", "i32")
    n1 = fb.local(f"{tag}_n1", "i32")
    # clamp with compare+select (the scalar twin of pmin/pmax; NaN passes through)
    fb.set(xc, x)
    fb.set(xc, op("select", const(EXP_HI, "f32"), xc, const(EXP_HI, "f32") < xc, ty="f32"))
    fb.set(xc, op("select", const(EXP_LO, "f32"), xc, xc < EXP_LO, ty="f32"))
    fb.set(t, xc * _LOG2E + _MAGIC)  # rounds x*log2e to an integer, ties to even
    fb.set(n, t - _MAGIC)
    fb.set(r, (xc - n * _LN2_HI) - n * _LN2_LO)
    p: Expr = const(_P[0], "f32")
    for c in _P[1:]:
        p = p * r + c
    fb.set(xc, (p * (r * r) + r) + 1.0)  # xc now holds e^r
    fb.set(ni, op("i32.reinterpret_f32", t, ty="i32") - _MAGIC_BITS)
    fb.set(n1, ni >> 1)
    s1 = op("f32.reinterpret_i32", (n1 + 127) << 23, ty="f32")
    s2 = op("f32.reinterpret_i32", ((ni - n1) + 127) << 23, ty="f32")
    return (xc * s1) * s2


def _exp_v(fb: FunctionBuilder, x: Expr, tag: str) -> Expr:
    xc = fb.local(f"{tag}_vx", "v128")
    t = fb.local(f"{tag}_vt", "v128")
    n = fb.local(f"{tag}_vn", "v128")
    r = fb.local(f"{tag}_vr", "v128")
    ni = fb.local(f"{tag}_vni", "v128")
    n1 = fb.local(f"{tag}_vn1", "v128")
    # pmin/pmax: one minps/maxps each (IEEE f32x4.min/max cost ~8 instructions on x86)
    fb.set(xc, simd.pmax(simd.pmin(x, _vc(EXP_HI)), _vc(EXP_LO)))
    fb.set(t, simd.add(simd.mul(xc, _vc(_LOG2E)), _vc(_MAGIC)))
    fb.set(n, simd.sub(t, _vc(_MAGIC)))
    fb.set(r, simd.sub(simd.sub(xc, simd.mul(n, _vc(_LN2_HI))), simd.mul(n, _vc(_LN2_LO))))
    p = _vc(_P[0])
    for c in _P[1:]:
        p = simd.add(simd.mul(p, r), _vc(c))
    fb.set(xc, simd.add(simd.add(simd.mul(p, simd.mul(r, r)), r), _vc(1.0)))
    fb.set(ni, simd.i32_sub(t, simd.splat_i32(_MAGIC_BITS)))
    fb.set(n1, simd.i32_shr_s(ni, 1))
    bias = simd.splat_i32(127)
    s1 = simd.i32_shl(simd.i32_add(n1, bias), 23)
    s2 = simd.i32_shl(simd.i32_add(simd.i32_sub(ni, n1), bias), 23)
    return simd.mul(simd.mul(xc, s1), s2)


def sigmoid(fb: FunctionBuilder, x: Expr, tag: str = "sig") -> Expr:
    """1 / (1 + e^-x)."""
    return _over_one_plus_exp_neg(fb, 1.0, x, tag)


def silu(fb: FunctionBuilder, x: Expr, tag: str = "silu") -> Expr:
    """x * sigmoid(x), computed as x / (1 + e^-x). `x` is read twice: pass a local."""
    return _over_one_plus_exp_neg(fb, x, x, tag)


def _over_one_plus_exp_neg(fb: FunctionBuilder, num: Expr | float, x: Expr, tag: str) -> Expr:
    if x.ty == "v128":
        e = exp(fb, simd.neg(x), tag)
        top = num if isinstance(num, Expr) else _vc(num)
        return simd.div(top, simd.add(e, _vc(1.0)))
    e = exp(fb, -x, tag)
    top = num if isinstance(num, Expr) else const(num, "f32")
    return top / (e + 1.0)


def rsqrt(x: Expr) -> Expr:
    """1 / sqrt(x) for f32 or f32x4."""
    if x.ty == "v128":
        return simd.div(_vc(1.0), simd.sqrt(x))
    return const(1.0, "f32") / x.unary("sqrt")
