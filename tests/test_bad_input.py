"""Every bad input a user can give: one line on stderr, exit 2, nothing existing touched.

The table below is the reference for what users see (the reliability report lists it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from tests.runfactory import make_run

SUITES = {
    "syntax.toml": b'workloads = ["gemm"\n',
    "types.toml": b'workloads = "gemm"\n',
    "unknown-key.toml": b'workload = ["gemm"]\n',
    "bad-setting.toml": b'workloads = ["gemm"]\n[settings]\nsamples = 0\n',
    "nan-setting.toml": b'workloads = ["gemm"]\n[settings]\nsample_s = nan\n',
    "unknown-setting.toml": b'workloads = ["gemm"]\n[settings]\nsampels = 3\n',
    "binary.toml": b"\xff\xfe\x00garbage",
    "bad-spec.toml": b'workloads = ["gemm:m=0"]\n',
    "subset-runtime.toml": b'workloads = ["gemm"]\nruntimes = ["wasmtime"]\n'
                           b'[runtime_workloads]\n"v8" = ["gemm"]\n',
    "subset-workload.toml": b'workloads = ["gemm"]\nruntimes = ["wasmtime"]\n'
                            b'[runtime_workloads]\n"wasmtime" = ["mlp"]\n',
}

# (argv, expected text of the one-line message); {d} is a scratch directory with
# suites, a plain file and a directory that is not a run
RUN_CASES = [
    (["--workload", "gemmm"], "unknown workload 'gemmm' (did you mean 'gemm'?)"),
    (["--workload", "gemm", "--strategy", "sharde"], "did you mean 'shared'?"),
    (["--workload", "gemm", "--runtime", "wasmtim"], "did you mean 'wasmtime'?"),
    (["--workload", "gemm:x=1"], "unknown parameter of gemm 'x'"),
    (["--workload", "gemm:mm=3"], "unknown parameter of gemm 'mm' (did you mean 'm'?)"),
    (["--workload", "gemm", "--runtime", "wasmtime:bounds=gaurd"], "did you mean 'guard'?"),
    (["--workload", ""], "empty spec"),
    (["--workload", "gemm:"], "nothing after ':'"),
    (["--workload", "gemm:m"], "'m' is not key=value"),
    (["--workload", "gemm:m=1,m=2"], "parameter 'm' given twice"),
    (["--workload", "gemm:m=1;k=2"], "bad value '1;k=2'"),
    (["--workload", "1gemm"], "must start with a letter"),
    (["--workload", "gemm:m=0"], "must be >= 1, got 0"),
    (["--workload", "gemm:m=-4"], "must be >= 1, got -4"),
    (["--workload", "gemm:m=2.5"], "expected an integer, got '2.5'"),
    (["--workload", "gemm:m=abc"], "expected an integer, got 'abc'"),
    (["--workload", "mlp:sizes=64-x"], "positive integers"),
    (["--workload", "gemm:m=65536,n=65536,k=1"], "wasm32 memory holds at most 4.0 GiB"),
    (["--workload", "gemm:m=99999999999999999999999"], "wasm32 memory holds at most 4.0 GiB"),
    (["--workload", "gemm:m=1024,n=1024,k=1024", "--max-memory", "8MiB"],
     "needs 12.0 MiB of tensors, over the --max-memory budget of 8.0 MiB"),
    (["--workload", "gemm", "--max-memory", "lots"], "--max-memory: expected a size like 512MiB"),
    (["--workload", "gemm", "--max-memory", "0"], "--max-memory: must be at least 1 byte"),
    (["--suite", "nosuch"], "no suite 'nosuch'"),
    (["--suite", "quik"], "no suite 'quik' (did you mean 'quick'?)"),
    (["--suite", "{d}/syntax.toml"], "syntax.toml is not valid TOML"),
    (["--suite", "{d}/types.toml"], "workloads must be a list of spec strings"),
    (["--suite", "{d}/unknown-key.toml"], "unknown keys ['workload']"),
    (["--suite", "{d}/bad-setting.toml"], "setting samples must be a positive int, got 0"),
    (["--suite", "{d}/nan-setting.toml"], "setting sample_s must be a positive float, got nan"),
    (["--suite", "{d}/unknown-setting.toml"], "unknown setting 'sampels'"),
    (["--suite", "{d}/binary.toml"], "binary.toml is not valid TOML"),
    (["--suite", "{d}/subset-runtime.toml"], "runtime_workloads names 'v8', which is not in "
                                             "runtimes (wasmtime)"),
    (["--suite", "{d}/subset-workload.toml"], "runtime_workloads.wasmtime lists ['mlp'], "
                                              "which are not in workloads"),
    (["--suite", "{d}/notarun"], "is a directory, not a TOML file"),
    (["--suite", "{d}/bad-spec.toml"], "must be >= 1, got 0"),
    (["--workload", "gemm", "--repeat", "0"], "--repeat must be positive"),
    (["--workload", "gemm", "--repeat", "x"], "argument --repeat: invalid int value: 'x'"),
    (["--workload", "gemm", "--sample-time", "-1"], "--sample-time must be positive"),
    (["--workload", "gemm", "--cell-timeout", "0"], "--cell-timeout must be positive"),
    (["--workload", "gemm", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--workload", "gemm", "--out", "{d}/plain-file"], "--out {d}/plain-file is a file, not a"),
    (["--workload", "gemm", "--out", "{d}/plain-file/below"], "cannot create {d}/plain-file/below"),
]

OTHER_CASES = [
    (["compare", "{d}/nosuch", "{d}/notarun"], "no run directory {d}/nosuch"),
    (["compare", "{d}/plain-file", "{d}/notarun"], "{d}/plain-file is not a run directory"),
    (["compare", "{d}/notarun", "{d}/notarun"], "{d}/notarun is not a run directory (no run.json)"),
    (["compare", "{d}/norows", "{d}/norows"], "{d}/norows is not a run directory (no results.jsonl)"),
    (["compare", "{d}/badjson", "{d}/badjson"], "run.json is not valid JSON"),
    (["compare", "{d}/listjson", "{d}/listjson"], "is not a run manifest"),
    (["merge", "{d}/notarun", "{d}/plain-file"], "{d}/notarun is not a run directory"),
    (["history", "--results", "{d}/plain-file"], "is not a directory"),
    (["compare", "{d}/run-a", "{d}/run-a", "--out", "{d}/plain-file"],
     "--out {d}/plain-file is a file, not a directory"),
    (["history", "--results", "{d}", "--out", "{d}/plain-file/x"],
     "--out {d}/plain-file/x: cannot create directory"),
    (["rnu"], "invalid choice: 'rnu'"),
]


@pytest.fixture()
def scratch(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for name, text in SUITES.items():
        (d / name).write_bytes(text)
    (d / "plain-file").write_text("not a directory\n")
    (d / "notarun").mkdir()
    (d / "norows").mkdir()
    (d / "norows" / "run.json").write_text("{}")
    for name, manifest in (("badjson", "{not json"), ("listjson", "[1, 2]")):
        (d / name).mkdir()
        (d / name / "run.json").write_text(manifest)
        (d / name / "results.jsonl").write_text("")
    make_run(d, "run-a", {("gemm", "shared", "wasmtime"): [1.0, 1.1, 1.0, 1.2]})
    return d


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


def _check(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    before = snapshot(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("membench: error: ")
    assert snapshot(tmp_path) == before  # nothing created, nothing overwritten


@pytest.mark.parametrize("argv, message", RUN_CASES)
def test_bad_run_input(tmp_path: Path, scratch: Path, capsys, argv, message) -> None:
    out = tmp_path / "out"
    make_run(out, "earlier-run", {("gemm", "shared", "wasmtime"): [1.0, 1.1]})
    full = ["run", "--out", str(out), *(a.replace("{d}", str(scratch)) for a in argv)]
    _check(full, message.replace("{d}", str(scratch)), tmp_path, capsys)


@pytest.mark.parametrize("argv, message", OTHER_CASES)
def test_bad_input_to_other_commands(tmp_path: Path, scratch: Path, capsys, argv,
                                     message) -> None:
    _check([a.replace("{d}", str(scratch)) for a in argv], message.replace("{d}", str(scratch)),
           tmp_path, capsys)


def test_truncated_results_are_read_with_one_warning(tmp_path: Path, capsys) -> None:
    """A run killed mid-write: every complete row is used, the rest is named in one line."""
    cells = {(f"w{i}", "s", "r"): [1.0, 1.1, 1.0, 1.2, 1.05, 1.1, 1.0, 0.9, 1.1] for i in range(3)}
    base = make_run(tmp_path, "base", cells)
    cur = make_run(tmp_path, "cur", cells)
    with open(cur / "results.jsonl", "a", encoding="utf-8") as f:
        f.write('{"run_id": "cur", "workload": "w3", "strat')  # the kill came here
    assert main(["compare", str(base), str(cur)]) == 0
    captured = capsys.readouterr()
    assert [ln for ln in captured.err.splitlines() if "warning" in ln] == [
        f"membench: warning: {cur / 'results.jsonl'}: skipped a truncated last line (line 4); "
        "read the valid rows"]
    assert "3 unchanged" in captured.out or "unsure" in captured.out
    assert "only in" not in captured.out  # all three complete cells were read
