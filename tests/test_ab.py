"""`membench ab` (both sides in one run) and pinned runtime versions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.errors import SpecError
from harness.store.rows import read_rows

ARGS = ["--workload", "bias-relu:n=2048", "--strategy", "shared", "--repeat", "10",
        "--sample-time", "0.002", "--rounds", "2"]


def test_a_a_run_keeps_both_sides_and_passes(tmp_path: Path) -> None:
    code = main(["ab", "--a", "wasmtime", "--b", "wasmtime", *ARGS, "--out", str(tmp_path)])
    (run,) = tmp_path.iterdir()
    rows = read_rows(run)
    assert [r.side for r in rows] == ["A", "B"] and all(r.status == "ok" for r in rows)
    assert all(len(r.rounds) == 2 for r in rows)
    # each round ran the pair back to back (noop cell first or last, never between them)
    orders = json.loads((run / "run.json").read_text())["schedule"]["orders"]
    assert all(abs(o.index(1) - o.index(2)) == 1 for o in orders)
    # the verdict itself is timing: its false-alarm rate is measured by
    # benchmarks/regression_power.py, not asserted here
    assert code in (0, 1)
    md = (run / "compare.md").read_text()
    assert "bias-relu:n=2048 \\| shared \\| wasmtime → wasmtime" in md
    # the two workers of a round ran together, on one CPU, samples paired
    for r in rows:
        assert all(info["lockstep"] is True for info in r.rounds)
        assert len({tuple(info["affinity"]) for info in r.rounds}) == 1
    assert rows[0].rounds[0]["affinity"] == rows[1].rounds[0]["affinity"]
    assert "2/2 paired rounds" in md
    manifest = json.loads((run / "run.json").read_text())
    assert not any("not pinned" in w for w in manifest["warnings"])
    # the noop and baseline cells ran on the pairs' CPU too, and run.json says which
    cpu = rows[0].rounds[0]["affinity"]
    assert manifest["pin"] == cpu
    others = read_rows(run, kinds=("noop", "baseline"))
    assert {r.kind for r in others} == {"noop", "baseline"}
    for r in others:
        assert all(info["affinity"] == cpu for info in r.rounds) if r.rounds else \
            r.timing["affinity"] == cpu


def test_no_lockstep_runs_the_sides_one_after_the_other(tmp_path: Path) -> None:
    main(["ab", "--a", "wasmtime", "--b", "wasmtime", "--no-lockstep", *ARGS,
          "--out", str(tmp_path)])
    (run,) = tmp_path.iterdir()
    rows = read_rows(run)
    assert all(r.status == "ok" and not any(i.get("lockstep") for i in r.rounds) for r in rows)
    assert "2/2 rounds" in (run / "compare.md").read_text()


def test_a_side_that_cannot_run_leaves_the_other_unpaired(tmp_path: Path) -> None:
    """B's runtime lacks the plan's feature: A still runs its rounds, alone."""
    code = main(["ab", "--a", "wasmtime", "--b", "wasm3", "--workload", "bias-relu:n=64,isa=simd",
                 "--strategy", "shared", "--repeat", "3", "--sample-time", "0.0005",
                 "--rounds", "2", "--out", str(tmp_path)])
    (run,) = tmp_path.iterdir()
    rows = read_rows(run)
    by_side = {r.side: r for r in rows}
    assert by_side["A"].status == "ok" and len(by_side["A"].rounds) == 2
    assert not any(i.get("lockstep") for i in by_side["A"].rounds)
    assert by_side["B"].status in ("unsupported", "unavailable")
    assert code == 0


def test_injected_slowdown_goes_to_side_b_and_verifies(tmp_path: Path) -> None:
    """Side B runs with real extra work; outputs still verify. (Detection power is
    measured by benchmarks/regression_power.py.)"""
    code = main(["ab", "--a", "wasmtime", "--b", "wasmtime", "--inject-slowdown", "100%",
                 *ARGS, "--out", str(tmp_path)])
    (run,) = tmp_path.iterdir()
    assert code in (0, 1)
    rows = read_rows(run)
    assert [r.runtime for r in rows] == ["wasmtime", "wasmtime:slowdown=100"]
    assert all(r.status == "ok" for r in rows)


def test_inject_conflicts_with_explicit_slowdown(tmp_path: Path, capsys) -> None:
    assert main(["ab", "--a", "wasmtime", "--b", "wasmtime:slowdown=5", "--inject-slowdown",
                 "10%", *ARGS, "--out", str(tmp_path)]) == 2
    assert "both given" in capsys.readouterr().err


def test_version_pin_only_for_installable_runtimes(regs) -> None:
    rt = regs.runtimes.create("wasmtime@49.0.0:bounds=explicit")
    assert rt.spec == "wasmtime@49.0.0:bounds=explicit"
    assert ".venvs/wasmtime-49.0.0/bin/python" in rt.worker_argv()[0]
    with pytest.raises(SpecError, match="does not take a version pin"):
        regs.strategies.create("shared@1.0")


def test_unknown_version_is_unavailable_with_pips_reason(regs, tmp_path: Path) -> None:
    from harness.probes.probe import probe_runtime

    probe = probe_runtime(regs.runtimes.create("wasmtime@0.0.1"))
    assert probe.status == "unavailable"
    assert "wasmtime==0.0.1" in probe.message


@pytest.mark.slow
def test_pinned_version_runs_in_its_own_environment(tmp_path: Path) -> None:
    """wasmtime@49.0.0 in a cached environment next to the project's own 50.x."""
    code = main(["run", "--workload", "gemm:m=5,n=7,k=3", "--runtime", "wasmtime@49.0.0",
                 "--runtime", "wasmtime", "--repeat", "2", "--sample-time", "0.0005",
                 "--out", str(tmp_path)])
    assert code == 0
    (run,) = tmp_path.iterdir()
    versions = {r.runtime: r.runtime_info["version"] for r in read_rows(run)}
    assert versions["wasmtime@49.0.0"] == "49.0.0"
    assert versions["wasmtime"].startswith("50.")
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["runtimes"]["wasmtime@49.0.0"]["version"] == "49.0.0"


