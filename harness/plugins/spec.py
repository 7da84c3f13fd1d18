"""Parsing of `name:key=value,...` specs, the way users name every plugin and variant.

`gemm:m=37,n=53,k=91`, `host-call:mode=paged,page=4096,host=wasm`, `wasmtime:bounds=explicit`.
A runtime spec may carry a version pin (`wasmtime@49.0.0`).
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from harness.core.errors import SpecError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_VALUE = re.compile(r"^[A-Za-z0-9_.+\-|/]+$")
_VERSION = re.compile(r"^[0-9][A-Za-z0-9.+-]*$")


@dataclass(frozen=True)
class Spec:
    """A parsed spec: plugin name, optional version pin, and raw string parameters."""

    name: str
    params: tuple[tuple[str, str], ...] = ()
    version: str | None = None

    def __str__(self) -> str:
        head = self.name if self.version is None else f"{self.name}@{self.version}"
        if not self.params:
            return head
        return head + ":" + ",".join(f"{k}={v}" for k, v in self.params)

    def as_dict(self) -> dict[str, str]:
        return dict(self.params)


def parse_spec(text: str) -> Spec:
    """Parse `name[@version][:key=value[,key=value]...]`; raise SpecError saying what is wrong."""
    if not isinstance(text, str):
        raise SpecError(f"spec must be a string, got {type(text).__name__}")
    raw = text.strip()
    if not raw:
        raise SpecError("empty spec: expected name[:key=value,...]")
    head, sep, tail = raw.partition(":")
    name, at, version = head.partition("@")
    if not _NAME.match(name):
        raise SpecError(f"malformed spec {text!r}: name {name!r} must start with a letter "
                        "and contain only letters, digits, '-', '_' or '.'")
    if at and not _VERSION.match(version):
        raise SpecError(f"malformed spec {text!r}: version {version!r} after '@' must start with a digit")
    params: list[tuple[str, str]] = []
    if sep:
        if not tail:
            raise SpecError(f"malformed spec {text!r}: nothing after ':'")
        seen: set[str] = set()
        for item in tail.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or not value:
                raise SpecError(f"malformed spec {text!r}: {item!r} is not key=value")
            if not _KEY.match(key):
                raise SpecError(f"malformed spec {text!r}: bad parameter name {key!r}")
            if not _VALUE.match(value):
                raise SpecError(f"malformed spec {text!r}: bad value {value!r} for {key!r}")
            if key in seen:
                raise SpecError(f"malformed spec {text!r}: parameter {key!r} given twice")
            seen.add(key)
            params.append((key, value))
    return Spec(name=name, params=tuple(params), version=version if at else None)


def without_param(text: str, key: str, values: Container[str]) -> str | None:
    """`text` without parameter `key`, when it sets `key` to one of `values` (the twin of a
    `driver=linked` runtime, a `toolchain=clang` workload, a `lowered=1` strategy); None
    otherwise, or when `text` is no spec (a results file may hold any text)."""
    try:
        parsed = parse_spec(text)
    except SpecError:
        return None
    params = dict(parsed.params)
    if params.pop(key, None) not in values:
        return None
    return str(Spec(parsed.name, tuple(params.items()), parsed.version))
