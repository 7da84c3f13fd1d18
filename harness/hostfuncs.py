"""The catalogue of host functions plans may import, implemented natively by each runtime.

A plan names a host function by `kind`; every runtime implements the same semantics in its
embedding language (Python here, JavaScript in the Node worker). Each kind has a fixed wasm
signature. Kinds with heap access receive the executor's `HostContext`, which resolves the
plan's memories and enforces the access windows of the current call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.plan import HostFunc


@dataclass(frozen=True)
class Signature:
    params: tuple[str, ...]
    results: tuple[str, ...]


class HostContext(Protocol):
    """What host functions may use from the executor."""

    counters: dict[str, int]


#: kind -> signature. Kinds are added together with their implementation in every worker.
SIGNATURES: dict[str, Signature] = {
    # does nothing; used to measure the wasm -> host call cost and to probe host imports
    "noop": Signature((), ()),
}


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
    raise KeyError(f"no Python implementation of host function kind {hf.kind!r}")
