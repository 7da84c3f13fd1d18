"""Causal multi-head attention over a KV cache (llama2.c's inner loop), one module.

Inputs: q, k, v [t, heads*head_dim] for t new tokens at absolute positions
past .. past+t-1, and (when past > 0) the cached keys and values of the earlier
positions, k_cache and v_cache [past, heads*head_dim]. For query row i and head h:
    s_p = q[i,h] . K[p,h] / sqrt(head_dim)    for p = 0 .. past+i   (causal: no later keys)
    out[i,h] = sum_p softmax(s)_p V[p,h]
where K[p] is k_cache[p] for p < past and k[p - past] otherwise (likewise V). Decode is
t = 1 (the one query sees the whole cache plus itself); prefill is past = 0, t = length.

Per (i, h): the scores go to scratch (past + t floats), with the running max; then
e_p = exp(s_p - max) (mathlib.exp, < 1 ulp) in place and their sum; then the weighted sum
of V, scaled once by 1/sum. SIMD variant: the q.k dot products run on f32x4 over the
head's elements (q's vectors held in locals, unrolled at codegen time); the weighted sum
is one pass over the positions holding the head's whole output in f32x4 accumulators
(head_dim/4 of them, plus scalar ones for the head_dim mod 4 tail).

Tolerance (float64 reference): a head_dim-term dot product of N(0,1) q and k errs by at
most head_dim * 2^-24 * sum|q_d k_d| ~ 2e-6 * head_dim (bound, typically far smaller),
and s is that divided by sqrt(head_dim); an error e in s moves e^(s-max) by e relative,
exp adds 2^-23; the weighted sum of up to L = past + t values of |v| <= 5 adds at most
L * 2^-24 * 5. So atol = 5 * (2e-6 * sqrt(head_dim) + 6e-8 * L) + 1e-6, rtol = 1e-5.
FLOPs: per (query, head, visible key) 2*head_dim (dot) + 2*head_dim (weighted sum) + 4
(scale, subtract, exp, add).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, Var, f32, mathlib, simd
from harness.codegen.expr import Operand
from harness.codegen.kernel import SCRATCH
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.isa import ISA_PARAM, isa_features


class AttentionKernel(Kernel):
    """Buffers q, k, v (r), [k_cache, v_cache (r) when past > 0], out (w); scratch scores."""

    def __init__(self, t: int, past: int, heads: int, head_dim: int, isa: str) -> None:
        self.t, self.past, self.heads, self.head_dim, self.isa = t, past, heads, head_dim, isa
        self.dim = heads * head_dim
        self.name = f"attention_t{t}_past{past}_{heads}x{head_dim}_{isa}"
        cache = (BufferParam("k_cache", "r"), BufferParam("v_cache", "r")) if past else ()
        self.buffers = (BufferParam("q", "r"), BufferParam("k", "r"), BufferParam("v", "r"),
                        *cache, BufferParam("out", "w"))
        self.scratch_bytes = 4 * (past + t)
        self.features = isa_features(isa)

    def _past(self, fb: FunctionBuilder) -> Operand:
        """The number of cached positions (a constant here)."""
        return self.past

    def _each_position(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer], which: str,
                       p: Var, row: Var, hoff: Var, last: Var,
                       body: Callable[[Buffer], None]) -> None:
        """For p = 0 .. last (inclusive): `row` = byte address of (p, head) in the buffer
        that holds position p (the cache below `past`, the new rows from it on), then
        `body(buffer)`."""
        if self.past:
            cache = bufs[f"{which}_cache"]
            with fb.for_range(p, 0, self.past):
                fb.set(row, cache.addr(p * self.dim) + hoff)
                body(cache)
        new = bufs[which]
        with fb.for_range(p, self.past, last + 1):
            fb.set(row, new.addr((p - self.past) * self.dim) + hoff)
            body(new)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        hd, dim, vec = self.head_dim, self.dim, self.isa == "simd"
        q, out, sc = bufs["q"], bufs["out"], bufs[SCRATCH]
        i, h, p, d = (fb.local(n, "i32") for n in ("i", "h", "p", "d"))
        row, qb, hoff = fb.pointer("row"), fb.local("qb", "i32"), fb.local("hoff", "i32")
        last = fb.local("last", "i32")
        s, mx, total = fb.local("s", "f32"), fb.local("mx", "f32"), fb.local("total", "f32")
        ws = fb.local("ws", "f32")
        nv = hd // simd.LANES if vec else 0
        qv = [fb.local(f"qv{u}", "v128") for u in range(nv)]
        acc, tmp, w = fb.local("acc", "v128"), fb.local("tmp", "v128"), fb.local("w", "v128")
        scale = 1.0 / math.sqrt(hd)

        def score(k: Buffer) -> None:
            """s_p = q[i,h] . K[p,h] * scale into scratch; running max."""
            if vec:
                if nv:
                    fb.set(acc, simd.mul(qv[0], k.load_at(row, "v128")))
                    for u in range(1, nv):
                        fb.set(acc, simd.madd(acc, qv[u], k.load_at(row, "v128", 16 * u)))
                    fb.set(s, simd.hsum(fb, acc, tmp))
                else:
                    fb.set(s, f32(0.0))
                for e in range(nv * simd.LANES, hd):  # tail, unrolled
                    fb.set(s, s + q.load(qb + e) * k.load_at(row, offset=4 * e))
            else:
                fb.set(s, f32(0.0))
                with fb.for_range(d, 0, hd):
                    fb.set(s, s + q.load(qb + d) * k.load_at(row + d * 4))
            fb.set(s, s * scale)
            sc.store(p, s)
            fb.set(mx, mx.max(s))

        def lane(ty: str) -> None:
            """Scalar variant: out[i, h, d] = (sum_p e_p V[p, h, d]) / sum."""
            fb.set(ws, f32(0.0))

            def term(v: Buffer) -> None:
                fb.set(ws, ws + sc.load(p) * v.load_at(row + d * 4))
            self._each_position(fb, bufs, "v", p, row, hoff, last, term)
            out.store(qb + d, ws * total)

        past = self._past(fb)
        with fb.for_range(i, 0, self.t):
            fb.set(last, i + past)  # the last position query i may see
            with fb.for_range(h, 0, self.heads):
                fb.set(hoff, h * (4 * hd))
                fb.set(qb, i * dim + h * hd)  # element index of q[i, h] (and of out[i, h])
                for u in range(nv):
                    fb.set(qv[u], q.load(qb, "v128", 16 * u))
                # 1. scores and their max
                fb.set(mx, f32(float("-inf")))
                self._each_position(fb, bufs, "k", p, row, hoff, last, score)
                # 2. e_p = exp(s_p - max) in place, summed
                fb.set(total, f32(0.0))
                with fb.for_range(p, 0, last + 1):
                    fb.set(s, mathlib.exp(fb, sc.load(p) - mx))
                    sc.store(p, s)
                    fb.set(total, total + s)
                fb.set(total, f32(1.0) / total)
                # 3. weighted sum of V
                if vec:
                    self._weighted_sum_simd(fb, bufs, (p, row, hoff, last, qb), ws, w, total)
                else:
                    with fb.for_range(d, 0, hd):
                        lane("f32")

    def _weighted_sum_simd(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer],
                           ix: tuple[Var, Var, Var, Var, Var], ws: Var, w: Var,
                           total: Var) -> None:
        """One pass over the positions with the whole head's output in registers: one
        f32x4 accumulator per four elements (a splat of e_p shared by all of them) and a
        scalar accumulator per tail element; then out[i, h] = acc / sum."""
        p, row, hoff, last, qb = ix
        hd, out, sc = self.head_dim, bufs["out"], bufs[SCRATCH]
        nv = hd // simd.LANES
        va = [fb.local(f"va{u}", "v128") for u in range(nv)]
        ta = [fb.local(f"ta{e}", "f32") for e in range(nv * simd.LANES, hd)]
        for a in va:
            fb.set(a, simd.zero())
        for a in ta:
            fb.set(a, f32(0.0))

        def term(v: Buffer) -> None:
            fb.set(ws, sc.load(p))
            fb.set(w, simd.splat(ws))
            for u, a in enumerate(va):
                fb.set(a, simd.madd(a, w, v.load_at(row, "v128", 16 * u)))
            for e, a in enumerate(ta, start=nv * simd.LANES):
                fb.set(a, a + ws * v.load_at(row, offset=4 * e))
        self._each_position(fb, bufs, "v", p, row, hoff, last, term)
        fb.set(w, simd.splat(total))
        for u, a in enumerate(va):
            out.store(qb, simd.mul(a, w), "v128", offset=16 * u)
        for e, a in enumerate(ta, start=nv * simd.LANES):
            out.store(qb, a * total, offset=4 * e)


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int,
                        k_cache: np.ndarray | None = None,
                        v_cache: np.ndarray | None = None) -> np.ndarray:
    """Causal attention of t queries at positions past.. over cache + new keys, float64."""
    t, dim = q.shape
    hd = dim // heads
    kk = k if k_cache is None else np.concatenate([k_cache, k])
    vv = v if v_cache is None else np.concatenate([v_cache, v])
    past = len(kk) - t
    q64 = q.astype(np.float64).reshape(t, heads, hd)
    k64 = kk.astype(np.float64).reshape(-1, heads, hd)
    v64 = vv.astype(np.float64).reshape(-1, heads, hd)
    s = np.einsum("ihd,phd->hip", q64, k64) / math.sqrt(hd)
    visible = np.arange(len(kk))[None, :] <= (np.arange(t) + past)[:, None]
    s = np.where(visible[None], s, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    p_ = e / e.sum(axis=-1, keepdims=True)
    return np.einsum("hip,phd->ihd", p_, v64).reshape(t, dim).astype(np.float32)


def attention_tolerance(head_dim: int, length: int) -> Tolerance:
    return Tolerance(rtol=1e-5, atol=5 * (2e-6 * math.sqrt(head_dim) + 6e-8 * length) + 1e-6)


def attention_flops(t: int, past: int, heads: int, head_dim: int) -> int:
    visible = t * past + t * (t + 1) // 2  # (query, key) pairs the causal mask keeps
    return heads * visible * (4 * head_dim + 4)


class AttentionWorkload(Workload):
    NAME = "attention"
    DESCRIPTION = "causal multi-head attention of t queries over past cached + t new keys"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("t", "int", 1, "new tokens (queries)", minimum=1),
        Param("past", "int", 255, "cached positions before them", minimum=0),
        Param("heads", "int", 6, "heads", minimum=1),
        Param("head_dim", "int", 48, "elements per head", minimum=1),
        ISA_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""

    @property
    def dim(self) -> int:
        return int(self.params["heads"] * self.params["head_dim"])

    def build_tensors(self) -> tuple[Tensor, ...]:
        t, past = self.params["t"], self.params["past"]
        cache = (Tensor("k_cache", "weight", (past, self.dim)),
                 Tensor("v_cache", "weight", (past, self.dim))) if past else ()
        return (Tensor("q", "input", (t, self.dim)), Tensor("k", "input", (t, self.dim)),
                Tensor("v", "input", (t, self.dim)), *cache,
                Tensor("out", "output", (t, self.dim)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        p = self.params
        kern = AttentionKernel(p["t"], p["past"], p["heads"], p["head_dim"], p["isa"])
        return (Dispatch("attention", kern, tuple((b.name, b.name) for b in kern.buffers)),)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(t.shape).astype(t.dtype)  # cache rows are activations too

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"out": attention_reference(data["q"], data["k"], data["v"], self.params["heads"],
                                           data.get("k_cache"), data.get("v_cache"))}

    def tolerance(self) -> Tolerance:
        p = self.params
        return attention_tolerance(p["head_dim"], p["past"] + p["t"])

    def flops(self) -> int:
        p = self.params
        return attention_flops(p["t"], p["past"], p["heads"], p["head_dim"])
