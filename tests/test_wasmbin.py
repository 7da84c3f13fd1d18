"""harness.plugins.wasmbin reads imports, defined memories and exports the way the binary has them."""

from __future__ import annotations

import pytest

from harness.codegen.module import assemble
from harness.plugins.wasmbin import MemoryType, module_info


def test_reads_every_import_kind_memories_and_exports() -> None:
    wasm = assemble('''(module
      (import "env" "f" (func (param i32)))
      (import "env" "t" (table 1 funcref))
      (import "env" "g" (global i32))
      (import "env" "heap" (memory 2 5))
      (import "env" "sh" (memory 1 1 shared))
      (memory $a 3)
      (memory $b (export "b") i64 1)
      (func (export "run"))
      (export "heap_again" (memory 0)))''')
    info = module_info(wasm)
    assert [(i.field, i.kind) for i in info.imports] == [
        ("f", "func"), ("t", "table"), ("g", "global"), ("heap", "memory"), ("sh", "memory")]
    assert info.imported_memories == (MemoryType(2, 5), MemoryType(1, 1, shared=True))
    assert info.defined_memories == (MemoryType(3, None), MemoryType(1, None, memory64=True))
    assert info.memory_export(0) is None and info.memory_export(1) == "b"
    assert {(e.name, e.kind, e.index) for e in info.exports} == {
        ("b", "memory", 3), ("run", "func", 1), ("heap_again", "memory", 0)}


def test_rejects_non_wasm() -> None:
    with pytest.raises(ValueError):
        module_info(b"(module)")
