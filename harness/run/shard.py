"""Deterministic, balanced sharding of a suite's cells (`membench run --shard I/N`).

Shards partition the cells: every cell lands in exactly one shard, whichever machine
computes the split, so a CI job matrix can spread a suite over N runners and
`membench merge` can join the results.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TypeVar

from harness.core.errors import SpecError

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """'2/5' -> (2, 5), 1-based; SpecError when malformed or out of range."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise SpecError(f"--shard takes I/N with 1 <= I <= N, e.g. 2/4; got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise SpecError(f"--shard {text}: need 1 <= I <= N")
    return index, count


def select_shard(cells: Sequence[T], index: int, count: int,
                 key: object = str, cost: object = None) -> list[T]:
    """The cells of shard `index` (1-based) of `count`.

    Cells are ordered by (estimated cost descending, key) and dealt round-robin, so shard
    sizes differ by at most one cell and the expensive cells are spread evenly. The
    order depends only on the cells, never on the machine or on hash seeds.
    """
    keyf = key if callable(key) else str
    costf = cost if callable(cost) else (lambda _c: 0.0)
    ranked = sorted(cells, key=lambda c: (-float(costf(c)), str(keyf(c))))
    return [c for i, c in enumerate(ranked) if i % count == index - 1]


def cell_cost(cell: object) -> float:
    """A rough cost estimate for balancing: log of the workload's FLOPs and bytes."""
    w = getattr(cell, "workload", None)
    flops = float(getattr(w, "flops", lambda: 0)()) if w is not None else 0.0
    nbytes = float(getattr(w, "compulsory_bytes", lambda: 0)()) if w is not None else 0.0
    return math.log1p(flops + nbytes)
