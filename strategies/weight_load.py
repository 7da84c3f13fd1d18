"""`load=`: how a strategy's weights reach linear memory (IREE #5137: "import large
read-only constant buffers … model weights … without the full alloc+copy").

* `copy` (the default): the host writes each weight into memory at set-up.
* `segment`: each weight is an active data segment of the module that first reads it,
  aimed at the weight's place in whatever memory holds it (an imported heap, a separate
  weights memory, the module's own memory); the engine applies it at instantiation.
* `passive`: each weight is a passive data segment of that module; the module exports
  `mb_init`, which applies them with `memory.init` and drops them (`data.drop`), and the
  plan calls it once at set-up (bulk memory).
* `cow`: active segments of a module that *defines* the memory holding them, loaded from an
  engine-precompiled file (`Plan.Module.precompiled`): wasmtime maps the file and makes the
  memory's initial image from it copy-on-write instead of copying. Only a memory a module
  defines has an image, so only strategies whose modules define the memory holding their
  weights take it (`per-module:resident=1`).

Segments are emitted empty; the worker fills them with the tensors' bytes
(`Module.segments`, `wasmbin.fill_data`), so the plan carries no weight data and does not
depend on the seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from harness.codegen.kernel import KernelModule
from harness.codegen.module import assemble
from harness.core.errors import SpecError, Unsupported
from harness.plugins.params import Param
from harness.plugins.plan import Call
from harness.plugins.workload import Workload

LOAD_PARAM = Param("load", "choice", "copy", "how weights reach linear memory: copy: the "
                   "host writes them at set-up; segment: active data segments of the module "
                   "that reads them; passive: passive segments its mb_init applies with "
                   "memory.init at set-up; cow: segments of a module defining the memory, "
                   "loaded from a precompiled file and mapped copy-on-write (wasmtime)",
                   choices=("copy", "segment", "passive", "cow"))
INIT_EXPORT = "mb_init"


@dataclass(frozen=True)
class WeightSegment:
    """One weight as a data segment: `tensor`'s bytes at `offset` of the module's memory
    `memory` (its WAT name, e.g. `$heap`)."""

    tensor: str
    memory: str
    offset: int
    size: int


def refuse_cow(strategy: str, holder: str) -> None:
    """The one-line error of a strategy whose weights live in a memory no module defines."""
    raise SpecError(f"{strategy}: load=cow needs the weights in a memory a module defines "
                    f"(its copy-on-write image); here they live in {holder}, which the host "
                    "makes: load=segment or load=passive put them there from the module")


def with_weights(km: KernelModule, segments: Sequence[WeightSegment], load: str,
                 address_type: str) -> tuple[KernelModule, tuple[str, ...]]:
    """`km` rebuilt with `segments` (empty: the worker fills them) in the form `load` asks
    for, and the tensors filling its segments in order (for `Module.segments`)."""
    if load == "copy" or not segments:
        return km, ()
    at = address_type   # an offset into a memory has its address type
    fields: list[str] = []
    features = km.features
    if load == "passive":
        fields += [f'(data $w{i} "")' for i in range(len(segments))]
        body = " ".join(f"(memory.init {s.memory} $w{i} ({at}.const {s.offset}) (i32.const 0) "
                        f"(i32.const {s.size})) (data.drop $w{i})"
                        for i, s in enumerate(segments))
        fields.append(f'(func (export "{INIT_EXPORT}") {body})')
        features = features | {"bulk-memory"}
    else:
        fields += [f'(data (memory {s.memory}) ({at}.const {s.offset}) "")' for s in segments]
    wat = km.wat.rstrip()
    if not wat.endswith(")"):   # a module another toolchain built (clang) has no WAT here
        raise Unsupported(f"{km.name}: a toolchain-built module is used as linked; its "
                          "weights are written by the host (load=copy)")
    wat = wat[:-1] + "\n" + "\n".join(fields) + "\n)\n"
    return (dataclasses.replace(km, wat=wat, wasm=assemble(wat), features=features),
            tuple(s.tensor for s in segments))


def first_reads(workload: Workload) -> dict[str, tuple[str, ...]]:
    """Executable (`Dispatch.instance`) -> the weights its dispatches are the first to read
    (their segments' module where one memory holds each weight for every reader)."""
    seen: set[str] = set()
    out: dict[str, tuple[str, ...]] = {}
    weights = {t.name for t in workload.by_role("weight")}
    for d in workload.dispatches:
        mine = [t for t in dict.fromkeys(t for _, t in d.bindings)
                if t in weights and t not in seen and "r" in d.access_of(t)]
        seen.update(mine)
        out[d.instance] = out.get(d.instance, ()) + tuple(mine)
    return out


def init_call(instance: str) -> Call:
    """The set-up step applying an instance's passive weight segments."""
    return Call(instance=instance, export=INIT_EXPORT, args=())
