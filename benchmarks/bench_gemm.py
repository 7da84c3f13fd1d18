"""GEMM (and conv2d) GFLOP/s: packed SIMD128, packed SIMD128 + relaxed-SIMD FMA, scalar wasm
and single-threaded NumPy, one run.

    python benchmarks/bench_gemm.py                     # 256x256x256, default tile
    python benchmarks/bench_gemm.py --tiles 4x8,2x16,2x8,3x8,1x16,2x16-splat
    python benchmarks/bench_gemm.py --isas relaxed      # only the FMA variant (and scalar)
    python benchmarks/bench_gemm.py --conv "conv2d:h=32,w=32,cin=32,cout=32,kh=3,kw=3,pad=1"

The wasm side runs the harness's own path in process: strategy -> Plan -> LoadedPlan on
the wasmtime backend (default config), whose calls go through wasmtime's raw call path.
What is timed is the plan's call steps: the kernel, packing included, with its inputs
already in wasm memory and its output left there, the counterpart of `np.matmul(a, b,
out=c)` on arrays NumPy already holds (under a host-call strategy the calls of its host
shim count too). The plan's other steps, writing the input into wasm memory and reading
the output out (B is a weight, written once at setup), are the embedding's cost, not the
GEMM's: they are measured apart and printed next to the result (`membench` cells time the
whole inference, those steps included). NumPy is pinned to one thread (the environment is
set before NumPy is first imported). Variants are measured in interleaved rounds; the
table shows the median and best of the per-round medians, and the machine's load average,
because the machine is shared. The share of NumPy is given three ways: from the medians,
from the best rounds, and paired (the median over rounds of NumPy's time / the variant's
time in the same round, which a burst of host interference slowing whole rounds cancels
out of). `--clock cpu` (default) times with this thread's CPU time, which time slices
given to other processes do not inflate (on a loaded machine wall time measures the
scheduler); `--clock wall` uses perf_counter.

Every `--isas` value is measured with every `--tiles` tile; `simd` is plain SIMD128
(mul + add), `relaxed` adds relaxed-SIMD `f32x4.relaxed_madd` (FMA on x86 with FMA3). The
summary names the fastest tile of each ISA, its share of NumPy and its speed-up over scalar.

Targets (issue 4): SIMD GEMM 256^3 >= 30% of NumPy single-thread sgemm and >= 8x scalar.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.plugins.plan import Call  # noqa: E402
from harness.plugins.verify import compare  # noqa: E402
from harness.plugins.workload import Workload  # noqa: E402
from harness.run.request import Registries  # noqa: E402
from harness.runtimes.executor import LoadedPlan  # noqa: E402
from harness.worker.inprocess import load, outputs  # noqa: E402
from harness.worker.measure import MeasureSettings, time_cold, time_steady  # noqa: E402
from workloads.kernels.gemm import kernel_tile, tile_param  # noqa: E402

SETTINGS = MeasureSettings(warmup_s=0.2, warmup_runs=3, sample_s=0.05, samples=5)


@dataclass(frozen=True)
class WasmRunner:
    """A verified plan split into what is timed (`call`: the kernel, packing included) and
    the plan's other steps around it (`copies`: the input written in, the output read out,
    and any counters read)."""

    call: Callable[[], None]
    copies: Callable[[], None]
    workload: Workload
    #: the steps hold raw pointers into its stores and memories: it must outlive them
    loaded: LoadedPlan


def wasm_runner(regs: Registries, spec: str, strategy: str) -> WasmRunner:
    """Load `spec`, run one whole inference and check it against NumPy (refuses to time
    wrong outputs), then hand out its call steps and its copy steps separately."""
    wl = regs.workloads.create(spec)
    lp, data = load(wl, regs.strategies.create(strategy), regs.runtimes.create("wasmtime"))
    lp.run_once()
    verdict = compare(outputs(lp, wl), wl.reference(data), wl.tolerance())
    if not verdict.ok:
        raise SystemExit(f"{spec}: wrong output, not timing it: {verdict.message}")
    calls = lp.compile_steps(tuple(s for s in lp.plan.run if isinstance(s, Call)))
    copies = lp.compile_steps(tuple(s for s in lp.plan.run if not isinstance(s, Call)))
    return WasmRunner(_sequence(calls), _sequence(copies), wl, lp)


def _sequence(steps: list[Callable[[], None]]) -> Callable[[], None]:
    if len(steps) == 1:
        return steps[0]

    def run() -> None:
        for step in steps:
            step()
    return run


def gemm_numpy(wl: Workload) -> Callable[[], None]:
    d = wl.generate(0)
    a, b = d["a"], d["b"]
    c = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    return lambda: np.matmul(a, b, out=c)


def conv_numpy(wl: Workload) -> Callable[[], None]:
    """im2col + one float32 sgemm + bias + ReLU: what a NumPy convolution costs."""
    from workloads.kernels.conv2d import im2col

    d = wl.generate(0)
    p = wl.params
    x, w, bias = d["x"], d["w"], d["bias"]
    w2 = w.reshape(-1, w.shape[-1])

    def run() -> None:
        cols = im2col(x, p["kh"], p["kw"], p["stride"], p["pad"])
        np.maximum(cols @ w2 + bias, 0, out=None)
    return run


def conv_numpy_gemm_only(wl: Workload) -> Callable[[], None]:
    """Only the sgemm of the (precomputed) im2col matrix: NumPy's floor for this conv."""
    from workloads.kernels.conv2d import im2col

    d = wl.generate(0)
    p = wl.params
    cols = im2col(d["x"], p["kh"], p["kw"], p["stride"], p["pad"])
    w2 = d["w"].reshape(-1, d["w"].shape[-1])
    out = np.empty((cols.shape[0], w2.shape[1]), dtype=np.float32)
    return lambda: np.matmul(cols, w2, out=out)


