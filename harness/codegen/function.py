"""`FunctionBuilder`: structured WAT function bodies (locals, loops, ifs, buffer access).

Buffer loads and stores are never written as WAT here: they are delegated to the
strategy's `MemoryLowering`, so one kernel body serves every memory strategy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from harness.codegen.expr import Expr, Operand, const

if TYPE_CHECKING:
    from harness.codegen.lowering import MemoryLowering
    from harness.codegen.module import ModuleBuilder

_WIDTH = {"i32": 4, "f32": 4, "i64": 8, "f64": 8, "v128": 16}


class Var(Expr):
    """A local (or parameter); reading it is `local.get`."""

    __slots__ = ("name",)

    def __init__(self, name: str, ty: str) -> None:
        super().__init__(f"(local.get ${name})", ty)
        self.name = name


class Buffer:
    """A kernel buffer: a base pointer parameter plus the memory space the strategy chose.

    `load(i)` / `store(i, v)` take element indices (scaled by the element width);
    `load_at(addr)` / `store_at(addr, v)` take absolute byte addresses the kernel computed
    itself (already including `ptr`), for pointer-bumping inner loops.
    """

    def __init__(self, fb: FunctionBuilder, name: str, ptr: Expr, space: str,
                 elem: str = "f32") -> None:
        self.fb = fb
        self.name = name
        self.ptr = ptr
        self.space = space
        self.elem = elem

    def addr(self, index: Operand) -> Expr:
        """Absolute byte address of element `index` (an i32 index on an i64 pointer is
        widened before it is scaled, as clang's wasm64 code does)."""
        if isinstance(index, Expr) and self.ptr.ty == "i64":
            index = index.widen()
        return self.ptr + index * _WIDTH[self.elem]

    def load(self, index: Operand, ty: str | None = None, offset: int = 0) -> Expr:
        return self.load_at(self.addr(index), ty, offset)

    def store(self, index: Operand, value: Expr, ty: str | None = None, offset: int = 0) -> None:
        self.store_at(self.addr(index), value, ty, offset)

    def load_at(self, addr: Expr, ty: str | None = None, offset: int = 0) -> Expr:
        return self.fb.lowering.load(self.space, addr, ty or self.elem, offset)

    def store_at(self, addr: Expr, value: Expr, ty: str | None = None, offset: int = 0) -> None:
        self.fb.emit(self.fb.lowering.store(self.space, addr, value, ty or self.elem, offset))


class FunctionBuilder:
    """Builds one WAT function: params, locals and a structured body."""

    def __init__(self, name: str, params: Sequence[tuple[str, str]], lowering: MemoryLowering,
                 result: str | None = None, export: str | None = None,
                 module: ModuleBuilder | None = None) -> None:
        self.name = name
        self.lowering = lowering
        # Kernels that need helper functions (e.g. a packing routine) add them here.
        self.module = module
        self.result = result
        self.export = export
        self._params = [Var(n, t) for n, t in params]
        self._locals: dict[str, Var] = {}
        self._body: list[str] = []
        self._depth = 1
        self._labels = 0
        #: the type of a byte address in this function's memories (i64: memory64)
        self.address = lowering.address_type
        for name, ty in lowering.locals():
            self.local(name, ty)

    # -- declarations -------------------------------------------------------------------
    def param(self, name: str) -> Var:
        for p in self._params:
            if p.name == name:
                return p
        raise KeyError(f"no parameter {name!r} in {self.name}")

    def local(self, name: str, ty: str) -> Var:
        """Declare (or fetch, if already declared with the same type) a local."""
        if name in self._locals:
            if self._locals[name].ty != ty:
                raise TypeError(f"local {name} redeclared as {ty}")
            return self._locals[name]
        if any(p.name == name for p in self._params):
            raise ValueError(f"local {name} shadows a parameter")
        var = Var(name, ty)
        self._locals[name] = var
        return var

    def pointer(self, name: str) -> Var:
        """A local holding a byte address: i32, or i64 where the memories are 64-bit."""
        return self.local(name, self.address)

    def buffer(self, name: str, ptr: Expr, space: str, elem: str = "f32") -> Buffer:
        return Buffer(self, name, ptr, space, elem)

    # -- statements ---------------------------------------------------------------------
    def emit(self, stmt: str) -> None:
        self._body.append("  " * self._depth + stmt)

    def set(self, var: Var, value: Operand) -> None:
        v = value if isinstance(value, Expr) else const(value, var.ty)
        if var.ty == "i64" and v.ty == "i32":
            v = v.widen()
        if v.ty != var.ty:
            raise TypeError(f"cannot set {var.ty} local {var.name} to {v.ty}")
        self.emit(f"(local.set ${var.name} {v.wat})")

    def tee(self, var: Var, value: Expr) -> Expr:
        return Expr(f"(local.tee ${var.name} {value.wat})", var.ty)

    def call(self, func: str, *args: Expr) -> None:
        self.emit(f"(call ${func} {' '.join(a.wat for a in args)})")

    def drop(self, value: Expr) -> None:
        self.emit(f"(drop {value.wat})")

    def ret(self, value: Expr | None = None) -> None:
        self.emit(f"(return {value.wat})" if value is not None else "(return)")

    def _label(self, stem: str) -> str:
        self._labels += 1
        return f"${stem}{self._labels}"

    @contextmanager
    def for_range(self, var: Var, start: Operand, stop: Operand, step: int = 1) -> Iterator[None]:
        """`for var in range(start, stop, step)` (step > 0), as a guarded do-while loop.

        One compare-and-branch per iteration; the guard skips the loop when empty.
        """
        if step <= 0:
            raise ValueError("for_range needs a positive step")
        start_e = start if isinstance(start, Expr) else const(start, var.ty)
        stop_e = stop if isinstance(stop, Expr) else const(stop, var.ty)
        loop = self._label("L")
        self.set(var, start_e)
        self.emit(f"(if {(var < stop_e).wat} (then (loop {loop}")
        self._depth += 1
        yield
        self.set(var, var + step)
        self.emit(f"(br_if {loop} {(var < stop_e).wat})")
        self._depth -= 1
        self.emit(")))")

    @contextmanager
    def if_(self, cond: Expr) -> Iterator[None]:
        self.emit(f"(if {cond.wat} (then")
        self._depth += 1
        yield
        self._depth -= 1
        self.emit("))")

    @contextmanager
    def block(self) -> Iterator[str]:
        """A block whose label (yielded) `br` can leave early."""
        label = self._label("B")
        self.emit(f"(block {label}")
        self._depth += 1
        yield label
        self._depth -= 1
        self.emit(")")

    # -- output ---------------------------------------------------------------------------
    def render(self) -> str:
        head = f"(func ${self.name}"
        if self.export:
            head += f' (export "{self.export}")'
        head += "".join(f" (param ${p.name} {p.ty})" for p in self._params)
        if self.result:
            head += f" (result {self.result})"
        lines = [head]
        # Declare only the locals the body uses: a kernel may declare locals for both of
        # its ISAs up front, and an unused v128 local would make a scalar module need SIMD.
        body = "\n".join(self._body)
        used = set(re.findall(r"\$([A-Za-z0-9_.]+)", body))
        lines += [f"  (local ${v.name} {v.ty})" for v in self._locals.values() if v.name in used]
        lines += self._body
        lines.append(")")
        return "\n".join(lines)
