from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.core.errors import SpecError
from harness.run.shard import parse_shard, select_shard


@given(st.lists(st.text(min_size=1, max_size=5), unique=True, max_size=40),
       st.integers(1, 7))
def test_shards_partition_and_balance(cells: list[str], count: int) -> None:
    shards = [select_shard(cells, i, count) for i in range(1, count + 1)]
    flat = [c for s in shards for c in s]
    assert sorted(flat) == sorted(cells)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1


def test_split_does_not_depend_on_input_order() -> None:
    cells = [f"c{i}" for i in range(10)]
    assert select_shard(cells, 2, 3) == select_shard(list(reversed(cells)), 2, 3)


def test_expensive_cells_are_spread() -> None:
    cost = {"big1": 10, "big2": 10, "s1": 1, "s2": 1}
    a = select_shard(list(cost), 1, 2, cost=cost.get)
    b = select_shard(list(cost), 2, 2, cost=cost.get)
    assert {"big1", "big2"} & set(a) and {"big1", "big2"} & set(b)


@pytest.mark.parametrize("text", ["", "1", "0/3", "4/3", "a/b", "1/0", "-1/2"])
def test_bad_shard_specs(text: str) -> None:
    with pytest.raises(SpecError):
        parse_shard(text)


def test_good_shard_spec() -> None:
    assert parse_shard(" 2/5 ") == (2, 5)
