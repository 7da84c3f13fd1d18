"""`host-call`: "externalized memory" — kernels cannot address the heap at all.

Every tensor lives in a heap the host owns; a kernel reaches it only through imported
functions that check each access against the tensors bound to the current dispatch
(`Call.windows`) and trap on anything else. Two modes:

* `mode=element`: every heap load/store is one host call (`ElementLowering`); host calls
  per inference = accesses per inference, exactly.
* `mode=paged,page=N,slots=S`: a direct-mapped write-back software cache of S pages of N
  bytes in the module's private memory (`PagedCacheLowering`): the tag check is inline,
  host calls happen only to fill a missing page (`copy_in`) or write back a dirty one
  (`copy_out`, on eviction and at the end of every dispatch). Tensors are page-aligned in
  the heap, so a page never holds two tensors and a fill of a foreign page traps.

Hosts: `host=python` uses the embedding's callbacks (`harness.runtimes.hostfuncs` `heap.*` kinds;
the heap is host storage, a plan `buffer`); `host=wasm` uses a wasm host-shim instance
(`strategies.host_shim`) that defines and exports the heap memory and serves the same
functions, approximating a native host's call cost. The plan calls the shim's
`set_windows` before each dispatch (visible `Call` steps) and ends each inference with
`Count` steps reading the counters the shim keeps in its heap. Report which host a
number came from: the strategy spec says it.

Host calls per inference are predicted at plan time by a dry run of each kernel against
counting stubs (`strategies.host_call_count`) and checked against the worker's counts.

Trade-off exposed: isolation enforced by the host on every access (or every page), paid
in host calls — per access in element mode, per cache miss in paged mode.

Memory numbering: the kernel's only memory is its private memory (scratch, cache), created
by the host and imported as `env.private` (memory 0); the heap is not a memory of the
kernel at all.
"""

from __future__ import annotations

from harness.codegen import KernelModule, MemoryLowering, assemble, build_kernel_module
from harness.codegen.kernel import SCRATCH
from harness.core.errors import SpecError
from harness.plugins.allocator import align_up, allocate_with_reuse, lifetimes, pages_for
from harness.plugins.growth import GrowingMemory, growing
from harness.plugins.params import Param
from harness.plugins.plan import (
    PAGE,
    Call,
    Count,
    Device,
    HostFunc,
    Import,
    Instance,
    Memory,
    Module,
    Plan,
    Region,
    Window,
)
from harness.plugins.strategy import PlanBuilder, Strategy
from harness.plugins.workload import Dispatch, Workload
from strategies.host_call_count import DryRun, count_host_calls
from strategies.host_call_lowering import (
    ELEMENT_FUNCS,
    PAGED_FUNCS,
    ElementLowering,
    PagedCacheLowering,
)
from strategies.host_shim import COUNTER_AT, RESERVED, shim_wat

SHIM = "host-shim"
HEAP = "heap"


