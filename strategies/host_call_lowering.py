"""Lowerings for `host-call`: kernels that cannot address the heap.

Both lowerings give the module exactly one memory, its *private* memory (scratch and,
for the paged cache, the cache), imported from the host as `env.private` (memory 0).
Heap accesses go through functions imported from module `"heap"`:

    load_f32(addr) -> f32      load_i32(addr) -> i32
    store_f32(addr, f32)       store_i32(addr, i32)
    copy_in(heap_addr, private_addr, len)     heap -> private memory
    copy_out(private_addr, heap_addr, len)    private memory -> heap

(`harness.runtimes.hostfuncs` defines their exact semantics for host=python; the wasm host shim
in `strategies.host_shim` implements the same.)

`ElementLowering`: every heap load/store is one call. A v128 access becomes four i32
calls (hosts such as JavaScript cannot pass v128 values), assembled with
`i32x4.replace_lane` / split with `i32x4.extract_lane`. Other types (i64, f64) are
refused: no kernel uses them on the heap.

`PagedCacheLowering`: a direct-mapped software cache of `slots` pages of `page` bytes in
private memory. Each access checks the slot's tag inline; a miss calls `$__pc_miss`,
which writes the slot back with `copy_out` if dirty and refills it with `copy_in`
(write-allocate, write-back). Stores mark their slot dirty. An access crossing a page
edge takes a byte-wise slow path through a 16-byte bounce buffer, so each byte's page is
made resident on its own (correct whatever the alignment). When the kernel body finishes
the epilogue writes every dirty slot back and empties the cache, so every dispatch
starts cold and host writes between dispatches are always seen.

Private memory layout (paged): [0, cache_base) kernel scratch; at cache_base: tags
(i32 per slot, page number + 1, 0 = empty), dirty flags (i32 per slot), the 16-byte
bounce buffer, then the slot data (`slots * page` bytes, 64-aligned).
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.codegen import Expr, MemoryLowering, ModuleBuilder
from harness.codegen.kernel import SCRATCH
from harness.plugins.allocator import align_up
from harness.plugins.strategy import Unsupported

PRIVATE_IMPORT = '(import "env" "private" (memory $priv {pages}))'
WIDTH = {"i32": 4, "f32": 4, "i64": 8, "f64": 8, "v128": 16}
HEAP_FUNCS = {
    "load_f32": "(param i32) (result f32)",
    "load_i32": "(param i32) (result i32)",
    "store_f32": "(param i32 f32)",
    "store_i32": "(param i32 i32)",
    "copy_in": "(param i32 i32 i32)",
    "copy_out": "(param i32 i32 i32)",
}
ELEMENT_FUNCS = ("load_f32", "load_i32", "store_f32", "store_i32")
PAGED_FUNCS = ("copy_in", "copy_out")


def _off(addr: Expr, offset: int) -> str:
    return f"(i32.add {addr.wat} (i32.const {offset}))" if offset else addr.wat


class _HostLowering(MemoryLowering):
    """Common part: the private memory (scratch) and the heap-function imports."""

    FUNCS: tuple[str, ...] = ()

    def __init__(self, private_pages: int) -> None:
        self.private_pages = private_pages
        self.features = frozenset({"imported-memory", "host-func-import"})

    def declare(self, mb: ModuleBuilder) -> None:
        for name in self.FUNCS:
            mb.add_import(f'(import "heap" "{name}" (func $h_{name} {HEAP_FUNCS[name]}))')
        mb.add_import(PRIVATE_IMPORT.format(pages=self.private_pages))

    def _scratch_load(self, addr: Expr, ty: str, offset: int) -> Expr:
        off = f" offset={offset}" if offset else ""
        return Expr(f"({ty}.load $priv{off} {addr.wat})", ty)

    def _scratch_store(self, addr: Expr, value: Expr, ty: str, offset: int) -> str:
        off = f" offset={offset}" if offset else ""
        return f"({ty}.store $priv{off} {addr.wat} {value.wat})"

    @staticmethod
    def _check(ty: str, allowed: Sequence[str]) -> None:
        if ty not in allowed:
            raise Unsupported(f"host-call cannot lower a {ty} heap access "
                              f"(supported: {', '.join(allowed)})")


class ElementLowering(_HostLowering):
    """One imported host call per heap access (v128: four i32 calls)."""

    FUNCS = ELEMENT_FUNCS

    def locals(self) -> Sequence[tuple[str, str]]:
        return (("__hc_a", "i32"), ("__hc_v", "v128"))

    def load(self, space: str, addr: Expr, ty: str, offset: int) -> Expr:
        if space == SCRATCH:
            return self._scratch_load(addr, ty, offset)
        self._check(ty, ("f32", "i32", "v128"))
        if ty != "v128":
            return Expr(f"(call $h_load_{ty} {_off(addr, offset)})", ty)
        a = "(local.get $__hc_a)"
        wat = f"(i32x4.splat (call $h_load_i32 (local.tee $__hc_a {_off(addr, offset)})))"
        for lane in (1, 2, 3):
            wat = f"(i32x4.replace_lane {lane} {wat} (call $h_load_i32 (i32.add {a} (i32.const {4 * lane}))))"
        return Expr(wat, "v128")

    def store(self, space: str, addr: Expr, value: Expr, ty: str, offset: int) -> str:
        if value.ty != ty:
            raise TypeError(f"storing {value.ty} as {ty}")
        if space == SCRATCH:
            return self._scratch_store(addr, value, ty, offset)
        self._check(ty, ("f32", "i32", "v128"))
        if ty != "v128":
            return f"(call $h_store_{ty} {_off(addr, offset)} {value.wat})"
        # the value first: it may itself contain a v128 heap load using $__hc_a
        parts = [f"(local.set $__hc_v {value.wat})",
                 f"(local.set $__hc_a {_off(addr, offset)})"]
        parts += [f"(call $h_store_i32 (i32.add (local.get $__hc_a) (i32.const {4 * lane})) "
                  f"(i32x4.extract_lane {lane} (local.get $__hc_v)))" for lane in range(4)]
        return " ".join(parts)


class PagedCacheLowering(_HostLowering):
    """A direct-mapped, write-back software page cache in private memory."""

    FUNCS = PAGED_FUNCS
    BOUNCE = 16

    def __init__(self, page: int, slots: int, cache_base: int) -> None:
        if page < 16 or page & (page - 1):
            raise ValueError(f"page must be a power of two >= 16, got {page}")
        if slots < 1 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two >= 1, got {slots}")
        self.page, self.slots = page, slots
        self.log = page.bit_length() - 1
        self.tags = align_up(cache_base)
        self.dirty = self.tags + 4 * slots
        self.bounce = self.dirty + 4 * slots
        self.data = align_up(self.bounce + self.BOUNCE)
        self.end = self.data + slots * page
        super().__init__(private_pages=-(-self.end // 65536))

    def locals(self) -> Sequence[tuple[str, str]]:
        return (("__pc_a", "i32"), ("__pc_s", "i32"), ("__pc_v_f32", "f32"),
                ("__pc_v_i32", "i32"), ("__pc_v_i64", "i64"), ("__pc_v_f64", "f64"),
                ("__pc_v_v128", "v128"))

    def epilogue(self) -> Sequence[str]:
        return ("(call $__pc_flush_all)",)

    # -- inline parts ------------------------------------------------------------------
    def _resident(self, dirty: bool) -> str:
        """Statements making the page of $__pc_a resident in slot $__pc_s."""
        a, s = "(local.get $__pc_a)", "(local.get $__pc_s)"
        pg = f"(i32.shr_u {a} (i32.const {self.log}))"
        out = (f"(local.set $__pc_s (i32.and {pg} (i32.const {self.slots - 1}))) "
               f"(if (i32.ne (i32.load $priv offset={self.tags} (i32.shl {s} (i32.const 2))) "
               f"(i32.add {pg} (i32.const 1))) (then (call $__pc_miss {pg} {s})))")
        if dirty:
            out += f" (i32.store $priv offset={self.dirty} (i32.shl {s} (i32.const 2)) (i32.const 1))"
        return out

    def _slot_addr(self) -> str:
        return (f"(i32.add (i32.shl (local.get $__pc_s) (i32.const {self.log})) "
                f"(i32.and (local.get $__pc_a) (i32.const {self.page - 1})))")

    def _straddles(self, width: int) -> str:
        return (f"(i32.gt_u (i32.and (local.get $__pc_a) (i32.const {self.page - 1})) "
                f"(i32.const {self.page - width}))")

    def load(self, space: str, addr: Expr, ty: str, offset: int) -> Expr:
        if space == SCRATCH:
            return self._scratch_load(addr, ty, offset)
        w = WIDTH[ty]
        fast = f"{self._resident(False)} (i32.add (i32.const {self.data}) {self._slot_addr()})"
        body = (f"(block (result i32) (local.set $__pc_a {_off(addr, offset)}) "
                f"(if (result i32) {self._straddles(w)} "
                f"(then (call $__pc_straddle_in (local.get $__pc_a) (i32.const {w}))) "
                f"(else {fast})))")
        return Expr(f"({ty}.load $priv {body})", ty)

    def store(self, space: str, addr: Expr, value: Expr, ty: str, offset: int) -> str:
        if value.ty != ty:
            raise TypeError(f"storing {value.ty} as {ty}")
        if space == SCRATCH:
            return self._scratch_store(addr, value, ty, offset)
        w, v = WIDTH[ty], f"(local.get $__pc_v_{ty})"
        return (f"(local.set $__pc_v_{ty} {value.wat}) "
                f"(local.set $__pc_a {_off(addr, offset)}) "
                f"(if {self._straddles(w)} "
                f"(then ({ty}.store $priv (i32.const {self.bounce}) {v}) "
                f"(call $__pc_straddle_out (local.get $__pc_a) (i32.const {w}))) "
                f"(else {self._resident(True)} "
                f"({ty}.store $priv offset={self.data} {self._slot_addr()} {v})))")

    # -- helpers -------------------------------------------------------------------------
    def finish(self, mb: ModuleBuilder) -> None:
        p, log, slots = self.page, self.log, self.slots
        tag = f"(i32.load $priv offset={self.tags} (i32.shl (local.get $s) (i32.const 2)))"
        dirty = f"(i32.load $priv offset={self.dirty} (i32.shl (local.get $s) (i32.const 2)))"
        slot_data = f"(i32.add (i32.const {self.data}) (i32.shl (local.get $s) (i32.const {log})))"
        write_back = (f"(if {dirty} (then (call $h_copy_out {slot_data} "
                      f"(i32.shl (i32.sub {tag} (i32.const 1)) (i32.const {log})) "
                      f"(i32.const {p}))))")
        mb.add_func(
            "(func $__pc_miss (param $pg i32) (param $s i32)\n"
            f"  {write_back}\n"
            f"  (i32.store $priv offset={self.dirty} (i32.shl (local.get $s) (i32.const 2)) (i32.const 0))\n"
            f"  (call $h_copy_in (i32.shl (local.get $pg) (i32.const {log})) {slot_data} (i32.const {p}))\n"
            f"  (i32.store $priv offset={self.tags} (i32.shl (local.get $s) (i32.const 2)) "
            "(i32.add (local.get $pg) (i32.const 1))))")
        mb.add_func(
            "(func $__pc_flush_all (local $s i32)\n"
            "  (loop $l\n"
            f"    {write_back}\n"
            f"    (i32.store $priv offset={self.tags} (i32.shl (local.get $s) (i32.const 2)) (i32.const 0))\n"
            f"    (i32.store $priv offset={self.dirty} (i32.shl (local.get $s) (i32.const 2)) (i32.const 0))\n"
            "    (local.set $s (i32.add (local.get $s) (i32.const 1)))\n"
            f"    (br_if $l (i32.lt_u (local.get $s) (i32.const {slots})))))")
        # byte-wise slow path for accesses that cross a page edge
        byte = ("(func $__pc_byte (param $__pc_a i32) (param $dirty i32) (result i32) "
                "(local $__pc_s i32) "
                f"{self._resident(False)} "
                f"(if (local.get $dirty) (then (i32.store $priv offset={self.dirty} "
                "(i32.shl (local.get $__pc_s) (i32.const 2)) (i32.const 1)))) "
                f"(i32.add (i32.const {self.data}) {self._slot_addr()}))")
        mb.add_func(byte)
        mb.add_func(
            "(func $__pc_straddle_in (param $a i32) (param $w i32) (result i32) (local $i i32)\n"
            "  (loop $l\n"
            f"    (i32.store8 $priv offset={self.bounce} (local.get $i) (i32.load8_u $priv "
            "(call $__pc_byte (i32.add (local.get $a) (local.get $i)) (i32.const 0))))\n"
            "    (local.set $i (i32.add (local.get $i) (i32.const 1)))\n"
            "    (br_if $l (i32.lt_u (local.get $i) (local.get $w))))\n"
            f"  (i32.const {self.bounce}))")
        mb.add_func(
            "(func $__pc_straddle_out (param $a i32) (param $w i32) (local $i i32)\n"
            "  (loop $l\n"
            "    (i32.store8 $priv (call $__pc_byte (i32.add (local.get $a) (local.get $i)) "
            f"(i32.const 1)) (i32.load8_u $priv offset={self.bounce} (local.get $i)))\n"
            "    (local.set $i (i32.add (local.get $i) (i32.const 1)))\n"
            "    (br_if $l (i32.lt_u (local.get $i) (local.get $w)))))")
