"""`membench export`: every workload's kernels under every strategy, as standalone files.

For each (workload at a small representative shape, strategy variant) that the strategy
can express, a directory holds each module's `.wasm` and `.wat`, the inputs and weights
and the NumPy-expected outputs as `.npy`, and `manifest.json`: memories, modules (their
imports, defined memories and exports, read from the binaries), instances with their
import bindings, tensor placement, and the set-up and run steps. The manifest is enough
to run the modules without this harness (tests/test_export.py does so on wasmtime).

The WAT is regenerated at export time: the plan is rebuilt while `recording_wat` collects
the text of every module assembled (plans themselves carry only bytes). A module a
toolchain built (a C kernel by clang, a module Binaryen merged or lowered) comes with its
sources (the C files under `src/`, the WAT of generated inputs) and the exact commands
that rebuild it from them (`build` in its manifest entry: clang-19 and wasm-ld-19,
wasm-tools parse,
wasm-merge, wasm-opt), recorded while the plan is rebuilt.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.codegen.module import recording_wat
from harness.core.errors import MembenchError
from harness.plugins.params import Param
from harness.plugins.plan import Plan
from harness.plugins.registry import Plugin
from harness.plugins.spec import parse_spec
from harness.plugins.strategy import Strategy, Unsupported
from harness.plugins.wasmbin import module_info
from harness.plugins.workload import Workload
from harness.toolchain import binaryen, clang
from harness.toolchain.binaryen import BinaryenBuild
from harness.toolchain.clang import ClangBuild

MANIFEST = "manifest.json"
FORMAT = 1
#: integer workload parameters are capped here for "small representative" shapes
SMALL = 13
#: plan capability -> wasm-tools feature name (validation starts from the wasm 2.0 set,
#: which already has SIMD128 and bulk memory)
VALIDATOR_FEATURES = {"multi-memory": "multi-memory", "shared-memory": "threads",
                      "memory64": "memory64", "relaxed-simd": "relaxed-simd",
                      "custom-page-sizes": "custom-page-sizes"}


class ExportError(MembenchError):
    """A module could not be exported (e.g. its WAT could not be recovered)."""


def _small_parts(cls: type[Plugin]) -> list[str]:
    parts = []
    for p in cls.declared_params():
        if p.kind == "int" and isinstance(p.default, int) and p.default > SMALL:
            value = max(SMALL, p.minimum or 0)
            if p.maximum is not None:
                value = min(value, p.maximum)
            parts.append(f"{p.name}={value}")
    return parts


def _spec(name: str, parts: Sequence[str]) -> str:
    return name + (":" + ",".join(parts) if parts else "")


def small_spec(cls: type[Plugin]) -> str:
    """A spec of `cls` with every integer parameter capped at `SMALL` (within its bounds)."""
    return _spec(cls.NAME, _small_parts(cls))


def variant_specs(cls: type[Plugin], small: bool = False) -> list[str]:
    """The default spec plus one spec per non-default value of each choice/bool parameter
    (with `small`, every one at `small_spec`'s shape). A value that needs another parameter
    (`per-module:load=cow` needs `resident=1`) comes with the first bool parameter turned
    that makes it valid; one no such spec makes valid is left out."""
    base = _small_parts(cls) if small else []
    specs = [_spec(cls.NAME, base)]
    flips = [f"{q.name}={_alternatives(q)[0]}" for q in cls.declared_params() if q.kind == "bool"]
    for p in cls.declared_params():
        for value in _alternatives(p):
            for extra in ([], *([f] for f in flips if not f.startswith(f"{p.name}="))):
                spec = _spec(cls.NAME, [*base, *extra, f"{p.name}={value}"])
                if _valid(cls, spec):
                    specs.append(spec)
                    break
    return specs


def _valid(cls: type[Plugin], spec: str) -> bool:
    try:
        cls.from_spec(parse_spec(spec))
    except MembenchError:
        return False
    return True


def _alternatives(p: Param) -> list[str]:
    if p.kind == "choice":
        return [c for c in p.choices if c != p.default]
    if p.kind == "bool":
        return ["0" if p.default else "1"]
    return []


def validator_features(plan: Plan) -> str:
    """The `wasm-tools validate --features` value a plan's modules need, and no more."""
    extra = sorted({VALIDATOR_FEATURES[c] for c in plan.requires if c in VALIDATOR_FEATURES})
    return ",".join(["wasm2", *extra])


def slug(spec: str) -> str:
    """A spec as a directory name (`mlp:batch=13,sizes=64-32-10` -> `mlp_batch-13_sizes-64-32-10`)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", spec.replace("=", "-")).strip("_")


@dataclass(frozen=True)
class Exported:
    workload: str
    strategy: str
    directory: Path | None
    reason: str = ""  # why nothing was written (the strategy cannot express the workload)


@dataclass
class _Builds:
    """How the modules of one plan were made, recorded while it was rebuilt."""

    wat: dict[bytes, str]
    clang: dict[bytes, ClangBuild]
    binaryen: dict[bytes, BinaryenBuild]

    def steps(self, wasm: bytes, name: str, d: Path) -> list[list[str]]:
        """The commands, run in `d`, that rebuild `name`.wasm from the files written
        there (sources and generated WAT); [] for a generated module (its .wat is it)."""
        if wasm in self.binaryen:
            b = self.binaryen[wasm]
            steps: list[list[str]] = []
            rename = {"out.wasm": f"{name}.wasm"}
            for k, w in enumerate(b.inputs):
                part = f"{name}.in{k}"
                rename[f"in{k}.wasm"] = f"{part}.wasm"
                steps += self.steps(w, part, d) or [["wasm-tools", "parse", f"{part}.wat",
                                                     "-o", f"{part}.wasm"]]
            return [*steps, [b.tool, *(rename.get(a, a) for a in b.args)]]
        if wasm in self.clang:
            c = self.clang[wasm]
            (d / "src").mkdir(exist_ok=True)
            for f in (c.source, *(h for i in c.include for h in sorted(i.glob("*.h")))):
                shutil.copyfile(f, d / "src" / f.name)
            return c.commands(f"src/{c.source.name}", ["src"], f"{name}.wasm")
        if wasm in self.wat:
            (d / f"{name}.wat").write_text(self.wat[wasm], encoding="utf-8")
            return []
        raise ExportError(f"module {name} was neither assembled nor built by a recorded "
                          "toolchain; cannot recover how it was made")


def export_one(workload: Workload, strategy: Strategy, out: Path, seed: int = 0) -> Exported:
    """Write one (workload, strategy) directory under `out`."""
    with recording_wat() as wat_of, clang.BUILDS.recording() as clang_of, \
            binaryen.BUILDS.recording() as binaryen_of:
        try:
            plan = strategy.plan(workload)
        except Unsupported as exc:
            return Exported(workload.spec, strategy.spec, None, str(exc))
    builds = _Builds(wat_of, clang_of, binaryen_of)
    d = out / slug(workload.spec) / slug(strategy.spec)
    (d / "data").mkdir(parents=True, exist_ok=True)
    modules = []
    for m in plan.modules:
        name = slug(m.name)
        (d / f"{name}.wasm").write_bytes(m.wasm)
        steps = builds.steps(m.wasm, name, d)
        info = module_info(m.wasm)
        entry: dict[str, Any] = {"name": m.name, "wasm": f"{name}.wasm"}
        if steps:
            entry["build"] = steps
        else:
            entry["wat"] = f"{name}.wat"
        modules.append({**entry, "features": sorted(m.features),
                        "imports": [asdict(i) for i in info.imports],
                        "memories": [asdict(t) for t in info.defined_memories],
                        "exports": [asdict(e) for e in info.exports]})
    data = workload.generate(seed)
    expected = workload.reference(data)
    files: dict[str, dict[str, str]] = {"inputs": {}, "expected": {}}
    for kind, arrays in (("inputs", data), ("expected", expected)):
        for name, arr in arrays.items():
            rel = f"data/{kind}-{slug(name)}.npy"
            np.save(d / rel, np.ascontiguousarray(arr))
            files[kind][name] = rel
    tol = workload.tolerance()
    plan_d = plan.to_dict()
    manifest: dict[str, Any] = {
        "format": FORMAT, "workload": workload.spec, "strategy": strategy.spec,
        "notes": plan.notes, "requires": sorted(plan.requires),
        "validate_features": validator_features(plan),
        "devices": plan_d["devices"], "memories": plan_d["memories"], "modules": modules,
        "instances": plan_d["instances"], "host_funcs": plan_d["host_funcs"],
        "placements": [{**p, "role": workload.tensor(p["tensor"]).role,
                        "shape": list(workload.tensor(p["tensor"]).shape),
                        "dtype": workload.tensor(p["tensor"]).dtype}
                       for p in plan_d["placements"]],
        "setup": plan_d["setup"], "run": plan_d["run"],
        "inputs": files["inputs"], "expected": files["expected"],
        "tolerance": {"rtol": tol.rtol, "atol": tol.atol},
        "counts_per_inference": plan.expected_counts(),
    }
    (d / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return Exported(workload.spec, strategy.spec, d)


def export_all(workloads: Iterable[Workload], strategies: Sequence[Strategy], out: Path,
               seed: int = 0) -> list[Exported]:
    """Export every workload under every strategy (those a strategy can't express are
    returned with the reason and write nothing)."""
    out.mkdir(parents=True, exist_ok=True)
    return [export_one(w, s, out, seed) for w in workloads for s in strategies]
