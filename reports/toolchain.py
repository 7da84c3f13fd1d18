"""Toolchains: each C kernel built by clang against the code generator's kernel of the same
workload, ISA, engine and strategy.

The two are one comparison group (a workload's `toolchain` twins share one), so each
ratio pairs samples pass by pass, as the strategy ratios do; GFLOP/s are each row's FLOPs
over its median time. A ratio above 1 means clang's module is slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.strategies import CellName, ratio_of, twin_rows
from harness.plugins.spec import parse_spec, without_param
from harness.store.rows import ResultRow


@dataclass(frozen=True)
class ToolchainPair:
    workload: str              # the code generator's spec (toolchain left out)
    isa: str
    runtime: str
    strategy: str
    codegen_gflops: float | None
    clang_gflops: float | None
    ratio: float               # clang's time over the generator's (> 1: clang slower)
    ci_low: float
    ci_high: float
    verdict: str               # clang is `faster`, `slower`, `same`, or `unsure`
    paired: bool

    def sentence(self) -> str:
        if self.verdict == "same":
            how = "as fast as"
        elif self.verdict == "unsure":
            how = f"not measurably different from ({self.ratio:.2f}x)"
        elif self.ratio > 1:
            how = f"{self.ratio:.2f}x slower than"
        else:
            how = f"{1 / self.ratio:.2f}x faster than"
        return (f"clang's {self.workload} ({self.isa}) is {how} the code generator's on "
                f"{self.runtime}, {self.strategy}")


def generator_twin(spec: str) -> str | None:
    """The code generator's spec of a `toolchain=clang` workload spec (None otherwise)."""
    return without_param(spec, "toolchain", ("clang",))


def _gflops(r: ResultRow) -> float | None:
    return r.flops / r.median_s / 1e9 if r.flops and r.median_s else None


def toolchain_pairs(rows: Sequence[ResultRow], seed: int = 0) -> list[ToolchainPair]:
    """Every ok clang cell against its generator twin (same ISA, strategy and runtime)."""
    def twin(cell: CellName) -> CellName | None:
        w = generator_twin(cell[0])
        return None if w is None else (w, cell[1], cell[2])

    out = []
    for base, row in twin_rows(rows, twin):
        q = ratio_of(base, row, seed=seed)
        isa = dict(parse_spec(row.workload).params).get("isa", "simd")
        out.append(ToolchainPair(base.workload, isa, row.runtime, row.strategy, _gflops(base),
                                 _gflops(row), q.ratio, q.ci_low, q.ci_high, q.verdict,
                                 q.paired))
    return out
