"""How long `membench history` takes to read 1,000 runs (issue target: under 5 s).

    python benchmarks/bench_history.py                    # 1000 synthetic quick-suite runs
    python benchmarks/bench_history.py --template results/RUN_ID --runs 1000

Builds `--runs` run directories under a temporary directory by copying a template run:
either a real one (`--template`) or, by default, a synthetic run laid out as `membench run
--suite quick --runtime wasmtime --rounds 5` writes it (baseline, round rows and final
cell rows with phases, memory, settings, stats; ~300 kB of results.jsonl). Each copy gets
its own run id, date, commit and a 10% step up halfway, so the step detector has real
work. Then times reading the history (`load_history`) and step detection over every
series, separately, best of `--repeat`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.analysis.history import detect_steps, load_history
from harness.analysis.stats import summarize
from harness.store.manifest import MANIFEST
from harness.store.rows import RESULTS, ResultRow, ResultsWriter

TARGET_S = 5.0


def synthetic_template(root: Path, cells: int = 14, rounds: int = 5, samples: int = 5) -> Path:
    """A run directory shaped like a real quick-suite run on one runtime."""
    run = root / "template"
    run.mkdir()
    rng = np.random.default_rng(0)
    common = {
        "phases": {"compile_s": {"m0": 1.2e-3, "m1": 9e-4}, "instantiate_s": {"i0": 4e-5},
                   "setup_s": 3e-5, "first_run_s": 6e-5},
        "counters": {"bytes_copied": 0, "calls": 3, "host_calls": 0, "bytes_written": 4096,
                     "bytes_read": 1024},
        "memory": {"rss_start": 37928960, "vms_start": 177778688, "peak_rss": 52289536,
                   "linear_bytes": 131072, "memories": 1, "vms_reserved": 4294967296},
        "runtime_info": {"name": "wasmtime", "spec": "wasmtime", "version": "50.0.1",
                         "config": {"bounds": "guard", "opt": "speed"}, "python": "3.11.7"},
        "settings": {"warmup_s": 0.02, "samples": samples, "sample_s": 0.005,
                     "rounds": rounds, "seed": 0, "order_seed": 1},
        "timing": {"inner": 40, "steady": True, "warmup_runs": 120, "clock": "wall"},
    }
    with ResultsWriter(run / RESULTS) as w:
        for c in range(cells):
            base = 1e-5 * (1 + c)
            all_samples: list[float] = []
            infos = []
            for r in range(rounds):
                s = tuple(base * (1 + 0.02 * rng.standard_normal(samples)))
                all_samples += s
                w.append(ResultRow(run_id="template", workload=f"wl{c}", strategy="shared",
                                   runtime="wasmtime", status="ok", kind="round", round=r,
                                   samples_s=s, median_s=float(np.median(s)), inner=40,
                                   **common))  # type: ignore[arg-type]
                infos.append({"round": r, "status": "ok", "n": samples,
                              "median_s": float(np.median(s)), "inner": 40,
                              "phases": common["phases"], "memory": common["memory"]})
            w.append(ResultRow(run_id="template", workload=f"wl{c}", strategy="shared",
                               runtime="wasmtime", status="ok", samples_s=tuple(all_samples),
                               median_s=float(np.median(all_samples)), rounds=tuple(infos),
                               stats=summarize(all_samples).to_dict(),
                               **common))  # type: ignore[arg-type]
    manifest = {"run_id": "template", "created": "2026-01-01T00:00:00", "suite": "quick",
                "status": "complete", "cells_planned": cells,
                "fingerprint": {"machine_id": "bench", "cpu_model": "bench", "cpu_count": 2,
                                "git": {"commit": "c", "dirty": False}}}
    (run / MANIFEST).write_text(json.dumps(manifest))
    return run


def build_history(template: Path, root: Path, n: int) -> Path:
    """`n` copies of `template` under root/results, the second half 10% slower."""
    results = root / "results"
    results.mkdir()
    manifest = json.loads((template / MANIFEST).read_text())
    lines = (template / RESULTS).read_text().splitlines()
    slow_lines = []
    for line in lines:
        row = json.loads(line)
        if row.get("samples_s"):
            row["samples_s"] = [s * 1.10 for s in row["samples_s"]]
        slow_lines.append(json.dumps(row))
    for i in range(n):
        run_id = f"2026{i:08d}"
        d = results / run_id
        d.mkdir()
        body = slow_lines if i >= n // 2 else lines
        (d / RESULTS).write_text("\n".join(body) + "\n")
        fp = dict(manifest.get("fingerprint", {}))
        fp["git"] = {"commit": f"{i:040x}", "dirty": False}
        (d / MANIFEST).write_text(json.dumps({**manifest, "run_id": run_id,
                                              "created": f"2026-01-01T{i // 60 % 24:02d}:"
                                                         f"{i % 60:02d}:{i % 7:02d}.{i:06d}",
                                              "fingerprint": fp}))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--template", type=Path, help="a real run directory to copy")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="membench-history-") as tmp:
        root = Path(tmp)
        template = args.template or synthetic_template(root)
        results = build_history(template, root, args.runs)
        size = sum(p.stat().st_size for p in results.rglob("*") if p.is_file())
        read_s, detect_s = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            cells, nruns = load_history(results)
            t1 = time.perf_counter()
            steps = [detect_steps(h) for h in cells]
            t2 = time.perf_counter()
            read_s.append(t1 - t0)
            detect_s.append(t2 - t1)
        found = sum(1 for s in steps if s)
        print(f"{nruns} runs, {size / 1e6:.0f} MB, {len(cells)} cell series; "
              f"read {min(read_s):.2f} s, step detection {min(detect_s):.2f} s "
              f"(best of {args.repeat}); {found}/{len(cells)} series show the planted step")
        total = min(read_s) + min(detect_s)
        print(f"read + detect {total:.2f} s: target < {TARGET_S:.0f} s "
              f"{'met' if total < TARGET_S else 'NOT met'}")
        return 0 if total < TARGET_S and found == len(cells) else 1


if __name__ == "__main__":
    sys.exit(main())