def test_side_from_another_checkout(tmp_path: Path) -> None:
    """--a-repo: side A is planned and run by that checkout's own membench (here: this one)."""
    from harness.runtimes.venvs import REPO_ROOT

    code = main(["ab", "--a", "wasmtime", "--b", "wasmtime", "--a-repo", str(REPO_ROOT),
                 "--workload", "gemm:m=4,n=5,k=6", "--strategy", "shared", "--repeat", "3",
                 "--rounds", "2", "--sample-time", "0.0005", "--out", str(tmp_path)])
    assert code in (0, 1)
    (run,) = tmp_path.iterdir()
    rows = read_rows(run)
    assert [r.side for r in rows] == ["A", "B"] and all(r.status == "ok" for r in rows)
    assert all(len(r.samples_s) == 6 for r in rows)  # 2 rounds x 3 samples on both sides
    # that checkout has lockstep: its worker passed the gates of this run's pairs
    assert all(info.get("lockstep") is True for r in rows for info in r.rounds)
    # its rounds carry this run's settings (it ran one round of its own): a resume keeps them
    settings = json.loads((run / "run.json").read_text())["settings"]
    assert all(r.settings == settings for r in read_rows(run, kinds=("round",)) if r.side)


def test_lockstep_fds_are_for_one_cell_and_one_round(tmp_path: Path, capsys) -> None:
    assert main(["run", "--workload", "gemm:m=4,n=5,k=6", "--workload", "gemm:m=2,n=2,k=2",
                 "--strategy", "shared", "--runtime", "wasmtime", "--rounds", "1",
                 "--lockstep-fds", "5,6", "--out", str(tmp_path)]) == 2
    assert "exactly one cell" in capsys.readouterr().err


def test_missing_checkout_is_refused_before_work(tmp_path: Path, capsys) -> None:
    assert main(["ab", "--a", "wasmtime", "--b", "wasmtime", "--a-repo", str(tmp_path / "nope"),
                 *ARGS, "--out", str(tmp_path / "out")]) == 2
    assert "has no installed membench" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ab_runs_enough_rounds_for_its_test_unless_told() -> None:
    from harness.run.ab import AB_ROUNDS, ab_request
    from harness.run.request import RunRequest
    from harness.worker.measure import MeasureSettings

    req = RunRequest(workloads=("gemm",), strategies=("shared",), runtimes=(),
                     settings=MeasureSettings(rounds=1))
    assert ab_request(req, rounds_given=False).settings.rounds == AB_ROUNDS
    assert ab_request(req, rounds_given=True).settings.rounds == 1
    many = RunRequest(workloads=("gemm",), strategies=("shared",), runtimes=(),
                      settings=MeasureSettings(rounds=AB_ROUNDS + 2))
    assert ab_request(many, rounds_given=False).settings.rounds == AB_ROUNDS + 2


