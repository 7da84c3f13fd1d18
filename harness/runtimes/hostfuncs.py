"""The catalogue of host functions plans may import, implemented natively by each runtime.

A plan names a host function by `kind`; every runtime implements the same semantics in its
embedding language (Python here, JavaScript in the Node worker). Each kind has a fixed wasm
signature. `HostFunc.args` name plan memories by id; a runtime resolves them through the
plan (never through a caller-specific API), so any embedding can implement the catalogue.

Common rules for the heap kinds (`heap.*`):

* `heap` arg: the plan memory id of the heap (any memory kind; host=python plans use a
  `buffer`). `private` arg (copy kinds only): the plan memory id of the calling instance's
  private memory (a host-created wasm memory the instance imports), so each instance gets
  its own host function.
* Windows: before executing a `Call` step the runtime makes that step's `windows` the
  current windows (an empty tuple outside calls). Only windows whose `region.memory`
  equals the `heap` arg count. Addresses are unsigned i32 heap byte offsets.
* A violation is a trap: the host function raises (Python: `TrapError`; JavaScript: throw
  a `WebAssembly.RuntimeError`), which unwinds the wasm call; the cell's status becomes
  `trapped` and the message says which access was refused.
* Counting: every call of a `heap.*` kind adds 1 to counter `host_calls`; `heap.copy_in`
  also adds 1 to `page_fills` and `heap.copy_out` 1 to `page_flushes`. Counting happens
  before the checks.
* Values are little-endian; f32 values are passed bit-exactly (NaN payloads aside).

Kinds:

* `noop` () -> (): does nothing (measures the wasm -> host call cost); counts host_calls.
* `heap.load_f32` (addr: i32) -> f32, `heap.load_i32` (addr: i32) -> i32: the 4 bytes at
  heap[addr, addr+4), which must lie entirely inside one current window (read-only or
  writable); else trap.
* `heap.store_f32` (addr: i32, value: f32) -> (), `heap.store_i32` (addr: i32, value: i32)
  -> (): write the 4 bytes at heap[addr, addr+4), which must lie entirely inside one current
  *writable* window; else trap.
* `heap.copy_in` (heap_addr: i32, private_addr: i32, len: i32) -> (): fill a cache page.
  Trap if private[private_addr, +len) is outside the private memory, or if no current
  window intersects heap[heap_addr, +len). Otherwise set private[private_addr, +len) to
  zero, then for every current window copy the bytes of heap[heap_addr, +len) that lie
  inside it to the same relative position in private memory. Bytes outside every window
  read as zero, so a page never carries foreign data into the module.
* `heap.copy_out` (private_addr: i32, heap_addr: i32, len: i32) -> (): write a cache page
  back. Trap if private[private_addr, +len) is outside the private memory, or if no current
  *writable* window intersects heap[heap_addr, +len). Otherwise, for every current writable
  window, copy the bytes of private[private_addr, +len) whose heap position heap_addr + i
  lies inside it to the heap. Bytes outside writable windows are never written.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from harness.plugins.plan import HostFunc, Window
from harness.runtimes.base import TrapError


@dataclass(frozen=True)
class Signature:
    params: tuple[str, ...]
    results: tuple[str, ...]


class HostContext(Protocol):
    """What host functions may use from the executor."""

    counters: dict[str, int]
    #: the `windows` of the Call step being executed (empty outside calls)
    windows: tuple[Window, ...]

    def array(self, mem_id: str) -> np.ndarray:
        """uint8 view of a plan memory, valid until the memory grows."""

    def on_grow(self, forget: Callable[[], None]) -> None:
        """Call `forget` after every grow of a memory (a view made before may be stale)."""


#: kind -> signature. Kinds are added together with their implementation in every worker.
SIGNATURES: dict[str, Signature] = {
    # does nothing; used to measure the wasm -> host call cost and to probe host imports
    "noop": Signature((), ()),
    "heap.load_f32": Signature(("i32",), ("f32",)),
    "heap.load_i32": Signature(("i32",), ("i32",)),
    "heap.store_f32": Signature(("i32", "f32"), ()),
    "heap.store_i32": Signature(("i32", "i32"), ()),
    "heap.copy_in": Signature(("i32", "i32", "i32"), ()),
    "heap.copy_out": Signature(("i32", "i32", "i32"), ()),
}

#: counters the heap kinds add to (they exist from load on, so every inference reports them)
HEAP_COUNTERS = ("host_calls", "page_fills", "page_flushes")


def signature(kind: str) -> Signature:
    try:
        return SIGNATURES[kind]
    except KeyError:
        raise KeyError(f"unknown host function kind {kind!r}; known: {sorted(SIGNATURES)}") from None


def python_impl(hf: HostFunc, ctx: HostContext) -> Callable[..., Any]:
    """The Python implementation of one host function (counting every call)."""
    counters = ctx.counters
    if hf.kind == "noop":
        def noop() -> None:
            counters["host_calls"] += 1
        return noop
    if hf.kind.startswith("heap."):
        for key in HEAP_COUNTERS:
            counters.setdefault(key, 0)
        return _HeapFuncs(hf, ctx).impl(hf.kind)
    raise KeyError(f"no Python implementation of host function kind {hf.kind!r}")


class _HeapFuncs:
    """The `heap.*` kinds over one plan's heap memory (see the module docstring)."""

    def __init__(self, hf: HostFunc, ctx: HostContext) -> None:
        self.hf, self.ctx = hf, ctx
        self.heap_id = hf.arg("heap")
        self._heap: np.ndarray | None = None
        ctx.on_grow(self._forget)

    def _forget(self) -> None:
        self._heap = None

    def heap(self) -> np.ndarray:
        if self._heap is None:  # resolved on first use: exported memories exist only later
            self._heap = self.ctx.array(self.heap_id)
        return self._heap

    def inside(self, addr: int, n: int, write: bool) -> bool:
        for w in self.ctx.windows:
            r = w.region
            if (r.memory == self.heap_id and r.offset <= addr and addr + n <= r.offset + r.size
                    and (w.writable or not write)):
                return True
        return False

    def refuse(self, what: str, addr: int, n: int) -> TrapError:
        spans = ", ".join(f"[{w.region.offset}, {w.region.end}){'w' if w.writable else 'r'}"
                          for w in self.ctx.windows if w.region.memory == self.heap_id)
        return TrapError(f"host {self.hf.kind}: {what} heap[{addr}, {addr + n}) outside the "
                         f"dispatch's windows {spans or '(none)'}")

    def spans(self, lo: int, hi: int, write: bool) -> list[tuple[int, int]]:
        out = []
        for w in self.ctx.windows:
            r = w.region
            if r.memory == self.heap_id and (w.writable or not write):
                a, b = max(lo, r.offset), min(hi, r.end)
                if a < b:
                    out.append((a, b))
        return out

    def page_transfer(self, private_id: str, h: int, p: int, n: int, write: bool,
                      what: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """The private memory and the heap spans a page fill (`write` False) or write-back
        moves between heap[h, h+n) and private[p, p+n); traps when either is out of bounds."""
        priv = self.ctx.array(private_id)
        if p + n > priv.size:
            raise TrapError(f"host {self.hf.kind}: private[{p}, {p + n}) outside memory")
        spans = self.spans(h, h + n, write)
        if not spans:
            raise self.refuse(what, h, n)
        return priv, spans

    def impl(self, kind: str) -> Callable[..., Any]:
        c = self.ctx.counters
        if kind in ("heap.load_f32", "heap.load_i32"):
            unpack = struct.Struct("<f" if kind.endswith("f32") else "<i").unpack_from

            def load(addr: int) -> Any:
                c["host_calls"] += 1
                addr &= 0xFFFFFFFF
                if not self.inside(addr, 4, False):
                    raise self.refuse("load of", addr, 4)
                return unpack(self.heap(), addr)[0]  # type: ignore[arg-type]
            return load
        if kind in ("heap.store_f32", "heap.store_i32"):
            pack = struct.Struct("<f" if kind.endswith("f32") else "<i").pack_into

            def store(addr: int, value: Any) -> None:
                c["host_calls"] += 1
                addr &= 0xFFFFFFFF
                if not self.inside(addr, 4, True):
                    raise self.refuse("store to", addr, 4)
                pack(self.heap(), addr, value)  # type: ignore[arg-type]
            return store
        private_id = self.hf.arg("private")
        if kind == "heap.copy_in":
            def copy_in(h: int, p: int, n: int) -> None:
                c["host_calls"] += 1
                c["page_fills"] += 1
                h, p, n = h & 0xFFFFFFFF, p & 0xFFFFFFFF, n & 0xFFFFFFFF
                priv, spans = self.page_transfer(private_id, h, p, n, False, "page fill of")
                priv[p:p + n] = 0
                heap = self.heap()
                for a, b in spans:
                    priv[p + a - h:p + b - h] = heap[a:b]
            return copy_in
        if kind == "heap.copy_out":
            def copy_out(p: int, h: int, n: int) -> None:
                c["host_calls"] += 1
                c["page_flushes"] += 1
                h, p, n = h & 0xFFFFFFFF, p & 0xFFFFFFFF, n & 0xFFFFFFFF
                priv, spans = self.page_transfer(private_id, h, p, n, True,
                                                 "page write-back to")
                heap = self.heap()
                for a, b in spans:
                    heap[a:b] = priv[p + a - h:p + b - h]
            return copy_out
        raise KeyError(f"no Python implementation of host function kind {kind!r}")
