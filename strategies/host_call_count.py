"""Predicting a host-call plan's host calls per inference by a dry run of its kernels.

How many loads and stores a kernel makes (element mode), or which pages it misses and
dirties (paged mode), follows from its loops and addresses, not from the values it reads.
So the strategy runs each kernel module once, at plan time, with the plan's own argument
addresses, against a *counting stub*: a wasm instance exporting the same `heap.*`
functions that only count (loads return 0, copies copy nothing). The cache logic runs
unchanged, so fills and flushes are counted exactly, as are element accesses.

Assumption: kernels are data-oblivious (their access pattern does not depend on tensor
values), true of every kernel in the project. A kernel that breaks it would make the
worker's counts differ from the plan's, and the cell would fail as `invalid` rather than
report a wrong number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.codegen import KernelModule
from harness.plugins.strategy import Unsupported
from strategies.host_call_lowering import HEAP_FUNCS

_COUNTERS = ("host_calls", "page_fills", "page_flushes")
_BUMP = "(global.set ${g} (i64.add (global.get ${g}) (i64.const 1)))"


def _stub_wat() -> str:
    lines = ["(module"]
    lines += [f'  (global ${g} (export "{g}") (mut i64) (i64.const 0))' for g in _COUNTERS]
    for name, sig in HEAP_FUNCS.items():
        body = _BUMP.format(g="host_calls")
        if name == "copy_in":
            body += _BUMP.format(g="page_fills")
        elif name == "copy_out":
            body += _BUMP.format(g="page_flushes")
        if name.startswith("load"):
            body += f" ({name[-3:]}.const 0)"
        lines.append(f'  (func (export "{name}") {sig} {body})')
    lines.append(")")
    return "\n".join(lines)


@dataclass(frozen=True)
class DryRun:
    """One kernel dispatch to count: its module, call arguments and private memory size."""

    module: KernelModule
    args: tuple[int, ...]
    private_pages: int


def count_host_calls(runs: Sequence[DryRun]) -> dict[str, int]:
    """Host calls, page fills and page flushes the dispatches make, summed."""
    import wasmtime as wt

    cfg = wt.Config()
    cfg.wasm_multi_memory = True
    cfg.wasm_simd = True
    cfg.wasm_bulk_memory = True
    engine = wt.Engine(cfg)
    stub_module = wt.Module(engine, _stub_wat())
    totals = dict.fromkeys(_COUNTERS, 0)
    for run in runs:
        store = wt.Store(engine)
        stub = wt.Instance(store, stub_module, [])
        exports = stub.exports(store)
        private = wt.Memory(store, wt.MemoryType(wt.Limits(run.private_pages, None)))
        module = wt.Module(engine, run.module.wasm)
        imports: list[Any] = []
        for imp in module.imports:
            if isinstance(imp.type, wt.MemoryType):
                imports.append(private)
            elif imp.module == "heap" and imp.name in HEAP_FUNCS:
                imports.append(exports[imp.name])  # type: ignore[arg-type]
            else:
                raise Unsupported(f"cannot dry-run {run.module.name}: unexpected import "
                                  f"{imp.module}.{imp.name}")
        inst = wt.Instance(store, module, imports)
        try:
            inst.exports(store)[run.module.export](store, *run.args)  # type: ignore[operator]
        except wt.Trap as exc:
            raise Unsupported(f"cannot predict host calls of {run.module.name}: its dry run "
                              f"trapped ({exc.message.splitlines()[0]})") from None
        for g in _COUNTERS:
            totals[g] += int(exports[g].value(store))  # type: ignore[union-attr]
    return totals
