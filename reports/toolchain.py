"""Toolchains: each C kernel built by clang against the code generator's kernel of the same
workload, ISA, engine and strategy; and Binaryen's multi-memory lowering against native
multi-memory on the same engine.

Both pairs are measured in one comparison group (a workload's `toolchain` twins share
one; two strategies of a workload always do), so each ratio pairs samples pass by pass,
as the strategy ratios do; GFLOP/s are each row's FLOPs over its median time. A ratio
above 1 means clang's module (the lowered module) is slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.strategies import ratio_of
from harness.core.errors import MembenchError
from harness.plugins.spec import Spec, parse_spec
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
    try:
        parsed = parse_spec(spec)
    except MembenchError:  # a results file may hold any text
        return None
    params = dict(parsed.params)
    if params.pop("toolchain", None) != "clang":
        return None
    return str(Spec(parsed.name, tuple(params.items()), parsed.version))


def toolchain_pairs(rows: Sequence[ResultRow], seed: int = 0) -> list[ToolchainPair]:
    """Every ok clang cell against its generator twin (same ISA, strategy and runtime)."""
    cells = {(r.workload, r.strategy, r.runtime, r.side): r for r in rows
             if r.kind == "cell" and r.status == "ok" and r.samples_s}
    out = []
    for (w, s, rt, side), row in sorted(cells.items()):
        twin_spec = generator_twin(w)
        twin = cells.get((twin_spec, s, rt, side)) if twin_spec else None
        if twin is None or twin_spec is None:
            continue
        q = ratio_of(twin, row, seed=seed)
        isa = dict(parse_spec(w).params).get("isa", "simd")

        def gflops(r: ResultRow) -> float | None:
            return r.flops / r.median_s / 1e9 if r.flops and r.median_s else None

        out.append(ToolchainPair(twin_spec, isa, rt, s, gflops(twin), gflops(row), q.ratio,
                                 q.ci_low, q.ci_high, q.verdict, q.paired))
    return out


@dataclass(frozen=True)
class LoweringPair:
    workload: str
    runtime: str
    strategy: str              # the lowered variant
    ratio: float               # lowered time over native multi-memory's (> 1: slower)
    ci_low: float
    ci_high: float
    verdict: str
    paired: bool


def lowered_twin(spec: str) -> str | None:
    """The native spec of a `lowered=1` strategy spec (None otherwise)."""
    try:
        parsed = parse_spec(spec)
    except MembenchError:
        return None
    params = dict(parsed.params)
    if params.pop("lowered", None) not in ("1", "true", "yes"):
        return None
    return str(Spec(parsed.name, tuple(params.items()), parsed.version))


def lowering_pairs(rows: Sequence[ResultRow], seed: int = 0) -> list[LoweringPair]:
    """Every ok lowered cell against native multi-memory where the engine ran both."""
    cells = {(r.workload, r.strategy, r.runtime, r.side): r for r in rows
             if r.kind == "cell" and r.status == "ok" and r.samples_s}
    out = []
    for (w, s, rt, side), row in sorted(cells.items()):
        twin_spec = lowered_twin(s)
        twin = cells.get((w, twin_spec, rt, side)) if twin_spec else None
        if twin is None:
            continue
        q = ratio_of(twin, row, seed=seed)
        out.append(LoweringPair(w, rt, s, q.ratio, q.ci_low, q.ci_high, q.verdict, q.paired))
    return out
