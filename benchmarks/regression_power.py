"""Measure `membench compare`'s false-alarm rate and detection power on this machine.

(a) A/A: the same runtime spec on both sides of `membench ab`, repeated; every cell flagged
    `slower` is a false alarm (target: at most 1% of cells).
(b) Injected regressions: side B does real extra work of 10% (and 5%) of each inference
    (`slowdown=N`, a busy computation, never a sleep); the fraction of cells flagged
    `slower` is the detection power (target: at least 95% at 10%).
(c) With `--measure fuel,insts --inject burn`: side B runs extra wasm work of N% of each
    inference's wasm operators (`wasmtime:burn=N`, a loop in a module of its own), which
    time and both counts see; each count's verdict (`more` past `--count-threshold`, as
    `membench ab` gates) is scored beside time's.

    python benchmarks/regression_power.py [--suite quick] [--runtime wasmtime] [--pin 0]
    python benchmarks/regression_power.py --measure fuel,insts --inject burn --levels 10,2

Prints both figures; the numbers for docs/methodology.md come from here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from harness.analysis.counts import COUNT_THRESHOLD, compare_counts
from harness.cli.ab_cmd import side_b_spec
from harness.cli.run_cmd import parse_pin
from harness.plugins.spec import parse_spec
from harness.run.ab import AB_ROUNDS, AB_SAMPLES, ab_cells, ab_request, compare_sides
from harness.run.pipeline import execute
from harness.run.request import Registries, RunRequest
from harness.run.rundir import new_run_id, prepare_run_dir
from harness.run.suite import load_suite
from harness.worker.measure import MeasureSettings


def one_ab(req: RunRequest, a: str, b: str, out: Path, regs: Registries,
           threshold: float, alpha: float, count_threshold: float) -> dict[str, tuple[int, int]]:
    """Cells flagged and cells compared, per measure: time (`slower`) and each count the
    run measured (`more`)."""
    cells = ab_cells(req, a, b, regs)
    run_dir = prepare_run_dir(out, new_run_id())
    rows = execute(cells, run_dir, req, None)
    cmp = compare_sides(rows, threshold, alpha)
    got = {"time": (cmp.count("slower"), len(cmp.cells))}
    for measure in req.settings.measure:
        if measure == "time":
            continue
        changes = [c for c in compare_counts(rows, count_threshold)
                   if c.measure == measure and c.verdict != "uncounted"]
        got[measure] = (sum(c.verdict == "more" for c in changes), len(changes))
    return got


def injected_spec(runtime: str, kind: str, pct: int) -> str:
    """Side B: the runtime with `pct`% injected (`slowdown`: host busy work inside each
    sample; `burn`: wasm work)."""
    if kind == "slowdown":
        return side_b_spec(runtime, f"{pct}%" if pct else None)
    if not pct:
        return runtime
    spec = parse_spec(runtime)
    return str(spec) + ("," if spec.params else ":") + f"burn={pct}"


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
    ap.add_argument("--measure", default="time",
                    help="time (always), fuel, insts: comma-separated, as `membench run`")
    ap.add_argument("--inject", choices=("slowdown", "burn"), default="slowdown",
                    help="slowdown: host busy work in each sample (time only sees it); "
                         "burn: wasm work of N%% of the operators (wasmtime)")
    ap.add_argument("--levels", default="10,5", help="injected percentages")
    ap.add_argument("--count-threshold", type=float, default=COUNT_THRESHOLD)
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
    settings["measure"] = tuple(dict.fromkeys(("time", *args.measure.split(","))))
    req = ab_request(RunRequest(workloads=suite.workloads,
                                strategies=tuple(args.strategy) or suite.strategies,
                                runtimes=(args.runtime,),
                                settings=MeasureSettings.from_dict(settings),
                                cell_timeout=timeout, suite=suite.name,
                                pin=parse_pin(args.pin)),
                     rounds_given=True, lockstep=not args.no_lockstep,
                     samples_given=bool(args.samples))
    regs = Registries.from_entry_points()
    levels = [int(x) for x in args.levels.split(",")]
    scenarios = [("A/A (no change)", 0, args.aa_repeats),
                 *((f"injected +{pct}%", pct, args.repeats) for pct in levels)]
    results: dict[str, dict[str, list[int]]] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="membench-power-") as tmp:
        out = args.out or Path(tmp)
        for label, pct, repeats in scenarios:
            b = injected_spec(args.runtime, args.inject, pct)
            tally: dict[str, list[int]] = {}
            for i in range(repeats):
                got = one_ab(req, args.runtime, b, out, regs, args.threshold, args.alpha,
                             args.count_threshold)
                for measure, (s, n) in got.items():
                    t = tally.setdefault(measure, [0, 0])
                    t[0] += s
                    t[1] += n
                print(f"  {label}: repeat {i + 1}/{repeats}: " + ", ".join(
                    f"{m} {s}/{n}" for m, (s, n) in got.items()) +
                    f" cells flagged ({time.monotonic() - started:.0f} s)", file=sys.stderr)
            results[label] = tally
    print(f"\nsuite {args.suite}, runtime {args.runtime}, {args.rounds} rounds a side "
          f"({'unpaired' if args.no_lockstep else 'lockstep'}; unit: the round), clock "
          f"{req.settings.clock}, threshold {args.threshold:.0%} (counts "
          f"{args.count_threshold:.0%}), alpha {args.alpha} (BH), injected by {args.inject}, "
          f"load {os.getloadavg()[0]:.2f}:")
    for label, tally in results.items():
        kind = "false-alarm rate" if label.startswith("A/A") else "detected"
        for measure, (flagged, total) in tally.items():
            rate = flagged / total if total else float("nan")
            print(f"  {label:<18} {measure:<5} {kind}: {flagged}/{total} = {rate:.1%}")
    fa = results["A/A (no change)"].get("time", [0, 0])
    top = results[f"injected +{max(levels)}%"].get("time", [0, 0])
    ok = fa[0] <= 0.01 * fa[1] and top[0] >= 0.95 * top[1]
    print(f"targets (false alarms <= 1%, detection at {max(levels)}% >= 95%, time):",
          "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