class HostCallStrategy(Strategy):
    NAME = "host-call"
    ISOLATION = "host-checked"
    DESCRIPTION = ("kernels reach a host-owned heap only through checked host calls "
                   "(per access, or per page of a software cache)")
    PARAMS = (
        Param("mode", "choice", "element", "element: one host call per heap access; paged: "
              "a software page cache in private memory", choices=("element", "paged")),
        Param("page", "int", 4096, "paged: cache page size in bytes (power of two >= 16)",
              minimum=16),
        Param("slots", "int", 16, "paged: pages the direct-mapped cache holds (power of two)",
              minimum=1),
        Param("host", "choice", "python", "python: embedding callbacks; wasm: a host-shim "
              "instance owning the heap", choices=("python", "wasm")),
    )

    def _lowering(self, d: Dispatch) -> MemoryLowering:
        if self.params["mode"] == "element":
            return ElementLowering(pages_for(d.kernel.scratch_bytes))
        return PagedCacheLowering(self.params["page"], self.params["slots"],
                                  d.kernel.scratch_bytes)

    def _load(self, pb: PlanBuilder, d: Dispatch, k: int,
              funcs: tuple[str, ...]) -> tuple[KernelModule, int]:
        """Load `d`'s executable, the `k`-th: its module, its private memory (made by the
        host) and its imports of the heap functions; returns the module and the private
        memory's pages."""
        mode, host = self.params["mode"], self.params["host"]
        lowering = self._lowering(d)
        spaces = {b.name: "heap" for b in d.kernel.buffers} | {SCRATCH: SCRATCH}
        km = build_kernel_module(d.kernel, lowering, spaces)
        private_pages = getattr(lowering, "private_pages", 1)
        mod = pb.add_module(km)
        inst, priv = d.instance, f"{d.instance}.private"
        pb.memories.append(Memory(priv, "dev0", "host", min_pages=private_pages,
                                  role="private"))
        imports = [Import("env", "private", "memory", priv)]
        for f in funcs:
            if host == "wasm":
                target = f"{SHIM}.{f}" if mode == "element" else f"{SHIM}.{f}_{k}"
            elif mode == "element":
                target = f"host:heap.{f}"
            else:
                hf = HostFunc(f"{inst}.{f}", f"heap.{f}", "dev0",
                              (("heap", HEAP), ("private", priv)))
                pb.host_funcs.append(hf)
                target = f"host:{hf.id}"
            imports.append(Import("heap", f, "func", target))
        pb.instances.append(Instance(inst, mod, "dev0", tuple(imports)))
        return km, private_pages

    def plan(self, workload: Workload) -> Plan:
        mode, host = self.params["mode"], self.params["host"]
        page = self.params["page"]
        for name, low in (("page", 16), ("slots", 1)):
            v = self.params[name]
            if v < low or v & (v - 1):
                raise SpecError(f"host-call: {name} must be a power of two >= {low}, got {v}")
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        pb.devices.append(Device("dev0"))
        align = page if mode == "paged" else 64
        spans = lifetimes(workload)
        grows = growing(workload)
        offsets, top = allocate_with_reuse(
            [(t.name, t.nbytes, *spans[t.name]) for t in workload.tensors
             if t.name not in grows], base=align_up(RESERVED, align), align=align)
        top = align_up(top, align)
        # a growing tensor (a decode's KV cache) last: the host's heap grows at its end
        heap, top = GrowingMemory.after(HEAP, top, offsets, workload, grows, align)
        heap_pages = heap.start(0) if grows else pages_for(top)
        for t in workload.tensors:
            pb.place(t.name, HEAP, offsets[t.name], t.nbytes)
        if host == "python":
            # growing, the heap is whole pages, grown by Grow steps like a wasm memory
            pb.memories.append(Memory(HEAP, "dev0", "buffer",
                                      size=heap_pages * PAGE if grows else top, role="heap"))
        else:
            pb.memories.append(Memory(HEAP, "dev0", "export", instance=SHIM, export="heap",
                                      role="heap"))
        funcs = ELEMENT_FUNCS if mode == "element" else PAGED_FUNCS
        if host == "python" and mode == "element":
            pb.host_funcs += [HostFunc(f"heap.{f}", f"heap.{f}", "dev0", (("heap", HEAP),))
                              for f in funcs]
        kernels: list[tuple[Dispatch, KernelModule, dict[str, int], tuple[Window, ...]]] = []
        dry: list[DryRun] = []
        loaded: dict[str, tuple[KernelModule, int]] = {}  # executable -> module, private pages
        for d in workload.dispatches:
            inst = d.instance
            if inst not in loaded:
                loaded[inst] = self._load(pb, d, len(loaded), funcs)
            km, private_pages = loaded[inst]
            addrs = {b: offsets[t] for b, t in d.bindings}
            if d.kernel.scratch_bytes:
                addrs[SCRATCH] = 0  # scratch sits at the start of the private memory
            windows = tuple(Window(pb.placements_region(t), "w" in d.access_of(t))
                            for t in dict.fromkeys(t for _, t in d.bindings))
            kernels.append((d, km, addrs, windows))
            args = addrs | dict(d.scalars)
            dry.append(DryRun(km, tuple(args[a] for a in km.args), private_pages))
        n_windows = max(len(w) for *_, w in kernels)
        if host == "wasm":
            wat = shim_wat(mode, n_windows, heap_pages,
                           privates=len(loaded) if mode == "paged" else 0)
            pb.modules.insert(0, Module(SHIM, assemble(wat), frozenset({"exported-memory"}),
                                        defined_pages=(heap_pages,)))
            shim_imports = tuple(Import("env", f"priv{k}", "memory", f"{inst}.private")
                                 for k, inst in enumerate(loaded)) if mode == "paged" else ()
            pb.instances.insert(0, Instance(SHIM, SHIM, "dev0", shim_imports))
            pb.requires |= {"exported-memory"}
            if mode == "paged":
                pb.requires |= {"multi-memory", "bulk-memory"}
        for k, (d, km, addrs, windows) in enumerate(kernels):
            if grows:
                pb.run += heap.grow_before(k)
            if host == "wasm":
                flat: list[int] = [len(windows)]
                for i in range(n_windows):
                    w = windows[i] if i < len(windows) else None
                    flat += [w.region.offset, w.region.end, int(w.writable)] if w else [0, 0, 0]
                pb.run.append(Call(SHIM, "set_windows", tuple(flat), dispatch=f"{d.name}:windows"))
            call = pb.call(d.instance, km, addrs, d)
            pb.run.append(Call(call.instance, call.export, call.args, call.dispatch, windows))
        counts = count_host_calls(dry)
        pb.expected["host_calls"] = counts["host_calls"]
        counters = ["host_calls"]
        if mode == "paged":
            pb.expected["page_fills"] = counts["page_fills"]
            pb.expected["page_flushes"] = counts["page_flushes"]
            counters += ["page_fills", "page_flushes"]
        if host == "wasm":
            pb.run += [Count(c, Region(HEAP, COUNTER_AT[c], 8)) for c in counters]
            # the kernels' imported functions are the shim's exports, not the embedding's
            pb.requires = (pb.requires - {"host-func-import"}) | {"instance-func-import"}
        pb.host_io(workload)
        pb.notes = (f"host calls per inference predicted by a dry run: {counts}; "
                    f"heap {top} bytes owned by the {host} host")
        return pb.build()
