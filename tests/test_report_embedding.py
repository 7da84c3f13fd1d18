"""The report's "what the embedding costs" tables, from rows made by hand."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.strategies import StrategyRatio
from harness.store.rows import ResultRow
from reports.embedding import (
    dispatch_shares,
    embedded_vs_linked,
    host_call_costs,
    host_language,
    host_of,
    linked_twin,
)


def _row(w: str, s: str, rt: str, median: float, calls: int, host_calls: int) -> ResultRow:
    return ResultRow(run_id="r", workload=w, strategy=s, runtime=rt, status="ok",
                     median_s=median, calls_per_run=calls, host_calls_per_run=host_calls)


def test_host_languages_come_from_the_runtimes() -> None:
    assert host_language("wasmtime") == "Python"
    assert host_language("v8@20") == "JavaScript" and host_language("chromium") == "JavaScript"
    assert host_language("wasm2c") == "C"
    assert host_language("no-such-runtime") == "?"
    assert host_of("host-call:mode=paged,host=wasm", "wasm2c") == "wasm shim"
    assert host_of("host-call:mode=paged", "wasm2c") == "C"


def test_extra_time_per_host_call_is_the_paired_excess_over_the_calls() -> None:
    # shared 100 µs; host-call 3x as slow with 1000 host calls: 200 ns per call
    q = StrategyRatio("w", "host-call", "wasm2c", 3.0, 2.9, 3.1, "slower", True, 3,
                      300e-6, 100e-6)
    rows = [_row("w", "host-call", "wasm2c", 300e-6, 2, 1000),
            _row("w", "shared", "wasm2c", 100e-6, 2, 0)]
    [c] = host_call_costs([q], rows)
    assert c.host == "C" and c.host_calls == 1000 and c.ratio == 3.0
    assert c.per_call_s == pytest.approx(200e-9)
    # a variant without host calls has no such cost
    other = StrategyRatio("w", "per-module", "wasm2c", 1.2, 1.1, 1.3, "slower", True, 3,
                          120e-6, 100e-6)
    assert host_call_costs([other], rows) == []


def test_dispatch_share_is_calls_times_the_empty_call_over_the_inference() -> None:
    rows = [_row("a", "shared", "wasmtime", 100e-6, 10, 0),
            _row("b", "shared", "wasmtime", 50e-6, 2, 0),
            _row("a", "shared", "v8", 10e-6, 10, 0)]   # v8 has no noop figure: left out
    [d] = dispatch_shares(rows, {"wasmtime": 1e-6})
    assert d.runtime == "wasmtime" and d.language == "Python" and d.cells == 2
    assert d.median_share == pytest.approx((0.1 + 0.04) / 2) and d.max_share == pytest.approx(0.1)


def _timed(w: str, rt: str, samples: np.ndarray, group_id: str | None) -> ResultRow:
    n = len(samples) // 2
    rounds = tuple({"round": i, "n": n, **({"group": 2, "group_id": f"{group_id}{i}",
                                             "passes": list(range(n))} if group_id else {})}
                   for i in range(2))
    return ResultRow(run_id="r", workload=w, strategy="shared", runtime=rt, status="ok",
                     samples_s=tuple(samples), median_s=float(np.median(samples)),
                     rounds=rounds)


def test_embedded_against_linked_on_the_same_engine() -> None:
    assert linked_twin("wasmtime:bounds=explicit,driver=linked") == "wasmtime:bounds=explicit"
    assert linked_twin("wasmtime") is None and linked_twin("wasmer-sdk") is None
    assert linked_twin("rt<script>") is None   # a results file may hold any text
    # the host drifts by up to 2x from pass to pass; the embedded driver costs 1.2x on
    # every pass: paired, the ratio is 1.2 with a narrow CI
    drift = 100e-6 * np.exp(np.random.default_rng(1).normal(0, 0.3, 20))
    linked = "wasmtime:driver=linked"
    rows = [_timed("a", "wasmtime", drift * 1.2, "g"), _timed("a", linked, drift, "g"),
            _timed("b", "wasmtime", drift * 1.2, "h"), _timed("b", linked, drift, "h"),
            _timed("c", "wasmtime", drift, "k")]   # no linked twin: left out
    [e] = embedded_vs_linked(rows)
    assert (e.embedded, e.linked, e.workloads) == ("wasmtime", linked, 2)
    assert e.paired and e.verdict == "slower"
    assert e.ratio == pytest.approx(1.2) and e.low == e.high == pytest.approx(1.2)
    assert 1.19 < e.ci_low <= e.ratio <= e.ci_high < 1.21
    # the same samples from two workers do not pair: a ratio of medians, flagged
    rows = [_timed("a", "wasmtime", drift * 1.2, None), _timed("a", linked, drift[::-1], None)]
    [u] = embedded_vs_linked(rows)
    assert not u.paired and u.ratio == pytest.approx(1.2)
    assert u.ci_high - u.ci_low > 0.1   # the drift is all in the CI