CLOCKS = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}


def measure(rounds: int, runners: dict[str, Callable[[], None]],
            clock: Callable[[], int]) -> dict[str, list[float]]:
    """Per-inference seconds: the median of each round's samples, rounds interleaved."""
    out: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            t = time_steady(run, SETTINGS, time_cold(run, clock), clock)
            out[name].append(statistics.median(t.samples_s))
    return out


def report(title: str, flops: int, times: dict[str, list[float]], keys: list[str],
           scalar_key: str | None, numpy_key: str) -> None:
    print(f"\n{title}  ({flops / 1e6:.1f} MFLOP per inference)")
    print(f"  {'variant':<28}{'median GFLOP/s':>16}{'best GFLOP/s':>14}{'median ms':>11}")
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    for k in times:
        print(f"  {k:<28}{flops / med[k] / 1e9:>16.2f}{flops / best[k] / 1e9:>14.2f}"
              f"{med[k] * 1e3:>11.3f}")
    for key in keys:
        # interference on a shared host only ever slows a round: the best rounds of both
        # sides say what each can do, the medians what a typical round did; the paired
        # figure compares the two within each round (they ran back to back), as `ab` does
        paired = statistics.median(n / w for n, w in zip(times[numpy_key], times[key],
                                                          strict=True))
        line = (f"  {key}: {100 * med[numpy_key] / med[key]:.1f}% of NumPy single-thread "
                f"(best rounds: {100 * best[numpy_key] / best[key]:.1f}%, "
                f"paired rounds: {100 * paired:.1f}%)")
        if scalar_key:
            line += f", {med[scalar_key] / med[key]:.1f}x scalar"
        print(line)


