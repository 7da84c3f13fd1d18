"""The packed SIMD128 GEMM microkernel shared by `gemm`, `mlp` and `conv2d`.

C[m,n] = A[m,k] @ B[k,n] (+ bias[n]) (ReLU), f32, computed in three phases inside one
`run` call, so packing is part of every measured inference:

1. pack B into NR-column panels and 2. A into MR-row tiles, in scratch (the layout and
   the packers: `workloads.kernels.gemm_packing`; the caller supplies the A packer,
   plain row-major for GEMM, im2col for convolution);
3. for each B panel, for each A tile: an MR x NR register tile of f32x4 accumulators,
   initialised from the (packed, zero-padded) bias or zero; per k step every A value is
   broadcast (`i8x16.shuffle` of one v128 load of the packed A step, or `f32.load` +
   `f32x4.splat`) and multiplied with the NR/4 vectors of the B row; the tile is stored
   through the strategy's lowering, with ReLU as `f32x4.pmax`.
   `rotate` (4-row tiles) multiplies the A vector and its 3 lane rotations instead of 4
   broadcasts (3 shuffles a step, not 4): accumulator j then holds the diagonal
   C[(l + j) % 4][l], put back into rows with three blends a row once per tile. Measured
   on 256^3 relaxed in paired rounds: +1.4% to +3.0% over `shuffle` (five runs); with
   mul + add (`simd`) no difference.

With `fma=True` (the `isa=relaxed` variant) the multiply-add is one relaxed-SIMD
`f32x4.relaxed_madd` (an FMA on x86 with FMA3) and the k loop takes another shape, for
reasons of Cranelift's code generation, measured on wasmtime 50 (x64):

- Cranelift lowers `fma(x, y, z)` to `vfmadd213ps`/`vfmadd132ps`, whose destination is a
  multiplicand, never to `vfmadd231ps` (destination = addend). The new accumulator lands
  in `x`'s register, so `x` is copied first unless this FMA is its last use. Per k step
  each broadcast and each B vector dies once: the operand that dies here goes first,
  which leaves MR*NV - MR - NV + 1 copies per step (3 for 4x8) instead of MR*NV.
- With one k step per loop iteration every accumulator changes register each step and
  the back edge moves all of them; with several steps per iteration the last FMA of a
  chain can write straight into the loop's register. `FMA_UNROLL` steps per iteration,
  each followed by a "done?" exit test. The test is not only for K % FMA_UNROLL: Cranelift
  places pure instructions (shuffles, FMAs) at their first use and the branch to the
  exit, which carries the accumulators, is their first use, so each step's FMAs are
  emitted before the next step's loads and no more than one step's vectors are live
  (without the tests all loads of the iteration come first and accumulators spill).
- One induction variable addresses both panels (`pa + i*sa`, `pb + i*sb`, each one `lea`)
  and is compared with constants, instead of two bumped pointers and a bound.

Code placement. Where a hot loop's code falls relative to the front end's 32-byte fetch
windows decides a good part of its speed on x86 (Intel's are the best known case), and a
wasm module cannot align anything. Measured here (wasmtime 50, Xeon Cascade Lake, relaxed
4x8-rotate, 256^3, thread CPU time, interleaved rounds): the k loop's start moved through
all 32 offsets of a window ran the whole GEMM in 1013 to 1283 us; 4x8 ran in 1043 to
1266 us; the mul + add kernels (`simd`) moved by 2% at most. Two consequences:

- The tile loops are a function of their own (`gemm_tiles_MxNxK`), called once by `run`
  after the packing. Inline, the loop moved with every change to the packing code before
  it, and 6 shapes put it at 6 different offsets; in its own function, which Cranelift
  starts at a 32-byte boundary, it sits at one offset for 5 of those shapes (64 to 1024
  wide) and 7 bytes further for 100x37x77, whose constants encode differently.
- The tile's placement pad (`4x8-rotate+N`; default `DEFAULT_PADS`) puts N stores of
  constants to otherwise unused globals at the top of that function, which move the loop
  by a few bytes each (once per call, not per tile). The default for relaxed 4x8-rotate,
  5, was measured in paired rounds against no pad: 256^3 GEMM 0.876 of the time (1018 us
  best), a 32x32x32 -> 64 conv2d 0.904; pads 1, 2, 3, 6 and 7 were within 3% of it, 0
  and 4 were the slow ones. The best pad belongs to this compiler and this CPU: on
  another, any pad is as likely as 0 to be the slow one, and `bench_gemm.py --tiles
  4x8-rotate+0,4x8-rotate+5` shows which.

Tails cost nothing at run time: shapes are compile-time constants, so the last (partial)
tile and panel get a specialised copy of the microkernel that computes only the valid
rows and vector columns and stores only the valid lanes (a `rotate` tile's tail of 1-3
rows broadcasts A instead: rotation keeps all 4 accumulator rows). K needs no padding:
the loop leaves after any k step.

Every access, packed or not, goes through the strategy's `MemoryLowering` (buffers in
their spaces, packed panels in "scratch"), so the kernel runs under every strategy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from harness.codegen import Buffer, Expr, FunctionBuilder, Var, i32, op
from harness.codegen.simd import shuffle32
from workloads.kernels.gemm_packing import V128, ZERO, APacker, PackedLayout

BCASTS = ("shuffle", "splat", "rotate")
#: k steps per iteration of the FMA microkernel's loop (measured on 256^3, 4x8: 2 steps
#: leave a register shuffle on the back edge, 4 spill an accumulator; 3 is fastest)
FMA_UNROLL = 3
#: most placement pad stores (each moves the tile loops' code by 5 to 10 bytes)
MAX_PAD = 64


@dataclass(frozen=True)
class Tile:
    """Register tile: MR rows x NR columns (NR a multiple of 4), the A broadcast, and the
    code placement pad of the tile loops' function (None: the kernel's measured default;
    see "Code placement" in the module doc)."""

    mr: int = 4
    nr: int = 8
    bcast: str = "shuffle"
    pad: int | None = None

    def __post_init__(self) -> None:
        if self.mr < 1 or self.nr < 4 or self.nr % 4:
            raise ValueError(f"tile {self.mr}x{self.nr}: need mr >= 1 and nr a multiple of 4")
        if self.bcast not in BCASTS:
            raise ValueError(f"broadcast must be one of {BCASTS}, not {self.bcast!r}")
        if self.bcast == "rotate" and self.mr != 4:
            raise ValueError(f"tile {self.label()}: the rotate broadcast needs mr = 4")
        if self.pad is not None and not 0 <= self.pad <= MAX_PAD:
            raise ValueError(f"tile {self.label()}: the placement pad must be 0..{MAX_PAD}")

    @classmethod
    def parse(cls, text: str) -> Tile:
        """`2x16`, `2x16-splat`, `4x8-rotate+5` (placement pad 5)."""
        body, at, pad = text.partition("+")
        shape, _, bcast = body.partition("-")
        try:
            mr, nr = (int(v) for v in shape.lower().split("x"))
            pad_value = int(pad) if at else None
        except ValueError:
            raise ValueError(f"tile must look like 2x16, 2x16-splat or 4x8-rotate+5, got "
                             f"{text!r}") from None
        return cls(mr, nr, bcast or "shuffle", pad_value)

    def acc_rows(self, rows: int) -> int:
        """Accumulator rows of a tile with `rows` valid rows: all 4 with `rotate` (each
        accumulator holds a diagonal of the tile), else the valid ones."""
        return self.mr if self.bcast == "rotate" else rows

    @property
    def avecs(self) -> int:
        """v128 loads of packed A per k step (the last one may read past the tile)."""
        return -(-self.mr // 4)

    def label(self) -> str:
        return (f"{self.mr}x{self.nr}" + ("" if self.bcast == "shuffle" else f"-{self.bcast}")
                + (f"+{self.pad}" if self.pad else ""))


#: the placement pad of a tile that names none, by (tile without pad, FMA): measured, see
#: the module doc ("Code placement"); 0 for every other kernel
DEFAULT_PADS: Mapping[tuple[Tile, bool], int] = {(Tile(4, 8, "rotate"), True): 5}


def placed(tile: Tile, fma: bool) -> Tile:
    """`tile` with its placement pad filled in: the one it names, else the measured default
    for the kernel (`DEFAULT_PADS`), else 0. Its label is the code that runs."""
    if tile.pad is not None:
        return tile
    return replace(tile, pad=DEFAULT_PADS.get((tile, fma), 0))


class PackedGemm:
    """Code generator for one shape: scratch layout, packing of B and bias, the tile loops."""

    def __init__(self, m: int, n: int, k: int, tile: Tile, fma: bool = False) -> None:
        self.m, self.n, self.k, self.fma = m, n, k, fma
        self.tile = placed(tile, fma)
        self.layout = PackedLayout(m, n, k, tile.mr, tile.nr)

    def scratch_bytes(self, bias: bool) -> int:
        return self.layout.scratch_bytes(bias)

    def pack_a_rowmajor(self, a: Buffer, lda: int | None = None) -> APacker:
        """The A packer for a row-major A (see `PackedLayout.pack_a_rowmajor`)."""
        return self.layout.pack_a_rowmajor(a, lda)

    # -- compute --------------------------------------------------------------------------
    def emit(self, fb: FunctionBuilder, pack_a: APacker, b: Buffer, c: Buffer,
             scratch: Buffer, bias: Buffer | None = None, relu: bool = False) -> None:
        """Emit the whole GEMM: the packs, then a call of the function that holds the tile
        loops (inline where there is no module to add it to)."""
        self.layout.pack_b(fb, b, scratch)
        if bias is not None:
            self.layout.pack_bias(fb, bias, scratch)
        dst = fb.pointer("pk_adst")
        fb.set(dst, scratch.ptr + self.layout.a_at)
        pack_a(fb, scratch, dst)
        if fb.module is None:
            self._tiles(fb, c, scratch, bias is not None, relu)
            return
        taken = {f.split(maxsplit=2)[1] for f in fb.module.funcs}
        name = f"gemm_tiles_{self.m}x{self.n}x{self.k}"
        while f"${name}" in taken:
            name += "_"
        tiles = FunctionBuilder(name, [("t_scratch", fb.address), ("t_c", fb.address)], fb.lowering,
                                module=fb.module)
        for i in range(self.tile.pad or 0):
            # a global each: Cranelift drops a store that the next one overwrites
            fb.module.add_global(f"(global $gemm_place{i} (mut i32) (i32.const 0))")
            tiles.emit(f"(global.set $gemm_place{i} (i32.const {i}))")
        self._tiles(tiles, tiles.buffer(c.name, tiles.param("t_c"), c.space),
                    tiles.buffer(scratch.name, tiles.param("t_scratch"), scratch.space),
                    bias is not None, relu)
        fb.module.add_func(tiles.render())
        fb.call(name, scratch.ptr + 0, c.ptr + 0)

    def _tiles(self, fb: FunctionBuilder, c: Buffer, scratch: Buffer, bias: bool,
               relu: bool) -> None:
        """Every (panel, tile) pair: for each B panel, each A tile's microkernel."""
        micro = self._micro_fma if self.fma else self._micro
        mr, nr = self.tile.mr, self.tile.nr
        m_full, m_tail = self.m // mr, self.m % mr
        n_full, n_tail = self.n // nr, self.n % nr
        jp, it = fb.local("g_jp", "i32"), fb.local("g_it", "i32")
        pb, pa, pc = fb.pointer("g_pb"), fb.pointer("g_pa"), fb.pointer("g_pc")
        pbias, cbase = fb.pointer("g_pbias"), fb.pointer("g_cbase")
        panel_bytes, tile_bytes = self.layout.panel_bytes, 4 * mr * self.k

        def panel(cols: int) -> None:
            fb.set(pa, scratch.ptr + self.layout.a_at)
            fb.set(pc, cbase)
            with fb.for_range(it, 0, m_full):
                micro(fb, scratch, c, pa, pb, pc, pbias, mr, cols, bias, relu)
                fb.set(pa, pa + tile_bytes)
                fb.set(pc, pc + 4 * mr * self.n)
            if m_tail:
                micro(fb, scratch, c, pa, pb, pc, pbias, m_tail, cols, bias, relu)

        fb.set(pb, scratch.ptr + 0)
        fb.set(pbias, scratch.ptr + self.layout.bias_at)
        fb.set(cbase, c.ptr + 0)
        with fb.for_range(jp, 0, n_full):
            panel(nr)
            fb.set(pb, pb + panel_bytes)
            fb.set(pbias, pbias + 4 * nr)
            fb.set(cbase, cbase + 4 * nr)
        if n_tail:
            panel(n_tail)

    def _init_acc(self, fb: FunctionBuilder, scratch: Buffer, pbias: Var, rows: int, nv: int,
                  bias: bool) -> list[list[Var]]:
        """The rows x nv accumulators, set to the (packed, zero-padded) bias or zero."""
        acc = [[fb.local(f"acc{r}_{q}", V128) for q in range(nv)] for r in range(rows)]
        for q in range(nv):
            init = scratch.load_at(pbias, V128, 16 * q) if bias else ZERO
            for r in range(rows):
                fb.set(acc[r][q], init if r == 0 or not bias else acc[0][q])
        return acc

    def _tile_for(self, rows: int) -> Tile:
        """The tile a tile with `rows` valid rows runs: a rotated tile keeps all MR
        accumulator rows, so a tail of fewer rows broadcasts instead (1 valid row of 4 would
        do 4 times the FMAs)."""
        if self.tile.bcast == "rotate" and rows < self.tile.mr:
            return replace(self.tile, bcast="shuffle")
        return self.tile

    @staticmethod
    def _broadcast(fb: FunctionBuilder, t: Tile, scratch: Buffer, ka: Expr, off: int,
                   bc: list[Var]) -> None:
        """Set bc[r] to A[r] of the k step at byte `off` from `ka`, in every lane."""
        if t.bcast == "rotate":  # bc[j] lane l = A[(l + j) % 4]: the A vector, 3 rotations
            fb.set(bc[0], scratch.load_at(ka, V128, off))
            for j in range(1, 4):
                rotation = (j % 4, (1 + j) % 4, (2 + j) % 4, (3 + j) % 4)
                fb.set(bc[j], shuffle32(bc[0], bc[0], rotation))
            return
        if t.bcast == "shuffle":
            avec = [fb.local(f"av{v}", V128) for v in range(t.avecs)]
            for v, var in enumerate(avec):
                fb.set(var, scratch.load_at(ka, V128, off + 16 * v))
        for r, var in enumerate(bc):
            if t.bcast == "shuffle":
                lane = r % 4
                fb.set(var, shuffle32(avec[r // 4], avec[r // 4], (lane, lane, lane, lane)))
            else:
                fb.set(var, op("f32x4.splat", scratch.load_at(ka, "f32", off + 4 * r), ty=V128))

    def _store_tile(self, c: Buffer, pc: Var, acc: list[list[Var]], cols: int,
                    relu: bool) -> None:
        """Store the valid rows x cols of the tile (ReLU as `f32x4.pmax`)."""
        for r, row in enumerate(acc):
            for q, a in enumerate(row):
                val: Expr = a
                if relu:
                    val = op("f32x4.pmax", ZERO, val, ty=V128)
                off = 4 * (r * self.n + 4 * q)
                if 4 * q + 4 <= cols:
                    c.store_at(pc, val, V128, off)
                else:
                    for lane in range(cols - 4 * q):
                        c.store_at(pc, op(f"f32x4.extract_lane {lane}", val, ty="f32"), "f32",
                                   off + 4 * lane)

    def _micro(self, fb: FunctionBuilder, scratch: Buffer, c: Buffer, pa: Var, pb: Var,
               pc: Var, pbias: Var, rows: int, cols: int, bias: bool, relu: bool) -> None:
        """One MR x NR tile (only `rows` x `cols` of it valid): k loop, then the stores."""
        t = self._tile_for(rows)
        nv = -(-cols // 4)  # vector columns that hold valid lanes
        valid, rows = rows, t.acc_rows(rows)
        acc = self._init_acc(fb, scratch, pbias, rows, nv, bias)
        ka, kb, kend = fb.pointer("k_pa"), fb.pointer("k_pb"), fb.pointer("k_end")
        fb.set(ka, pa + 0)
        fb.set(kb, pb + 0)
        fb.set(kend, pa + 4 * t.mr * self.k)
        bvec = fb.local("bv", V128)
        bc = [fb.local(f"bc{r}", V128) for r in range(rows)]
        # One k step per iteration: Cranelift places pure ops (shuffles, mul, add) at their
        # use, after every load of the iteration; more steps per iteration would keep more
        # B vectors live at once and spill accumulators.
        loop = fb._label("K")
        fb.emit(f"(loop {loop}")
        self._broadcast(fb, t, scratch, ka, 0, bc)
        for q in range(nv):
            fb.set(bvec, scratch.load_at(kb, V128, 16 * q))
            for r in range(rows):
                fb.set(acc[r][q], op("f32x4.add", acc[r][q],
                                     op("f32x4.mul", bc[r], bvec, ty=V128), ty=V128))
        fb.set(ka, ka + 4 * t.mr)
        fb.set(kb, kb + 4 * t.nr)
        fb.emit(f"  (br_if {loop} {(ka < kend).wat})")
        fb.emit(")")
        self._store_tile(c, pc, self._rows_of(fb, t, acc)[:valid], cols, relu)

    def _micro_fma(self, fb: FunctionBuilder, scratch: Buffer, c: Buffer, pa: Var, pb: Var,
                   pc: Var, pbias: Var, rows: int, cols: int, bias: bool, relu: bool) -> None:
        """`_micro` with `f32x4.relaxed_madd`, in the loop shape the module doc explains."""
        t = self._tile_for(rows)
        nv = -(-cols // 4)
        valid, rows = rows, t.acc_rows(rows)
        acc = self._init_acc(fb, scratch, pbias, rows, nv, bias)
        a_step, b_step = 4 * t.mr, 4 * t.nr  # bytes of packed A and B per k step
        unit = math.gcd(a_step, b_step)
        i = fb.local("k_i", "i32")  # k * unit
        fb.set(i, 0)

        def scaled(factor: int) -> Expr:
            if factor & (factor - 1) == 0:  # a power of two: the scale of one lea
                return i if factor == 1 else op("i32.shl", i, i32(factor.bit_length() - 1),
                                                 ty="i32")
            return i * factor
        ka, kb = pa + scaled(a_step // unit), pb + scaled(b_step // unit)
        bc = [fb.local(f"bc{r}", V128) for r in range(rows)]
        bv = [fb.local(f"bv{q}", V128) for q in range(nv)]
        loop, done = fb._label("K"), fb._label("D")
        fb.emit(f"(block {done}")
        fb.emit(f"(loop {loop}")
        for u in range(FMA_UNROLL):
            if u:
                fb.emit(f"  (br_if {done} {(i >= (self.k - u) * unit).wat})")
            self._broadcast(fb, t, scratch, ka, u * a_step, bc)
            for q in range(nv):
                fb.set(bv[q], scratch.load_at(kb, V128, u * b_step + 16 * q))
            for r in range(rows):
                for q in range(nv):
                    # the first operand's register receives the result: pass the one that
                    # dies here (B vectors die in the last row; broadcasts in the last column)
                    x, y = (bv[q], bc[r]) if r == rows - 1 else (bc[r], bv[q])
                    fb.set(acc[r][q], op("f32x4.relaxed_madd", x, y, acc[r][q], ty=V128))
        fb.set(i, i + FMA_UNROLL * unit)
        fb.emit(f"  (br_if {loop} {(i < self.k * unit).wat})")
        fb.emit("))")
        self._store_tile(c, pc, self._rows_of(fb, t, acc)[:valid], cols, relu)

    @staticmethod
    def _rows_of(fb: FunctionBuilder, t: Tile, acc: list[list[Var]]) -> list[list[Var]]:
        """The tile's rows from its accumulators. With `rotate`, acc[j][q] lane l holds
        C[(l + j) % 4][4q + l], so row r takes lane l from acc[(r - l) % 4][q]: three blends
        a row and vector column, once per tile."""
        if t.bcast != "rotate":
            return acc

        def blend(x: Expr, y: Expr, from_y: tuple[int, ...]) -> Expr:
            l0, l1, l2, l3 = (lane + 4 * (lane in from_y) for lane in range(4))
            return shuffle32(x, y, (l0, l1, l2, l3))
        rows = [[fb.local(f"row{r}_{q}", V128) for q in range(len(acc[0]))] for r in range(4)]
        for r, row in enumerate(rows):
            for q, v in enumerate(row):
                d = [acc[(r - lane) % 4][q] for lane in range(4)]
                fb.set(v, blend(blend(d[0], d[1], (1,)), blend(d[2], d[3], (3,)), (2, 3)))
        return rows
