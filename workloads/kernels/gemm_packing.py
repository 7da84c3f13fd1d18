"""The packed GEMM's scratch layout, and the code that packs B, the bias and A into it.

Scratch holds, in this order (see `workloads.kernels.packed_gemm` for the compute):

1. B in NR-column panels: panel j holds rows p = 0..k-1 of columns j*NR..j*NR+NR-1,
   contiguous (NR floats per row), columns >= n zero;
2. A in MR-row tiles: tile t holds, for p = 0..k-1, the MR values A[t*MR + r, p]
   (r fastest), rows >= m zero. The caller supplies the A packer (`pack_a_rowmajor` for a
   GEMM, im2col for a convolution);
3. the bias, zero-padded to whole panels.

Every access goes through the strategy's `MemoryLowering`, like the compute's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.codegen import Buffer, Expr, FunctionBuilder, Var
from harness.codegen.simd import shuffle32

V128 = "v128"
ZERO = Expr("(v128.const i32x4 0 0 0 0)", V128)

#: rows of B packed per block (see `PackedLayout.pack_b`)
PACK_B_ROWS = 16

#: emits the packed A (see the module doc) at the scratch address held by the given local
APacker = Callable[[FunctionBuilder, Buffer, Var], None]


@dataclass(frozen=True)
class PackedLayout:
    """Where the packed operands of one (m, n, k) GEMM with MR x NR tiles lie in scratch."""

    m: int
    n: int
    k: int
    mr: int
    nr: int

    @property
    def mp(self) -> int:
        """m rounded up to whole tiles."""
        return -(-self.m // self.mr) * self.mr

    @property
    def np_(self) -> int:
        """n rounded up to whole panels."""
        return -(-self.n // self.nr) * self.nr

    @property
    def panel_bytes(self) -> int:
        return 4 * self.nr * self.k

    @property
    def b_bytes(self) -> int:
        return self.np_ * self.k * 4

    @property
    def a_bytes(self) -> int:
        # + slack: a k step loads whole vectors of A, so the last step of the last tile
        # reads up to 16 bytes past the packed A (values it then ignores)
        return self.mp * self.k * 4 + 16

    @property
    def a_at(self) -> int:
        return self.b_bytes

    @property
    def bias_at(self) -> int:
        return self.b_bytes + self.a_bytes

    def scratch_bytes(self, bias: bool) -> int:
        return self.bias_at + (self.np_ * 4 if bias else 0)

    def pack_b(self, fb: FunctionBuilder, b: Buffer, scratch: Buffer) -> None:
        """B in blocks of `PACK_B_ROWS` rows; within a block, panels in groups whose row
        slices make up 64 bytes of B (16 // NR panels, at least one: 2 of 8 columns), each
        group's rows in order, then the columns after the last whole group, zero-padded.

        Not row by row over all panels: that writes one row of every panel per B row, and
        panels lie `4*NR*k` bytes apart, a multiple of 4 KiB for k % 128 == 0, so all their
        current lines fall in one L1 set, evict each other, and nearly every store misses.
        On 256^3 packing B took 29 us row by row and takes 19 us by groups (of a 1 ms GEMM).
        Not each group down all k rows either: a block's rows are read by every group while
        they are still cached (in L1, or in a strategy's software page cache, which would
        otherwise fetch B's pages again for every group)."""
        k = self.k
        blk_src, blk_dst, kb = (fb.pointer("pk_bsrc"), fb.pointer("pk_bdst"),
                                fb.local("pk_kb", "i32"))
        fb.set(blk_src, b.ptr + 0)
        fb.set(blk_dst, scratch.ptr + 0)
        blocks, tail = divmod(k, PACK_B_ROWS)
        if blocks:
            with fb.for_range(kb, 0, blocks):
                self._pack_b_rows(fb, b, scratch, blk_src, blk_dst, PACK_B_ROWS)
                fb.set(blk_src, blk_src + PACK_B_ROWS * 4 * self.n)
                fb.set(blk_dst, blk_dst + PACK_B_ROWS * 4 * self.nr)
        if tail:
            self._pack_b_rows(fb, b, scratch, blk_src, blk_dst, tail)

    def _pack_b_rows(self, fb: FunctionBuilder, b: Buffer, scratch: Buffer, blk_src: Var,
                     blk_dst: Var, rows: int) -> None:
        """Pack `rows` rows of B, from `blk_src` in B to their rows at `blk_dst` in panel 0."""
        n, nr = self.n, self.nr
        per_group = max(1, 16 // nr)  # panels whose row slices make up (up to) 64 bytes
        group_cols = per_group * nr
        groups = n // group_cols
        src, dst, p = fb.pointer("pk_src"), fb.pointer("pk_dst"), fb.local("pk_p", "i32")
        if groups:
            g, gsrc, gdst = fb.local("pk_g", "i32"), fb.pointer("pk_gsrc"), fb.pointer("pk_gdst")
            fb.set(gsrc, blk_src + 0)
            fb.set(gdst, blk_dst + 0)
            with fb.for_range(g, 0, groups):
                fb.set(src, gsrc + 0)
                fb.set(dst, gdst + 0)
                with fb.for_range(p, 0, rows):
                    for j in range(per_group):
                        for q in range(0, nr, 4):
                            scratch.store_at(dst, b.load_at(src, V128, 4 * (j * nr + q)), V128,
                                             j * self.panel_bytes + 4 * q)
                    fb.set(src, src + 4 * n)
                    fb.set(dst, dst + 4 * nr)
                fb.set(gsrc, gsrc + 4 * group_cols)
                fb.set(gdst, gdst + per_group * self.panel_bytes)
        first = groups * group_cols
        if first == n:
            return
        fb.set(src, blk_src + 4 * first)
        fb.set(dst, blk_dst + first // nr * self.panel_bytes)
        with fb.for_range(p, 0, rows):
            for j0 in range(first, n, nr):
                width, at = min(nr, n - j0), (j0 - first) // nr * self.panel_bytes
                for q in range(0, nr, 4):
                    if q + 4 <= width:
                        scratch.store_at(dst, b.load_at(src, V128, 4 * (j0 - first + q)), V128,
                                         at + 4 * q)
                    elif q < width:
                        for lane in range(q, q + 4):
                            v = b.load_at(src, "f32", 4 * (j0 - first + lane)) if lane < width \
                                else Expr("(f32.const 0)", "f32")
                            scratch.store_at(dst, v, "f32", at + 4 * lane)
                    else:
                        scratch.store_at(dst, ZERO, V128, at + 4 * q)
            fb.set(src, src + 4 * n)
            fb.set(dst, dst + 4 * nr)

    def pack_bias(self, fb: FunctionBuilder, bias: Buffer, scratch: Buffer) -> None:
        """Copy bias into scratch, zero-padded to whole panels (so tails load whole vectors)."""
        base = scratch.ptr + self.bias_at
        for j in range(0, self.np_, 4):
            if j + 4 <= self.n:
                scratch.store_at(base, bias.load_at(bias.ptr, V128, 4 * j), V128, 4 * j)
            else:
                for lane in range(j, j + 4):
                    v = bias.load_at(bias.ptr, "f32", 4 * lane) if lane < self.n else Expr(
                        "(f32.const 0)", "f32")
                    scratch.store_at(base, v, "f32", 4 * lane)

    def pack_a_rowmajor(self, a: Buffer, lda: int | None = None) -> APacker:
        """Packer for a row-major A (row stride `lda` elements, default k). With 4-row tiles,
        4 k steps at a time: one v128 load per row and a 4x4 transpose (8 one-instruction
        unpacks on x64) instead of 16 scalar loads and stores (+1% on 256^3, measured in
        paired rounds); the last k % 4 steps and other tile heights go element by element."""
        m, k, mr = self.m, self.k, self.mr
        stride = 4 * (lda if lda is not None else k)

        vec = mr == 4 and k >= 4  # 4 k steps at a time: 4 v128 loads, a 4x4 transpose

        def emit(fb: FunctionBuilder, scratch: Buffer, dst: Var) -> None:
            src, p = fb.pointer("pa_src"), fb.local("pa_p", "i32")
            for t0 in range(0, m, mr):
                rows = min(mr, m - t0)
                fb.set(src, a.addr(t0 * (stride // 4)))
                k0 = 0
                if vec:
                    k0 = k - k % 4
                    with fb.for_range(p, 0, k // 4):
                        self._transpose4(fb, a, src, stride, rows, scratch, dst)
                        fb.set(src, src + 16)
                        fb.set(dst, dst + 64)
                if k0 == k:
                    continue
                with fb.for_range(p, k0, k):
                    for r in range(mr):
                        v = a.load_at(src, "f32", r * stride) if r < rows else Expr(
                            "(f32.const 0)", "f32")
                        scratch.store_at(dst, v, "f32", 4 * r)
                    fb.set(src, src + 4)
                    fb.set(dst, dst + 4 * mr)
        return emit

    @staticmethod
    def _transpose4(fb: FunctionBuilder, a: Buffer, src: Var, stride: int, rows: int,
                    scratch: Buffer, dst: Var) -> None:
        """Pack 4 k steps of a 4-row tile: load 4 columns of each row, transpose 4x4."""
        r = [fb.local(f"pt_r{i}", V128) for i in range(4)]
        t = [fb.local(f"pt_t{i}", V128) for i in range(4)]
        for i in range(4):
            fb.set(r[i], a.load_at(src, V128, i * stride) if i < rows else ZERO)
        lo, hi, first, second = (0, 4, 1, 5), (2, 6, 3, 7), (0, 1, 4, 5), (2, 3, 6, 7)
        fb.set(t[0], shuffle32(r[0], r[1], lo))  # r0[0] r1[0] r0[1] r1[1]
        fb.set(t[1], shuffle32(r[2], r[3], lo))
        fb.set(t[2], shuffle32(r[0], r[1], hi))  # r0[2] r1[2] r0[3] r1[3]
        fb.set(t[3], shuffle32(r[2], r[3], hi))
        for q, (x, y, half) in enumerate(((0, 1, first), (0, 1, second), (2, 3, first),
                                          (2, 3, second))):
            scratch.store_at(dst, shuffle32(t[x], t[y], half), V128, 16 * q)
