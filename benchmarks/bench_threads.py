"""What concurrent dispatch from Python costs on wasmtime, one run: does wasmtime-py release
the GIL for a call, what a Parallel step's hand-off costs, and how far agents scale on this
machine's CPUs when nothing of ours stands between them.

    python benchmarks/bench_threads.py
    python benchmarks/bench_threads.py --workload gemm:m=256,n=256,k=256 --seconds 2

1. GIL: a wasm loop of about 50 ms runs on a second thread while this thread counts Python
   iterations for the same time; against the count with nothing else running. wasmtime-py
   calls through ctypes (`CDLL`), which releases the GIL for a foreign call, so the count
   should not drop (on one CPU it would halve: the two threads share the CPU, not the GIL).
2. Hand-off: `AgentPool.handoff_s`, a Parallel step of empty branches, per agent count.
3. The ceiling: the workload's one-agent plan run by two threads at once, each with a plan
   (and store, and memory) of its own, pinned apart; against each alone. The hardware's
   speed-up for independent work, with no hand-off and no shared memory.
4. The plans: `shared:threads=1`, `shared:threads=2` and `shared:threads=2,split=batch`,
   interleaved in rounds; requests per second and speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from harness.codegen.module import assemble
from harness.plugins.plan import Device, Module
from harness.run.request import Registries
from harness.runtimes.agents import AgentPool, allowed_cpus
from harness.runtimes.wasmtime_runtime import WasmtimeBackend
from harness.worker.inprocess import load

LOOP = ('(module (func (export "spin") (param $n i32) (loop $l (br_if $l (local.tee $n '
        '(i32.sub (local.get $n) (i32.const 1)))))))')


def python_count(seconds: float) -> int:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
    return n


def gil(be: WasmtimeBackend) -> tuple[int, int, float]:
    """(Python iterations alone, with a wasm call on another thread, that call's seconds)."""
    store = be.new_store(Device("gil"))
    inst = be.instantiate(store, be.compile(store, Module("spin", assemble(LOOP))), [])
    n = 50_000_000
    call = be.make_call(store, inst, "spin", [n])
    t0 = time.perf_counter()
    call()
    took = time.perf_counter() - t0
    alone = python_count(took)
    t = threading.Thread(target=call)
    t.start()
    together = python_count(took)
    t.join()
    return alone, together, took


def ceiling(regs: Registries, workload: str, seconds: float) -> tuple[float, float]:
    """Median ms of the one-agent plan alone, and with a twin running on another CPU."""
    rt = regs.runtimes.create("wasmtime")
    w = regs.workloads.create(workload)
    plans = [load(w, regs.strategies.create("shared:threads=1"), rt)[0] for _ in range(2)]
    cpus = allowed_cpus()[:2]
    out: dict[tuple[int, bool], float] = {}

    def go(i: int, both: bool) -> None:
        os.sched_setaffinity(threading.get_native_id(), {cpus[i]})
        times = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            plans[i].run_once()
            times.append(time.perf_counter() - t0)
        out[(i, both)] = statistics.median(times)

    alone = threading.Thread(target=go, args=(0, False))  # this thread stays unpinned
    alone.start()
    alone.join()
    threads = [threading.Thread(target=go, args=(i, True)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out[(0, False)] * 1e3, out[(0, True)] * 1e3


def plans(regs: Registries, workload: str, seconds: float) -> dict[str, float]:
    rt = regs.runtimes.create("wasmtime")
    w = regs.workloads.create(workload)
    specs = ["shared:threads=1", "shared:threads=2", "shared:threads=2,split=batch"]
    loaded = {s: load(w, regs.strategies.create(s), rt)[0] for s in specs}
    per: dict[str, list[float]] = {s: [] for s in specs}
    for _ in range(10):
        for s, lp in loaded.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 30:
                lp.run_once()
                n += 1
            per[s].append((time.perf_counter() - t0) / n)
    return {s: statistics.median(v) for s, v in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="gemm:m=256,n=256,k=256")
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    regs = Registries.from_entry_points()
    be = WasmtimeBackend("guard", "speed")
    print(f"CPUs: {os.cpu_count()}, this process may run on {allowed_cpus()}; "
          f"load average {os.getloadavg()[0]:.2f}")
    alone, together, took = gil(be)
    print(f"GIL: a {took * 1e3:.0f} ms wasm call on another thread; Python iterations in that "
          f"time: {alone} alone, {together} beside it ({together / alone:.2f}x)")
    for n in range(2, len(allowed_cpus()) + 1):
        pool = AgentPool(n, be)
        print(f"hand-off, {n} agents: {pool.handoff_s() * 1e6:.1f} µs per step")
        pool.close()
    if len(allowed_cpus()) >= 2:
        one, two = ceiling(regs, args.workload, args.seconds)
        print(f"ceiling: {args.workload} shared:threads=1 {one:.3f} ms alone, {two:.3f} ms "
              f"with a twin on the other CPU: independent work scales {2 * one / two:.2f}x")
        got = plans(regs, args.workload, args.seconds)
        base = got["shared:threads=1"]
        for s, t in got.items():
            requests = 2 if "batch" in s else 1
            print(f"{s:32s} {t * 1e3:.3f} ms  {requests / t:8.0f} requests/s  "
                  f"{requests * base / t:.2f}x")


if __name__ == "__main__":
    main()
