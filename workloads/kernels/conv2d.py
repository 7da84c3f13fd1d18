"""conv2d: NHWC convolution with HWIO weights, stride, zero padding, fused bias (+ ReLU).

y[b, oy, ox, co] = relu(bias[co] + sum_{ky,kx,ci} x[b, oy*s-p+ky, ox*s-p+kx, ci] * w[ky,kx,ci,co])

A convolution is the GEMM C[M,N] = A[M,K] @ B[K,N] with M = batch*oh*ow output pixels,
N = cout, K = kh*kw*cin, B = the HWIO weights read as [K, cout] (no copy), and A the
im2col matrix: row (b,oy,ox) holds the receptive field, zeros where it overhangs.

`isa=simd` (default): im2col is fused into the A packing of the shared packed SIMD128
GEMM (`workloads.kernels.packed_gemm`), writing the receptive fields straight into the
packed MR-row tiles in scratch, so the same register-tiled microkernel does the work and
packing is inside every measured call. `isa=relaxed`: the same with the GEMM's
relaxed-SIMD FMA microkernel (see `workloads.kernels.gemm`). `isa=scalar`: direct loops,
one f32 accumulator per output.

Tolerance: the reference is im2col @ weights in float64, rounded to f32; a K-term f32
dot product of N(0,1) inputs and 1/sqrt(K)-scaled weights errs well under K * 1e-6, so
atol = 1e-6 * K, rtol = 1e-5 (as GEMM). A wrong tap or missed term errs by O(1/sqrt(K)).
FLOPs per inference: 2*M*N*K multiply-adds plus M*N bias adds (ReLU not counted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import ClassVar

import numpy as np

from harness.codegen import Buffer, BufferParam, Expr, FunctionBuilder, Kernel, Var, f32, i32, op
from harness.codegen.kernel import SCRATCH, RowSlice
from harness.core.errors import ShapeError
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.clang import TOOLCHAIN_PARAM, ClangKernel, check_clang_isa
from workloads.kernels.gemm import ISA_PARAM, TILE_PARAM, gemm_tolerance, kernel_tile, tile_param
from workloads.kernels.isa import isa_features
from workloads.kernels.packed_gemm import PackedGemm, Tile
from workloads.kernels.window import window_params

UNROLL_CIN = 16  # receptive-field rows up to this many channels are copied unrolled

Tap = Callable[[int, int, Var], None]
NoTap = Callable[[int, int], None]


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, pad: int) -> np.ndarray:
    """[batch, h, w, cin] -> [batch*oh*ow, kh*kw*cin], rows ordered (b, oy, ox), cols (ky, kx, ci)."""
    b, h, w, c = x.shape
    oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    cols = np.empty((b, oh, ow, kh, kw, c), dtype=x.dtype)
    for ky in range(kh):
        for kx in range(kw):
            cols[:, :, :, ky, kx, :] = xp[:, ky:ky + stride * oh:stride,
                                          kx:kx + stride * ow:stride, :]
    return cols.reshape(b * oh * ow, kh * kw * c)


def conv2d_reference(x: np.ndarray, w: np.ndarray, bias: np.ndarray, stride: int, pad: int,
                     relu: bool) -> np.ndarray:
    kh, kw, _, cout = w.shape
    b, h, wd, _ = x.shape
    oh, ow = out_size(h, kh, stride, pad), out_size(wd, kw, stride, pad)
    out = im2col(x.astype(np.float64), kh, kw, stride, pad) @ \
        w.astype(np.float64).reshape(-1, cout) + bias.astype(np.float64)
    if relu:
        out = np.maximum(out, 0.0)
    return out.reshape(b, oh, ow, cout).astype(np.float32)


class Conv2dKernel(Kernel):
    """NHWC conv2d + bias (+ ReLU); shapes are compile-time constants."""

    def __init__(self, batch: int, h: int, w: int, cin: int, cout: int, kh: int, kw: int,
                 stride: int = 1, pad: int = 0, relu: bool = True, isa: str = "simd",
                 tile: Tile | None = None, rows: tuple[int, int] | None = None) -> None:
        self.batch, self.h, self.w, self.cin, self.cout = batch, h, w, cin, cout
        self.kh, self.kw, self.stride, self.pad, self.relu = kh, kw, stride, pad, relu
        self.oh, self.ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
        if self.oh < 1 or self.ow < 1:
            raise ShapeError(f"conv2d: a {kh}x{kw} kernel with padding {pad} does not fit a "
                             f"{h}x{w} input")
        #: the output rows [lo, hi) this kernel computes, of one image (`row_slice`): its y
        #: address is that of row lo; x is the whole image
        self.rows = rows or (0, self.oh)
        self.isa, self.tile = isa, tile
        tile = kernel_tile(tile, isa)
        variant = "scalar" if isa == "scalar" else f"{isa}{tile.label()}"
        part = f"_rows{self.rows[0]}-{self.rows[1]}" if rows else ""
        self.name = (f"conv2d_{batch}x{h}x{w}x{cin}_k{kh}x{kw}s{stride}p{pad}_{cout}"
                     f"{'_relu' if relu else ''}{part}_{variant}")
        self.buffers = (BufferParam("x", "r"), BufferParam("w", "r"), BufferParam("bias", "r"),
                        BufferParam("y", "w"))
        m, k = batch * (self.rows[1] - self.rows[0]) * self.ow, kh * kw * cin
        self.packed = PackedGemm(m, cout, k, tile, fma=isa == "relaxed") \
            if isa != "scalar" else None
        if self.packed is not None:
            self.scratch_bytes = self.packed.scratch_bytes(bias=True)
            self.features = isa_features(isa)

    def splittable_rows(self) -> int:
        """An image's output rows (one image: with more, a row band is not contiguous)."""
        return self.oh if self.batch == 1 and self.rows == (0, self.oh) else 0

    def row_slice(self, lo: int, hi: int) -> RowSlice:
        """Output rows [lo, hi): the same convolution over the whole input, its y address
        at row lo (NHWC: a band of rows is contiguous)."""
        if not self.splittable_rows() or not 0 <= lo < hi <= self.oh:
            raise ValueError(f"rows [{lo}, {hi}) of {self.name}")
        part = Conv2dKernel(self.batch, self.h, self.w, self.cin, self.cout, self.kh, self.kw,
                            self.stride, self.pad, self.relu, self.isa, self.tile, (lo, hi))
        return RowSlice(part, (("y", 4 * lo * self.ow * self.cout),))

    # -- shared loop nest over output pixels ------------------------------------------
    def _pixels(self, fb: FunctionBuilder, x: Buffer, body: Callable[[], None]) -> None:
        """for b, oy, ox: set `px` to the byte address of input pixel (oy*s-p, ox*s-p) of
        image b (wrapping below zero is fine: it is only dereferenced after bounds checks),
        `iy0`/`ix0` to its coordinates, then emit `body`."""
        b, oy, ox = fb.local("cv_b", "i32"), fb.local("cv_oy", "i32"), fb.local("cv_ox", "i32")
        iy0, ix0, px = fb.local("cv_iy0", "i32"), fb.local("cv_ix0", "i32"), fb.pointer("cv_px")
        s, p, cin = self.stride, self.pad, self.cin
        with fb.for_range(b, 0, self.batch), fb.for_range(oy, *self.rows):
            fb.set(iy0, oy * s - p)
            with fb.for_range(ox, 0, self.ow):
                fb.set(ix0, ox * s - p)
                fb.set(px, x.ptr + ((b * self.h + iy0) * self.w + ix0) * (4 * cin))
                body()

    def _taps(self, fb: FunctionBuilder, inside: Tap, outside: NoTap) -> None:
        """For every (ky, kx), unrolled: `inside(ky, kx, src)` where the tap is in the
        image (`src` = address of its first channel), else `outside(ky, kx)`."""
        iy0, ix0, px = fb.local("cv_iy0", "i32"), fb.local("cv_ix0", "i32"), fb.pointer("cv_px")
        src = fb.pointer("cv_src")
        for ky in range(self.kh):
            iy_ok = op("i32.lt_u", iy0 + ky, i32(self.h), ty="i32") if self._may_clip_y(ky) else None
            self._if_else(fb, iy_ok,
                          partial(self._row_taps, fb, ky, ix0, px, src, inside, outside),
                          partial(self._no_row, ky, outside))

    def _no_row(self, ky: int, outside: NoTap) -> None:
        for kx in range(self.kw):
            outside(ky, kx)

    def _row_taps(self, fb: FunctionBuilder, ky: int, ix0: Var, px: Var, src: Var,
                  inside: Tap, outside: NoTap) -> None:
        for kx in range(self.kw):
            ix_ok = op("i32.lt_u", ix0 + kx, i32(self.w), ty="i32") if self._may_clip_x(kx) else None

            def tap(kx: int = kx) -> None:
                fb.set(src, px + (ky * self.w + kx) * 4 * self.cin)
                inside(ky, kx, src)
            self._if_else(fb, ix_ok, tap, partial(outside, ky, kx))

    def _may_clip_y(self, ky: int) -> bool:
        """Whether some output row's tap ky falls outside the image (else no check)."""
        lo, hi = self.rows
        return lo * self.stride - self.pad + ky < 0 or \
            (hi - 1) * self.stride - self.pad + ky >= self.h

    def _may_clip_x(self, kx: int) -> bool:
        return kx - self.pad < 0 or (self.ow - 1) * self.stride - self.pad + kx >= self.w

    @staticmethod
    def _if_else(fb: FunctionBuilder, cond: Expr | None, then: Callable[[], object],
                 other: Callable[[], object]) -> None:
        """`then()` where `cond` holds, `other()` where not (`then()` alone if cond is None)."""
        if cond is None:
            then()
            return
        with fb.if_(cond):
            then()
        with fb.if_(op("i32.eqz", cond, ty="i32")):
            other()

    # -- bodies -------------------------------------------------------------------------
    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        if self.packed is not None:
            g = self.packed
            x = bufs["x"]

            def pack(fb: FunctionBuilder, scratch: Buffer, dst: Var) -> None:
                self._pack_im2col(fb, x, scratch, dst)
            g.emit(fb, pack, bufs["w"], bufs["y"], bufs[SCRATCH], bufs["bias"], self.relu)
            return
        self._emit_scalar(fb, bufs)

    def _pack_im2col(self, fb: FunctionBuilder, xb: Buffer, scratch: Buffer, dst: Var) -> None:
        """Write every pixel's receptive field into its row of the packed A tiles."""
        assert self.packed is not None
        mr, k, cin = self.packed.tile.mr, self.packed.k, self.cin
        tb, r, d = fb.pointer("im_tb"), fb.local("im_r", "i32"), fb.pointer("im_d")
        ci, cs, cd = fb.local("im_ci", "i32"), fb.pointer("im_cs"), fb.pointer("im_cd")
        zero = f32(0.0)
        fb.set(tb, dst)
        fb.set(r, 0)

        def seg(ky: int, kx: int) -> int:
            return 4 * mr * (ky * self.kw + kx) * cin  # byte offset of the tap in the row

        def copy(ky: int, kx: int, src: Var) -> None:
            if cin <= UNROLL_CIN:
                for c in range(cin):
                    scratch.store_at(d, xb.load_at(src, "f32", 4 * c), "f32", seg(ky, kx) + 4 * mr * c)
                return
            fb.set(cs, src)
            fb.set(cd, d + seg(ky, kx))
            with fb.for_range(ci, 0, cin):
                scratch.store_at(cd, xb.load_at(cs, "f32"), "f32")
                fb.set(cs, cs + 4)
                fb.set(cd, cd + 4 * mr)

        def zeros(ky: int, kx: int) -> None:
            if cin <= UNROLL_CIN:
                for c in range(cin):
                    scratch.store_at(d, zero, "f32", seg(ky, kx) + 4 * mr * c)
                return
            fb.set(cd, d + seg(ky, kx))
            with fb.for_range(ci, 0, cin):
                scratch.store_at(cd, zero, "f32")
                fb.set(cd, cd + 4 * mr)

        def pixel() -> None:
            fb.set(d, tb + r * 4)
            self._taps(fb, copy, zeros)
            fb.set(r, r + 1)
            with fb.if_(r.eq(mr)):
                fb.set(r, 0)
                fb.set(tb, tb + 4 * mr * k)

        self._pixels(fb, xb, pixel)
        # rows past M in the last tile are zero (their outputs are never stored)
        m_tail = self.packed.m % mr
        if m_tail:
            p = fb.local("im_p", "i32")
            fb.set(d, tb + 0)
            with fb.for_range(p, 0, k):
                for rr in range(m_tail, mr):
                    scratch.store_at(d, zero, "f32", 4 * rr)
                fb.set(d, d + 4 * mr)

    def _emit_scalar(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        x, wt, bias, y = bufs["x"], bufs["w"], bufs["bias"], bufs["y"]
        cin, cout = self.cin, self.cout
        co, ci = fb.local("sc_co", "i32"), fb.local("sc_ci", "i32")
        acc, py = fb.local("sc_acc", "f32"), fb.pointer("sc_py")
        xs, ws = fb.pointer("sc_xs"), fb.pointer("sc_ws")
        fb.set(py, y.ptr + 0)

        def tap(ky: int, kx: int, src: Var) -> None:
            fb.set(xs, src)
            fb.set(ws, wt.addr(co + (ky * self.kw + kx) * cin * cout))
            with fb.for_range(ci, 0, cin):
                fb.set(acc, acc + x.load_at(xs) * wt.load_at(ws))
                fb.set(xs, xs + 4)
                fb.set(ws, ws + 4 * cout)

        def pixel() -> None:
            with fb.for_range(co, 0, cout):
                fb.set(acc, bias.load(co))
                self._taps(fb, tap, lambda ky, kx: None)
                y.store_at(py, acc.max(0.0) if self.relu else acc)
                fb.set(py, py + 4)

        self._pixels(fb, x, pixel)


GEOMETRY = window_params(h=32, w=32, kernel=(3, 3), stride=1, pad=1)


class Conv2dWorkload(Workload):
    NAME = "conv2d"
    DESCRIPTION = "NHWC conv2d (HWIO weights), stride, zero padding, fused bias + ReLU"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("batch", "int", 1, "images per inference", minimum=1),
        *GEOMETRY.size,
        Param("cin", "int", 16, "input channels", minimum=1),
        Param("cout", "int", 16, "output channels", minimum=1),
        *GEOMETRY.window,
        Param("relu", "bool", True, "fuse ReLU after the bias"),
        ISA_PARAM,
        TILE_PARAM,
        TOOLCHAIN_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""
    TWIN_PARAM = "toolchain"

    def validate(self) -> None:
        p = self.params
        check_clang_isa(p)
        for size, k, axis in ((p["h"], p["kh"], "height"), (p["w"], p["kw"], "width")):
            if out_size(size, k, p["stride"], p["pad"]) < 1:
                raise ShapeError(f"conv2d: kernel {axis} {k} exceeds the padded input "
                                 f"{axis} {size} + 2*{p['pad']}")

    @property
    def out_hw(self) -> tuple[int, int]:
        p = self.params
        return (out_size(p["h"], p["kh"], p["stride"], p["pad"]),
                out_size(p["w"], p["kw"], p["stride"], p["pad"]))

    def build_tensors(self) -> tuple[Tensor, ...]:
        p = self.params
        oh, ow = self.out_hw
        return (Tensor("x", "input", (p["batch"], p["h"], p["w"], p["cin"])),
                Tensor("w", "weight", (p["kh"], p["kw"], p["cin"], p["cout"])),
                Tensor("bias", "weight", (p["cout"],)),
                Tensor("y", "output", (p["batch"], oh, ow, p["cout"])))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        p = self.params
        bindings = (("x", "x"), ("w", "w"), ("bias", "bias"), ("y", "y"))
        if p["toolchain"] == "clang":
            oh, ow = self.out_hw
            shape = (f"conv2d_{p['batch']}x{p['h']}x{p['w']}x{p['cin']}_{p['cout']}_"
                     f"k{p['kh']}x{p['kw']}s{p['stride']}p{p['pad']}{'_relu' if p['relu'] else ''}")
            return (Dispatch("conv2d", ClangKernel("conv2d", shape, (
                BufferParam("x", "r"), BufferParam("w", "r"), BufferParam("bias", "r"),
                BufferParam("y", "w")), {
                "B": p["batch"], "H": p["h"], "W": p["w"], "CIN": p["cin"], "COUT": p["cout"],
                "KH": p["kh"], "KW": p["kw"], "S": p["stride"], "P": p["pad"], "OH": oh,
                "OW": ow, "RELU": int(p["relu"])}, p["isa"]), bindings),)
        kern = Conv2dKernel(p["batch"], p["h"], p["w"], p["cin"], p["cout"], p["kh"], p["kw"],
                            p["stride"], p["pad"], p["relu"], p["isa"], tile_param(p["tile"]))
        return (Dispatch("conv2d", kern,
                         (("x", "x"), ("w", "w"), ("bias", "bias"), ("y", "y"))),)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        if t.name == "w":  # scaled by 1/sqrt(fan-in) = 1/sqrt(kh*kw*cin)
            fan_in = t.shape[0] * t.shape[1] * t.shape[2]
            return (rng.standard_normal(t.shape) / np.sqrt(fan_in)).astype(t.dtype)
        return super().generate_tensor(t, rng)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        p = self.params
        return {"y": conv2d_reference(data["x"], data["w"], data["bias"], p["stride"], p["pad"],
                                      p["relu"])}

    def tolerance(self) -> Tolerance:
        p = self.params
        return gemm_tolerance(p["kh"] * p["kw"] * p["cin"])

    def flops(self) -> int:
        p = self.params
        oh, ow = self.out_hw
        m, n, k = p["batch"] * oh * ow, p["cout"], p["kh"] * p["kw"] * p["cin"]
        return 2 * m * n * k + m * n
