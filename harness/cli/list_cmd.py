"""`membench list`: every registered workload, strategy and runtime with its parameters."""

from __future__ import annotations

import argparse
from typing import Any

from harness.run.request import Registries
from harness.run.suite import available_suites


def register(sub: Any) -> None:
    p = sub.add_parser("list", help="list workloads, strategies, runtimes and suites")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    regs = Registries.from_entry_points()
    for title, reg in (("workloads", regs.workloads), ("strategies", regs.strategies),
                       ("runtimes", regs.runtimes)):
        print(f"{title}:")
        for name, cls in reg:
            print(f"  {name:<18} {cls.DESCRIPTION}")
            for p in cls.declared_params():
                print(f"      {p.describe()}")
        print()
    print("suites: " + ", ".join(available_suites()))
    return 0
