"""`transformer-block`: one llama2.c stories15M-shaped transformer block (dim 288, 6 heads of
48, FFN hidden 768), decode (`t=1`) or prefill (`t=256`), one module per dispatch:

    xn = rmsnorm(x, rms_att)                                      rmsnorm
    q, k, v = xn Wq, xn Wk, xn Wv                                 3 projections
    q, k = rope(q), rope(k)                                       2 rope
    a = attention(q, k, v; k_cache, v_cache)                      attention
    h = x + a Wo                                                  projection, add
    hn = rmsnorm(h, rms_ffn)                                      rmsnorm
    y = h + (silu(hn W1) * (hn W3)) W2                            2 projections, silu-mul,
                                                                  projection, add
Fifteen dispatches. Projections are GEMMs (weights [in, out], the packed SIMD GEMM) for
t > 1 and GEMVs for t = 1 (weights [out, in] row-major, llama2.c's `matmul` layout), so
decode streams each weight matrix once, as a real decoder does.

KV cache model: `kv` (default 256) is the context length after this step; the step's t
tokens sit at positions kv-t .. kv-1. The keys and values of the kv-t earlier positions
are the KV cache, two weight-like tensors `k_cache`, `v_cache` [kv-t, 288] (generated
once, N(0,1) like post-RoPE keys; absent in prefill, where kv = t). The step's own keys
and values are intermediates that the attention kernel reads after the cache, so
decode (t=1, kv=256) = 255 cached positions + the new one computed by this step, attended
in full; prefill (t=kv=256) = no cache, causal mask. Writing the new rows back into the
cache is the runtime's bookkeeping outside the block and is not a dispatch here (it would
be a 2*288*4-byte copy per token). The RoPE cos/sin tables for the t positions are
weight-like inputs too (see `workloads.kernels.rope`).

Reference: the same block in float64 NumPy from the f32 inputs and weights.
Tolerance: the errors of the stages (GEMM dot products of length 288 and 768 with
1/sqrt(fan-in) weights: atol 1e-6 * k each; attention: see its kernel; exp in silu and
softmax: < 1 ulp) add up through two residual branches, and rmsnorm divides by the
row's rms, ~1. Summed worst-case stage bounds: atol = 1e-6 * (6*288 + 768) + attention's
+ 1e-5 for the norms ~ 2.7e-3; rtol = 1e-4. Observed maximum errors are ~1e-6 (decode)
and 3.4e-6 (prefill): the bound is loose, but a wrong index, position or mask errs by
O(0.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from harness.core.errors import ShapeError
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.attention import (
    AttentionKernel,
    attention_flops,
    attention_reference,
    attention_tolerance,
)
from workloads.kernels.elementwise import BinaryKernel
from workloads.kernels.gemm import GemmKernel
from workloads.kernels.gemv import GemvKernel
from workloads.kernels.isa import ISA_PARAM
from workloads.kernels.layernorm import EPS, NormKernel
from workloads.kernels.rope import RopeKernel, rope_reference, rope_tables
from workloads.kernels.swiglu import FLOPS_PER_ELEMENT, SiluMulKernel, silu_mul_reference

DIM, HEADS, HIDDEN = 288, 6, 768
HEAD_DIM = DIM // HEADS
#: (weight, input tensor, output tensor, fan-in, fan-out) of every projection, in order
PROJECTIONS = (("wq", "xn", "q", DIM, DIM), ("wk", "xn", "k", DIM, DIM),
               ("wv", "xn", "v", DIM, DIM), ("wo", "att", "o", DIM, DIM),
               ("w1", "hn", "g", DIM, HIDDEN), ("w3", "hn", "u", DIM, HIDDEN),
               ("w2", "s", "f", HIDDEN, DIM))


def block_tensor(t: Tensor, rng: np.random.Generator) -> np.ndarray:
    """A block's data: norm scales near 1 like trained ones, projections N(0, 1/fan-in),
    the rest (inputs, cached keys and values) N(0, 1)."""
    if t.name.startswith("rms_"):
        return (1.0 + 0.1 * rng.standard_normal(t.shape)).astype(t.dtype)
    fan_in = {w: fi for w, _, _, fi, _ in PROJECTIONS}.get(t.name)
    scale = 1.0 / np.sqrt(fan_in) if fan_in else 1.0
    return (rng.standard_normal(t.shape) * scale).astype(t.dtype)


def rms_reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """rmsnorm in float64 (`workloads.kernels.layernorm`'s EPS)."""
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + EPS) * w