def test_ab_takes_enough_samples_and_pairs_them_unless_told() -> None:
    from harness.run.ab import AB_SAMPLES, ab_request
    from harness.run.request import RunRequest
    from harness.worker.measure import MeasureSettings

    req = RunRequest(workloads=("gemm",), strategies=("shared",), runtimes=(),
                     settings=MeasureSettings(samples=3))
    assert ab_request(req, rounds_given=False).settings.samples == AB_SAMPLES
    assert ab_request(req, rounds_given=False, samples_given=True).settings.samples == 3
    assert ab_request(req, rounds_given=False).lockstep
    assert not ab_request(req, rounds_given=False, lockstep=False).lockstep


def test_interrupted_ab_run_resumes_and_compares(tmp_path: Path, capsys) -> None:
    """An A/A run cut after its first round (as by kill -9): `ab --resume` runs only what is
    missing, keeps the two sides apart (same spec on both) and writes the comparison."""
    assert main(["ab", "--a", "wasmtime", "--b", "wasmtime", *ARGS, "--out", str(tmp_path)]) \
        in (0, 1)
    (run,) = tmp_path.iterdir()
    results = run / "results.jsonl"
    rows_on_disk = [json.loads(ln) for ln in results.read_text().splitlines()]
    kept = [r for r in rows_on_disk if r.get("kind") == "baseline"
            or (r.get("kind") == "round" and r.get("round") == 0)]
    assert len(kept) == 1 + 3  # the baseline; round 0 of noop, A and B
    # and A's round 1 without B's: killed between the pair's two rows
    (half,) = [r for r in rows_on_disk if r.get("kind") == "round" and r.get("round") == 1
               and r.get("side") == "A"]
    results.write_text("".join(json.dumps(r) + "\n" for r in [*kept, half]))
    (run / "compare.md").unlink()
    capsys.readouterr()

    assert main(["ab", "--resume", str(run)]) in (0, 1)
    err = capsys.readouterr().err
    assert "A = wasmtime, B = wasmtime" in err
    rounds = [r for r in read_rows(run, kinds=("round",)) if r.side]
    # A's lone round 1 was measured again, paired with B's (the file keeps both A rows)
    assert sorted((r.side, r.round) for r in rounds) == \
        [("A", 0), ("A", 1), ("A", 1), ("B", 0), ("B", 1)]
    (first_a,) = [r for r in kept if r.get("side") == "A"]
    assert [r.samples_s for r in rounds if (r.side, r.round) == ("A", 0)] == \
        [tuple(first_a["samples_s"])]  # kept, not measured again
    rows = read_rows(run)
    assert sorted(r.side for r in rows) == ["A", "B"] and all(len(r.rounds) == 2 for r in rows)
    assert all(info["lockstep"] is True for r in rows for info in r.rounds)
    (row_a,) = [r for r in rows if r.side == "A"]
    assert tuple(half["samples_s"]) != row_a.samples_s[-len(half["samples_s"]):]
    assert "bias-relu:n=2048 \\| shared \\| wasmtime → wasmtime" in (run / "compare.md").read_text()


def test_resume_options_of_ab_runs(tmp_path: Path, capsys) -> None:
    assert main(["ab", "--a", "wasmtime", *ARGS, "--out", str(tmp_path)]) == 2
    assert "needs --a SPEC and --b SPEC" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    record = {"cells": [["bias-relu:n=16", "shared", "wasmtime"]] * 2, "settings": {},
              "cell_timeout": 60, "sides": ["A", "B"], "repos": [None, None],
              "extra": {"ab": {"a": "wasmtime", "b": "wasmtime"}}}
    (run / "run.json").write_text(json.dumps({"run_id": "run", "request": record}))
    (run / "results.jsonl").write_text("")
    assert main(["run", "--resume", str(run)]) == 2  # would lose the sides
    assert f"membench ab --resume {run}" in capsys.readouterr().err
    assert main(["ab", "--resume", str(run), "--b", "wasmtime:bounds=explicit"]) == 2
    assert "drop --b" in capsys.readouterr().err
    record.pop("sides")
    (run / "run.json").write_text(json.dumps({"run_id": "run", "request": record}))
    assert main(["ab", "--resume", str(run)]) == 2
    assert "not an A/B run" in capsys.readouterr().err
    # an A/B run of an older membench: rows with sides, a run.json without them
    (run / "results.jsonl").write_text(json.dumps(
        {"run_id": "run", "workload": "bias-relu:n=16", "strategy": "shared",
         "runtime": "wasmtime", "status": "ok", "kind": "round", "round": 0, "side": "A"})
        + "\n")
    for command in ("run", "ab"):
        assert main([command, "--resume", str(run)]) == 2
        assert "written by an older membench" in capsys.readouterr().err
    assert sorted(os.listdir(run)) == ["results.jsonl", "run.json"]  # nothing ran
    assert len((run / "results.jsonl").read_text().splitlines()) == 1
