"""GEMM: C[m,n] = A[m,k] @ B[k,n] (+ bias[n]) (ReLU), row-major f32.

`isa=simd` (the default: it is what an ML runtime ships, and naive loops hide or
exaggerate what memory costs): the packed SIMD128 microkernel of
`workloads.kernels.packed_gemm` — B and A packed into scratch on every call, then
register tiles of `tile=MRxNR`. Needs the runtime's SIMD128 support; use `isa=scalar`
where there is none.
Tile shapes measured here (256^3, `shared`, wasmtime 50, Intel Xeon Cascade Lake 2.5 GHz,
thread CPU time, benchmarks/bench_gemm.py; GFLOP/s): 4x8 20.5, 2x16 19.9, 2x16-splat 19.2,
4x12 18.8, 3x8 18.7, 2x12 18.7, 4x8-splat 18.0, 3x16 17.9, 2x8 16.5, 4x4 14.0, 1x16 13.9;
scalar 1.55; NumPy 1-thread sgemm 88-99. Default 4x8 (2x16 within 3%). Without FMA,
128-bit mul and add share two ports here, so ~8 FLOP/cycle is the ceiling these reach.
`isa=relaxed`: the same packed kernel with relaxed-SIMD `f32x4.relaxed_madd` (one FMA on
an x86 host with FMA3) in the loop shape `packed_gemm` describes; needs the runtime's
relaxed-SIMD support. Same machine (load ~1.7, CPU time): relaxed 4x8 30.5, 3x8 29.3, 2x16
19.2 (its 8 accumulators and 4 B vectors spill at 3 k steps per iteration), simd 4x8 21.7,
NumPy 107 GFLOP/s. `4x8-rotate` (A rotated, not broadcast: see `packed_gemm`) is 1.4-3%
faster than 4x8 with relaxed SIMD in paired rounds, and no faster without.
`tile=auto` (the default): 4x8-rotate with isa=relaxed, with the placement pad
`packed_gemm` measured for it; 4x8 with isa=simd. At 15:32 on 2026-11-21 (the kernel call
only, pinned, 11 rounds, medians): relaxed 4x8-rotate+5 35.0, 4x8-rotate without the pad
30.5, 4x8 33.4, NumPy 112.2 GFLOP/s: 31.2% of NumPy, 22x scalar.
`isa=scalar`: the i-j-p loop with pointer bumping, one f32 accumulator per output.
Tolerance: the reference is computed in float64 and rounded; a k-term f32 dot product
has error well under k * 1e-6 for N(0,1) inputs and 1/sqrt(k)-scaled weights, so
atol = 1e-6 * k, rtol = 1e-5. A wrong index or missed term errs by O(1). `relaxed_madd`
may round once (fused) or twice (mul, then add) per term, at the runtime's choice: a
fused term's error is at most a non-fused one's, so the same bound holds for both.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, f32
from harness.codegen.kernel import SCRATCH, RowSlice
from harness.core.errors import SpecError
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.clang import TOOLCHAIN_PARAM, ClangKernel, check_clang_isa
from workloads.kernels.isa import isa_features
from workloads.kernels.packed_gemm import PackedGemm, Tile, placed

ISAS = ("scalar", "simd", "relaxed")
#: `tile=auto`: 4x8, with A rotated under relaxed SIMD (see the module doc)
AUTO_TILES = {"simd": Tile(4, 8), "relaxed": Tile(4, 8, "rotate")}


def parse_tile(raw: str) -> str:
    if raw == "auto":
        return raw
    try:
        Tile.parse(raw)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return raw


def tile_param(raw: str) -> Tile | None:
    """A `tile` parameter's value as a Tile; None for `auto` (the kernel's default)."""
    return None if raw == "auto" else Tile.parse(raw)


def kernel_tile(tile: Tile | None, isa: str) -> Tile:
    """The tile a kernel of `isa` runs for `tile` (None: the `auto` one; scalar has none,
    the SIMD default stands in), placement pad included: its label is the one in the
    kernel's name."""
    return placed(tile or AUTO_TILES.get(isa, AUTO_TILES["simd"]), fma=isa == "relaxed")


ISA_PARAM = Param("isa", "choice", "simd", "scalar loops, packed SIMD128 register tiles, or "
                  "those with relaxed-SIMD FMA (relaxed_madd)", choices=ISAS)
TILE_PARAM = Param("tile", "str", "auto",
                   "SIMD register tile MRxNR[-shuffle|-splat|-rotate][+pad] (NR a multiple of "
                   "4; A broadcast by i8x16.shuffle or f32x4.splat, or for MR=4 rotated; +pad: "
                   "code placement pad); auto: 4x8-rotate with isa=relaxed, else 4x8",
                   check=parse_tile)