class TransformerBlockWorkload(Workload):
    NAME = "transformer-block"
    DESCRIPTION = "llama2.c stories15M block (dim 288, 6 heads, FFN 768) over a KV cache"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("t", "int", 1, "tokens this step: 1 = decode, kv = prefill", minimum=1),
        Param("kv", "int", 256, "context length after this step (cache + t)", minimum=1),
        ISA_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""

    def validate(self) -> None:
        if self.params["t"] > self.params["kv"]:
            raise ShapeError(f"transformer-block: t={self.params['t']} tokens do not fit a "
                             f"context of kv={self.params['kv']}")

    @property
    def t(self) -> int:
        return int(self.params["t"])

    @property
    def past(self) -> int:
        return int(self.params["kv"]) - self.t

    def _weight_shape(self, fan_in: int, fan_out: int) -> tuple[int, int]:
        return (fan_out, fan_in) if self.t == 1 else (fan_in, fan_out)

    def build_tensors(self) -> tuple[Tensor, ...]:
        t = self.t
        ts = [Tensor("x", "input", (t, DIM)),
              Tensor("rms_att", "weight", (DIM,)), Tensor("rms_ffn", "weight", (DIM,)),
              Tensor("rope_cos", "weight", (t, HEAD_DIM)),
              Tensor("rope_sin", "weight", (t, HEAD_DIM))]
        if self.past:
            ts += [Tensor("k_cache", "weight", (self.past, DIM)),
                   Tensor("v_cache", "weight", (self.past, DIM))]
        for w, _, out, fan_in, fan_out in PROJECTIONS:
            ts.append(Tensor(w, "weight", self._weight_shape(fan_in, fan_out)))
            ts.append(Tensor(out, "intermediate", (t, fan_out)))
        ts += [Tensor(n, "intermediate", (t, DIM)) for n in ("xn", "qr", "kr", "att", "h", "hn")]
        ts += [Tensor("s", "intermediate", (t, HIDDEN)), Tensor("y", "output", (t, DIM))]
        return tuple(ts)

    def _projection(self, w: str, src: str, dst: str, fan_in: int, fan_out: int) -> Dispatch:
        isa = self.params["isa"]
        if self.t == 1:
            return Dispatch(f"proj_{w}", GemvKernel(fan_out, fan_in, isa),
                            (("w", w), ("x", src), ("y", dst)))
        return Dispatch(f"proj_{w}", GemmKernel(self.t, fan_out, fan_in, isa=isa),
                        (("a", src), ("b", w), ("c", dst)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        t, isa = self.t, self.params["isa"]
        proj = {p[0]: self._projection(*p) for p in PROJECTIONS}
        norm = NormKernel("rms", t, DIM, isa)
        rope = RopeKernel(t, HEADS, HEAD_DIM, isa)
        attn = AttentionKernel(t, self.past, HEADS, HEAD_DIM, isa)
        cache = (("k_cache", "k_cache"), ("v_cache", "v_cache")) if self.past else ()
        return (
            Dispatch("rmsnorm_att", norm, (("x", "x"), ("weight", "rms_att"), ("y", "xn"))),
            proj["wq"], proj["wk"], proj["wv"],
            Dispatch("rope_q", rope, (("x", "q"), ("cos", "rope_cos"), ("sin", "rope_sin"),
                                      ("y", "qr"))),
            Dispatch("rope_k", rope, (("x", "k"), ("cos", "rope_cos"), ("sin", "rope_sin"),
                                      ("y", "kr"))),
            Dispatch("attention", attn, (("q", "qr"), ("k", "kr"), ("v", "v"), *cache,
                                         ("out", "att"))),
            proj["wo"],
            Dispatch("residual_att", BinaryKernel("add", t * DIM, isa, ("x", "o", "h")),
                     (("x", "x"), ("o", "o"), ("h", "h"))),
            Dispatch("rmsnorm_ffn", norm, (("x", "h"), ("weight", "rms_ffn"), ("y", "hn"))),
            proj["w1"], proj["w3"],
            Dispatch("silu_mul", SiluMulKernel(t * HIDDEN, isa), (("g", "g"), ("u", "u"),
                                                                  ("h", "s"))),
            proj["w2"],
            Dispatch("residual_ffn", BinaryKernel("add", t * DIM, isa, ("h", "f", "y")),
                     (("h", "h"), ("f", "f"), ("y", "y"))),
        )

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        return block_tensor(t, rng)

    def generate(self, seed: int) -> dict[str, np.ndarray]:
        data = super().generate(seed)
        data["rope_cos"], data["rope_sin"] = rope_tables(np.arange(self.past, self.past + self.t),
                                                         HEAD_DIM)
        return data

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        f64 = {k: v.astype(np.float64) for k, v in data.items()}

        def proj(w: str, x: np.ndarray) -> np.ndarray:
            return x @ (f64[w].T if self.t == 1 else f64[w])

        x = f64["x"]
        xn = rms_reference(x, f64["rms_att"])
        q, k, v = proj("wq", xn), proj("wk", xn), proj("wv", xn)
        q = rope_reference(q, data["rope_cos"], data["rope_sin"], HEADS)
        k = rope_reference(k, data["rope_cos"], data["rope_sin"], HEADS)
        att = attention_reference(q, k, v, HEADS, data.get("k_cache"), data.get("v_cache"))
        h = x + proj("wo", att.astype(np.float64))
        hn = rms_reference(h, f64["rms_ffn"])
        s = silu_mul_reference(proj("w1", hn), proj("w3", hn)).astype(np.float64)
        return {"y": (h + proj("w2", s)).astype(np.float32)}

    def tolerance(self) -> Tolerance:
        att = attention_tolerance(HEAD_DIM, self.past + self.t)
        return Tolerance(rtol=1e-4, atol=1e-6 * (6 * DIM + HIDDEN) + att.atol + 1e-5)

    def flops(self) -> int:
        t = self.t
        projections = sum(2 * t * fi * fo for _, _, _, fi, fo in PROJECTIONS)
        norms = 2 * 4 * t * DIM
        rope = 2 * 3 * t * DIM
        residual = 2 * t * DIM
        return (projections + norms + rope + residual + FLOPS_PER_ELEMENT * t * HIDDEN
                + attention_flops(t, self.past, HEADS, HEAD_DIM))
