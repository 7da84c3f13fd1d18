"""One colour per strategy, the same in every figure of every report.

Colours are keyed by the strategy's base name (`per-module` for `per-module:resident=1`),
from the Okabe-Ito colour-blind-safe set. Variants of one base share its hue and are told
apart by a lighter shade and a hatch pattern, numbered in the order the report lists them.
A strategy the palette does not know gets a fixed colour from the spare list, picked by a
stable hash of its name, so it too keeps its colour from one report to the next.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

BASE_COLOURS = {
    "shared": "#0072B2",        # blue
    "per-module": "#E69F00",    # orange
    "multi-memory": "#009E73",  # bluish green
    "host-call": "#CC79A7",     # reddish purple
    "per-device": "#D55E00",    # vermilion
}
SPARE_COLOURS = ("#56B4E9", "#8C6D31", "#000000", "#999999", "#F0E442", "#7F3C8D")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo")

# phases of a cell's life: greys (and a hatch), so no phase is mistaken for a strategy
PHASE_COLOURS = {
    "compile": ("#3A3A3A", ""),
    "instantiate": ("#7A7A7A", ""),
    "weight load": ("#AFAFAF", ""),
    "first inference": ("#FFFFFF", "////"),
    "steady state": ("#DCDCDC", ""),
}


def base_name(spec: str) -> str:
    """`per-module:resident=1` -> `per-module`; `wasmtime@50:bounds=x` -> `wasmtime`."""
    return spec.partition(":")[0].partition("@")[0]


def base_colour(name: str) -> str:
    if name in BASE_COLOURS:
        return BASE_COLOURS[name]
    return SPARE_COLOURS[zlib.crc32(name.encode()) % len(SPARE_COLOURS)]


def _lighten(hex_colour: str, amount: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * amount) for c in (r, g, b)]
    return "#" + "".join(f"{c:02X}" for c in mix)


@dataclass(frozen=True)
class Style:
    colour: str
    hatch: str


def strategy_styles(specs: Iterable[str]) -> dict[str, Style]:
    """A style for every strategy spec: base colour, lighter and hatched for variants."""
    styles: dict[str, Style] = {}
    seen: dict[str, int] = {}
    for spec in specs:
        if spec in styles:
            continue
        base = base_name(spec)
        k = seen.get(base, 0)
        seen[base] = k + 1
        colour = base_colour(base)
        styles[spec] = Style(_lighten(colour, min(0.45, 0.15 * k)), HATCHES[k % len(HATCHES)])
    return styles


def strategy_order(specs: Iterable[str]) -> list[str]:
    """Known bases first in the design's order, then the rest; variants after their base."""
    known = list(BASE_COLOURS)
    uniq = list(dict.fromkeys(specs))

    def key(spec: str) -> tuple[int, str, int, str]:
        base = base_name(spec)
        rank = known.index(base) if base in known else len(known)
        return (rank, base, 0 if spec == base else 1, spec)

    return sorted(uniq, key=key)
