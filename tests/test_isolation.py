"""Isolation probes: each outcome is decided from the victim's bytes, per strategy."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main as cli_main
from harness.probes.isolation import (
    CANARY,
    PROBES,
    N,
    ProbeWorkload,
    judge,
    run_probe,
    target_address,
)

EXPECTED = {
    "shared": {"unbound-read": "leaked", "overflow-write": "corrupted", "scratch-read": "leaked"},
    "per-module": dict.fromkeys(PROBES, "contained"),
    "host-call": dict.fromkeys(PROBES, "trapped"),
    "host-call:mode=paged,host=wasm": dict.fromkeys(PROBES, "trapped"),
    "multi-memory": {"unbound-read": "leaked", "overflow-write": "corrupted",
                     "scratch-read": "contained"},
    # Binaryen's lowering lays each private memory in the heap, unchecked: the private
    # scratch is readable by another module at the plan's `private_base` + its address
    "multi-memory:lowered=1": {"unbound-read": "leaked", "overflow-write": "corrupted",
                               "scratch-read": "leaked"},
}


def test_judge_reads_the_bytes() -> None:
    other = np.zeros(N, dtype=np.float32)
    assert judge("unbound-read", "ok", "", {"check": CANARY, "out": CANARY}).outcome == "leaked"
    assert judge("unbound-read", "ok", "", {"check": CANARY, "out": other}).outcome == "contained"
    assert judge("overflow-write", "ok", "", {"check": other, "out": other}).matched == N
    assert judge("overflow-write", "ok", "", {"check": CANARY, "out": other}).outcome == \
        "contained"
    assert judge("scratch-read", "trapped", "boom", {}).outcome == "trapped"
    with pytest.raises(ValueError, match="probe itself"):
        judge("scratch-read", "ok", "", {"check": other, "out": other})
    # scratch-read looks for the scratch canary: the victim's tensor is another leak
    scratch = CANARY * np.float32(2)
    assert judge("scratch-read", "ok", "", {"check": CANARY, "out": CANARY}).outcome == \
        "contained"
    assert judge("scratch-read", "ok", "", {"check": CANARY, "out": scratch}).outcome == "leaked"


def test_attacker_is_aimed_at_the_victim(regs) -> None:
    s = regs.strategies.create("shared")
    plan = s.plan(ProbeWorkload("unbound-read"))
    assert target_address("unbound-read", plan) == plan.placement("secret").offset
    scratch = target_address("scratch-read", s.plan(ProbeWorkload("scratch-read")))
    assert scratch >= max(p.region.end for p in plan.placements)  # past every tensor


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_isolation_matrix(regs, strategy: str) -> None:
    s, rt = regs.strategies.create(strategy), regs.runtimes.create("wasmtime")
    for probe in PROBES:
        row = run_probe(probe, s, rt, "t")
        assert row.kind == "isolation" and row.status == "ok", row.reason
        assert row.metrics["outcome"] == EXPECTED[strategy][probe], (probe, row.reason)
        if row.metrics["outcome"] in ("leaked", "corrupted"):
            assert row.metrics["matched"] == N  # every canary value read / overwritten


def test_isolation_command_prints_matrix(tmp_path, capsys) -> None:
    assert cli_main(["isolation", "--strategy", "shared", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "shared" in text and "leaked" in text and "corrupted" in text
    rows = [ln for p in tmp_path.glob("*/results.jsonl") for ln in p.read_text().splitlines()]
    assert len(rows) == len(PROBES) and all('"kind": "isolation"' in r for r in rows)
