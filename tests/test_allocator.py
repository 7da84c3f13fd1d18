from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.plugins.allocator import ALIGN, allocate_with_reuse

blocks = st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 6), st.integers(0, 6)),
                  min_size=1, max_size=12)


@given(blocks)
def test_live_blocks_never_overlap(raw: list[tuple[int, int, int]]) -> None:
    items = [(f"t{i}", size, min(a, b), max(a, b)) for i, (size, a, b) in enumerate(raw)]
    offsets, top = allocate_with_reuse(items)
    for i, (n1, s1, f1, l1) in enumerate(items):
        assert offsets[n1] % ALIGN == 0
        assert offsets[n1] + s1 <= top
        for n2, s2, f2, l2 in items[i + 1:]:
            live_together = not (l1 < f2 or l2 < f1)
            disjoint = offsets[n1] + s1 <= offsets[n2] or offsets[n2] + s2 <= offsets[n1]
            assert disjoint or not live_together


def test_disjoint_lifetimes_reuse_space() -> None:
    offsets, top = allocate_with_reuse([("a", 1000, 0, 0), ("b", 1000, 1, 1)])
    assert offsets["a"] == offsets["b"] and top == 1024
