"""Build products kept by content under `.cache/` (wasm2c's objects and programs, linked
programs): the key is a hash of everything a product is made of, and a finished file
enters the cache atomically, so parallel builders may race and a crash leaves no half."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harness.core.paths import REPO_ROOT

CACHE_ROOT = REPO_ROOT / ".cache"


def content_hash(*parts: bytes | str) -> str:
    """sha256 over `parts`, each ended by a NUL (so `("ab", "c")` differs from `("a", "bc")`)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def publish(tmp: Path, dst: Path) -> None:
    """Move a finished file into the cache atomically."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dst)
