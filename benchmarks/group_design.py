"""Which way of pairing strategies gives the tighter ratio to `shared`? (issue: comparison groups)

Two designs, the same workloads, rounds and settings, on one pinned CPU:

* **group**: every variant loaded side by side in one worker per round, samples interleaved
  in a rotating order (`harness.run.group.run_group`, what `membench run` does);
* **lockstep**: each variant in a worker of its own, paired with a `shared` worker in the
  two-process lockstep of `membench ab` (`harness.run.pair.run_pair`): sample k of the
  variant right after sample k of shared, gated through pipes.

For each (workload, variant) both give a paired ratio with a 95% CI
(`stats.compare_paired`, rounds as the unit). The script prints the median CI half-width
of each design, how often one is tighter, and each design's wall time.

    .venv/bin/python benchmarks/group_design.py [--rounds 5] [--runtime wasmtime]
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness.analysis.compare import lockstep_sizes
from harness.analysis.stats import compare_paired
from harness.analysis.strategies import paired_samples
from harness.probes.probe import probe_runtime
from harness.run.group import run_group
from harness.run.pair import pair_cpu, run_pair
from harness.run.request import Cell, Group, Registries
from harness.run.rounds import combine_rounds
from harness.worker.measure import MeasureSettings

WORKLOADS = ("gemm:m=128,n=128,k=128", "conv2d:h=32,w=32,cin=16,cout=16", "mlp-digits",
             "transformer-block")
VARIANTS = ("per-module", "per-module:resident=1", "multi-memory", "per-device")


def half_width(lo: float, hi: float, ratio: float) -> float:
    return (hi - lo) / 2 / ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runtime", default="wasmtime")
    args = ap.parse_args()
    regs = Registries.from_entry_points()
    rt = regs.runtimes.create(args.runtime)
    probe = probe_runtime(rt)
    settings = MeasureSettings(samples=10, sample_s=0.005, warmup_s=0.03)
    pin = (pair_cpu(),)
    shared = regs.strategies.create("shared")
    variants = [regs.strategies.create(v) for v in VARIANTS]
    widths: dict[str, list[float]] = {"group": [], "lockstep": []}
    walls = {"group": 0.0, "lockstep": 0.0}
    tighter = 0
    print(f"{'workload | variant':60s} {'group':>22s} {'lockstep':>22s}")
    for spec in WORKLOADS:
        w = regs.workloads.create(spec)
        cells = [Cell(w, shared, rt), *(Cell(w, v, rt) for v in variants)]
        t0 = time.perf_counter()
        rounds = [run_group(Group(tuple(cells)), "design", settings, 120, probe, r, pin)
                  for r in range(args.rounds)]
        walls["group"] += time.perf_counter() - t0
        g_rows = [combine_rounds([rr[i] for rr in rounds]) for i in range(len(cells))]
        for i, v in enumerate(variants, start=1):
            base, row = g_rows[0], g_rows[i]
            pairs = paired_samples(base, row)
            t0 = time.perf_counter()
            pairs = [run_pair(cells[0], cells[i], "design", settings, 120, (probe, probe),
                              round_index=r, pin=pin) for r in range(args.rounds)]
            walls["lockstep"] += time.perf_counter() - t0
            a = combine_rounds([p[0] for p in pairs])
            b = combine_rounds([p[1] for p in pairs])
            lsizes = lockstep_sizes(a, b)
            if pairs is None or lsizes is None or row.status != "ok" or b.status != "ok":
                print(f"{spec} | {v.spec}: not comparable ({row.status}, {b.status})")
                continue
            g = compare_paired(pairs.base, pairs.current, pairs.sizes)
            lk = compare_paired(a.samples_s, b.samples_s, lsizes)
            hg, hl = half_width(g.ci_low, g.ci_high, g.ratio), half_width(lk.ci_low, lk.ci_high,
                                                                           lk.ratio)
            widths["group"].append(hg)
            widths["lockstep"].append(hl)
            tighter += hg < hl
            print(f"{spec + ' | ' + v.spec:60s} {g.ratio:7.3f} ±{hg:6.1%}      "
                  f"{lk.ratio:7.3f} ±{hl:6.1%}")
    n = len(widths["group"])
    for design in ("group", "lockstep"):
        print(f"{design}: median CI half-width {statistics.median(widths[design]):.2%} over "
              f"{n} ratios; wall {walls[design]:.0f} s")
    print(f"group tighter in {tighter}/{n}")


if __name__ == "__main__":
    main()
