"""Isolation probes: adversarial kernels, generated through each strategy's own lowering.

Three probes, each a small two-executable workload whose *victim* holds a canary (values no
generator produces) and whose *attacker* is an ordinary kernel that knows the layout (it is
given the address the victim's bytes have in the strategy's plan — the worst case):

* `unbound-read`  — the attacker reads the victim's tensor, which is not bound to its
  dispatch, and copies what it reads into its own output.
* `overflow-write` — the attacker writes a pattern through its bound output's pointer,
  past that output's end, at the victim tensor's address; a later victim dispatch copies
  the victim tensor out so the harness sees its bytes.
* `scratch-read`  — the attacker reads the victim executable's private scratch (the
  scratch address is the victim's last call argument in the plan, per the kernel ABI).
  The victim keeps 2 × canary there (its output gets the canary back), so reading a
  tensor instead does not count as reading the scratch.

Each probe runs like a cell (its own worker process) and ends in one outcome, decided from
the bytes, never assumed: `trapped` (the run trapped), `leaked` (some canary values
appear in the attacker's output), `corrupted` (the victim's bytes read back differ from
the canary) or `contained` (ran to the end; no canary seen, victim intact).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, f32, i32
from harness.core.protocol import save_tensors
from harness.plugins.plan import Plan, calls_of
from harness.plugins.strategy import Strategy, Unsupported
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from harness.probes.probe import ProbeResult
from harness.runtimes.base import Runtime
from harness.store.rows import ResultRow
from harness.worker.launch import run_worker
from harness.worker.measure import MeasureSettings

PROBES = ("unbound-read", "overflow-write", "scratch-read")
OUTCOMES = ("trapped", "leaked", "corrupted", "contained")
N = 16  # f32 elements per tensor
CANARY = (np.arange(N, dtype=np.float32) + np.float32(7777.25)).astype(np.float32)
#: what the victim keeps in its scratch: distinct from CANARY, so reading the victim's
#: tensor (a different leak) is not mistaken for reading its scratch
SCRATCH_CANARY = CANARY * np.float32(2)
PATTERN = -12345.5
SETTINGS = MeasureSettings(warmup_s=0.0, warmup_runs=0, sample_s=0.0, samples=1)


class _Copy(Kernel):
    """dst = src (the victim's ordinary work)."""

    def __init__(self, name: str, scratch: bool = False) -> None:
        self.name = name
        self.buffers = (BufferParam("src", "r"), BufferParam("dst", "w"))
        self.scratch_bytes = 4 * N if scratch else 0

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        i = fb.local("i", "i32")
        src, dst = bufs["src"], bufs["dst"]
        if self.scratch_bytes:  # through the private scratch, which keeps the scratch canary
            scratch = bufs["scratch"]
            with fb.for_range(i, 0, N):
                scratch.store(i, src.load(i) * 2.0)
            with fb.for_range(i, 0, N):  # 2x then 0.5x is exact: dst gets the plain canary
                dst.store(i, scratch.load(i) * 0.5)
            return
        with fb.for_range(i, 0, N):
            dst.store(i, src.load(i))


class _ReadAt(Kernel):
    """out[i] = the f32 at absolute address `addr + 4i`, read through input `x`'s space."""

    def __init__(self, addr: int) -> None:
        self.addr = addr
        self.name = f"attack_read_{addr}"
        self.buffers = (BufferParam("x", "r"), BufferParam("out", "w"))

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        i = fb.local("i", "i32")
        with fb.for_range(i, 0, N):
            bufs["out"].store(i, bufs["x"].load_at(i32(self.addr) + i * 4))


class _WriteAt(Kernel):
    """out = x, then a pattern written through `out`'s pointer at absolute `addr + 4i`."""

    def __init__(self, addr: int) -> None:
        self.addr = addr
        self.name = f"attack_write_{addr}"
        self.buffers = (BufferParam("x", "r"), BufferParam("out", "w"))

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        i = fb.local("i", "i32")
        out = bufs["out"]
        with fb.for_range(i, 0, N):
            out.store(i, bufs["x"].load(i))
        with fb.for_range(i, 0, N):
            out.store_at(i32(self.addr) + i * 4, f32(PATTERN))


class ProbeWorkload(Workload):
    """The two-executable workload of one probe, with the attacker aimed at `addr`."""

    NAME = "isolation"

    def __init__(self, probe: str, addr: int = 0) -> None:
        super().__init__()
        if probe not in PROBES:
            raise ValueError(f"unknown isolation probe {probe!r}; known: {PROBES}")
        self.probe, self.addr = probe, addr

    @property
    def spec(self) -> str:
        return f"isolation:{self.probe}"

    def build_tensors(self) -> tuple[Tensor, ...]:
        t = [Tensor("x", "input", (N,)), Tensor("secret", "weight", (N,)),
             Tensor("out", "output", (N,)), Tensor("check", "output", (N,))]
        return tuple(t)

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        victim = Dispatch("victim", _Copy("victim_copy", scratch=self.probe == "scratch-read"),
                          (("src", "secret"), ("dst", "check")))
        if self.probe == "overflow-write":
            attacker = Dispatch("attacker", _WriteAt(self.addr), (("x", "x"), ("out", "out")))
            return (attacker, victim)  # the victim runs after the attack and shows its bytes
        attacker = Dispatch("attacker", _ReadAt(self.addr), (("x", "x"), ("out", "out")))
        return (victim, attacker)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        if t.name == "secret":
            return CANARY.copy()
        return super().generate_tensor(t, rng)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What a harmless attacker would produce (the probe judges bytes, not this)."""
        return {"check": data["secret"].copy(), "out": data["x"].copy()}

    def tolerance(self) -> Tolerance:
        return Tolerance(0.0, 0.0)


def target_address(probe: str, plan: Plan) -> int:
    """Where the victim's bytes are in `plan` (what the attacker is told)."""
    if probe == "scratch-read":
        # the victim's first call (request 0's, where a plan serves several)
        call = next(c for c in calls_of(plan.run) if c.dispatch == "victim")
        # kernel ABI: the scratch base is the last argument, an address in the private
        # memory; where that memory is a range of the heap, the attacker adds its base
        return plan.private_base + int(call.args[-1])
    return plan.placement("secret").offset


@dataclass(frozen=True)
class Verdict:
    outcome: str
    detail: str
    matched: int = 0


def judge(probe: str, status: str, message: str,
          outputs: Mapping[str, np.ndarray]) -> Verdict:
    """Decide the outcome from the run's status and the victim's and attacker's bytes."""
    if status == "trapped":
        return Verdict("trapped", message)
    check, out = outputs["check"], outputs["out"]
    if probe == "overflow-write":
        changed = int(np.sum(check.view(np.uint32) != CANARY.view(np.uint32)))
        if changed:
            return Verdict("corrupted", f"{changed}/{N} victim values changed", changed)
        return Verdict("contained", "victim bytes intact")
    if not np.array_equal(check.view(np.uint32), CANARY.view(np.uint32)):
        raise ValueError("the victim did not reproduce its canary: the probe itself is broken")
    canary = SCRATCH_CANARY if probe == "scratch-read" else CANARY
    matched = int(np.sum(out.view(np.uint32) == canary.view(np.uint32)))
    if matched:
        return Verdict("leaked", f"{matched}/{N} canary values read by the attacker", matched)
    return Verdict("contained", "attacker read no canary value")


def run_probe(probe: str, strategy: Strategy, runtime: Runtime, run_id: str,
              caps: ProbeResult | None = None, timeout_s: float = 60.0) -> ResultRow:
    """One probe × strategy × runtime, as a result row of kind `isolation`."""
    t0 = time.perf_counter()

    def row(status: str, reason: str = "", **metrics: Any) -> ResultRow:
        return ResultRow(run_id=run_id, workload=f"isolation:{probe}", strategy=strategy.spec,
                         runtime=runtime.spec, status=status, reason=reason, kind="isolation",
                         metrics={"probe": probe, **metrics}, wall_s=time.perf_counter() - t0)

    if caps is not None and caps.status != "ok":
        return row("unavailable", caps.message)
    try:
        addr = target_address(probe, strategy.plan(ProbeWorkload(probe)))
        workload = ProbeWorkload(probe, addr)
        plan = strategy.plan(workload)
    except Unsupported as exc:
        return row("unsupported", str(exc))
    if plan.requests > 1:
        return row("unsupported", f"{strategy.spec} serves {plan.requests} requests at once: "
                   "their attackers would race the victims (the race probe measures that); "
                   "the isolation probes judge one request")
    if target_address(probe, plan) != addr:
        return row("crashed", f"{strategy.spec} moved the victim when the attacker changed")
    if caps is not None and caps.missing(plan.requires):
        return row("unsupported", f"{runtime.NAME} lacks {', '.join(caps.missing(plan.requires))}")
    data = workload.generate(SETTINGS.seed)
    with tempfile.TemporaryDirectory(prefix="membench-iso-") as tmp:
        d = Path(tmp)
        (d / "plan.json").write_text(plan.to_json(), encoding="utf-8")
        outcome = run_worker(runtime, {"kind": "cell", "runtime": runtime.spec,
                                       "plan_path": str(d / "plan.json"),
                                       "inputs": save_tensors(d, data),
                                       "settings": SETTINGS.to_dict()}, d, timeout_s)
        if outcome.status not in ("ok", "trapped"):
            return row(outcome.status, outcome.message, target_address=addr)
        outputs = {}
        if outcome.status == "ok":
            paths = (outcome.response or {}).get("outputs", {})
            outputs = {k: np.fromfile(paths[k], dtype="<f4") for k in ("check", "out")}
    try:
        v = judge(probe, outcome.status, outcome.message, outputs)
    except ValueError as exc:
        return row("invalid", str(exc), target_address=addr)
    return row("ok", v.detail, outcome=v.outcome, target_address=addr, matched=v.matched)


def matrix_text(rows: list[ResultRow]) -> str:
    """Strategy × probe matrix of outcomes, one block per runtime."""
    out: list[str] = []
    width = max([len(r.strategy) for r in rows] + [8])
    for rt in dict.fromkeys(r.runtime for r in rows):
        out.append(f"runtime {rt}")
        out.append(f"  {'strategy':<{width}}  " + "  ".join(f"{p:<15}" for p in PROBES))
        for s in dict.fromkeys(r.strategy for r in rows if r.runtime == rt):
            cells = []
            for p in PROBES:
                r = next((x for x in rows if (x.runtime, x.strategy, x.metrics.get("probe")) ==
                          (rt, s, p)), None)
                text = "-" if r is None else (r.metrics.get("outcome") if r.status == "ok"
                                              else r.status)
                cells.append(f"{text:<15}")
            out.append(f"  {s:<{width}}  " + "  ".join(cells))
    return "\n".join(out)
