"""A decode's KV cache: append a token's key and value, attend over the cache so far.

The cache is one tensor `kv_cache` [max_len, 2, dim]: row p holds position p's key
(elements 0 .. dim-1) and value (dim .. 2*dim-1) side by side, so the cache grows at its
end one row per token and a memory holding it last grows with it. Both kernels take the
position as a scalar argument (`Kernel.scalars`), so one module serves every token, as
one loaded executable of an ML runtime does.

* `KvAppendKernel`: kv_cache[pos] = (k, v). It writes one row of a tensor it otherwise
  leaves alone, so its access to the cache is read-write ("rw"): a strategy that copies
  tensors in and out of a module copies the rows in use both ways.
* `CachedAttentionKernel`: one query (t = 1) at position `past` attends over the cache's
  rows 0 .. past-1 and its own key and value (`AttentionKernel`'s arithmetic, the same
  tolerance); scratch holds max_len scores.

Tolerance: the append copies bits (exact); attention as `workloads.kernels.attention`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, Var, simd
from harness.codegen.expr import Operand
from workloads.kernels.attention import AttentionKernel
from workloads.kernels.isa import isa_features


class KvAppendKernel(Kernel):
    """Buffers k, v (r) [1, dim] and kv_cache (rw) [max_len, 2, dim]; scalar pos."""

    scalars = ("pos",)

    def __init__(self, dim: int, max_len: int, isa: str) -> None:
        self.dim, self.max_len, self.isa = dim, max_len, isa
        self.name = f"kv_append_{max_len}x{dim}_{isa}"
        self.buffers = (BufferParam("k", "r"), BufferParam("v", "r"),
                        BufferParam("kv_cache", "rw"))
        self.features = isa_features(isa)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        k, v, cache = bufs["k"], bufs["v"], bufs["kv_cache"]
        dim = self.dim
        row, i = fb.local("row", "i32"), fb.local("i", "i32")
        fb.set(row, self.scalar(fb, "pos") * (2 * dim))  # element index of row pos

        def copy(ty: str) -> Callable[[], None]:
            def body() -> None:
                cache.store(row + i, k.load(i, ty), ty)
                cache.store(row + i + dim, v.load(i, ty), ty)
            return body
        if self.isa == "scalar":
            with fb.for_range(i, 0, dim):
                copy("f32")()
            return
        simd.for_lanes(fb, i, dim, copy("v128"), copy("f32"))


class CachedAttentionKernel(AttentionKernel):
    """Buffers q, k, v (r) [1, dim], kv_cache (r) [max_len, 2, dim], out (w); scalar
    past (the query's position: the cache rows before it are attended)."""

    scalars = ("past",)

    def __init__(self, max_len: int, heads: int, head_dim: int, isa: str) -> None:
        super().__init__(1, max_len - 1, heads, head_dim, isa)  # scratch: max_len scores
        self.max_len = max_len
        self.name = f"attention_kv{max_len}_{heads}x{head_dim}_{isa}"
        self.buffers = (BufferParam("q", "r"), BufferParam("k", "r"), BufferParam("v", "r"),
                        BufferParam("kv_cache", "r"), BufferParam("out", "w"))

    def _past(self, fb: FunctionBuilder) -> Operand:
        past = fb.local("past", "i32")
        fb.set(past, self.scalar(fb, "past"))
        return past

    def _each_position(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer], which: str,
                       p: Var, row: Var, hoff: Var, last: Var,
                       body: Callable[[Buffer], None]) -> None:
        """Positions 0 .. last-1 from the cache's rows (key or value half), then position
        `last` from the query's own k or v."""
        cache = bufs["kv_cache"]
        half = 0 if which == "k" else self.dim
        with fb.for_range(p, 0, last):
            fb.set(row, cache.addr(p * (2 * self.dim) + half) + hoff)
            body(cache)
        fb.set(p, last)
        fb.set(row, bufs[which].addr(0) + hoff)
        body(bufs[which])
