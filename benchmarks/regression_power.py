"""Measure `membench compare`'s false-alarm rate and detection power on this machine.

(a) A/A: the same runtime spec on both sides of `membench ab`, repeated; every cell flagged
    `slower` is a false alarm (target: at most 1% of cells).
(b) Injected regressions: side B does real extra work of 10% (and 5%) of each inference
    (`slowdown=N`, a busy computation, never a sleep); the fraction of cells flagged
    `slower` is the detection power (target: at least 95% at 10%).

    python benchmarks/regression_power.py [--suite quick] [--runtime wasmtime] [--pin 0]

Prints both figures; the numbers for docs/methodology.md come from here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from harness.cli.ab_cmd import side_b_spec
from harness.cli.run_cmd import parse_pin
from harness.run.ab import AB_ROUNDS, AB_SAMPLES, ab_cells, ab_request, compare_sides
from harness.run.pipeline import execute
from harness.run.request import Registries, RunRequest
from harness.run.rundir import new_run_id, prepare_run_dir
from harness.run.suite import load_suite
from harness.worker.measure import MeasureSettings


def one_ab(req: RunRequest, a: str, b: str, out: Path, regs: Registries,
           threshold: float, alpha: float) -> tuple[int, int]:
    cells = ab_cells(req, a, b, regs)
    run_dir = prepare_run_dir(out, new_run_id())
    rows = execute(cells, run_dir, req, None)
    cmp = compare_sides(rows, threshold, alpha)
    return cmp.count("slower"), len(cmp.cells)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--runtime", default="wasmtime")
    ap.add_argument("--strategy", action="append", default=[])
    ap.add_argument("--aa-repeats", type=int, default=8,
                    help="A/A runs (8 x 14 quick cells = 112 comparisons, so one false alarm "
                         "is 0.9%%)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per injected slowdown")
    ap.add_argument("--rounds", type=int, default=AB_ROUNDS,
                    help="rounds (fresh workers) per side, as `membench ab` runs by default")
    ap.add_argument("--samples", type=int,
                    help=f"samples per round (default: the suite's, at least {AB_SAMPLES}, "
                         "as `membench ab`)")
    ap.add_argument("--threshold", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--pin", help="pin workers to these CPUs, e.g. 0")
    ap.add_argument("--clock", choices=("wall", "cpu"), help="as `membench run --clock`")
    ap.add_argument("--no-lockstep", action="store_true",
                    help="run A and B one after the other (as `membench ab --no-lockstep`)")
    ap.add_argument("--out", type=Path,
                    help="keep every A/B run directory here (default: a temporary directory)")
    args = ap.parse_args()
    suite = load_suite(args.suite)
    settings = dict(suite.settings)
    timeout = float(settings.pop("cell_timeout", 120))
    settings["rounds"] = args.rounds
    if args.samples:
        settings["samples"] = args.samples
    if args.clock:
        settings["clock"] = args.clock
    req = ab_request(RunRequest(workloads=suite.workloads,
                                strategies=tuple(args.strategy) or suite.strategies,
                                runtimes=(args.runtime,),
                                settings=MeasureSettings.from_dict(settings),
                                cell_timeout=timeout, suite=suite.name,
                                pin=parse_pin(args.pin)),
                     rounds_given=True, lockstep=not args.no_lockstep,
                     samples_given=bool(args.samples))
    regs = Registries.from_entry_points()
    scenarios = [("A/A (no change)", 0, args.aa_repeats), ("injected +10%", 10, args.repeats),
                 ("injected +5%", 5, args.repeats)]
    results = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="membench-power-") as tmp:
        out = args.out or Path(tmp)
        for label, pct, repeats in scenarios:
            b = side_b_spec(args.runtime, f"{pct}%" if pct else None)
            flagged = total = 0
            for i in range(repeats):
                s, n = one_ab(req, args.runtime, b, out, regs, args.threshold, args.alpha)
                flagged += s
                total += n
                print(f"  {label}: repeat {i + 1}/{repeats}: {s}/{n} cells flagged slower "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
            results[label] = (flagged, total)
    print(f"\nsuite {args.suite}, runtime {args.runtime}, {args.rounds} rounds a side "
          f"({'unpaired' if args.no_lockstep else 'lockstep'}; unit: the round), clock {req.settings.clock}, threshold {args.threshold:.0%}, "
          f"alpha {args.alpha} (BH), load {os.getloadavg()[0]:.2f}:")
    for label, (flagged, total) in results.items():
        rate = flagged / total if total else float("nan")
        kind = "false-alarm rate" if label.startswith("A/A") else "detected"
        print(f"  {label:<18} {kind}: {flagged}/{total} = {rate:.1%}")
    fa = results["A/A (no change)"]
    p10 = results["injected +10%"]
    ok = fa[0] <= 0.01 * fa[1] and p10[0] >= 0.95 * p10[1]
    print("targets (false alarms <= 1%, detection at 10% >= 95%):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
