"""`membench isolation`: adversarial probes for every strategy × runtime, as a matrix."""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path
from typing import Any

from harness.cli.console import stderr_console
from harness.cli.run_cmd import DEFAULT_OUT
from harness.core.protocol import write_json_atomic
from harness.probes.fingerprint import command_line, fingerprint
from harness.probes.isolation import PROBES, matrix_text, run_probe
from harness.probes.probe import probe_runtime
from harness.run.request import Registries
from harness.run.rundir import new_run_id, prepare_run_dir
from harness.store.manifest import MANIFEST
from harness.store.rows import RESULTS, ResultRow, ResultsWriter


def register(sub: Any) -> None:
    p = sub.add_parser("isolation", help="probe each strategy's isolation between executables",
                       description="Run adversarial kernels (read an unbound tensor, write past "
                                   "a bound output, read another executable's scratch) under "
                                   "each strategy and runtime; outcomes come from the victim's "
                                   "bytes: trapped, leaked, corrupted or contained.")
    p.add_argument("--strategy", action="append", default=[], metavar="SPEC",
                   help="strategy spec (repeatable; default: every registered strategy)")
    p.add_argument("--runtime", action="append", default=[], metavar="SPEC",
                   help="runtime spec (repeatable; default: wasmtime)")
    p.add_argument("--out", type=Path, help="results directory (default: results/)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    regs = Registries.from_entry_points()
    strategies = [regs.strategies.create(s) for s in args.strategy or regs.strategies.names()]
    runtimes = [regs.runtimes.create(s) for s in args.runtime or ["wasmtime"]]
    run_dir = prepare_run_dir(args.out or DEFAULT_OUT, new_run_id())
    con = stderr_console()
    manifest: dict[str, Any] = {
        "run_id": run_dir.name, "kind": "isolation", "command": command_line(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint(), "runtimes": {}, "status": "running"}
    rows: list[ResultRow] = []
    with ResultsWriter(run_dir / RESULTS) as writer:
        for rt in runtimes:
            caps = probe_runtime(rt)
            manifest["runtimes"][rt.spec] = caps.to_dict()
            for s in strategies:
                for probe in PROBES:
                    row = run_probe(probe, s, rt, run_dir.name, caps)
                    writer.append(row)
                    rows.append(row)
                    what = row.metrics.get("outcome") if row.status == "ok" else row.status
                    con.print(f"{rt.spec} | {s.spec} | {probe}: {what} ({row.reason[:100]})")
    manifest["status"] = "complete"
    write_json_atomic(run_dir / MANIFEST, manifest)
    print(matrix_text(rows))
    print(f"results: {run_dir}")
    return 0
