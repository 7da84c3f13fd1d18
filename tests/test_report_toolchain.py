"""The report's toolchain table: clang's kernel against the code generator's, paired."""

from __future__ import annotations

import numpy as np
import pytest

from harness.store.rows import ResultRow
from reports.toolchain import generator_twin, toolchain_pairs


def _row(w: str, samples: np.ndarray, flops: int = 2_000_000) -> ResultRow:
    n = len(samples) // 2
    rounds = tuple({"round": i, "n": n, "group": 2, "group_id": f"g{i}",
                    "passes": list(range(n))} for i in range(2))
    return ResultRow(run_id="r", workload=w, strategy="shared", runtime="wasmtime",
                     status="ok", samples_s=tuple(samples), median_s=float(np.median(samples)),
                     rounds=rounds, flops=flops)


def test_generator_twin() -> None:
    assert generator_twin("gemm:m=8,toolchain=clang") == "gemm:m=8"
    assert generator_twin("gemm:m=8") is None and generator_twin("x<y") is None


def test_clang_against_the_generator_is_paired_and_says_which_is_faster() -> None:
    drift = 1e-3 * np.exp(np.random.default_rng(2).normal(0, 0.3, 20))
    rows = [_row("gemm:m=8", drift), _row("gemm:m=8,toolchain=clang", drift * 1.25),
            _row("softmax:rows=2,toolchain=clang", drift)]   # no generator twin: left out
    [p] = toolchain_pairs(rows)
    assert (p.workload, p.isa, p.runtime, p.strategy) == ("gemm:m=8", "simd", "wasmtime",
                                                           "shared")
    assert p.paired and p.verdict == "slower" and p.ratio == pytest.approx(1.25)
    assert p.codegen_gflops == pytest.approx(2e6 / np.median(drift) / 1e9)
    assert p.clang_gflops == pytest.approx(p.codegen_gflops / 1.25)
    assert p.sentence() == ("clang's gemm:m=8 (simd) is 1.25x slower than the code "
                            "generator's on wasmtime, shared")


def test_strategy_forms_against_their_base() -> None:
    from dataclasses import replace

    from reports.forms import base_of, form_pairs

    assert base_of("multi-memory:lowered=1") == ("multi-memory", "one memory instead of several")
    assert base_of("per-module:page=1,resident=1")[0] == "per-module:resident=1"
    assert base_of("multi-memory") is None
    drift = 1e-3 * np.exp(np.random.default_rng(3).normal(0, 0.3, 20))
    native = replace(_row("mlp", drift), strategy="multi-memory",
                     memory={"linear_bytes": 393216})
    lowered = replace(_row("mlp", drift * 0.9), strategy="multi-memory:lowered=1",
                      memory={"linear_bytes": 327680})
    paged = replace(_row("mlp", drift * 1.3), strategy="multi-memory:page=1",
                    memory={"linear_bytes": 345312})
    pairs = {p.strategy: p for p in form_pairs([native, lowered, paged])}
    assert pairs["multi-memory:lowered=1"].verdict == "faster"
    assert pairs["multi-memory:lowered=1"].ratio == pytest.approx(0.9)
    p = pairs["multi-memory:page=1"]
    assert p.paired and p.verdict == "slower" and (p.base_bytes, p.form_bytes) == (393216,
                                                                                  345312)
