"""`multi-memory:built=merge`: a multi-memory module made by a real toolchain, the route
WebAssembly/multi-memory#45 describes while LLVM has no multi-memory.

The kernel is compiled by clang for one memory of its own (`toolchain=clang`, the
`define` link form); a generated glue module imports the device heap and the kernel's
memory and function, and Binaryen's `wasm-merge` joins the two into one module of two
memories: the heap (imported, memory 0) and the kernel's (defined, memory 1). The glue's
`run` takes the tensors' heap addresses (the kernel ABI), copies each tensor the kernel
reads from the heap into the kernel's memory (`memory.copy` between memory indices),
calls the kernel with its local addresses, and copies what it wrote back.

Those copies happen inside the module, so the host's copy counter does not see them; the
plan's notes give their bytes per inference. The kernel's code addresses only its own
memory: the merge keeps that, as a multi-memory module must. Each merged module is
validated by `wasm-tools validate --features wasm2,multi-memory`.
"""

from __future__ import annotations

from harness.codegen import assemble
from harness.codegen.kernel import ExternalKernel, KernelModule
from harness.codegen.lowering import MemoryForm
from harness.core.errors import Unsupported
from harness.plugins.allocator import BumpAllocator, pages_for
from harness.plugins.workload import Dispatch, Workload
from harness.toolchain import binaryen, wasm_tools

KERNEL = "kernel"


def glue_wat(kernel: ExternalKernel, d: Dispatch, local: dict[str, int],
             sizes: dict[str, int], reads: list[str], writes: list[str]) -> str:
    """The glue module: `run(heap address per kernel buffer)` copying in, calling, copying
    out (see the module docstring)."""
    args = kernel.params()
    first: dict[str, int] = {}
    for k, b in enumerate(args):
        first.setdefault(d.tensor_of(b), k)

    def copy(dst: str, src: str, t: str, inward: bool) -> str:
        heap, own = f"(local.get {first[t]})", f"(i32.const {local[t]})"
        a, b = (own, heap) if inward else (heap, own)
        return f"(memory.copy {dst} {src} {a} {b} (i32.const {sizes[t]}))"

    params = " ".join("i32" for _ in args)
    body = [copy("$k", "$heap", t, True) for t in reads]
    body.append("(call $krun " + " ".join(f"(i32.const {local[d.tensor_of(b)]})"
                                         for b in args) + ")")
    body += [copy("$heap", "$k", t, False) for t in writes]
    return (f'(module (import "env" "heap" (memory $heap 0))'
            f' (import "{KERNEL}" "memory" (memory $k 0))'
            f' (import "{KERNEL}" "run" (func $krun (param {params})))'
            f' (func (export "run") (param {params}) ' + " ".join(body) + "))")


def merged_module(workload: Workload, d: Dispatch) -> tuple[KernelModule, int, int]:
    """The dispatch's merged module, the pages of the kernel's own memory, and the bytes
    its glue copies per call."""
    kernel = d.kernel
    if not isinstance(kernel, ExternalKernel):
        raise Unsupported("built=merge merges a kernel a toolchain built for one memory: "
                          "use the workload's toolchain=clang")
    local_alloc = BumpAllocator(base=kernel.reserved_bytes)
    local: dict[str, int] = {}
    sizes = {}
    for _, t in d.bindings:
        if t not in local:
            sizes[t] = workload.tensor(t).nbytes
            local[t] = local_alloc.alloc(sizes[t])
    pages = pages_for(local_alloc.top)
    own = kernel.build_module(MemoryForm("define", export="memory", pages=pages))
    reads = [t for t in local if "r" in d.access_of(t)]
    writes = [t for t in local if "w" in d.access_of(t)]
    glue = assemble(glue_wat(kernel, d, local, sizes, reads, writes))
    merged = binaryen.merge([("glue", glue), (KERNEL, own.wasm)])
    wasm_tools.validate(merged)   # by a validator that is neither Binaryen's nor an engine's
    copied = sum(sizes[t] for t in reads) + sum(sizes[t] for t in writes)
    return (KernelModule(name=f"{kernel.name}_merged", wat="", wasm=merged, export="run",
                         args=tuple(kernel.params()),
                         features=own.features | {"multi-memory", "bulk-memory"}),
            pages, copied)
