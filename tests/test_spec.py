from __future__ import annotations

import pytest

from harness.core.errors import SpecError, UnknownNameError
from harness.plugins.spec import Spec, parse_spec


def test_parse_name_and_params() -> None:
    s = parse_spec("gemm:m=37,n=53,k=91")
    assert s == Spec("gemm", (("m", "37"), ("n", "53"), ("k", "91")))
    assert str(s) == "gemm:m=37,n=53,k=91"


def test_parse_version_and_dashes() -> None:
    s = parse_spec("wasmtime@49.0.0:bounds=explicit")
    assert s.version == "49.0.0" and s.as_dict() == {"bounds": "explicit"}
    assert parse_spec("mlp:sizes=64-32-10").as_dict() == {"sizes": "64-32-10"}


@pytest.mark.parametrize("text", ["", ":", "gemm:", "gemm:m", "gemm:m=", "gemm:=3",
                                  "1gemm", "gemm:m=1,m=2", "gemm:m=1;k=2", "gemm@x1",
                                  "gemm:m=1,,k=2"])
def test_malformed_specs_raise_spec_error(text: str) -> None:
    with pytest.raises(SpecError):
        parse_spec(text)


def test_unknown_plugin_suggests_closest(regs) -> None:
    with pytest.raises(UnknownNameError, match=r"did you mean 'gemm'\?.*valid: .*bias-relu"):
        regs.workloads.create("gemmm:m=3")


def test_unknown_parameter_lists_valid(regs) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown parameter of gemm 'q'.*valid: isa, k, m, n, tile"):
        regs.workloads.create("gemm:q=3")


@pytest.mark.parametrize("spec, msg", [("gemm:m=0", ">= 1"), ("gemm:m=-4", ">= 1"),
                                       ("gemm:m=2.5", "integer"), ("gemm:m=abc", "integer"),
                                       ("mlp:sizes=64", "at least two"),
                                       ("mlp:sizes=64-x", "positive integers"),
                                       ("wasmtime:bounds=gaurd", "did you mean 'guard'")])
def test_bad_values(regs, spec: str, msg: str) -> None:
    reg = regs.runtimes if spec.startswith("wasmtime") else regs.workloads
    with pytest.raises(SpecError, match=msg):
        reg.create(spec)


def test_canonical_spec_drops_defaults(regs) -> None:
    w = regs.workloads.create("gemm:k=64,m=37")
    assert w.spec == "gemm:m=37"
    assert regs.runtimes.create("wasmtime:bounds=guard").spec == "wasmtime"


def test_every_runtime_accepts_slowdown(regs) -> None:
    for name in regs.runtimes.names():
        rt = regs.runtimes.create(f"{name}:slowdown=10")
        assert rt.params["slowdown"] == 10 and "slowdown=10" in rt.spec
    with pytest.raises(SpecError, match="<= 1000"):
        regs.runtimes.create("wasmtime:slowdown=5000")


def test_runtime_version_pin_in_canonical_spec(regs) -> None:
    assert regs.runtimes.create("wasmtime@49.0.0").spec == "wasmtime@49.0.0"