class GemmKernel(Kernel):
    """GEMM with optional fused bias and ReLU; `isa` "scalar", "simd" or "relaxed" (packed
    tiles, the last with FMA)."""

    def __init__(self, m: int, n: int, k: int, bias: bool = False, relu: bool = False,
                 isa: str = "simd", tile: Tile | None = None) -> None:
        if isa not in ISAS:
            raise ValueError(f"isa must be one of {ISAS}, not {isa!r}")
        self.tile = tile
        tile = kernel_tile(tile, isa)
        self.m, self.n, self.k, self.bias, self.relu, self.isa = m, n, k, bias, relu, isa
        suffix = ("_bias" if bias else "") + ("_relu" if relu else "")
        variant = "scalar" if isa == "scalar" else f"{isa}{tile.label()}"
        self.name = f"gemm_{m}x{n}x{k}{suffix}_{variant}"
        bufs = [BufferParam("a", "r"), BufferParam("b", "r")]
        if bias:
            bufs.append(BufferParam("bias", "r"))
        bufs.append(BufferParam("c", "w"))
        self.buffers = tuple(bufs)
        self.packed = PackedGemm(m, n, k, tile, fma=isa == "relaxed") if isa != "scalar" else None
        if self.packed is not None:
            self.scratch_bytes = self.packed.scratch_bytes(bias)
            self.features = isa_features(isa)

    def splittable_rows(self) -> int:
        return self.m

    def row_slice(self, lo: int, hi: int) -> RowSlice:
        """Rows [lo, hi) of C are A's rows [lo, hi) times all of B (plus the bias)."""
        if not 0 <= lo < hi <= self.m:
            raise ValueError(f"rows [{lo}, {hi}) of a {self.m}-row GEMM")
        part = GemmKernel(hi - lo, self.n, self.k, self.bias, self.relu, self.isa, self.tile)
        return RowSlice(part, (("a", 4 * lo * self.k), ("c", 4 * lo * self.n)))

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        if self.packed is not None:
            g = self.packed
            g.emit(fb, g.pack_a_rowmajor(bufs["a"]), bufs["b"], bufs["c"], bufs[SCRATCH],
                   bufs["bias"] if self.bias else None, self.relu)
            return
        m, n, k = self.m, self.n, self.k
        a, b, c = bufs["a"], bufs["b"], bufs["c"]
        i, j, p = fb.local("i", "i32"), fb.local("j", "i32"), fb.local("p", "i32")
        pa, pb = fb.pointer("pa"), fb.pointer("pb")
        acc = fb.local("acc", "f32")
        with fb.for_range(i, 0, m), fb.for_range(j, 0, n):
            fb.set(acc, bufs["bias"].load(j) if self.bias else f32(0.0))
            fb.set(pa, a.addr(i * k))
            fb.set(pb, b.addr(j))
            with fb.for_range(p, 0, k):
                fb.set(acc, acc + a.load_at(pa) * b.load_at(pb))
                fb.set(pa, pa + 4)
                fb.set(pb, pb + 4 * n)
            c.store(i * n + j, acc.max(0.0) if self.relu else acc)


def gemm_reference(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None,
                   relu: bool = False) -> np.ndarray:
    out = a.astype(np.float64) @ b.astype(np.float64)
    if bias is not None:
        out = out + bias.astype(np.float64)
    if relu:
        out = np.maximum(out, 0.0)
    return out.astype(np.float32)


def gemm_tolerance(k: int) -> Tolerance:
    return Tolerance(rtol=1e-5, atol=1e-6 * k)


class GemmWorkload(Workload):
    NAME = "gemm"
    DESCRIPTION = "C = A @ B, A an input [m,k], B a weight [k,n]"
    PARAMS = (
        Param("m", "int", 64, "rows of A and C", minimum=1),
        Param("n", "int", 64, "columns of B and C", minimum=1),
        Param("k", "int", 64, "reduction length", minimum=1),
        ISA_PARAM,
        TILE_PARAM,
        TOOLCHAIN_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""
    TWIN_PARAM = "toolchain"

    def validate(self) -> None:
        check_clang_isa(self.params)

    def build_tensors(self) -> tuple[Tensor, ...]:
        m, n, k = self.params["m"], self.params["n"], self.params["k"]
        return (Tensor("a", "input", (m, k)), Tensor("b", "weight", (k, n)),
                Tensor("c", "output", (m, n)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        m, n, k = self.params["m"], self.params["n"], self.params["k"]
        kern: Kernel
        if self.params["toolchain"] == "clang":
            kern = ClangKernel("gemm", f"gemm_{m}x{n}x{k}", (
                BufferParam("a", "r"), BufferParam("b", "r"), BufferParam("c", "w")),
                {"M": m, "N": n, "K": k}, self.params["isa"])
        else:
            kern = GemmKernel(m, n, k, isa=self.params["isa"],
                              tile=tile_param(self.params["tile"]))
        return (Dispatch("gemm", kern, (("a", "a"), ("b", "b"), ("c", "c"))),)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"c": gemm_reference(data["a"], data["b"])}

    def tolerance(self) -> Tolerance:
        return gemm_tolerance(self.params["k"])

    def flops(self) -> int:
        return 2 * self.params["m"] * self.params["n"] * self.params["k"]