def report_copies(wasm: dict[str, WasmRunner], times: dict[str, list[float]], keys: list[str],
                  rounds: int, clock: Callable[[], int]) -> None:
    """The embedding's copies around the fastest variant's call, which the figures above
    leave out."""
    key = min(keys, key=lambda k: statistics.median(times[k]))
    call_s = statistics.median(times[key])
    copies_s = statistics.median(measure(rounds, {"copies": wasm[key].copies}, clock)["copies"])
    print(f"  not in the figures above: the plan's other steps (the input written into wasm "
          f"memory, the output read out of it), {copies_s * 1e6:.1f} us per inference "
          f"({100 * copies_s / call_s:.1f}% of {key}'s {call_s * 1e6:.0f} us call)")


def fastest(times: dict[str, list[float]], prefix: str) -> str:
    """The variant starting with `prefix` with the lowest median time."""
    return min((k for k in times if k.startswith(prefix)), key=lambda k: statistics.median(times[k]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--m", type=int, default=256)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--tiles", default="auto",
                    help="comma-separated SIMD tiles to measure (e.g. 4x8,2x16,4x8-rotate+3; "
                         "auto: each ISA's default tile)")
    ap.add_argument("--isas", default="simd,relaxed",
                    help="comma-separated packed ISAs to measure: simd, relaxed (FMA)")
    ap.add_argument("--strategy", default="shared")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--conv", action="append", default=[],
                    help="conv2d workload spec(s) to measure the same way")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                    help="thread CPU time (default; robust to load) or wall time")
    ap.add_argument("--no-gemm", action="store_true", help="only the --conv workloads")
    args = ap.parse_args()

    regs = Registries.from_entry_points()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs); strategy {args.strategy}, wasmtime default config; "
          f"NumPy {np.__version__} single-thread; clock: {args.clock}")
    clock = CLOCKS[args.clock]
    if not args.no_gemm:
        base = f"gemm:m={args.m},n={args.n},k={args.k}"
        isas = args.isas.split(",")
        wasm: dict[str, WasmRunner] = {}
        for isa in isas:
            for tile in args.tiles.split(","):
                name = f"wasm {isa} {kernel_tile(tile_param(tile), isa).label()}"
                if name in wasm:  # e.g. auto and the tile it stands for
                    print(f"  {isa} tile {tile}: the same kernel as {name}, measured once")
                    continue
                wasm[name] = wasm_runner(regs, f"{base},isa={isa},tile={tile}", args.strategy)
        wasm["wasm scalar"] = wasm_runner(regs, f"{base},isa=scalar", args.strategy)
        wl = wasm["wasm scalar"].workload
        runners = {name: r.call for name, r in wasm.items()}
        runners["numpy sgemm (1 thread)"] = gemm_numpy(wl)
        times = measure(args.rounds, runners, clock)
        keys = [fastest(times, f"wasm {isa} ") for isa in isas]
        report(f"GEMM {args.m}x{args.n}x{args.k}", wl.flops(), times, keys, "wasm scalar",
               "numpy sgemm (1 thread)")
        report_copies(wasm, times, keys, args.rounds, clock)
    for spec in args.conv:
        wasm = {f"wasm {isa}": wasm_runner(regs, f"{spec},isa={isa}", args.strategy)
                for isa in args.isas.split(",")}
        wasm["wasm scalar"] = wasm_runner(regs, f"{spec},isa=scalar", args.strategy)
        wl = wasm["wasm scalar"].workload
        runners = {name: r.call for name, r in wasm.items()}
        runners["numpy im2col+sgemm (1 thread)"] = conv_numpy(wl)
        runners["numpy sgemm only (1 thread)"] = conv_numpy_gemm_only(wl)
        times = measure(args.rounds, runners, clock)
        keys = [f"wasm {isa}" for isa in args.isas.split(",")]
        report(spec, wl.flops(), times, keys, "wasm scalar", "numpy im2col+sgemm (1 thread)")
        sg = statistics.median(times["numpy sgemm only (1 thread)"])
        for key in keys:
            print(f"  {key}: {100 * sg / statistics.median(times[key]):.1f}% of NumPy's sgemm "
                  "alone (im2col excluded on the NumPy side only)")
        report_copies(wasm, times, keys, args.rounds, clock)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
