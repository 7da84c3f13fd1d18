"""`ModuleBuilder`: collects imports, memories, functions and exports into one WAT module."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from harness.core.recorder import BuildRecorder

#: the WAT of every module assembled inside `recording_wat()`
WAT: BuildRecorder[str] = BuildRecorder("wat")


@dataclass
class ModuleBuilder:
    """Accumulates module fields in WAT's required order (imports first)."""

    imports: list[str] = field(default_factory=list)
    memories: list[str] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)
    funcs: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)

    def add_import(self, text: str) -> None:
        if text not in self.imports:
            self.imports.append(text)

    def add_memory(self, text: str) -> None:
        if text not in self.memories:
            self.memories.append(text)

    def add_global(self, text: str) -> None:
        if text not in self.globals:
            self.globals.append(text)

    def add_func(self, text: str) -> None:
        self.funcs.append(text)

    def add_export(self, text: str) -> None:
        self.exports.append(text)

    def render(self) -> str:
        body = self.imports + self.memories + self.globals + self.funcs + self.exports
        return "(module\n" + "\n".join(body) + "\n)\n"


def assemble(wat: str) -> bytes:
    """WAT text to wasm bytes (wasmtime's assembler; runs in the harness, not the worker)."""
    import wasmtime  # the harness environment always has it; workers only receive bytes

    return WAT.record(bytes(wasmtime.wat2wasm(wat)), wat)


def recording_wat() -> AbstractContextManager[dict[bytes, str]]:
    """Within the block, remember the WAT of every module assembled (keyed by its bytes)."""
    return WAT.recording()
