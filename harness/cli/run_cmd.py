"""`membench run`: run the cross product of workloads × strategies × runtimes."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.cli.answer import print_answer
from harness.cli.console import overhead_table, print_summary, stderr_console
from harness.cli.report_cmd import report_after_run
from harness.core.errors import SpecError
from harness.plugins.params import parse_size
from harness.run.pipeline import execute
from harness.run.request import Cell, Group, Registries, RunRequest, expand, group_cells
from harness.run.resume import Done, ab_state, load_resume
from harness.run.rundir import new_run_id, prepare_run_dir
from harness.run.suite import load_suite
from harness.store.manifest import read_manifest
from harness.store.rows import RESULTS, ResultRow, read_rows
from harness.worker.measure import MEASURES, MeasureSettings


def add_selection_args(p: argparse.ArgumentParser, runtimes: bool = True) -> None:
    """The options that choose cells and settings (shared by `run` and `ab`)."""
    p.add_argument("--suite", help="suite name (suites/NAME.toml) or path to a suite TOML")
    p.add_argument("--workload", action="append", default=[], metavar="SPEC",
                   help="workload spec, e.g. gemm:m=37,n=53,k=91 (repeatable)")
    p.add_argument("--strategy", action="append", default=[], metavar="SPEC",
                   help="strategy spec, e.g. per-module (repeatable)")
    if runtimes:
        p.add_argument("--runtime", action="append", default=[], metavar="SPEC",
                       help="runtime spec, e.g. wasmtime:bounds=explicit (repeatable)")
    p.add_argument("--out", type=Path, help="results directory (default: results/)")
    p.add_argument("--repeat", type=int, metavar="N", help="timed samples per cell")
    p.add_argument("--sample-time", type=float, metavar="S", help="target seconds per sample")
    p.add_argument("--cell-timeout", type=float, metavar="S", help="seconds before a cell is killed")
    p.add_argument("--seed", type=int, help="seed of the generated inputs and weights")
    p.add_argument("--rounds", type=int, metavar="N",
                   help="rounds: each runs every cell once in a fresh worker, in a shuffled "
                        "order (default 3)")
    p.add_argument("--order-seed", type=int, metavar="N",
                   help="seed of the per-round cell order (default: drawn and recorded)")
    p.add_argument("--warmup-max", type=float, metavar="S",
                   help="cap on warm-up seconds per round (default 2)")
    p.add_argument("--breakdown", action="store_true",
                   help="add an instrumented pass timing copy / call / host-call steps")
    p.add_argument("--measure", action="append", default=[], metavar="KIND",
                   help="what to measure per inference, repeatable or comma-separated: time "
                        "(always); fuel: wasm operators executed, counted by wasmtime's fuel "
                        "in a separate pass after the samples; insts: native instructions, "
                        "counted by valgrind's callgrind in a worker of its own after the "
                        "rounds (20-100x slower); cache: insts with callgrind's cache "
                        "simulation, adding simulated L1 and last-level misses per inference "
                        "(about 2x slower than insts). Engines that cannot be counted say why")
    p.add_argument("--clock", choices=("wall", "cpu"),
                   help="wall (default): elapsed time; cpu: the worker thread's CPU time, "
                        "which leaves out time stolen by other processes")
    p.add_argument("--pin", metavar="CPU",
                   help="pin workers to these CPUs (e.g. 1, 0,1 or 0-3), or `auto`: the "
                        "highest CPU this process may use (the CPU lockstep pairs share)")
    p.add_argument("--no-calibration", action="store_true",
                   help="skip the noop and empty-worker baseline calibration cells")
    p.add_argument("--isolation", action="store_true",
                   help="after the cells, run the isolation probes (`membench isolation`) of "
                        "every strategy on every runtime: the report's matrix then shows what "
                        "an adversarial kernel achieved beside each strategy")
    p.add_argument("--no-groups", action="store_true",
                   help="run every cell in a worker of its own instead of measuring the "
                        "strategies of one workload and runtime together (per-cell peak RSS; "
                        "the strategy ratios are then unpaired)")
    # inherited pipe ends of a lockstep A/B driven by another checkout's `membench ab`
    # (harness/worker/lockstep.py, harness/run/external.py): one cell, one round
    p.add_argument("--lockstep-fds", metavar="GO,READY", help=argparse.SUPPRESS)
    p.add_argument("--max-memory", metavar="SIZE",
                   help="refuse, before any work, workloads whose tensors need more than SIZE "
                        "(e.g. 512MiB, 2GiB); the wasm32 limit of 4 GiB always applies")
    p.add_argument("--worker-memory-limit", metavar="SIZE",
                   help="cap each worker's data segment (heap and committed linear memory; "
                        "RLIMIT_DATA) at SIZE, e.g. 1GiB: a cell that needs more ends as "
                        "`oom` instead of straining the machine (default: no limit)")
    p.add_argument("--cell-budget", type=float, metavar="SECONDS",
                   help="skip (status skipped, with the estimate) cells whose plan-based cost "
                        "estimate exceeds this many seconds")


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run cells and write results",
                       description="Run the cross product of workloads, strategies and "
                                   "runtimes; every cell in its own worker process.")
    add_selection_args(p)
    p.add_argument("--shard", metavar="I/N",
                   help="run only shard I of N (deterministic, balanced; join with `membench merge`)")
    p.add_argument("--no-report", action="store_true",
                   help="do not write report.html at the end (see `membench report`)")
    p.add_argument("--resume", metavar="RUN_DIR", type=Path,
                   help="finish an interrupted run: same cells and settings (from its run.json), "
                        "skipping every cell and round already written")
    p.set_defaults(func=main)


def build_request(args: argparse.Namespace) -> RunRequest:
    suite = load_suite(args.suite) if args.suite else None
    if suite is None and not args.workload:
        suite = load_suite("default")
    settings: dict[str, Any] = dict(suite.settings) if suite else {}
    timeout = float(settings.pop("cell_timeout", 120.0))
    suite_budget = settings.pop("cell_budget", None)
    if args.repeat is not None:
        settings["samples"] = args.repeat
    if args.sample_time is not None:
        settings["sample_s"] = args.sample_time
    if args.seed is not None:
        settings["seed"] = args.seed
    if getattr(args, "rounds", None) is not None:
        settings["rounds"] = args.rounds
    if getattr(args, "order_seed", None) is not None:
        settings["order_seed"] = args.order_seed
    if getattr(args, "warmup_max", None) is not None:
        settings["warmup_max_s"] = args.warmup_max
    if getattr(args, "clock", None):
        settings["clock"] = args.clock
    if getattr(args, "breakdown", False):
        settings["breakdown"] = True
    kinds = [k.strip() for m in getattr(args, "measure", None) or [] for k in m.split(",")
             if k.strip()]
    if kinds:
        bad = [k for k in kinds if k not in MEASURES]
        if bad:
            raise SpecError(f"--measure {bad[0]!r} is not a measure; known: "
                            f"{', '.join(MEASURES)}")
        settings["measure"] = tuple(dict.fromkeys(("time", *kinds)))
    if args.cell_timeout is not None:
        timeout = args.cell_timeout
    for key, flag in (("samples", "repeat"), ("sample_s", "sample-time"), ("rounds", "rounds"),
                      ("warmup_max_s", "warmup-max")):
        if key in settings and settings[key] <= 0:
            raise SpecError(f"--{flag} must be positive")
    if timeout <= 0:
        raise SpecError("--cell-timeout must be positive")
    budget = getattr(args, "cell_budget", None)
    budget = suite_budget if budget is None else budget
    if budget is not None and budget <= 0:
        raise SpecError("--cell-budget must be positive")
    fds = parse_lockstep_fds(getattr(args, "lockstep_fds", None))
    if fds is not None and (len(args.workload) != 1 or len(args.strategy) != 1
                            or len(getattr(args, "runtime", []) or []) != 1
                            or settings.get("rounds") != 1):
        raise SpecError("--lockstep-fds runs exactly one cell (one --workload, --strategy and "
                        "--runtime) for one round")
    return RunRequest(
        workloads=tuple(args.workload) or (suite.workloads if suite else ()),
        strategies=tuple(args.strategy) or (suite.strategies if suite else ()) or ("shared",),
        runtimes=tuple(args.runtime) or (suite.runtimes if suite else ()) or ("wasmtime",),
        settings=MeasureSettings.from_dict(settings), cell_timeout=timeout,
        suite=suite.name if suite else None, pin=parse_pin(getattr(args, "pin", None)),
        calibrate=not getattr(args, "no_calibration", False), cell_budget=budget,
        groups=not getattr(args, "no_groups", False),
        # a suite's per-runtime subsets hold while its own lists are used
        runtime_workloads=dict(suite.runtime_workloads)
        if suite and not args.workload and not args.runtime else {},
        isolation=getattr(args, "isolation", False),
        max_memory=parse_size(args.max_memory, "--max-memory") if args.max_memory else None,
        worker_memory_limit=parse_size(args.worker_memory_limit, "--worker-memory-limit")
        if args.worker_memory_limit else None, lockstep_fds=fds)


def parse_lockstep_fds(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        go, ready = (int(v) for v in text.split(","))
    except ValueError:
        raise SpecError(f"--lockstep-fds takes GO,READY file descriptors, got {text!r}") from None
    return go, ready


def parse_pin(text: str | None) -> tuple[int, ...]:
    """`--pin 1` or `--pin 0,1` or `--pin 0-3`: CPUs this process may run on; `--pin auto`:
    the one `pair_cpu` picks (workers then always meet the same vCPU, whose speed can differ
    from its sibling's on a shared host)."""
    import os

    if not text:
        return ()
    if text.strip().lower() == "auto":
        from harness.run.pair import pair_cpu

        return (pair_cpu(),)
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise SpecError(f"--pin {text!r}: expected CPU numbers like 1, 0,1 or 0-3") from None
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(cpus)
    if not cpus or not cpus <= allowed:
        raise SpecError(f"--pin {text!r}: CPUs {sorted(cpus - allowed) or text} are not "
                        f"available; this process may use {sorted(allowed)}")
    return tuple(sorted(cpus))


#: the error for an A/B run whose run.json lacks its sides
OLD_AB = ("{run} is an A/B run written by an older membench, whose run.json does not say which "
          "cell is A and which B: it cannot be resumed; run the A/B again")

#: where run directories go unless --out says otherwise
DEFAULT_OUT = Path("results")

#: options that choose cells, settings or the place: a resumed run takes them from its
#: run.json and writes into RUN_DIR itself
RESUME_TAKES = ("out", "suite", "workload", "strategy", "runtime", "repeat", "sample_time",
                "cell_timeout", "seed", "rounds", "order_seed", "warmup_max", "breakdown", "measure",
                "clock", "pin", "no_calibration", "no_groups", "isolation", "max_memory", "worker_memory_limit",
                "cell_budget", "shard")


def refuse_resume_options(args: argparse.Namespace, run_dir: Path,
                          extra: tuple[str, ...] = ()) -> None:
    """A resumed run takes its cells and settings from its run.json: refuse any option that
    would choose them (it would be silently ignored otherwise)."""
    given = [k for k in (*RESUME_TAKES, *extra) if getattr(args, k, None) not in (None, [], False)]
    if given:
        raise SpecError(f"--resume takes the cells and settings from {run_dir}/run.json;"
                        f" drop --{given[0].replace('_', '-')}")


def main(args: argparse.Namespace) -> int:
    regs = Registries.from_entry_points()
    if args.resume:
        refuse_resume_options(args, args.resume)
        req, cells, done = load_resume(args.resume, regs)
        state = ab_state(cells, done)
        if state == "ab":
            raise SpecError(f"{args.resume} is an A/B run: finish it with "
                            f"`membench ab --resume {args.resume}`, which also compares the sides")
        if state == "old-ab":
            raise SpecError(OLD_AB.format(run=args.resume))
        return run_cells(req, cells, args.resume, done, report=not args.no_report)
    req = build_request(args)
    cells = expand(req, regs)
    if args.shard:
        from dataclasses import replace

        from harness.run.shard import cell_cost, parse_shard, select_shard

        index, count = parse_shard(args.shard)
        # whole comparison groups: their ratios pair only within one worker
        groups = [[cells[i] for i in g] for g in group_cells(cells)]
        cells = [c for g in select_shard(groups, index, count, key=lambda g: str(g[0]),
                                         cost=lambda g: sum(cell_cost(c) for c in g))
                 for c in g]
        req = replace(req, extra={**req.extra, "shard": {"index": index, "count": count}})
    return run_cells(req, cells, prepare_run_dir(args.out or DEFAULT_OUT, new_run_id()),
                     report=not args.no_report)


def run_cells(req: RunRequest, cells: list[Cell], run_dir: Path, done: Done | None = None,
              report: bool = True) -> int:
    """Run (or finish) a run, then write its report. On Ctrl-C: summarise what finished,
    say how to resume, write the report of what finished, and let the interrupt through
    (exit 130, or 128 + N for signal N)."""
    con = stderr_console()
    t0 = time.monotonic()
    finished = f", {len(done.finals)} cells already finished" if done else ""
    con.print(f"membench: {len(cells)} cells × {req.settings.rounds} rounds -> {run_dir}"
              f"{finished}")

    def progress(i: int, n: int, cell: Cell | Group | str, row: ResultRow | None) -> None:
        if isinstance(cell, str):  # a stage after the rounds
            con.print(f"membench: {cell} ...")
        elif row is None:
            con.print(f"[{i + 1}/{n}] {cell} ...", end="\r")
        else:
            con.print(f"[{i}/{n}] round {row.round} {cell}: {row.status}"
                      + (f" ({row.reason[:80]})" if row.reason else "") + " " * 10)

    try:
        rows = execute(cells, run_dir, req, progress, done)
    except KeyboardInterrupt:
        rows = read_rows(run_dir, kinds=("baseline", "noop", "cell")) \
            if (run_dir / RESULTS).exists() else []
        print_summary(rows)
        ncells = sum(1 for r in rows if r.kind == "cell")
        print(f"membench: interrupted after {ncells} of {len(cells)} cells; finish with: "
              f"membench run --resume {run_dir}", file=sys.stderr)
        raise
    finally:  # interrupted runs get a report too: it says what is missing
        if report:
            report_after_run(run_dir)
    manifest = read_manifest(run_dir)
    print_summary(rows, warnings=manifest.get("warnings", ()))
    con_out = Console(highlight=False, width=200)
    con_out.print(overhead_table(manifest.get("runtimes", {})))
    print_answer(rows, manifest, con_out)
    cost = manifest.get("group_cost") or {}
    took = time.monotonic() - t0
    print(f"took {took / 60:.1f} min" + (
        f" ({cost['workers']} group workers, fixed cost median {cost['fixed_s_median']:.2f} s"
        f" each, {cost['fixed_s_total'] / max(took, 1e-9):.0%} of the run)"
        if cost.get("workers") else "") + (", report included" if report else ""))
    print(f"results: {run_dir}")
    return 0
