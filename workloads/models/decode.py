"""`decode`: autoregressive decoding of `tokens` tokens through the stories15M transformer
block (`workloads.models.transformer`), over a KV cache that starts empty and grows.

Token i runs the block's sixteen dispatches at position i, its input the block's output
for token i-1 (the input `x` for token 0):

    xn = rmsnorm(x_i); q, k, v = xn Wq, xn Wk, xn Wv; q, k = rope(q, k; position i)
    kv_cache[i] = (k, v)                                              kv_append
    a = attention(q; kv_cache[0 .. i-1], k, v)                        attention
    h = x_i + a Wo; y_i = h + (silu(rmsnorm(h) W1) * (rmsnorm(h) W3)) W2

The KV cache `kv_cache` [tokens, 2, 288] (`workloads.kernels.kv_cache`) is the tensor that
grows: token i's append uses its first i+1 rows and its attention the first i
(`extents`). A strategy holds it last in its memory and grows that memory before the
token that needs another page, every module instantiated: under `shared` and
`multi-memory` the heap every module imports, under `per-module` the memories of the
executables that hold it (and the copies of it grow too), under `host-call` the host's
heap. Every token's output `y{i}` is an output, checked against NumPy.

The sixteen steps are sixteen executables, each loaded once and dispatched once per token
(`Dispatch.executable`); the cache position is a scalar argument of the append and the
attention, the RoPE tables of position i are weights `rope_cos{i}`, `rope_sin{i}`.

Reference: the same decode in float64 NumPy (each token's input the reference's own
previous output, rounded to f32 as the wasm side's is). Tolerance: the block's
(`transformer-block`), twice over: the residual stream carries each token's error into
the next, and rmsnorm keeps it from growing past the next token's own. Observed errors
are ~1e-6.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import Kernel
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.attention import attention_flops, attention_reference, attention_tolerance
from workloads.kernels.elementwise import BinaryKernel
from workloads.kernels.gemv import GemvKernel
from workloads.kernels.isa import ISA_PARAM
from workloads.kernels.kv_cache import CachedAttentionKernel, KvAppendKernel
from workloads.kernels.layernorm import NormKernel
from workloads.kernels.rope import RopeKernel, rope_reference, rope_tables
from workloads.kernels.swiglu import FLOPS_PER_ELEMENT, SiluMulKernel, silu_mul_reference
from workloads.models.transformer import (
    DIM,
    HEAD_DIM,
    HEADS,
    HIDDEN,
    PROJECTIONS,
    block_tensor,
    rms_reference,
)

#: bytes of one position's key and value in the cache
ROW = 2 * DIM * 4


class DecodeWorkload(Workload):
    NAME = "decode"
    DESCRIPTION = ("autoregressive decode of N tokens through the stories15M block, over a "
                   "KV cache that grows (memories grow under live modules)")
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("tokens", "int", 32, "tokens decoded per inference (the cache's final length)",
              minimum=1, maximum=4096),
        ISA_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""

    @property
    def n(self) -> int:
        return int(self.params["tokens"])

    @staticmethod
    def _input(i: int) -> str:
        return "x" if i == 0 else f"y{i - 1}"

    def build_tensors(self) -> tuple[Tensor, ...]:
        ts = [Tensor("x", "input", (1, DIM)),
              Tensor("rms_att", "weight", (DIM,)), Tensor("rms_ffn", "weight", (DIM,))]
        ts += [Tensor(w, "weight", (fan_out, fan_in)) for w, _, _, fan_in, fan_out in PROJECTIONS]
        for i in range(self.n):
            ts += [Tensor(f"rope_cos{i}", "weight", (1, HEAD_DIM)),
                   Tensor(f"rope_sin{i}", "weight", (1, HEAD_DIM))]
            ts += [Tensor(f"{out}{i}", "intermediate", (1, fan_out))
                   for _, _, out, _, fan_out in PROJECTIONS]
            ts += [Tensor(f"{n}{i}", "intermediate", (1, DIM))
                   for n in ("xn", "qr", "kr", "att", "h", "hn")]
            ts += [Tensor(f"s{i}", "intermediate", (1, HIDDEN)), Tensor(f"y{i}", "output", (1, DIM))]
        ts.append(Tensor("kv_cache", "intermediate", (self.n, 2, DIM)))
        return tuple(ts)

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return tuple(d for i in range(self.n) for d in self._token(i))

    def _token(self, i: int) -> list[Dispatch]:
        """Token i's sixteen dispatches, each on the executable named by its step."""
        isa = self.params["isa"]
        x = self._input(i)
        out: list[Dispatch] = []

        def step(name: str, kernel: Kernel, bindings: tuple[tuple[str, str], ...],
                 scalars: tuple[tuple[str, int], ...] = ()) -> None:
            out.append(Dispatch(f"t{i}.{name}", kernel, bindings, scalars, executable=name))

        def proj(w: str, src: str, dst: str, fan_in: int, fan_out: int) -> None:
            step(f"proj_{w}", GemvKernel(fan_out, fan_in, isa),
                 (("w", w), ("x", f"{src}{i}"), ("y", f"{dst}{i}")))

        p = {w[0]: w for w in PROJECTIONS}
        norm = NormKernel("rms", 1, DIM, isa)
        rope = RopeKernel(1, HEADS, HEAD_DIM, isa)
        rope_tabs = (("cos", f"rope_cos{i}"), ("sin", f"rope_sin{i}"))
        step("rmsnorm_att", norm, (("x", x), ("weight", "rms_att"), ("y", f"xn{i}")))
        for w in ("wq", "wk", "wv"):
            proj(*p[w])
        step("rope_q", rope, (("x", f"q{i}"), *rope_tabs, ("y", f"qr{i}")))
        step("rope_k", rope, (("x", f"k{i}"), *rope_tabs, ("y", f"kr{i}")))
        step("kv_append", KvAppendKernel(DIM, self.n, isa),
             (("k", f"kr{i}"), ("v", f"v{i}"), ("kv_cache", "kv_cache")), (("pos", i),))
        step("attention", CachedAttentionKernel(self.n, HEADS, HEAD_DIM, isa),
             (("q", f"qr{i}"), ("k", f"kr{i}"), ("v", f"v{i}"), ("kv_cache", "kv_cache"),
              ("out", f"att{i}")), (("past", i),))
        proj(*p["wo"])
        step("residual_att", BinaryKernel("add", DIM, isa, ("x", "o", "h")),
             (("x", x), ("o", f"o{i}"), ("h", f"h{i}")))
        step("rmsnorm_ffn", norm, (("x", f"h{i}"), ("weight", "rms_ffn"), ("y", f"hn{i}")))
        proj(*p["w1"])
        proj(*p["w3"])
        step("silu_mul", SiluMulKernel(HIDDEN, isa),
             (("g", f"g{i}"), ("u", f"u{i}"), ("h", f"s{i}")))
        proj(*p["w2"])
        step("residual_ffn", BinaryKernel("add", DIM, isa, ("h", "f", "y")),
             (("h", f"h{i}"), ("f", f"f{i}"), ("y", f"y{i}")))
        return out

    def extents(self) -> dict[str, tuple[int, ...]]:
        """kv_cache: token i's append uses rows 0..i, its attention rows 0..i-1."""
        rows = {"kv_append": 1, "attention": 0}
        per_token = len(self.dispatches) // self.n
        return {"kv_cache": tuple((k // per_token + rows[d.instance]) * ROW
                                  if d.instance in rows else 0
                                  for k, d in enumerate(self.dispatches))}

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        return block_tensor(t, rng)

    def generate(self, seed: int) -> dict[str, np.ndarray]:
        data = super().generate(seed)
        for i in range(self.n):
            data[f"rope_cos{i}"], data[f"rope_sin{i}"] = rope_tables(np.array([i]), HEAD_DIM)
        return data

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        f64 = {k: v.astype(np.float64) for k, v in data.items()}

        def proj(w: str, x: np.ndarray) -> np.ndarray:
            return x @ f64[w].T

        out: dict[str, np.ndarray] = {}
        keys: list[np.ndarray] = []
        values: list[np.ndarray] = []
        x = f64["x"]
        for i in range(self.n):
            cos, sin = data[f"rope_cos{i}"], data[f"rope_sin{i}"]
            xn = rms_reference(x, f64["rms_att"])
            q = rope_reference(proj("wq", xn), cos, sin, HEADS)
            k = rope_reference(proj("wk", xn), cos, sin, HEADS)
            v = proj("wv", xn).astype(np.float32)
            att = attention_reference(q, k, v, HEADS, np.concatenate(keys) if keys else None,
                                      np.concatenate(values) if values else None)
            keys.append(k)
            values.append(v)
            h = x + proj("wo", att.astype(np.float64))
            hn = rms_reference(h, f64["rms_ffn"])
            s = silu_mul_reference(proj("w1", hn), proj("w3", hn)).astype(np.float64)
            out[f"y{i}"] = (h + proj("w2", s)).astype(np.float32)
            x = out[f"y{i}"].astype(np.float64)
        return out

    def tolerance(self) -> Tolerance:
        att = attention_tolerance(HEAD_DIM, self.n)
        return Tolerance(rtol=2e-4, atol=2 * (1e-6 * (6 * DIM + HIDDEN) + att.atol + 1e-5))

    def flops(self) -> int:
        per_token = (sum(2 * fi * fo for _, _, _, fi, fo in PROJECTIONS) + 2 * 4 * DIM
                     + 2 * 3 * DIM + 2 * DIM + FLOPS_PER_ELEMENT * HIDDEN)
        return sum(per_token + attention_flops(1, i, HEADS, HEAD_DIM) for i in range(self.n))
