"""`membench probe`: the runtime × capability matrix, measured by running tiny modules."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.probes.probe import probe_runtime
from harness.run.request import Registries
from harness.store.manifest import CAPABILITIES


def register(sub: Any) -> None:
    p = sub.add_parser("probe", help="detect each runtime's capabilities")
    p.add_argument("--runtime", action="append", default=[], metavar="SPEC",
                   help="runtime spec (repeatable; default: every registered runtime)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    regs = Registries.from_entry_points()
    specs = args.runtime or regs.runtimes.names()
    results = [probe_runtime(regs.runtimes.create(s)) for s in specs]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
        return 0
    table = Table(title="runtime × capability (probed)", title_justify="left")
    table.add_column("runtime")
    table.add_column("version")
    for cap in CAPABILITIES:
        table.add_column(cap, justify="center")
    for r in results:
        if r.status != "ok":
            table.add_row(r.runtime, f"[yellow]unavailable[/]: {r.message}",
                          *["-"] * len(CAPABILITIES))
            continue
        table.add_row(r.runtime, r.version, *["[green]yes[/]" if r.has(c) else "[red]no[/]"
                                              for c in CAPABILITIES])
    Console(highlight=False, width=220).print(table)
    for r in results:
        for cap, v in r.capabilities.items():
            if not v.get("ok"):
                print(f"  {r.runtime} lacks {cap}: {v.get('detail', '')[:160]}")
    return 0
