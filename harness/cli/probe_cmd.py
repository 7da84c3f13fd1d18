"""`membench probe`: the runtime × capability matrix, measured by running tiny modules.

The engine list is fixed (every registered runtime, plus the versions each names in
`PROBE_VERSIONS`), so an engine this machine lacks stays visible as `unavailable` with the
reason. A capability an engine lacks is probed again with the flag that turns it on, where
one is known: the table says `flag` when only the flag gives it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.probes.probe import ProbeResult, probe_runtime
from harness.run.request import Registries
from harness.store.manifest import CAPABILITIES


def register(sub: Any) -> None:
    p = sub.add_parser("probe", help="detect each runtime's capabilities")
    p.add_argument("--runtime", action="append", default=[], metavar="SPEC",
                   help="runtime spec (repeatable; default: every registered runtime and "
                        "the versions it lists)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=main)


def default_specs(regs: Registries) -> list[str]:
    """Every registered runtime, each followed by its listed versions (`v8`, `v8@20`)."""
    out = []
    for name in regs.runtimes.names():
        out.append(name)
        out += [f"{name}@{v}" for v in regs.runtimes.get(name).PROBE_VERSIONS]
    return out


def cell(r: ProbeResult, cap: str) -> str:
    if r.has(cap):
        return "[green]yes[/]"
    flag = r.capabilities.get(cap, {}).get("flag")
    return "[yellow]flag[/]" if isinstance(flag, dict) and flag.get("ok") else "[red]no[/]"


def main(args: argparse.Namespace) -> int:
    regs = Registries.from_entry_points()
    specs = args.runtime or default_specs(regs)
    results = [probe_runtime(regs.runtimes.create(s), try_flags=True) for s in specs]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
        return 0
    table = Table(title="runtime × capability (probed; flag: only with the flag below)",
                  title_justify="left")
    table.add_column("runtime")
    table.add_column("version")
    for cap in CAPABILITIES:
        table.add_column(cap, justify="center")
    for r in results:
        if r.status != "ok":
            table.add_row(r.runtime, f"[yellow]unavailable[/]: {r.message}",
                          *["-"] * len(CAPABILITIES))
            continue
        version = r.version + (f" (node {r.info['node']})" if r.info.get("node") else "")
        table.add_row(r.runtime, version, *[cell(r, c) for c in CAPABILITIES])
    Console(highlight=False, width=240).print(table)
    for r in results:
        for cap, v in r.capabilities.items():
            if v.get("ok"):
                continue
            flag = v.get("flag")
            if isinstance(flag, dict) and flag.get("ok"):
                print(f"  {r.runtime} has {cap} only with a flag: {flag['spec']}")
            else:
                tried = f" (tried {flag['spec']}: {str(flag.get('detail', ''))[:120]})" \
                    if isinstance(flag, dict) else ""
                print(f"  {r.runtime} lacks {cap}: {str(v.get('detail', ''))[:160]}{tried}")
    return 0
