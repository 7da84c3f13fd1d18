"""A plan's instances linked into one module (wasm-merge) keep the plan's meaning.

The linked module is driven here from Python through a small test driver that defines the
plan's memories and re-exports every function the plan calls; the outputs must match
NumPy and every module must keep its own memories."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
import wasmtime

from harness.codegen import assemble
from harness.plugins.verify import compare
from harness.plugins.wasmbin import module_info, rename_imports
from harness.runtimes.base import RuntimeUnsupported
from harness.standalone.link import link_program, memory_export
from harness.standalone.program import (
    OP_CALL,
    OP_COPY,
    OP_COUNT,
    OP_READ,
    OP_WRITE,
    ProgramVariant,
    lower_plans,
)
from harness.toolchain.binaryen import wasm_merge

MERGE = wasm_merge()
pytestmark = pytest.mark.skipif(isinstance(MERGE, str), reason=str(MERGE))


def _test_driver(v: ProgramVariant) -> bytes:
    """Memories of the plan (exported as v0m<j>, as the instances of the program's first
    variant import them) and a trampoline c<k> per call entry."""
    imports, defs = [], []
    for j, m in enumerate(v.memories):
        if m.kind == "export":
            imports.append(f'(import "v0i{m.instance}" "{m.export}" (memory $m{j} 0))')
            defs.append(f'(export "v0{memory_export(j)}" (memory $m{j}))')
        elif m.kind == "host":
            defs.append(f'(memory $m{j} (export "v0{memory_export(j)}") {m.min_pages})')
        elif m.kind == "buffer":
            defs.append(f'(memory $m{j} (export "v0{memory_export(j)}") '
                        f'{max(1, -(-m.size // 65536))})')
    arity = {c.a: len(c.args) for c in (*v.setup, *v.run) if c.op == OP_CALL}
    for k, (inst, export) in enumerate(v.calls):
        params = " ".join(["i32"] * arity[k])
        args = "".join(f"(local.get {i})" for i in range(arity[k]))
        imports.append(f'(import "v0i{inst}" "{export}" (func $c{k} (param {params})))')
        defs.append(f'(func (export "c{k}") (param {params}) (call $c{k} {args}))')
    return assemble("(module " + " ".join(imports + defs) + ")")


def _run(v: ProgramVariant, merged: bytes, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    inst = wasmtime.Instance(store, wasmtime.Module(engine, merged), [])
    ex = inst.exports(store)

    def mem(j: int) -> np.ndarray:
        m = ex["v0" + memory_export(j)]
        ptr = ctypes.cast(m.data_ptr(store), ctypes.POINTER(ctypes.c_ubyte))
        return np.ctypeslib.as_array(ptr, (m.data_len(store),))

    tensors = [t for t, _ in v.tensors]
    outputs = {}
    for c in (*v.setup, *v.run):
        if c.op == OP_WRITE:
            mem(c.mem2)[c.off2:c.off2 + c.size] = data[tensors[c.a]].view(np.uint8).ravel()
        elif c.op == OP_COPY:
            mem(c.mem2)[c.off2:c.off2 + c.size] = mem(c.mem)[c.off:c.off + c.size]
        elif c.op == OP_CALL:
            ex[f"c{c.a}"](store, *[int(np.int32(np.uint32(a))) for a in c.args])
        elif c.op == OP_READ:
            outputs[v.outputs[c.a][0]] = mem(c.mem)[c.off:c.off + c.size].copy()
        elif c.op == OP_COUNT:
            mem(c.mem)[c.off:c.off + c.size] = 0
    return outputs


@pytest.mark.parametrize("strategy", ["shared", "per-module", "per-module:resident=1",
                                      "multi-memory", "multi-memory:weights=separate",
                                      "per-device", "host-call:mode=paged,host=wasm",
                                      "host-call:mode=element,host=wasm"])
def test_a_linked_plan_computes_what_numpy_does(regs, strategy: str) -> None:
    w = regs.workloads.create("mlp:batch=5,sizes=64-32-10")
    plan = regs.strategies.create(strategy).plan(w)
    program = lower_plans([plan])
    v = program.variants[0]
    merged = link_program(program, _test_driver(v))
    wasmtime.Module(wasmtime.Engine(), merged)  # validates
    # every memory of every instance is there, as in the plan (driver + instances)
    defined = len(module_info(merged).defined_memories)
    assert defined == sum(len(x.defined) for x in v.instances) \
        + sum(m.kind in ("host", "buffer") for m in v.memories)
    data = w.generate(0)
    got = _run(v, merged, data)
    ref = w.reference(data)
    outs = {t.name: got[t.name].view(t.dtype).reshape(t.shape) for t in w.by_role("output")}
    verdict = compare(outs, ref, w.tolerance())
    assert verdict.ok, verdict.message


def test_a_linked_plan_cannot_use_an_embedding_host(regs) -> None:
    plan = regs.strategies.create("host-call:mode=paged").plan(
        regs.workloads.create("mlp:batch=5,sizes=64-32-10"))
    program = lower_plans([plan])
    with pytest.raises(RuntimeUnsupported, match="host=wasm"):
        link_program(program, assemble("(module)"))


def test_renamed_imports_keep_every_other_byte(regs) -> None:
    wasm = assemble('(module (import "env" "heap" (memory 1)) (import "env" "f" '
                    '(func (param i32))) (func (export "run") (call 0 (i32.const 1))))')
    out = rename_imports(wasm, lambda m, f, k: ("i7", f"{f}.{k}"))
    assert [(i.module, i.field) for i in module_info(out).imports] == \
        [("i7", "heap.memory"), ("i7", "f.func")]
    assert rename_imports(out, lambda m, f, k: ("env", f.split(".")[0])) == wasm
