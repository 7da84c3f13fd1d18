"""The packed SIMD128 GEMM microkernel shared by `gemm`, `mlp` and `conv2d`.

C[m,n] = A[m,k] @ B[k,n] (+ bias[n]) (ReLU), f32, computed in three phases inside one
`run` call, so packing is part of every measured inference:

1. pack B into NR-column panels in scratch: panel j holds rows p = 0..k-1 of columns
   j*NR..j*NR+NR-1, contiguous (NR floats per row), columns >= n zero;
2. pack A into MR-row tiles in scratch: tile t holds, for p = 0..k-1, the MR values
   A[t*MR + r, p] (r fastest), rows >= m zero. The caller supplies the A packer
   (plain row-major for GEMM, im2col for convolution);
3. for each B panel, for each A tile: an MR x NR register tile of f32x4 accumulators,
   initialised from the (packed, zero-padded) bias or zero; per k step every A value is
   broadcast (`i8x16.shuffle` of one v128 load of the packed A step, or `f32.load` +
   `f32x4.splat`) and multiplied with the NR/4 vectors of the B row; the tile is stored
   through the strategy's lowering, with ReLU as `f32x4.pmax`.

Tails cost nothing at run time: shapes are compile-time constants, so the last (partial)
tile and panel get a specialised copy of the microkernel that computes only the valid
rows and vector columns and stores only the valid lanes. K needs no padding: the loop
runs one k step per iteration.

Every access, packed or not, goes through the strategy's `MemoryLowering` (buffers in
their spaces, packed panels in "scratch"), so the kernel runs under every strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.codegen import Buffer, Expr, FunctionBuilder, Var, op

V128 = "v128"
ZERO = Expr("(v128.const i32x4 0 0 0 0)", V128)
BCASTS = ("shuffle", "splat")


@dataclass(frozen=True)
class Tile:
    """Register tile: MR rows x NR columns (NR a multiple of 4), and the A broadcast."""

    mr: int = 4
    nr: int = 8
    bcast: str = "shuffle"

    def __post_init__(self) -> None:
        if self.mr < 1 or self.nr < 4 or self.nr % 4:
            raise ValueError(f"tile {self.mr}x{self.nr}: need mr >= 1 and nr a multiple of 4")
        if self.bcast not in BCASTS:
            raise ValueError(f"broadcast must be one of {BCASTS}, not {self.bcast!r}")

    @classmethod
    def parse(cls, text: str) -> Tile:
        """`2x16` or `2x16-splat`."""
        shape, _, bcast = text.partition("-")
        try:
            mr, nr = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise ValueError(f"tile must look like 2x16 or 2x16-splat, got {text!r}") from None
        return cls(mr, nr, bcast or "shuffle")

    @property
    def avecs(self) -> int:
        """v128 loads of packed A per k step (the last one may read past the tile)."""
        return -(-self.mr // 4)

    def label(self) -> str:
        return f"{self.mr}x{self.nr}" + ("" if self.bcast == "shuffle" else f"-{self.bcast}")


#: emits the packed A (see module doc) at the scratch address held by the given local
APacker = Callable[[FunctionBuilder, Buffer, Var], None]


class PackedGemm:
    """Code generator for one shape: scratch layout, packing of B and bias, the tile loops."""

    def __init__(self, m: int, n: int, k: int, tile: Tile) -> None:
        self.m, self.n, self.k, self.tile = m, n, k, tile
        mr, nr = tile.mr, tile.nr
        self.mp = -(-m // mr) * mr
        self.np_ = -(-n // nr) * nr
        self.b_bytes = self.np_ * k * 4
        # + slack: a k step loads whole vectors of A, so the last step of the last tile
        # reads up to 16 bytes past the packed A (values it then ignores)
        self.a_bytes = self.mp * k * 4 + 16
        self.a_at = self.b_bytes
        self.bias_at = self.b_bytes + self.a_bytes

    def scratch_bytes(self, bias: bool) -> int:
        return self.bias_at + (self.np_ * 4 if bias else 0)

    # -- packing ------------------------------------------------------------------------
    def pack_b(self, fb: FunctionBuilder, b: Buffer, scratch: Buffer) -> None:
        n, k, nr = self.n, self.k, self.tile.nr
        src, dst, p = fb.local("pk_src", "i32"), fb.local("pk_dst", "i32"), fb.local("pk_p", "i32")
        fb.set(dst, scratch.ptr)
        for j0 in range(0, n, nr):
            width = min(nr, n - j0)
            fb.set(src, b.addr(j0))
            with fb.for_range(p, 0, k):
                for q in range(0, nr, 4):
                    if q + 4 <= width:
                        scratch.store_at(dst, b.load_at(src, V128, 4 * q), V128, 4 * q)
                    elif q < width:
                        for lane in range(q, q + 4):
                            v = b.load_at(src, "f32", 4 * lane) if lane < width else Expr(
                                "(f32.const 0)", "f32")
                            scratch.store_at(dst, v, "f32", 4 * lane)
                    else:
                        scratch.store_at(dst, ZERO, V128, 4 * q)
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
        """Packer for a row-major A (row stride `lda` elements, default k)."""
        m, k, mr = self.m, self.k, self.tile.mr
        stride = 4 * (lda if lda is not None else k)

        def emit(fb: FunctionBuilder, scratch: Buffer, dst: Var) -> None:
            src, p = fb.local("pa_src", "i32"), fb.local("pa_p", "i32")
            for t0 in range(0, m, mr):
                rows = min(mr, m - t0)
                fb.set(src, a.addr(t0 * (stride // 4)))
                with fb.for_range(p, 0, k):
                    for r in range(mr):
                        v = a.load_at(src, "f32", r * stride) if r < rows else Expr(
                            "(f32.const 0)", "f32")
                        scratch.store_at(dst, v, "f32", 4 * r)
                    fb.set(src, src + 4)
                    fb.set(dst, dst + 4 * mr)
        return emit

    # -- compute --------------------------------------------------------------------------
    def emit(self, fb: FunctionBuilder, pack_a: APacker, b: Buffer, c: Buffer,
             scratch: Buffer, bias: Buffer | None = None, relu: bool = False) -> None:
        """Emit the whole GEMM: packs, then every (panel, tile) pair."""
        self.pack_b(fb, b, scratch)
        if bias is not None:
            self.pack_bias(fb, bias, scratch)
        dst = fb.local("pk_adst", "i32")
        fb.set(dst, scratch.ptr + self.a_at)
        pack_a(fb, scratch, dst)
        mr, nr = self.tile.mr, self.tile.nr
        m_full, m_tail = self.m // mr, self.m % mr
        n_full, n_tail = self.n // nr, self.n % nr
        jp, it = fb.local("g_jp", "i32"), fb.local("g_it", "i32")
        pb, pa, pc = fb.local("g_pb", "i32"), fb.local("g_pa", "i32"), fb.local("g_pc", "i32")
        pbias, cbase = fb.local("g_pbias", "i32"), fb.local("g_cbase", "i32")
        panel_bytes, tile_bytes = 4 * nr * self.k, 4 * mr * self.k

        def panel(cols: int) -> None:
            fb.set(pa, scratch.ptr + self.a_at)
            fb.set(pc, cbase)
            with fb.for_range(it, 0, m_full):
                self._micro(fb, scratch, c, pa, pb, pc, pbias, mr, cols, bias is not None, relu)
                fb.set(pa, pa + tile_bytes)
                fb.set(pc, pc + 4 * mr * self.n)
            if m_tail:
                self._micro(fb, scratch, c, pa, pb, pc, pbias, m_tail, cols, bias is not None, relu)

        fb.set(pb, scratch.ptr + 0)
        fb.set(pbias, scratch.ptr + self.bias_at)
        fb.set(cbase, c.ptr + 0)
        with fb.for_range(jp, 0, n_full):
            panel(nr)
            fb.set(pb, pb + panel_bytes)
            fb.set(pbias, pbias + 4 * nr)
            fb.set(cbase, cbase + 4 * nr)
        if n_tail:
            panel(n_tail)

    def _micro(self, fb: FunctionBuilder, scratch: Buffer, c: Buffer, pa: Var, pb: Var,
               pc: Var, pbias: Var, rows: int, cols: int, bias: bool, relu: bool) -> None:
        """One MR x NR tile (only `rows` x `cols` of it valid): k loop, then the stores."""
        t = self.tile
        nv = -(-cols // 4)  # vector columns that hold valid lanes
        acc = [[fb.local(f"acc{r}_{q}", V128) for q in range(nv)] for r in range(rows)]
        for q in range(nv):
            init = scratch.load_at(pbias, V128, 16 * q) if bias else ZERO
            for r in range(rows):
                fb.set(acc[r][q], init if r == 0 or not bias else acc[0][q])
        ka, kb, kend = fb.local("k_pa", "i32"), fb.local("k_pb", "i32"), fb.local("k_end", "i32")
        fb.set(ka, pa + 0)
        fb.set(kb, pb + 0)
        fb.set(kend, pa + 4 * t.mr * self.k)
        avec = [fb.local(f"av{v}", V128) for v in range(t.avecs)]
        bvec = fb.local("bv", V128)
        bc = [fb.local(f"bc{r}", V128) for r in range(rows)]
        # One k step per iteration: Cranelift places pure ops (shuffles, mul, add) at their
        # use, after every load of the iteration; more steps per iteration would keep more
        # B vectors live at once and spill accumulators.
        loop = fb._label("K")
        fb.emit(f"(loop {loop}")
        if t.bcast == "shuffle":
            for v, var in enumerate(avec):
                fb.set(var, scratch.load_at(ka, V128, 16 * v))
        for r in range(rows):
            if t.bcast == "shuffle":
                pattern = " ".join(str(4 * (r % 4) + i % 4) for i in range(16))
                fb.set(bc[r], op(f"i8x16.shuffle {pattern}", avec[r // 4], avec[r // 4], ty=V128))
            else:
                fb.set(bc[r], op("f32x4.splat", scratch.load_at(ka, "f32", 4 * r), ty=V128))
        for q in range(nv):
            fb.set(bvec, scratch.load_at(kb, V128, 16 * q))
            for r in range(rows):
                fb.set(acc[r][q], op("f32x4.add", acc[r][q],
                                     op("f32x4.mul", bc[r], bvec, ty=V128), ty=V128))
        fb.set(ka, ka + 4 * t.mr)
        fb.set(kb, kb + 4 * t.nr)
        fb.emit(f"  (br_if {loop} {(ka < kend).wat})")
        fb.emit(")")
        for r in range(rows):
            for q in range(nv):
                val: Expr = acc[r][q]
                if relu:
                    val = op("f32x4.pmax", ZERO, val, ty=V128)
                off = 4 * (r * self.n + 4 * q)
                if 4 * q + 4 <= cols:
                    c.store_at(pc, val, V128, off)
                else:
                    for lane in range(cols - 4 * q):
                        c.store_at(pc, op(f"f32x4.extract_lane {lane}", val, ty="f32"), "f32",
                                   off + 4 * lane)

