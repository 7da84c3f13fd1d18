"""`membench export`: every kernel under every strategy as .wasm/.wat files with a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.cli.export import export_all, variant_specs
from harness.run.request import Registries


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="write every kernel x strategy as .wasm/.wat + manifest",
                       description="Write, for every workload (small representative shapes) "
                                   "under every strategy variant that can express it, each "
                                   "module's .wasm and .wat, the inputs and expected outputs "
                                   "as .npy, and a manifest.json to run them without membench.")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--workload", action="append", default=[], metavar="SPEC",
                   help="workload spec (repeatable; default: every workload and variant at a "
                        "small shape)")
    p.add_argument("--strategy", action="append", default=[], metavar="SPEC",
                   help="strategy spec (repeatable; default: every strategy and variant)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated inputs")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    regs = Registries.from_entry_points()
    workloads = [regs.workloads.create(s) for s in
                 (args.workload or [v for _, cls in regs.workloads
                                      for v in variant_specs(cls, small=True)])]
    strategies = [regs.strategies.create(s) for s in
                  (args.strategy or [v for _, cls in regs.strategies for v in variant_specs(cls)])]
    done = export_all(workloads, strategies, args.out, args.seed)
    written = [e for e in done if e.directory is not None]
    for e in done:
        where = str(e.directory) if e.directory is not None else f"not expressible: {e.reason}"
        print(f"{e.workload:<32} {e.strategy:<36} {where}")
    print(f"exported {len(written)} of {len(done)} workload x strategy pairs to {args.out}")
    return 0
