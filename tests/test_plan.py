from __future__ import annotations

import json

import pytest

from harness.core.errors import PlanError
from harness.plugins.plan import Copy, Plan, Region


@pytest.mark.parametrize("workload", ["gemm:m=3,n=5,k=7", "mlp:batch=4,sizes=8-6-4-2",
                                      "bias-relu:n=9"])
@pytest.mark.parametrize("strategy", ["shared", "per-module"])
def test_plan_json_round_trip(regs, workload: str, strategy: str) -> None:
    plan = regs.strategies.create(strategy).plan(regs.workloads.create(workload))
    text = plan.to_json()
    back = Plan.from_json(text)
    assert back == plan
    assert json.loads(back.to_json()) == json.loads(text)


def test_plan_validate_rejects_out_of_bounds_copy(regs) -> None:
    plan = regs.strategies.create("per-module").plan(regs.workloads.create("bias-relu:n=4"))
    bad = Copy(Region("host", 0, 16), Region("host", 10**9, 16))
    broken = Plan(**{**plan.__dict__, "run": (*plan.run, bad)})
    with pytest.raises(PlanError, match="outside memory host"):
        broken.validate()


def test_from_json_malformed() -> None:
    with pytest.raises(PlanError, match="malformed plan"):
        Plan.from_json('{"workload": "x"}')


def test_per_module_copy_bytes_by_hand(regs) -> None:
    """mlp batch=4 64-32-10: every bound read tensor in, every written tensor out."""
    plan = regs.strategies.create("per-module").plan(regs.workloads.create("mlp:batch=4"))
    f = 4
    dense0_in = (4 * 64 + 64 * 32 + 32) * f   # x, w0, b0
    dense0_out = 4 * 32 * f                   # h0
    dense1_in = (4 * 32 + 32 * 10 + 10) * f   # h0, w1, b1
    dense1_out = 4 * 10 * f                   # y
    assert plan.bytes_copied_per_run() == dense0_in + dense0_out + dense1_in + dense1_out
    assert plan.calls_per_run() == 2


def test_shared_copies_nothing(regs) -> None:
    plan = regs.strategies.create("shared").plan(regs.workloads.create("mlp:batch=4"))
    assert plan.bytes_copied_per_run() == 0
    assert plan.requires == frozenset({"imported-memory", "simd128"})  # isa=simd by default
