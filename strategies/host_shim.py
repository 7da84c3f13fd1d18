"""The wasm host shim for `host-call:host=wasm`: a small instance that owns the heap.

It defines the heap memory (exported as `heap`) and exports the same access functions
as the `heap.*` host-function catalogue (`harness.runtimes.hostfuncs`), with the same checks:

* `set_windows(n, lo0, hi0, w0, ..., lo{W-1}, hi{W-1}, w{W-1})` sets the current windows
  (heap byte ranges [lo, hi), w = 1 when writable). The plan calls it before every kernel
  dispatch, so each window change is a visible `Call` step.
* element mode: `load_f32`, `load_i32`, `store_f32`, `store_i32` — the access must lie
  inside one window (writable for stores), else `unreachable`.
* paged mode: `copy_in_K` / `copy_out_K` for the K-th kernel instance, whose private
  memory the shim imports as `env.privK` (so the paged shim needs multi-memory). Same
  zero-fill / writable-only write-back semantics as the host functions.

Counting: the shim keeps three little-endian u64 counters at the start of its heap
(`host_calls` at 0, `page_fills` at 8, `page_flushes` at 16; tensors start at 64 or
later). The plan ends each inference with `Count` steps over those regions, so the worker
adds what the shim counted to its own counters and zeroes them: the count crosses into the
worker through plain plan data that any runtime can execute, without a runtime-specific
way of reading wasm globals.
"""

from __future__ import annotations

from strategies.host_call_lowering import ELEMENT_FUNCS, HEAP_FUNCS

COUNTER_AT = {"host_calls": 0, "page_fills": 8, "page_flushes": 16}
RESERVED = 64  # heap bytes before the first tensor


def _bump(counter: str) -> str:
    at = COUNTER_AT[counter]
    return (f"(i64.store $heap (i32.const {at}) "
            f"(i64.add (i64.load $heap (i32.const {at})) (i64.const 1)))")


def shim_wat(mode: str, windows: int, heap_pages: int, privates: int = 0) -> str:
    """WAT of the shim: `windows` window slots, `privates` imported private memories."""
    w = range(windows)
    lines = ["(module"]
    lines += [f'  (import "env" "priv{k}" (memory $p{k} 1))' for k in range(privates)]
    lines.append(f'  (memory $heap (export "heap") {heap_pages})')
    lines.append("  (global $n (mut i32) (i32.const 0))")
    for i in w:
        lines += [f"  (global $lo{i} (mut i32) (i32.const 0))",
                  f"  (global $hi{i} (mut i32) (i32.const 0))",
                  f"  (global $w{i} (mut i32) (i32.const 0))"]
    params = " ".join(f"(param $lo{i} i32) (param $hi{i} i32) (param $w{i} i32)" for i in w)
    sets = " ".join(f"(global.set ${g}{i} (local.get ${g}{i}))" for i in w for g in ("lo", "hi", "w"))
    lines.append(f'  (func (export "set_windows") (param $n i32) {params} '
                 f"(global.set $n (local.get $n)) {sets})")
    # [a, a+len) inside one window (writable when $wr)?
    checks = " ".join(
        f"(if (i32.and (i32.and (i32.gt_u (global.get $n) (i32.const {i})) "
        f"(i32.ge_u (local.get $a) (global.get $lo{i}))) "
        f"(i32.and (i32.le_u (local.get $e) (global.get $hi{i})) "
        f"(i32.or (i32.eqz (local.get $wr)) (global.get $w{i})))) "
        f"(then (return (i32.const 1))))" for i in w)
    lines.append("  (func $inside (param $a i32) (param $len i32) (param $wr i32) (result i32) "
                 "(local $e i32) (local.set $e (i32.add (local.get $a) (local.get $len))) "
                 "(if (i32.lt_u (local.get $e) (local.get $a)) (then (return (i32.const 0)))) "
                 f"{checks} (i32.const 0))")
    if mode == "element":
        for name in ELEMENT_FUNCS:
            ty = name[-3:]
            store = name.startswith("store")
            head = f'  (func (export "{name}") {HEAP_FUNCS[name].replace("(param i32", "(param $a i32")}'
            if store:
                head = f'  (func (export "{name}") (param $a i32) (param $v {ty})'
            body = (f" {_bump('host_calls')} (if (i32.eqz (call $inside (local.get $a) "
                    f"(i32.const 4) (i32.const {int(store)}))) (then (unreachable)))")
            body += (f" ({ty}.store $heap (local.get $a) (local.get $v))" if store else
                     f" ({ty}.load $heap (local.get $a))")
            lines.append(head + body + ")")
    else:
        for k in range(privates):
            lines.append(_copy_func(k, "in", w))
            lines.append(_copy_func(k, "out", w))
    lines.append(")")
    return "\n".join(lines) + "\n"


def _copy_func(k: int, direction: str, w: range) -> str:
    """copy_in_K(h, p, n) / copy_out_K(p, h, n) for private memory $pK."""
    inward = direction == "in"
    params = ("(param $h i32) (param $p i32) (param $n i32)" if inward else
              "(param $p i32) (param $h i32) (param $n i32)")
    parts = [f'  (func (export "copy_{direction}_{k}") {params} (local $any i32) '
             "(local $lo i32) (local $hi i32) (local $e i32)",
             _bump("host_calls"), _bump("page_fills" if inward else "page_flushes"),
             "(local.set $e (i32.add (local.get $h) (local.get $n)))"]
    if inward:
        parts.append(f"(memory.fill $p{k} (local.get $p) (i32.const 0) (local.get $n))")
    else:  # bounds of the private source, like copy_in's memory.fill does for its target
        parts.append(f"(drop (i32.load8_u $p{k} (i32.sub (i32.add (local.get $p) "
                     "(local.get $n)) (i32.const 1))))")
    for i in w:
        writable = f"(global.get $w{i})" if not inward else "(i32.const 1)"
        copy = (f"(memory.copy $p{k} $heap (i32.add (local.get $p) (i32.sub (local.get $lo) "
                f"(local.get $h))) (local.get $lo) (i32.sub (local.get $hi) (local.get $lo)))"
                if inward else
                f"(memory.copy $heap $p{k} (local.get $lo) (i32.add (local.get $p) "
                f"(i32.sub (local.get $lo) (local.get $h))) (i32.sub (local.get $hi) (local.get $lo)))")
        parts.append(
            f"(if (i32.and (i32.gt_u (global.get $n) (i32.const {i})) {writable}) (then "
            f"(local.set $lo (select (local.get $h) (global.get $lo{i}) "
            f"(i32.gt_u (local.get $h) (global.get $lo{i})))) "
            f"(local.set $hi (select (local.get $e) (global.get $hi{i}) "
            f"(i32.lt_u (local.get $e) (global.get $hi{i})))) "
            f"(if (i32.lt_u (local.get $lo) (local.get $hi)) (then {copy} "
            "(local.set $any (i32.const 1))))))")
    parts.append("(if (i32.eqz (local.get $any)) (then (unreachable))))")
    return " ".join(parts)
