"""Just enough of the wasm binary format to list a module's memories, imports and exports.

Used where the plan's claims about memories are checked (the plan predicts how many
memories exist and how many bytes they commit; the worker counts the memories it actually
instantiated) and by `membench export` to describe each module in its manifest.
Reads the import (2), memory (5) and export (7) sections; skips everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

_MAGIC = b"\0asm"
_EXTERN = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}


@dataclass(frozen=True)
class MemoryType:
    min_pages: int
    max_pages: int | None
    shared: bool = False
    memory64: bool = False
    #: the custom-page-sizes proposal: a page of 2**page_size_log2 bytes (16: 64 KiB)
    page_size_log2: int = 16

    @property
    def min_bytes(self) -> int:
        return self.min_pages << self.page_size_log2


@dataclass(frozen=True)
class ImportEntry:
    module: str
    field: str
    kind: str
    memory: MemoryType | None = None


@dataclass(frozen=True)
class ExportEntry:
    name: str
    kind: str
    index: int


@dataclass(frozen=True)
class ModuleInfo:
    imports: tuple[ImportEntry, ...]
    #: memories the module defines itself, in definition order
    defined_memories: tuple[MemoryType, ...]
    exports: tuple[ExportEntry, ...]

    @property
    def imported_memories(self) -> tuple[MemoryType, ...]:
        return tuple(i.memory for i in self.imports if i.memory is not None)

    def memory_export(self, defined: int) -> str | None:
        """Name under which defined memory number `defined` is exported (None if it isn't)."""
        index = len(self.imported_memories) + defined
        for e in self.exports:
            if e.kind == "memory" and e.index == index:
                return e.name
        return None


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError("truncated wasm binary")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def name(self) -> str:
        n = self.uleb()
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        return raw.decode("utf-8")

    def limits(self) -> MemoryType:
        flags = self.uleb()
        lo = self.uleb()
        hi = self.uleb() if flags & 1 else None
        log2 = self.uleb() if flags & 8 else 16   # custom-page-sizes: the page's log2
        return MemoryType(lo, hi, shared=bool(flags & 2), memory64=bool(flags & 4),
                          page_size_log2=log2)


def module_info(wasm: bytes) -> ModuleInfo:
    """Imports, defined memories and exports of a wasm binary."""
    if wasm[:4] != _MAGIC:
        raise ValueError("not a wasm binary")
    r = _Reader(wasm, 8)
    imports: list[ImportEntry] = []
    memories: list[MemoryType] = []
    exports: list[ExportEntry] = []
    while r.pos < len(wasm):
        sid = r.byte()
        size = r.uleb()
        end = r.pos + size
        s = _Reader(wasm, r.pos, end)
        if sid == 2:
            for _ in range(s.uleb()):
                mod, fld, kind = s.name(), s.name(), s.byte()
                mem = s.limits() if kind == 2 else None
                if kind != 2:
                    _skip_import_desc(s, kind)
                imports.append(ImportEntry(mod, fld, _EXTERN.get(kind, str(kind)), mem))
        elif sid == 5:
            memories = [s.limits() for _ in range(s.uleb())]
        elif sid == 7:
            for _ in range(s.uleb()):
                name, kind = s.name(), s.byte()
                exports.append(ExportEntry(name, _EXTERN.get(kind, str(kind)), s.uleb()))
        r.pos = end
    return ModuleInfo(tuple(imports), tuple(memories), tuple(exports))


def has_data(wasm: bytes) -> bool:
    """Whether the module has a data section with at least one segment."""
    r = _Reader(wasm, 8)
    while r.pos < len(wasm):
        sid, size = r.byte(), r.uleb()
        if sid == 11 and _Reader(wasm, r.pos, r.pos + size).uleb() > 0:
            return True
        r.pos += size
    return False


def uleb128(n: int) -> bytes:
    """Unsigned LEB128, as wasm binaries encode counts, sizes and indices."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _name_bytes(text: str) -> bytes:
    raw = text.encode("utf-8")
    return uleb128(len(raw)) + raw


def _skip_import_desc(s: _Reader, kind: int) -> None:
    if kind == 0:
        s.uleb()
    elif kind == 1:
        s.byte()
        s.limits()
    elif kind == 2:
        s.limits()
    elif kind == 3:
        s.byte()
        s.byte()
    elif kind == 4:
        s.byte()
        s.uleb()
    else:
        raise ValueError(f"import kind {kind:#x} unknown (a newer import encoding?)")


def rename_imports(wasm: bytes, rename: Callable[[str, str, str], tuple[str, str]]) -> bytes:
    """The binary with each import's (module, field) replaced by `rename(module, field,
    kind)`; every other byte is kept. Linking a plan into one module needs it: each
    instance's imports must name the module and export that the plan binds them to."""
    if wasm[:4] != _MAGIC:
        raise ValueError("not a wasm binary")
    out = bytearray(wasm[:8])
    r = _Reader(wasm, 8)
    while r.pos < len(wasm):
        start = r.pos
        sid = r.byte()
        size = r.uleb()
        end = r.pos + size
        if sid != 2:
            out += wasm[start:end]
            r.pos = end
            continue
        s = _Reader(wasm, r.pos, end)
        count = s.uleb()
        body = bytearray(uleb128(count))
        for _ in range(count):
            mod, fld = s.name(), s.name()
            at = s.pos
            kind = s.byte()
            _skip_import_desc(s, kind)
            new_mod, new_fld = rename(mod, fld, _EXTERN.get(kind, str(kind)))
            body += _name_bytes(new_mod) + _name_bytes(new_fld) + wasm[at:s.pos]
        out += bytes([2]) + uleb128(len(body)) + body
        r.pos = end
    return bytes(out)



def _skip_const_expr(r: _Reader) -> None:
    """Past one constant expression (`i32.const`, `i64.const` or `global.get`, then `end`)."""
    op = r.byte()
    if op not in (0x41, 0x42, 0x23):
        raise ValueError(f"data segment offset: unsupported opcode 0x{op:02x}")
    while r.byte() & 0x80:   # the LEB128 operand, signed or not: bytes up to the last
        pass
    if r.byte() != 0x0B:
        raise ValueError("data segment offset: expected end")


def fill_data(wasm: bytes, payloads: Sequence[bytes | memoryview]) -> bytes:
    """`wasm` with the bytes of its data segments replaced by `payloads`, one per segment in
    order (active or passive, each keeping its memory and offset). A strategy emits the
    segments empty and the worker fills them with the tensors' bytes, so a plan stays free
    of weight data and of the seed that makes it."""
    r = _Reader(wasm, 8)
    while r.pos < len(wasm):
        start, sid = r.pos, r.byte()
        size = r.uleb()
        end = r.pos + size
        if sid != 11:
            r.pos = end
            continue
        s = _Reader(wasm, r.pos, end)
        count = s.uleb()
        if count != len(payloads):
            raise ValueError(f"the module has {count} data segments; {len(payloads)} payloads")
        body: list[bytes | memoryview] = [uleb128(count)]
        for payload in payloads:
            head = s.pos
            flags = s.uleb()
            if flags == 2:
                s.uleb()
            if flags in (0, 2):
                _skip_const_expr(s)
            elif flags != 1:
                raise ValueError(f"data segment flags {flags}")
            body.append(wasm[head:s.pos])
            skip = s.uleb()   # (read before adding: `s.pos += s.uleb()` loses the read)
            s.pos += skip
            body += [uleb128(len(payload)), payload]
        content = sum(len(b) for b in body)
        return b"".join([wasm[:start], b"\x0b", uleb128(content), *body, wasm[end:]])
    if payloads:
        raise ValueError(f"the module has no data section; {len(payloads)} payloads")
    return wasm
