"""`membench compare`: verdicts, Benjamini-Hochberg, exit codes and outputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.compare import benjamini_hochberg, compare_runs, verdict_for
from harness.cli import main
from harness.store.rows import read_rows
from tests.runfactory import make_run


def _samples(center: float, rel_sd: float, n: int = 20, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(center * (1 + rel_sd * rng.standard_normal(n)))


CELLS = {
    ("w-slow", "s", "r"): (1.0, 1.20, 0.01),
    ("w-fast", "s", "r"): (1.0, 0.80, 0.01),
    ("w-same", "s", "r"): (1.0, 1.00, 0.005),
    ("w-noisy", "s", "r"): (1.0, 1.03, 0.30),
}


@pytest.fixture()
def runs(tmp_path: Path) -> tuple[Path, Path]:
    base = make_run(tmp_path, "base", {k: _samples(b, sd, seed=1) for k, (b, _, sd) in CELLS.items()})
    cur = make_run(tmp_path, "cur", {k: _samples(c, sd, seed=2) for k, (_, c, sd) in CELLS.items()})
    return base, cur


def test_each_verdict(runs) -> None:
    base, cur = runs
    cmp = compare_runs(read_rows(base), read_rows(cur), threshold=0.05, alpha=0.01)
    got = {c.key[0]: c.verdict for c in cmp.cells}
    assert got == {"w-slow": "slower", "w-fast": "faster", "w-same": "unchanged",
                   "w-noisy": "unsure"}
    slow = next(c for c in cmp.cells if c.key[0] == "w-slow")
    assert slow.ci_low > 1.1 and slow.ratio == pytest.approx(1.2, rel=0.03)


def test_verdict_rules() -> None:
    assert verdict_for(1.10, 1.08, 1.12, 0.001, 1.0, 0.05, 0.01) == "slower"
    assert verdict_for(1.10, 1.08, 1.12, 0.02, 1.0, 0.05, 0.01) == "unsure"  # not significant
    assert verdict_for(1.03, 1.01, 1.05, 0.001, 1.0, 0.05, 0.01) == "unchanged"  # small
    assert verdict_for(0.90, 0.88, 0.92, 1.0, 0.001, 0.05, 0.01) == "faster"
    assert verdict_for(1.00, 0.90, 1.10, 0.5, 0.5, 0.05, 0.01) == "unsure"


def test_benjamini_hochberg_known_values() -> None:
    # classic example: p = 0.01, 0.04, 0.03, 0.005 -> q = 0.02, 0.04, 0.04, 0.02
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([0.9, 0.95]) == pytest.approx([0.95, 0.95])


def test_bh_turns_a_lone_marginal_p_into_no_regression(tmp_path: Path) -> None:
    """Among many unchanged cells, one with p just under alpha is not flagged after BH."""
    q = benjamini_hochberg([0.009] + [0.5] * 49)
    assert q[0] > 0.01


def test_exit_codes_and_outputs(runs, tmp_path: Path, capsys) -> None:
    base, cur = runs
    assert main(["compare", str(base), str(cur)]) == 1  # w-slow regressed
    md = (cur / "compare.md").read_text()
    assert "w-slow" in md and "slower" in md and "| cell |" in md
    assert (cur / "compare.html").read_text().count("<tr") == 5
    assert (cur / "compare_ratio.png").stat().st_size > 1000
    assert main(["compare", str(base), str(base), "--out", str(tmp_path / "o")]) == 0
    assert main(["compare", str(base), str(tmp_path / "nope")]) == 2
    assert main(["compare", str(base), str(cur), "--threshold", "abc"]) == 2
    err = capsys.readouterr().err
    assert "expected a fraction like 5%" in err


def test_cross_machine_refused_unless_allowed(tmp_path: Path, capsys) -> None:
    cells = {("w", "s", "r"): _samples(1.0, 0.01)}
    a = make_run(tmp_path, "a", cells, machine="m1")
    b = make_run(tmp_path, "b", cells, machine="m2")
    assert main(["compare", str(a), str(b)]) == 2
    assert "different machines" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--allow-cross-machine"]) == 0


def test_one_sided_and_failed_cells_listed(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {("x", "s", "r"): _samples(1, 0.01), ("gone", "s", "r"): [1.0],
                                 ("bad", "s", "r"): _samples(1, 0.01)})
    b = make_run(tmp_path, "b", {("x", "s", "r"): _samples(1, 0.01), ("new", "s", "r"): [1.0],
                                 ("bad", "s", "r"): []})
    cmp = compare_runs(read_rows(a), read_rows(b))
    assert cmp.only_base == (("gone", "s", "r"),) and cmp.only_current == (("new", "s", "r"),)
    assert cmp.not_comparable == ((("bad", "s", "r"), "ok", "crashed"),)


def test_sample_count_notes() -> None:
    from harness.store.rows import ResultRow

    def rows(n: int, k: int) -> list[ResultRow]:
        return [ResultRow(run_id="r", workload=f"w{i}", strategy="s", runtime="r", status="ok",
                          samples_s=tuple(1.0 + 0.01 * j for j in range(n))) for i in range(k)]

    assert "ever to reach" in compare_runs(rows(3, 2), rows(3, 2)).notes[0]  # 1/20 >= 0.01
    assert "confined to a few" in compare_runs(rows(5, 14), rows(5, 14)).notes[0]
    notes = compare_runs(rows(10, 14), rows(10, 14)).notes
    assert len(notes) == 1 and "single round" in notes[0]


def _rounds_row(medians: list[float], per_round: int = 10, seed: int = 0):
    """A cell row whose rounds have the given medians and 0.5% spread inside each round."""
    from harness.store.rows import ResultRow

    rng = np.random.default_rng(seed)
    samples = [m * (1 + 0.005 * rng.standard_normal()) for m in medians for _ in range(per_round)]
    return ResultRow(run_id="r", workload="w", strategy="s", runtime="r", status="ok",
                     samples_s=tuple(samples),
                     rounds=tuple({"round": i, "n": per_round} for i in range(len(medians))))


def test_rounds_are_the_unit_so_worker_to_worker_spread_is_not_a_regression() -> None:
    # identical code; each worker lands a few percent off (page placement, neighbours)
    base = _rounds_row([1.00, 1.06, 0.97, 1.04, 0.99], seed=1)
    cur = _rounds_row([1.07, 1.01, 1.08, 0.98, 1.09], seed=2)
    cc = compare_runs([base], [cur]).cells[0]
    assert cc.unit == "round" and (cc.units_base, cc.units_current) == (5, 5)
    assert cc.verdict == "unsure" and cc.p_slower > 0.01
    # ranked as 50 independent samples a side, the same data looks like a regression
    flat = compare_runs([replace(base, rounds=())], [replace(cur, rounds=())]).cells[0]
    assert flat.unit == "sample" and flat.p_slower < 0.01


def test_a_real_slowdown_is_slower_over_rounds() -> None:
    base = _rounds_row([1.00, 1.02, 0.99, 1.01, 1.00, 0.98], seed=1)
    cur = _rounds_row([1.12, 1.10, 1.11, 1.13, 1.09, 1.12], seed=2)
    cc = compare_runs([base], [cur]).cells[0]
    assert cc.unit == "round" and cc.verdict == "slower"
    assert cc.ci_low > 1.05 and cc.q_slower < 0.01


def _lockstep_rows(factor: float, rounds: int = 8, per_round: int = 10, seed: int = 0):
    """A and B rows of a lockstep A/B run on a host whose bursts slow ~40% of the time by
    1.6x in blocks of samples: a burst hits both samples of a pair; B = factor x A."""
    from harness.store.rows import ResultRow

    rng = np.random.default_rng(seed)
    n = rounds * per_round
    burst = np.repeat(np.where(rng.random(n // 5) < 0.4, 1.6, 1.0), 5)
    a = burst * (1 + 0.005 * rng.standard_normal(n))
    b = factor * burst * (1 + 0.005 * rng.standard_normal(n))
    infos = tuple({"round": i, "n": per_round, "lockstep": True} for i in range(rounds))

    def row(x: np.ndarray) -> ResultRow:
        return ResultRow(run_id="r", workload="w", strategy="s", runtime="r", status="ok",
                         samples_s=tuple(float(v) for v in x), rounds=infos)
    return row(a), row(b)


def test_lockstep_pairs_see_a_regression_through_bursts() -> None:
    a, b = _lockstep_rows(1.10)
    cc = compare_runs([a], [b]).cells[0]
    assert cc.unit == "paired round" and (cc.units_base, cc.units_current) == (8, 8)
    assert cc.ratio == pytest.approx(1.10, rel=0.01) and cc.ci_low > 1.05
    assert cc.verdict == "slower" and cc.q_slower == pytest.approx(1 / 256)


def test_lockstep_a_a_is_unchanged_not_slower() -> None:
    a, b = _lockstep_rows(1.0, seed=3)
    cc = compare_runs([a], [b]).cells[0]
    assert cc.unit == "paired round" and cc.verdict == "unchanged"
    assert 0.99 < cc.ci_low <= cc.ratio <= cc.ci_high < 1.01


def test_rounds_not_all_in_lockstep_fall_back_to_unpaired() -> None:
    from harness.analysis.compare import lockstep_sizes

    a, b = _lockstep_rows(1.0)
    assert lockstep_sizes(a, b) == [10] * 8
    half = replace(b, rounds=(*b.rounds[:-1], {**b.rounds[-1], "lockstep": False}))
    assert lockstep_sizes(a, half) is None
    cc = compare_runs([a], [half]).cells[0]
    assert cc.unit == "round"
    uneven = replace(b, rounds=(*b.rounds[:-1], {**b.rounds[-1], "n": 9}),
                     samples_s=b.samples_s[:-1])
    assert lockstep_sizes(a, uneven) is None


def test_paired_floor_note_counts_signed_rank_units() -> None:
    a, b = _lockstep_rows(1.0, rounds=4)
    notes = compare_runs([a], [b]).notes  # 1/2^4 = 0.0625 >= 0.01: never significant
    assert any("4 paired rounds" in n and "ever to reach" in n for n in notes)
