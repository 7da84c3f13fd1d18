"""Fuzzing the parsers users feed: spec strings, suite TOML, results files and manifests.

Random and mutated inputs may be refused, but only with the harness's own error types
(`MembenchError`): anything else escaping is a traceback a user would see.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.analysis.history import load_history
from harness.core.errors import MembenchError, SpecError
from harness.plugins.spec import parse_spec
from harness.run.request import Registries
from harness.run.suite import load_suite, parse_suite
from harness.store.manifest import read_manifest
from harness.store.rows import RESULTS, ResultRow, read_rows

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
REGS = Registries.from_entry_points()

# text that looks like specs: the characters specs are made of, plus a few that are not
SPEC_CHARS = st.text(alphabet=st.sampled_from(list("gemlpshardwtx:=,@-_.0123456789 |/+;é\x00")),
                     max_size=40)


@FUZZ
@given(st.one_of(st.text(max_size=60), SPEC_CHARS))
@example("gemm:m=1,,k=2")
@example("a@1:b=c")
def test_parse_spec_raises_only_spec_error(text: str) -> None:
    try:
        spec = parse_spec(text)
    except SpecError:
        return
    assert parse_spec(str(spec)) == spec  # whatever parses round-trips


def _values() -> st.SearchStrategy[str]:
    ints = st.integers(min_value=-(2**70), max_value=2**70).map(str)
    return st.one_of(ints, st.sampled_from(["0", "1", "64-32-10", "0-3", "1e3", "2.5", "+3",
                                            "1_000", "guard", "paged", "x", "99999999999-9"]),
                     st.text(alphabet="0123456789-x.", min_size=1, max_size=12))


@st.composite
def plugin_specs(draw: Any) -> tuple[str, str]:
    kind = draw(st.sampled_from(["workloads", "strategies", "runtimes"]))
    reg = getattr(REGS, kind)
    name = draw(st.one_of(st.sampled_from(reg.names()), st.text(min_size=1, max_size=8)))
    declared = [p.name for _, cls in reg if _ == name for p in cls.declared_params()]
    keys = st.one_of(st.sampled_from(declared), st.text(min_size=1, max_size=5)) \
        if declared else st.text(min_size=1, max_size=5)
    params = draw(st.dictionaries(keys, _values(), max_size=4))
    return kind, name + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")


@FUZZ
@given(plugin_specs())
@example(("workloads", "gemm:m=99999999999999999999999"))
@example(("workloads", "gemm:m=4294967296,n=4294967296,k=4294967296"))
@example(("workloads", "mlp:batch=1,sizes=99999999999-99999999999"))
def test_creating_plugins_from_specs_raises_only_membench_errors(case: tuple[str, str]) -> None:
    """What `membench run` does with a spec before any work: parse, build, check limits."""
    kind, text = case
    try:
        obj = getattr(REGS, kind).create(text)
        if kind == "workloads":
            obj.check_limits(None)
            assert all(t.nbytes > 0 for t in obj.tensors)
    except MembenchError:
        pass


_TOML_SCALAR = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(),
                         st.booleans(), st.text(max_size=20))
_TOML = st.recursive(_TOML_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)
_SUITE_KEYS = st.sampled_from(["description", "workloads", "strategies", "runtimes",
                               "settings", "setings"])
_SETTINGS = st.dictionaries(
    st.sampled_from(["samples", "sample_s", "warmup_s", "warmup_runs", "cell_timeout", "seed",
                     "nope"]), _TOML_SCALAR, max_size=4)


@FUZZ
@given(st.one_of(_TOML, st.dictionaries(_SUITE_KEYS, st.one_of(_TOML, _SETTINGS), max_size=5)))
def test_parse_suite_raises_only_suite_errors(data: Any) -> None:
    try:
        suite = parse_suite("fuzz", data)
    except MembenchError:
        return
    assert all(isinstance(s, str) for s in (*suite.workloads, *suite.strategies, *suite.runtimes))
    assert all(math.isfinite(v) and (v > 0 or k == "seed") for k, v in suite.settings.items())


VALID_SUITE = (b'description = "d"\nworkloads = ["gemm:m=3"]\nstrategies = ["shared"]\n'
               b'runtimes = ["wasmtime"]\n[settings]\nsamples = 3\nsample_s = 0.001\nseed = 4\n')


def _mutate(data: Any, base: bytes) -> bytes:
    """Insert, delete and replace bytes at random positions of `base`."""
    out = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(out)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = data.draw(st.binary(min_size=1, max_size=4) | st.sampled_from(
            [b"[", b"]", b"=", b'"', b"\n", b"-1", b"nan", b"inf", b"0", b"\xff", b"{}"]))
        if op == "insert":
            out[pos:pos] = chunk
        elif op == "delete":
            del out[pos:pos + len(chunk)]
        else:
            out[pos:pos + len(chunk)] = chunk
    return bytes(out)


@FUZZ
@given(st.data())
def test_load_suite_from_random_and_mutated_files(data: Any) -> None:
    if data.draw(st.booleans()):
        content = _mutate(data, VALID_SUITE)
    else:
        content = data.draw(st.binary(max_size=200))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.toml"
        path.write_bytes(content)
        with contextlib.suppress(MembenchError):
            load_suite(str(path))


def _row(run_id: str = "r") -> dict[str, Any]:
    return ResultRow(run_id=run_id, workload="gemm:m=3", strategy="shared", runtime="wasmtime",
                     status="ok", median_s=1e-3, samples_s=(1e-3, 2e-3), phases={"compile_s": 1},
                     counters={"calls": 1}, err_index=(1, 2)).to_dict()


_JSON = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


@st.composite
def mutated_rows(draw: Any) -> str:
    row = _row()
    for key in draw(st.lists(st.sampled_from(sorted(row)), max_size=4)):
        if draw(st.booleans()):
            row[key] = draw(_JSON)
        else:
            row.pop(key, None)
    return json.dumps(row)


MANIFEST_OK = json.dumps({"run_id": "r", "created": "2026-01-01", "suite": "quick",
                          "fingerprint": {"machine_id": "m", "git": {"commit": "c"}}})


@st.composite
def manifests(draw: Any) -> bytes:
    choice = draw(st.sampled_from(["ok", "json", "bytes", "mutated"]))
    if choice == "ok":
        return MANIFEST_OK.encode()
    if choice == "json":
        return json.dumps(draw(_JSON)).encode()
    if choice == "bytes":
        return bytes(draw(st.binary(max_size=40)))
    obj = json.loads(MANIFEST_OK)
    obj[draw(st.sampled_from(["fingerprint", "created", "run_id"]))] = draw(_JSON)
    return json.dumps(obj).encode()


@FUZZ
@given(st.lists(st.one_of(mutated_rows(), st.just(json.dumps(_row())), _JSON.map(json.dumps),
                          st.text(max_size=30)), max_size=6),
       st.binary(max_size=40), st.booleans(), manifests())
def test_results_readers_raise_only_results_errors(lines: list[str], tail: bytes,
                                                   truncate: bool, manifest: bytes) -> None:
    """read_rows, read_manifest and the history scanner on random and mutated run dirs."""
    content = "\n".join(lines).encode("utf-8", "surrogatepass") + (tail if truncate else b"")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = Path(tmp) / "r"
        run.mkdir()
        (run / RESULTS).write_bytes(content)
        (run / "run.json").write_bytes(manifest)
        try:
            rows = read_rows(run)
        except MembenchError:
            rows = []
        for r in rows:  # every row read is well-typed
            assert isinstance(r.status, str) and isinstance(r.samples_s, tuple)
            assert all(isinstance(x, (int, float)) for x in r.samples_s)
        with contextlib.suppress(MembenchError):
            assert isinstance(read_manifest(run), dict)
        with contextlib.suppress(MembenchError):
            load_history(Path(tmp))
