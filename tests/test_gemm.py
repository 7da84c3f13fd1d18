"""GEMM (scalar, packed SIMD128, packed SIMD128 + relaxed-SIMD FMA) and the MLP on it: odd
shapes, every tile tail, in process."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.codegen import (
    DirectLowering,
    FunctionBuilder,
    ModuleBuilder,
    assemble,
    build_kernel_module,
)
from harness.core.errors import SpecError
from tests.kernelrun import run_verified
from workloads.kernels.gemm import GemmKernel
from workloads.kernels.packed_gemm import DEFAULT_PADS, FMA_UNROLL, MAX_PAD, PackedGemm, Tile

STRATEGIES = ("shared", "per-module")


def _verify(regs, workload: str, strategy: str) -> None:
    run_verified(regs, workload, strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("isa", ["scalar", "simd", "relaxed"])
@pytest.mark.parametrize("mnk", [(1, 1, 1), (37, 53, 91), (2, 16, 2), (5, 33, 4)])
def test_gemm_odd_shapes(regs, strategy: str, isa: str, mnk: tuple[int, int, int]) -> None:
    m, n, k = mnk
    _verify(regs, f"gemm:m={m},n={n},k={k},isa={isa}", strategy)


@pytest.mark.parametrize("isa", ["simd", "relaxed"])
@pytest.mark.parametrize("tile", ["1x4", "3x8", "2x16", "5x12", "2x16-splat", "4x8-rotate",
                                  "4x12-rotate", "4x8+3", "4x8-rotate+0", "auto"])
def test_gemm_other_tiles(regs, tile: str, isa: str) -> None:
    # 5 rows span two A vectors; 12 columns end in a partial vector on n=13
    _verify(regs, f"gemm:m=11,n=13,k=7,tile={tile},isa={isa}", "shared")


@pytest.mark.parametrize("k", range(1, 2 * FMA_UNROLL + 2))
def test_relaxed_k_loop_exits_after_every_step(regs, k: int) -> None:
    # the FMA loop runs FMA_UNROLL k steps per iteration and may leave after any of them
    _verify(regs, f"gemm:m=6,n=9,k={k},isa=relaxed", "shared")


def _wat(kernel: GemmKernel) -> str:
    lowering = DirectLowering({"heap": "$m", "scratch": "$m"}, ["(memory $m 1)"])
    return build_kernel_module(kernel, lowering, dict.fromkeys(kernel.params(), "heap")).wat


def test_relaxed_kernel_multiplies_with_fma_only() -> None:
    relaxed, simd = GemmKernel(8, 8, 9, isa="relaxed"), GemmKernel(8, 8, 9)
    assert relaxed.features == frozenset({"simd128", "relaxed-simd"})
    assert "f32x4.relaxed_madd" in _wat(relaxed) and "f32x4.mul" not in _wat(relaxed)
    assert "f32x4.relaxed_madd" not in _wat(simd) and "f32x4.mul" in _wat(simd)


@settings(max_examples=8, deadline=None)
@given(m=st.integers(1, 24), n=st.integers(1, 40), k=st.integers(1, 24),
       isa=st.sampled_from(["scalar", "simd", "relaxed"]), strategy=st.sampled_from(STRATEGIES))
def test_gemm_random_shapes(regs, m: int, n: int, k: int, isa: str, strategy: str) -> None:
    _verify(regs, f"gemm:m={m},n={n},k={k},isa={isa}", strategy)


@pytest.mark.parametrize("isa", ["scalar", "simd", "relaxed"])
def test_mlp_bias_relu_every_isa(regs, isa: str) -> None:
    for strategy in STRATEGIES:
        _verify(regs, f"mlp:batch=3,sizes=7-18-5,isa={isa}", strategy)


def test_simd_kernel_declares_simd_and_scratch() -> None:
    simd = GemmKernel(3, 5, 7, bias=True, relu=True)
    scalar = GemmKernel(3, 5, 7, bias=True, relu=True, isa="scalar")
    assert simd.features == frozenset({"simd128"}) and simd.scratch_bytes > 0
    assert scalar.features == frozenset() and scalar.scratch_bytes == 0
    assert [b.name for b in simd.buffers] == ["a", "b", "bias", "c"]


@pytest.mark.parametrize("isa", ["simd", "relaxed"])
@pytest.mark.parametrize("mnk", [(1, 3, 1), (3, 8, 5), (4, 4, 4), (9, 21, 13)])
def test_rotate_tile_rows_and_tails(regs, isa: str, mnk: tuple[int, int, int]) -> None:
    # a tile's accumulators hold diagonals: tails of 1-3 rows must still come out in place
    m, n, k = mnk
    _verify(regs, f"gemm:m={m},n={n},k={k},tile=4x8-rotate,isa={isa}", "shared")
    _verify(regs, f"conv2d:h=3,w=5,cin=3,cout={n},tile=4x8-rotate,isa={isa}", "shared")


@pytest.mark.parametrize("tile", ["1x4", "4x8", "5x12", "2x16"])
@pytest.mark.parametrize("n", [7, 16, 24, 29, 48])
def test_b_packing_groups_and_the_columns_after_them(regs, tile: str, n: int) -> None:
    # B is packed 64 bytes of a row at a time (16 / NR panels), then the columns after the
    # last whole group row by row: none, one whole panel, a whole and a partial one, ...
    _verify(regs, f"gemm:m=5,n={n},k=3,tile={tile},isa=relaxed", "shared")


def test_bad_tile_is_a_spec_error(regs) -> None:
    with pytest.raises(SpecError, match="tile"):
        regs.workloads.create("gemm:tile=3x6")
    with pytest.raises(SpecError, match="rotate broadcast needs mr = 4"):
        regs.workloads.create("gemm:tile=2x16-rotate")
    with pytest.raises(ValueError):
        Tile(2, 16, "loadsplat")


def test_tile_placement_pad_parses_and_labels() -> None:
    tile = Tile.parse("4x8-rotate+3")
    assert (tile.mr, tile.nr, tile.bcast, tile.pad) == (4, 8, "rotate", 3)
    assert tile.label() == "4x8-rotate+3" and Tile.parse("2x16").label() == "2x16"
    assert Tile.parse("2x16").pad is None
    with pytest.raises(ValueError, match="placement pad must be"):
        Tile(4, 8, "shuffle", MAX_PAD + 1)
    with pytest.raises(ValueError, match="tile must look like"):
        Tile.parse("4x8+x")


def _functions(wat: str) -> dict[str, str]:
    """Function name -> its WAT text."""
    parts = wat.split("(func $")[1:]
    return {part.split()[0]: part for part in parts}


ROTATE_PAD = DEFAULT_PADS[(Tile(4, 8, "rotate"), True)]


@pytest.mark.parametrize(("isa", "tile", "label", "pad"), [
    ("relaxed", None, f"4x8-rotate+{ROTATE_PAD}", ROTATE_PAD),
    ("simd", None, "4x8", 0),
    ("relaxed", Tile(4, 8, "rotate", 2), "4x8-rotate+2", 2),
    ("relaxed", Tile(4, 8, "rotate", 0), "4x8-rotate", 0),
    ("simd", Tile(4, 8, "shuffle", 7), "4x8+7", 7),
])
def test_tile_loops_are_a_function_of_their_own_after_the_placement_pad(
        isa: str, tile: Tile | None, label: str, pad: int) -> None:
    # the tile loops' code must not move with the packing code before it (a loop's place
    # decides up to 15% of its speed): `run` packs, then calls them
    kernel = GemmKernel(9, 10, 11, isa=isa, tile=tile)
    assert kernel.name.endswith(f"_{isa}{label}")
    funcs = _functions(_wat(kernel))
    assert set(funcs) == {"gemm_tiles_9x10x11", "run"}
    assert "(call $gemm_tiles_9x10x11" in funcs["run"]
    assert "relaxed_madd" not in funcs["run"] and "f32x4.mul" not in funcs["run"]
    assert funcs["gemm_tiles_9x10x11"].count("(global.set $gemm_place") == pad


def test_two_gemms_in_one_module_get_two_tile_functions() -> None:
    lowering = DirectLowering({"heap": "$m", "scratch": "$m"}, ["(memory $m 1)"])
    mb = ModuleBuilder()
    lowering.declare(mb)
    fb = FunctionBuilder("run", [], lowering, export="run", module=mb)
    for _ in range(2):
        g = PackedGemm(2, 4, 3, Tile(4, 8, "rotate", 1), fma=True)
        a, b, c, scratch = (fb.buffer(name, fb.local(f"p_{name}", "i32"), "heap")
                            for name in ("a", "b", "c", "scratch"))
        g.emit(fb, g.pack_a_rowmajor(a), b, c, scratch)
    mb.add_func(fb.render())
    wat = mb.render()
    assert {"gemm_tiles_2x4x3", "gemm_tiles_2x4x3_", "run"} == set(_functions(wat))
    assert wat.count("(global $gemm_place0 ") == 1
    assemble(wat)  # valid wasm: names unique, the pad's global declared once


def test_auto_tile_names_the_kernel_that_runs(regs) -> None:
    # a cell's compiled module names say which tile and pad ran (results record them)
    def modules(spec: str) -> list[str]:
        plan = regs.strategies.create("shared").plan(regs.workloads.create(spec))
        return [m.name for m in plan.modules]
    assert modules("gemm:m=8,n=8,k=8,isa=relaxed") == [
        f"gemm_8x8x8_relaxed4x8-rotate+{ROTATE_PAD}"]
    assert modules("gemm:m=8,n=8,k=8,isa=relaxed,tile=auto") == modules(
        f"gemm:m=8,n=8,k=8,isa=relaxed,tile=4x8-rotate+{ROTATE_PAD}")
    assert modules("gemm:m=8,n=8,k=8") == ["gemm_8x8x8_simd4x8"]
    assert modules("conv2d:h=4,w=4,cin=2,cout=8,isa=relaxed")[0].endswith(
        f"_relaxed4x8-rotate+{ROTATE_PAD}")


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_rotate_tails_of_fewer_rows_multiply_only_their_rows(m: int) -> None:
    # a rotated tile keeps 4 accumulator rows; a 1-3 row tail broadcasts instead, so its
    # k loop has as many FMAs as the broadcast tile's
    def fmas_in_tail(tile: Tile) -> int:
        wat = _functions(_wat(GemmKernel(m, 8, 16, isa="relaxed", tile=tile)))
        return wat[f"gemm_tiles_{m}x8x16"].count("f32x4.relaxed_madd")
    rotate, shuffle = fmas_in_tail(Tile(4, 8, "rotate")), fmas_in_tail(Tile(4, 8))
    assert rotate == shuffle
