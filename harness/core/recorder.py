"""A scoped record of how modules were made, keyed by their bytes.

Plans carry only wasm bytes; `membench export` rebuilds a plan inside `recording()` blocks
to get back each module's WAT, or the sources and commands a toolchain made it from,
without storing them in every plan. Outside a block, `record` does nothing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class BuildRecorder(Generic[T]):
    """One kind of record (WAT text, a clang build, a Binaryen build)."""

    def __init__(self, name: str) -> None:
        self._current: contextvars.ContextVar[dict[bytes, T] | None] = contextvars.ContextVar(
            name, default=None)

    @contextmanager
    def recording(self) -> Iterator[dict[bytes, T]]:
        """Within the block, remember every module's record (by its bytes)."""
        records: dict[bytes, T] = {}
        token = self._current.set(records)
        try:
            yield records
        finally:
            self._current.reset(token)

    def record(self, wasm: bytes, what: T) -> bytes:
        """Keep `what` for `wasm` inside a `recording` block; returns `wasm`."""
        records = self._current.get()
        if records is not None:
            records[wasm] = what
        return wasm
