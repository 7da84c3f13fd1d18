"""Per-round cell order and folding rounds into one cell row."""

from __future__ import annotations

from harness.run.rounds import cell_orders, combine_rounds
from harness.store.rows import ResultRow


def _round(r: int, samples, status: str = "ok", reason: str = "", **kw) -> ResultRow:
    return ResultRow(run_id="t", workload="w", strategy="s", runtime="rt", status=status,
                     reason=reason, kind="round", round=r, samples_s=tuple(samples),
                     median_s=sorted(samples)[len(samples) // 2] if samples else None,
                     inner=10 + r, timing={"inner": 10 + r, "steady": True}, **kw)


def test_orders_are_permutations_reproducible_from_the_seed() -> None:
    orders = cell_orders(6, 4, seed=42)
    assert len(orders) == 4 and all(sorted(o) == list(range(6)) for o in orders)
    assert orders == cell_orders(6, 4, seed=42)
    assert orders != cell_orders(6, 4, seed=43)
    assert len({tuple(o) for o in cell_orders(8, 5, seed=1)}) > 1  # shuffled per round


def test_combine_keeps_every_sample_in_round_order() -> None:
    rows = [_round(1, [3.0, 4.0], phases={"compile_s": {"m": 2.0}, "first_run_s": 5.0},
                   memory={"peak_rss": 200, "linear_bytes": 64}, max_abs_err=1e-6),
            _round(0, [1.0, 2.0], phases={"compile_s": {"m": 1.0}, "first_run_s": 3.0},
                   memory={"peak_rss": 100, "linear_bytes": 64}, max_abs_err=2e-6)]
    cell = combine_rounds(rows, positions=[0, 1])
    assert cell.kind == "cell" and cell.round is None and cell.status == "ok"
    assert cell.samples_s == (1.0, 2.0, 3.0, 4.0) and cell.median_s == 2.5
    assert cell.phases == {"compile_s": {"m": 1.5}, "first_run_s": 4.0}
    assert cell.memory == {"peak_rss": 200, "linear_bytes": 64}
    assert cell.max_abs_err == 2e-6
    assert [(i["round"], i["n"], i["position"], i["inner"]) for i in cell.rounds] == \
        [(0, 2, 1, 10), (1, 2, 0, 11)]
    assert cell.stats["n"] == 4 and cell.stats["median"] == 2.5


def test_a_failing_round_fails_the_cell_and_says_which() -> None:
    rows = [_round(0, [1.0, 2.0]), _round(1, [], status="timeout", reason="no result")]
    cell = combine_rounds(rows)
    assert cell.status == "timeout" and cell.reason == "round 1: no result"
    assert cell.samples_s == () and cell.median_s is None and len(cell.rounds) == 2


def test_blocked_orders_keep_each_block_adjacent_and_still_shuffle() -> None:
    blocks = ["n", ("g", "s"), ("g", "s"), ("c", "s"), ("c", "s"), ("a", "s"), ("a", "s")]
    orders = cell_orders(7, 6, seed=3, blocks=blocks)
    for order in orders:
        assert sorted(order) == list(range(7))
        labels = [blocks[j] for j in order]
        # every label occupies one contiguous run of positions
        runs = [lab for i, lab in enumerate(labels) if i == 0 or labels[i - 1] != lab]
        assert len(runs) == len(set(blocks))
    assert len({tuple(o) for o in orders}) > 1
    # which side of a pair goes first is shuffled too
    assert {o.index(1) < o.index(2) for o in orders} == {True, False}
