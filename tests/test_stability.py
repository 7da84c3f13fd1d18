"""Run-to-run agreement on synthetic runs with known answers, and its command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.analysis.stability import agreement, fraction_within
from harness.cli import main
from harness.store.rows import RESULTS, ResultRow


def _row(workload: str, samples, kind: str = "cell", status: str = "ok") -> ResultRow:
    return ResultRow(run_id="r", workload=workload, strategy="s", runtime="rt", status=status,
                     kind=kind, samples_s=tuple(samples), median_s=float(np.median(samples)))


def _runs(shift: float) -> tuple[list[ResultRow], list[ResultRow]]:
    rng = np.random.default_rng(5)
    base = [_row(f"w{i}", rng.normal(1.0, 0.01, 30)) for i in range(10)]
    cur = [_row(f"w{i}", rng.normal(1.0 + (shift if i < 5 else 0.0), 0.01, 30))
           for i in range(10)]
    return base, cur


def test_same_distribution_agrees_and_a_shift_does_not() -> None:
    base, cur = _runs(0.0)
    cells = agreement(base, cur)
    assert len(cells) == 10 and fraction_within(cells) >= 0.8
    base, cur = _runs(0.2)  # half the cells 20% slower
    cells = agreement(base, cur)
    assert [c.within for c in cells[:5]] == [False] * 5
    assert fraction_within(cells) <= 0.5


def test_only_ok_cell_rows_count() -> None:
    base, cur = _runs(0.0)
    extra = [_row("noop", [1.0, 1.1], kind="noop"), _row("bad", [1.0], status="invalid")]
    assert len(agreement(base + extra, cur + extra)) == 10


def _write(run_dir: Path, rows: list[ResultRow]) -> Path:
    run_dir.mkdir()
    (run_dir / RESULTS).write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    (run_dir / "run.json").write_text(json.dumps({"fingerprint": {"loadavg_1m": 0.1}}))
    return run_dir


def test_stability_command_prints_the_fraction(tmp_path: Path, capsys) -> None:
    base, cur = _runs(0.2)
    code = main(["stability", str(_write(tmp_path / "a", base)),
                 str(_write(tmp_path / "b", cur))])
    out = capsys.readouterr().out
    assert code == 1  # under the 95% target
    assert "median ratio within its 95% CI:" in out and "/10 cells" in out
    assert "CV of cells with median >= 1 ms (n=10)" in out and "two-level" in out


def test_cv_is_split_into_within_and_between_rounds() -> None:
    """Two calm rounds, one of them 2x slower (a host that slowed down between workers):
    the CV is large, the within-round CV is 0 and the between-round spread is 100%."""
    from dataclasses import replace

    from harness.cli.console import cv_distribution, round_spread

    slow_round = replace(_row("w", [2e-3] * 3 + [4e-3] * 3),
                         rounds=({"n": 3, "median_s": 2e-3}, {"n": 3, "median_s": 4e-3}))
    assert round_spread(slow_round) == (0.0, 1.0)
    one_round = replace(_row("x", [2e-3, 2.2e-3]), rounds=({"n": 2},))
    imported = replace(_row("y", [2e-3, 2.2e-3, 2.1e-3]), rounds=({"n": 1}, {"n": 1}))
    assert round_spread(one_round) is None and round_spread(imported) is None
    text = cv_distribution([slow_round, one_round, imported])
    assert text is not None
    lines = text.splitlines()
    assert lines[0].startswith("CV of cells with median >= 1 ms (n=3)")
    assert "within-round CV (median over a cell's rounds), n=1: min 0.00%" in lines[2]
    assert "between rounds" in lines[3] and "median 100.00%" in lines[3]


def _group_rows(seed: int, ratio: float) -> list[ResultRow]:
    """shared and per-module measured as one group: sample k of both under one drift (the
    same drift in every run, so the cells' own medians agree between runs too)."""
    drift = 2e-4 * np.exp(np.random.default_rng(0).normal(0, 0.3, 20))
    rng = np.random.default_rng(seed)
    rounds = tuple({"round": i, "n": 10, "group": 2} for i in range(2))
    return [ResultRow(run_id="r", workload="w", strategy=s, runtime="rt", status="ok",
                      samples_s=tuple(drift * f * np.exp(rng.normal(0, 0.003, 20))),
                      median_s=float(np.median(drift * f)), rounds=rounds)
            for s, f in (("shared", 1.0), ("per-module", ratio))]


def test_stability_command_checks_the_strategy_ratios(tmp_path: Path, capsys) -> None:
    """Two runs whose paired ratios agree (1.30 both times, under 30% drift), and a third
    whose per-module ratio moved to 1.50: the first pair meets the targets, not the other."""
    a = _write(tmp_path / "a", _group_rows(1, 1.3))
    b = _write(tmp_path / "b", _group_rows(2, 1.3))
    c = _write(tmp_path / "c", _group_rows(3, 1.5))
    assert main(["stability", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "strategy ratios to shared, 1 in both runs: agree within their CIs (the CIs "\
        "overlap) 1/1" in out
    assert "same verdict 1/1" in out and "base resolution: median 95% CI half-width" in out
    assert main(["stability", str(a), str(c)]) == 1
    out = capsys.readouterr().out
    assert "agree within their CIs (the CIs overlap) 0/1" in out \
        and "apart: w | per-module | rt" in out
    # the cells' own medians still agree (30% drift hides a 15% move): the paired ratios
    # are what fails, and alone they make the exit status 1
    assert "median ratio within its 95% CI: 2/2 cells" in out
