"""The wasm back end of the plan driver: a `DriverProgram` as a WASI command module.

The driver module owns memory 0, exported as `memory` (the one memory WASI reads and
writes, whichever module calls it), with the data tensors as data segments, the outputs,
and a report area; it defines the plan's host memories and buffers (`m<j>`, imported by
the instances as `harness.standalone.link` renames them) and imports each memory an
instance exports. Each variant's set-up and inference are straight-line functions over
those memories (`memory.copy` between memory indices, calls into the instances, counters
in globals). `_start` then measures as `harness/worker/measure.py` does
(`time_interleaved`: cold first inference, warm-up until steady, calibration, samples in
rotating passes with a re-warming inference before each) with WASI's monotonic clock, and
writes the report area to stdout in one `fd_write`; `parse_report` reads it back into the
shape `mb_driver.c` writes as program.json. A host that measures the program itself, in
one comparison group with the plans it drives from Python (`harness.standalone.paired`),
calls the exported `mb_fn(variant, k)` (k: 0 set-up, 1 one inference, 2 keep the first
outputs and counters, 3 the counters after, 4 reset the counters) and `mb_run(variant, n)`
instead of `_start`, and reads the report area from the exported `memory`.

Settings are constants of the module: a program is generated per request.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.codegen import assemble
from harness.runtimes.base import RuntimeUnsupported
from harness.standalone.link import (
    instance_name,
    link_program,
    memory_export,
    variant_prefix,
)
from harness.standalone.program import (
    MAX_COUNTERS,
    OP_CALL,
    OP_COPY,
    OP_COUNT,
    OP_READ,
    OP_WRITE,
    Command,
    DriverProgram,
)
from harness.worker.measure import MIN_PASSES, SAMPLE_COST, MeasureSettings

PAGE = 65536
MAX_BATCHES = 8192
#: a variant's driver functions, `mb_fn(variant, k)`: its set-up, one inference, keep the
#: first inference's outputs and counters, store the counters after the samples, reset
FN_SETUP, FN_INFER, FN_SAVE, FN_AFTER, FN_RESET = range(5)
#: per variant, i64 fields at the start of its state record
FIELDS = ("status", "first_ns", "warmup_runs", "warmup_ns", "steady", "inner", "rewarm",
          "nsamples", "count", "setup_ns")
ESTIMATE_AT = 8 * len(FIELDS)           # f64
COUNTERS_AT = ESTIMATE_AT + 8
AFTER_AT = COUNTERS_AT + 8 * MAX_COUNTERS
SAMPLES_AT = AFTER_AT + 8 * MAX_COUNTERS


@dataclass(frozen=True)
class Layout:
    """Where the driver keeps what it reports (offsets in memory 0)."""

    report: int                          # start of the report area
    states: tuple[int, ...]              # per variant: its state record
    stride: int                          # bytes between two variants' state records
    first_out: tuple[tuple[int, ...], ...]   # per variant, per output: first inference's
    last_out: tuple[tuple[int, ...], ...]    # ... and the last inference's bytes
    end: int                             # end of the report area
    samples: int


def _align(n: int, a: int = 16) -> int:
    return (n + a - 1) // a * a


def layout(program: DriverProgram, settings: MeasureSettings, tensors_end: int) -> Layout:
    at = _align(tensors_end)
    report = at
    states, firsts, lasts = [], [], []
    stride = _align(SAMPLES_AT + 16 * settings.samples)
    for _ in program.variants:
        states.append(at)
        at += stride
    for v in program.variants:
        f, last = [], []
        for _, size in v.outputs:
            f.append(at)
            at = _align(at + size)
            last.append(at)
            at = _align(at + size)
        firsts.append(tuple(f))
        lasts.append(tuple(last))
    return Layout(report, tuple(states), stride, tuple(firsts), tuple(lasts), at,
                  settings.samples)


def _cmds(vi: int, cmds: tuple[Command, ...], tensor_at: dict[str, int], names: list[str],
          lay: Layout, wide: tuple[bool, ...]) -> list[str]:
    """The straight-line text of `cmds`; `wide[j]`: memory j has 64-bit addresses (its
    addresses are i64; a copy's length is i64 only between two such memories)."""
    out = []

    def at(j: int, n: int) -> str:
        return f"(i64.const {n})" if j >= 0 and wide[j] else f"(i32.const {n})"

    def data_area(j: int) -> tuple[str, str]:
        """The driver's data area memory j is written from and read into, and its address
        type: the 64-bit twin for a 64-bit memory (see `_FROM64`)."""
        return ("$io64", "i64") if wide[j] else ("$io", "i32")

    def size(a: int, b: int, n: int) -> str:
        return f"(i64.const {n})" if a >= 0 and b >= 0 and wide[a] and wide[b] \
            else f"(i32.const {n})"

    def add(counter: int, n: int) -> None:
        g = f"$g{vi}_{counter}"
        out.append(f"(global.set {g} (i64.add (global.get {g}) (i64.const {n})))")

    for c in cmds:
        if c.op == OP_WRITE:
            area, t = data_area(c.mem2)
            out.append(f"(memory.copy $m{vi}_{c.mem2} {area} {at(c.mem2, c.off2)} "
                       f"({t}.const {tensor_at[names[c.a]]}) ({t}.const {c.size}))")
            add(3, c.size)
        elif c.op == OP_COPY and wide[c.mem] != wide[c.mem2]:
            raise RuntimeUnsupported(
                "the plan copies between a 32-bit and a 64-bit memory: Binaryen 132's "
                "wasm-merge cannot merge a memory.copy across address types")
        elif c.op == OP_COPY:
            out.append(f"(memory.copy $m{vi}_{c.mem2} $m{vi}_{c.mem} {at(c.mem2, c.off2)} "
                       f"{at(c.mem, c.off)} {size(c.mem, c.mem2, c.size)})")
            add(0, c.size)
        elif c.op == OP_CALL:
            args = " ".join(f"({c.arg_type}.const {a})" for a in c.args)
            out.append(f"(call $c{vi}_{c.a} {args})")
            add(1, 1)
        elif c.op == OP_READ:
            area, t = data_area(c.mem)
            out.append(f"(memory.copy {area} $m{vi}_{c.mem} ({t}.const {lay.last_out[vi][c.a]}) "
                       f"{at(c.mem, c.off)} ({t}.const {c.size}))")
            add(4, c.size)
        elif c.op == OP_COUNT:
            g, m = f"$g{vi}_{c.a}", f"$m{vi}_{c.mem}"
            a = at(c.mem, c.off)
            load = (f"(i64.extend_i32_u (i32.load {m} {a}))" if c.size == 4
                    else f"(i64.load {m} {a})")
            store = (f"(i32.store {m} {a} (i32.const 0))" if c.size == 4
                     else f"(i64.store {m} {a} (i64.const 0))")
            out.append(f"(global.set {g} (i64.add (global.get {g}) {load})) {store}")
    return out


def driver_wat(program: DriverProgram, settings: MeasureSettings,
               slowdown: float = 0.0) -> tuple[str, Layout]:
    """The driver module's text for `program` (every variant) and its report layout."""
    # the data tensors, once each by name (every variant of a group writes the same data)
    sizes: dict[str, int] = {}
    for v in program.variants:
        for name, size in v.tensors:
            sizes.setdefault(name, size)
    tensor_at, at = {}, 64
    for name, size in sizes.items():
        tensor_at[name] = at
        at = _align(at + size)
    lay = layout(program, settings, at)
    batches = _align(lay.end)
    scratch = 8 * MAX_BATCHES                  # the median's sort, after the batches
    io_pages = -(-(batches + scratch + 8 * 64) // PAGE)

    imports = ['(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 '
               'i32) (result i32)))',
               '(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 '
               'i32) (result i32)))']
    defs = [f'(memory $io (export "memory") {io_pages})']
    funcs: list[str] = []
    table: list[str] = []
    V = len(program.variants)
    for vi, v in enumerate(program.variants):
        pre = variant_prefix(vi)   # lower_plans kept its counters within MAX_COUNTERS
        for j, m in enumerate(v.memories):
            if m.kind == "export":
                imports.append(f'(import "{pre}{instance_name(m.instance)}" "{m.export}" '
                               f'(memory $m{vi}_{j} {"i64 " if m.memory64 else ""}0))')
            elif m.kind == "host":
                mx = f" {m.max_pages}" if m.max_pages is not None else ""
                defs.append(f'(memory $m{vi}_{j} (export "{pre}{memory_export(j)}") '
                            f'{"i64 " if m.memory64 else ""}{m.min_pages}{mx})')
            else:
                defs.append(f'(memory $m{vi}_{j} {"i64 " if m.memory64 else ""}'
                            f'{max(1, -(-m.size // PAGE))})')
        arity = {c.a: (len(c.args), c.arg_type) for c in (*v.setup, *v.run) if c.op == OP_CALL}
        for k, (inst, export) in enumerate(v.calls):
            params = " ".join([arity[k][1]] * arity[k][0])
            imports.append(f'(import "{pre}{instance_name(inst)}" "{export}" (func $c{vi}_{k} '
                           f'(param {params})))')
        defs += [f"(global $g{vi}_{c} (mut i64) (i64.const 0))" for c in range(len(v.counters))]
        names = [t for t, _ in v.tensors]
        wide = tuple(m.memory64 for m in v.memories)
        funcs.append(f"(func $setup{vi} "
                     + " ".join(_cmds(vi, v.setup, tensor_at, names, lay, wide)) + ")")
        funcs.append(f"(func $infer{vi} "
                     + " ".join(_cmds(vi, v.run, tensor_at, names, lay, wide)) + ")")
        st = lay.states[vi]
        save = " ".join(f"(i64.store $io (i32.const {st + COUNTERS_AT + 8 * c}) "
                        f"(global.get $g{vi}_{c}))" for c in range(len(v.counters)))
        after = " ".join(f"(i64.store $io (i32.const {st + AFTER_AT + 8 * c}) "
                         f"(global.get $g{vi}_{c}))" for c in range(len(v.counters)))
        reset = " ".join(f"(global.set $g{vi}_{c} (i64.const 0))" for c in range(len(v.counters)))
        # an output read from a 64-bit memory lands in $io64: brought into the report
        # area after the first inference and after the samples (untimed)
        read64 = {c.a for c in v.run if c.op == OP_READ and wide[c.mem]}
        keep = " ".join(
            (f"(call $from64 (i32.const {f}) (i64.const {last}) (i32.const {size}))"
             if k in read64 else f"(memory.copy $io $io (i32.const {f}) (i32.const {last}) "
             f"(i32.const {size}))") for k, (f, last, (_, size))
            in enumerate(zip(lay.first_out[vi], lay.last_out[vi], v.outputs, strict=True)))
        last64 = " ".join(f"(call $from64 (i32.const {last}) (i64.const {last}) "
                          f"(i32.const {size}))" for k, (last, (_, size))
                          in enumerate(zip(lay.last_out[vi], v.outputs, strict=True))
                          if k in read64)
        funcs += [f"(func $save{vi} {save} {keep})", f"(func $after{vi} {after} {last64})",
                  f"(func $reset{vi} {reset})"]
        table += [f"$setup{vi}", f"$infer{vi}", f"$save{vi}", f"$after{vi}", f"$reset{vi}"]
    segs = [f'(data (memory $io) (i32.const {tensor_at[n]}) "{{tensor:{n}}}")' for n in sizes]
    if any(m.memory64 for v in program.variants for m in v.memories):
        # Binaryen cannot merge a memory.copy between memories of two address types: 64-bit
        # memories are written from (and read into) a 64-bit twin of the data area
        defs.append(f"(memory $io64 i64 {io_pages})")
        segs += [f'(data (memory $io64) (i64.const {tensor_at[n]}) "{{tensor:{n}}}")'
                 for n in sizes]
        funcs.append(_FROM64)
    s = settings
    text = "(module\n" + "\n".join(imports) + "\n" + "\n".join(defs) + "\n" + "\n".join(segs) \
        + f"\n(type $vfn (func))\n(table {len(table)} funcref)\n(elem (i32.const 0) func " \
        + " ".join(table) + ")\n" + "\n".join(funcs) + "\n" + _MEASURE.format(
            V=V, STATE0=lay.states[0], STRIDE=lay.stride, REPORT=lay.report, SCRATCH=scratch,
            ONE_MINUS_TOL=1.0 - s.steady_tol, BUDGET_NS=s.samples * SAMPLE_COST * s.sample_s * 1e9,
            SLOWDOWN_CODE=(f"(call $busy (f64.mul (local.get $dt) (f64.const {slowdown})))"
                           "(local.set $dt (f64.sub (call $now) (local.get $t0)))"
                           if slowdown > 0 else ""),
            REPORT_LEN=lay.end - lay.report, BATCHES=batches, MAX_BATCHES=MAX_BATCHES,
            WARMUP_NS=s.warmup_s * 1e9, WARMUP_RUNS=s.warmup_runs,
            WARMUP_MAX_NS=s.warmup_max_s * 1e9, WINDOW=s.steady_window, TOL=s.steady_tol,
            BATCH_NS=s.batch_s * 1e9, SAMPLE_NS=s.sample_s * 1e9, SAMPLES=s.samples,
            MAX_INNER=s.max_inner, MIN_PASSES=min(s.samples, MIN_PASSES), NFN=FN_RESET + 1, ESTIMATE_AT=ESTIMATE_AT, SAMPLES_AT=SAMPLES_AT,
            PASSES_AT=SAMPLES_AT + 8 * s.samples,
            **{f"F_{f.upper()}": 8 * i for i, f in enumerate(FIELDS)}) + ")\n"
    return text, lay


def driver_binary(program: DriverProgram, settings: MeasureSettings, tensors: dict[str, bytes],
                  slowdown: float = 0.0) -> tuple[bytes, Layout]:
    """The driver module, its tensors' bytes in its data segments."""
    text, lay = driver_wat(program, settings, slowdown)

    def escaped(m: re.Match[str]) -> str:  # WAT string bytes: \xx each (MBs of weights)
        raw = tensors[m.group(1)]
        return "\\" + raw.hex("\\") if raw else ""
    return assemble(re.sub(r"\{tensor:([^}]*)\}", escaped, text)), lay


def linked_program(program: DriverProgram, settings: MeasureSettings,
                   tensors: dict[str, bytes], slowdown: float = 0.0) -> tuple[bytes, Layout]:
    """The WASI command: the driver and every instance of every variant, merged."""
    driver, lay = driver_binary(program, settings, tensors, slowdown)
    return link_program(program, driver), lay


def write_outputs(variant: dict[str, Any], out: Path, k: int) -> None:
    """A parsed variant's output bytes into files of `out` (`v<k>_out_<name>.bin`, k its
    index in the request), its `outputs` then naming the files, as program.json does."""
    outputs = {}
    for name, o in variant["outputs"].items():
        file = f"v{k}_out_{name}.bin"
        (out / file).write_bytes(o["bytes"])
        outputs[name] = {"file": file, "changed": o["changed"]}
    variant["outputs"] = outputs


def parse_report(raw: bytes, program: DriverProgram, lay: Layout) -> list[dict[str, object]]:
    """The report area's bytes as the variants' part of program.json."""
    out: list[dict[str, object]] = []
    base = lay.report

    def i64(at: int) -> int:
        return int(struct.unpack_from("<q", raw, at - base)[0])

    for vi, v in enumerate(program.variants):
        st = lay.states[vi]
        f = {name: i64(st + 8 * k) for k, name in enumerate(FIELDS)}
        n = f["nsamples"]
        samples = struct.unpack_from(f"<{n}d", raw, st + SAMPLES_AT - base)
        passes = struct.unpack_from(f"<{n}q", raw, st + SAMPLES_AT + 8 * lay.samples - base)
        counters = {c: i64(st + COUNTERS_AT + 8 * k) for k, c in enumerate(v.counters) if c}
        after = {c: i64(st + AFTER_AT + 8 * k) for k, c in enumerate(v.counters) if c}
        outputs = {}
        for k, (name, size) in enumerate(v.outputs):
            first = raw[lay.first_out[vi][k] - base:lay.first_out[vi][k] - base + size]
            last = raw[lay.last_out[vi][k] - base:lay.last_out[vi][k] - base + size]
            outputs[name] = {"bytes": bytes(first), "changed": first != last}
        out.append({"name": v.name, "status": "ok", "message": "",
                    "setup_s": f["setup_ns"] / 1e9, "first_s": f["first_ns"] / 1e9,
                    "warmup_runs": f["warmup_runs"], "warmup_s": f["warmup_ns"] / 1e9,
                    "steady": bool(f["steady"]), "inner": f["inner"],
                    "rewarm_runs": f["rewarm"], "samples_s": [x / 1e9 for x in samples],
                    "passes": list(passes), "counters": counters, "counters_after": after,
                    "outputs": outputs})
    return out


# bytes of the 64-bit data area into the report area (untimed: outputs after an inference)
_FROM64 = """(func $from64 (param $dst i32) (param $src i64) (param $n i32) (local $i i32)
  (block $done (loop $l (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (i32.store8 $io (i32.add (local.get $dst) (local.get $i))
      (i32.load8_u $io64 (i64.add (local.get $src) (i64.extend_i32_u (local.get $i)))))
    (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l))))"""


# The measurement, as harness/worker/measure.py `time_interleaved`. Times in ns (f64).
_MEASURE = """
(func $now (result f64)
  (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 16)))
  (f64.convert_i64_u (i64.load $io (i32.const 16))))
(func $fn (export "mb_fn") (param $v i32) (param $k i32)
  (call_indirect (type $vfn) (i32.add (i32.mul (local.get $v) (i32.const {NFN})) (local.get $k))))
(func $run_n (param $v i32) (param $n i64) (local $i i64)
  (block $done (loop $l
    (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
    (call $fn (local.get $v) (i32.const 1))
    (local.set $i (i64.add (local.get $i) (i64.const 1)))
    (br $l))))
;; n inferences of variant v, for a host that times them itself (harness.standalone.paired)
(func (export "mb_run") (param $v i32) (param $n i32)
  (call $run_n (local.get $v) (i64.extend_i32_u (local.get $n))))
(func $state (param $v i32) (result i32)
  (i32.add (i32.const {STATE0}) (i32.mul (local.get $v) (i32.const {STRIDE}))))
(func $busy (param $ns f64) (local $end f64) (local $acc i32)
  (local.set $end (f64.add (call $now) (local.get $ns)))
  (block $done (loop $l
    (br_if $done (f64.ge (call $now) (local.get $end)))
    (local.set $acc (i32.and (i32.add (i32.mul (local.get $acc) (i32.const 1103515245))
                                      (i32.const 12345)) (i32.const 0x7fffffff)))
    (br $l)))
  (i32.store $io (i32.const 32) (local.get $acc)))
(func $min_of (param $lo i32) (param $hi i32) (result f64) (local $m f64)
  (local.set $m (f64.const inf))
  (block $done (loop $l
    (br_if $done (i32.ge_u (local.get $lo) (local.get $hi)))
    (local.set $m (f64.min (local.get $m)
      (f64.load $io (i32.add (i32.const {BATCHES}) (i32.shl (local.get $lo) (i32.const 3))))))
    (local.set $lo (i32.add (local.get $lo) (i32.const 1)))
    (br $l)))
  (local.get $m))
;; median of batches [lo, hi): sorted into the scratch after the batches (insertion sort)
(func $median_of (param $lo i32) (param $hi i32) (result f64)
  (local $n i32) (local $i i32) (local $j i32) (local $x f64) (local $at i32)
  (local.set $n (i32.sub (local.get $hi) (local.get $lo)))
  (local.set $at (i32.add (i32.const {BATCHES}) (i32.const {SCRATCH})))
  (local.set $i (i32.const 0))
  (block $done (loop $l
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (local.set $x (f64.load $io (i32.add (i32.const {BATCHES})
      (i32.shl (i32.add (local.get $lo) (local.get $i)) (i32.const 3)))))
    (local.set $j (local.get $i))
    (block $placed (loop $shift
      (br_if $placed (i32.eqz (local.get $j)))
      (br_if $placed (f64.le (f64.load $io (i32.add (local.get $at)
        (i32.shl (i32.sub (local.get $j) (i32.const 1)) (i32.const 3)))) (local.get $x)))
      (f64.store $io (i32.add (local.get $at) (i32.shl (local.get $j) (i32.const 3)))
        (f64.load $io (i32.add (local.get $at)
          (i32.shl (i32.sub (local.get $j) (i32.const 1)) (i32.const 3)))))
      (local.set $j (i32.sub (local.get $j) (i32.const 1)))
      (br $shift)))
    (f64.store $io (i32.add (local.get $at) (i32.shl (local.get $j) (i32.const 3))) (local.get $x))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $l)))
  (if (result f64) (i32.and (local.get $n) (i32.const 1))
    (then (f64.load $io (i32.add (local.get $at)
      (i32.shl (i32.shr_u (local.get $n) (i32.const 1)) (i32.const 3)))))
    (else (f64.mul (f64.const 0.5) (f64.add
      (f64.load $io (i32.add (local.get $at)
        (i32.shl (i32.sub (i32.shr_u (local.get $n) (i32.const 1)) (i32.const 1)) (i32.const 3))))
      (f64.load $io (i32.add (local.get $at)
        (i32.shl (i32.shr_u (local.get $n) (i32.const 1)) (i32.const 3)))))))))
(func $clamp (param $x f64) (result i64)
  (i64.trunc_sat_f64_u (f64.min (f64.max (f64.ceil (local.get $x)) (f64.const 1))
                                (f64.const {MAX_INNER}))))
(func $warm (param $v i32)
  (local $st i32) (local $per f64) (local $batch i64) (local $t0 f64) (local $t1 f64)
  (local $start f64) (local $n i32) (local $runs i64) (local $elapsed f64) (local $w i32)
  (local.set $st (call $state (local.get $v)))
  (local.set $per (f64.max (f64.convert_i64_s (i64.load $io (i32.add (local.get $st)
    (i32.const {F_FIRST_NS})))) (f64.const 1)))
  (local.set $start (call $now))
  (block $done (loop $l
    (local.set $batch (call $clamp (f64.div (f64.const {BATCH_NS}) (local.get $per))))
    (local.set $t0 (call $now))
    (call $run_n (local.get $v) (local.get $batch))
    (local.set $t1 (call $now))
    (local.set $per (f64.max (f64.div (f64.sub (local.get $t1) (local.get $t0))
      (f64.convert_i64_u (local.get $batch))) (f64.const 1)))
    (if (i32.lt_u (local.get $n) (i32.const {MAX_BATCHES})) (then
      (f64.store $io (i32.add (i32.const {BATCHES}) (i32.shl (local.get $n) (i32.const 3)))
        (local.get $per))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))))
    (local.set $runs (i64.add (local.get $runs) (local.get $batch)))
    (local.set $elapsed (f64.sub (local.get $t1) (local.get $start)))
    (if (i32.and (i32.and (i64.ge_u (local.get $runs) (i64.const {WARMUP_RUNS}))
                          (f64.ge (local.get $elapsed) (f64.const {WARMUP_NS})))
                 (i32.gt_u (local.get $n) (i32.const {WINDOW})))
      (then (if (f64.ge (call $min_of (i32.sub (local.get $n) (i32.const {WINDOW})) (local.get $n))
                        (f64.mul (call $min_of (i32.const 0)
                                   (i32.sub (local.get $n) (i32.const {WINDOW})))
                                 (f64.const {ONE_MINUS_TOL})))
        (then (i64.store $io (i32.add (local.get $st) (i32.const {F_STEADY})) (i64.const 1))
              (br $done)))))
    (br_if $done (f64.ge (local.get $elapsed) (f64.const {WARMUP_MAX_NS})))
    (br $l)))
  (i64.store $io (i32.add (local.get $st) (i32.const {F_WARMUP_RUNS})) (local.get $runs))
  (i64.store $io (i32.add (local.get $st) (i32.const {F_WARMUP_NS}))
    (i64.trunc_sat_f64_u (local.get $elapsed)))
  (local.set $w (select (local.get $n) (i32.const {WINDOW})
    (i32.lt_u (local.get $n) (i32.const {WINDOW}))))
  (f64.store $io (i32.add (local.get $st) (i32.const {ESTIMATE_AT}))
    (call $median_of (i32.sub (local.get $n) (local.get $w)) (local.get $n))))
(func $start (export "_start")
  (local $v i32) (local $st i32) (local $t0 f64) (local $est f64) (local $inner i64)
  (local $count i64) (local $fit i64) (local $passes i64) (local $k i64) (local $j i32)
  (local $dt f64) (local $n i64)
  ;; load every variant, its cold first inference, its counters and outputs
  (block $done (loop $l (br_if $done (i32.ge_u (local.get $v) (i32.const {V})))
    (local.set $st (call $state (local.get $v)))
    (local.set $t0 (call $now))
    (call $fn (local.get $v) (i32.const 0))
    (i64.store $io (i32.add (local.get $st) (i32.const {F_SETUP_NS}))
      (i64.trunc_sat_f64_u (f64.sub (call $now) (local.get $t0))))
    (call $fn (local.get $v) (i32.const 4))
    (local.set $t0 (call $now))
    (call $fn (local.get $v) (i32.const 1))
    (i64.store $io (i32.add (local.get $st) (i32.const {F_FIRST_NS}))
      (i64.trunc_sat_f64_u (f64.sub (call $now) (local.get $t0))))
    (call $fn (local.get $v) (i32.const 2))
    (call $fn (local.get $v) (i32.const 4))
    (local.set $v (i32.add (local.get $v) (i32.const 1))) (br $l)))
  ;; warm each up; calibrate its inner loop and its sample count (measure.samples_for)
  (local.set $v (i32.const 0))
  (block $done (loop $l (br_if $done (i32.ge_u (local.get $v) (i32.const {V})))
    (call $warm (local.get $v))
    (local.set $st (call $state (local.get $v)))
    (local.set $est (f64.load $io (i32.add (local.get $st) (i32.const {ESTIMATE_AT}))))
    (local.set $inner (call $clamp (f64.div (f64.const {SAMPLE_NS})
      (f64.max (local.get $est) (f64.const 1)))))
    (i64.store $io (i32.add (local.get $st) (i32.const {F_INNER})) (local.get $inner))
    (local.set $fit (i64.trunc_sat_f64_u (f64.floor (f64.div
      (f64.const {BUDGET_NS})
      (f64.max (f64.mul (local.get $est) (f64.convert_i64_u (i64.add (local.get $inner)
        (i64.const 1)))) (f64.const 0.001))))))
    (local.set $count (select (local.get $fit) (i64.const {SAMPLES})
      (i64.lt_u (local.get $fit) (i64.const {SAMPLES}))))
    (local.set $count (select (local.get $count) (i64.const {MIN_PASSES})
      (i64.gt_u (local.get $count) (i64.const {MIN_PASSES}))))
    (i64.store $io (i32.add (local.get $st) (i32.const {F_COUNT})) (local.get $count))
    (local.set $passes (select (local.get $count) (local.get $passes)
      (i64.gt_u (local.get $count) (local.get $passes))))
    (local.set $v (i32.add (local.get $v) (i32.const 1))) (br $l)))
  ;; passes: each variant one sample, rotating; a variant of fewer samples spreads them
  (block $done (loop $l (br_if $done (i64.ge_u (local.get $k) (local.get $passes)))
    (local.set $j (i32.const 0))
    (block $pass (loop $each (br_if $pass (i32.ge_u (local.get $j) (i32.const {V})))
      (local.set $v (i32.rem_u (i32.add (i32.wrap_i64 (local.get $k)) (local.get $j))
                               (i32.const {V})))
      (local.set $st (call $state (local.get $v)))
      (local.set $count (i64.load $io (i32.add (local.get $st) (i32.const {F_COUNT}))))
      (if (i64.gt_u (i64.div_u (i64.mul (i64.add (local.get $k) (i64.const 1)) (local.get $count))
                               (local.get $passes))
                    (i64.div_u (i64.mul (local.get $k) (local.get $count)) (local.get $passes)))
        (then
          (call $run_n (local.get $v) (i64.const 1))
          (i64.store $io (i32.add (local.get $st) (i32.const {F_REWARM}))
            (i64.add (i64.load $io (i32.add (local.get $st) (i32.const {F_REWARM}))) (i64.const 1)))
          (local.set $inner (i64.load $io (i32.add (local.get $st) (i32.const {F_INNER}))))
          (local.set $t0 (call $now))
          (call $run_n (local.get $v) (local.get $inner))
          (local.set $dt (f64.sub (call $now) (local.get $t0)))
          {SLOWDOWN_CODE}
          (local.set $n (i64.load $io (i32.add (local.get $st) (i32.const {F_NSAMPLES}))))
          (f64.store $io (i32.add (i32.add (local.get $st) (i32.const {SAMPLES_AT}))
                                  (i32.shl (i32.wrap_i64 (local.get $n)) (i32.const 3)))
            (f64.div (local.get $dt) (f64.convert_i64_u (local.get $inner))))
          (i64.store $io (i32.add (i32.add (local.get $st) (i32.const {PASSES_AT}))
                                  (i32.shl (i32.wrap_i64 (local.get $n)) (i32.const 3)))
            (local.get $k))
          (i64.store $io (i32.add (local.get $st) (i32.const {F_NSAMPLES}))
            (i64.add (local.get $n) (i64.const 1)))))
      (local.set $j (i32.add (local.get $j) (i32.const 1))) (br $each)))
    (local.set $k (i64.add (local.get $k) (i64.const 1))) (br $l)))
  (local.set $v (i32.const 0))
  (block $done (loop $l (br_if $done (i32.ge_u (local.get $v) (i32.const {V})))
    (call $fn (local.get $v) (i32.const 3))
    (local.set $v (i32.add (local.get $v) (i32.const 1))) (br $l)))
  ;; the report area to stdout, in one write (iovec at 0, bytes written at 8)
  (i32.store $io (i32.const 0) (i32.const {REPORT}))
  (i32.store $io (i32.const 4) (i32.const {REPORT_LEN}))
  (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
"""
