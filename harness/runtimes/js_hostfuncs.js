'use strict';
// The host-function catalogue of harness/runtimes/hostfuncs.py, in JavaScript, for the JS engines' worker;
// the semantics (windows, traps, counting) are those documented in that module's docstring.
// `ctx` is the loaded plan (js_plan.js): counters, windows (of the Call step being executed)
// and array(memId), a Uint8Array over a plan memory.

const HEAP_COUNTERS = ['host_calls', 'page_fills', 'page_flushes'];

function refuse(hf, ctx, heapId, what, addr, n) {
  const spans = ctx.windows.filter((w) => w.region.memory === heapId)
    .map((w) => `[${w.region.offset}, ${w.region.offset + w.region.size})${w.writable ? 'w' : 'r'}`)
    .join(', ');
  return new WebAssembly.RuntimeError(`host ${hf.kind}: ${what} heap[${addr}, ${addr + n}) ` +
    `outside the dispatch's windows ${spans || '(none)'}`);
}

function inside(ctx, heapId, addr, n, write) {
  for (const w of ctx.windows) {
    const r = w.region;
    if (r.memory === heapId && r.offset <= addr && addr + n <= r.offset + r.size &&
        (w.writable || !write)) return true;
  }
  return false;
}

function spans(ctx, heapId, lo, hi, write) {
  const out = [];
  for (const w of ctx.windows) {
    const r = w.region;
    if (r.memory === heapId && (w.writable || !write)) {
      const a = Math.max(lo, r.offset);
      const b = Math.min(hi, r.offset + r.size);
      if (a < b) out.push([a, b]);
    }
  }
  return out;
}

function arg(hf, key) {
  const pair = (hf.args || []).find(([k]) => k === key);
  if (!pair) throw new Error(`host function ${hf.id} (${hf.kind}) has no argument ${key}`);
  return pair[1];
}

function heapKind(hf, ctx) {
  const c = ctx.counters;
  for (const k of HEAP_COUNTERS) if (!(k in c)) c[k] = 0;
  const heapId = arg(hf, 'heap');
  const view = () => {
    const a = ctx.array(heapId);
    return new DataView(a.buffer, a.byteOffset, a.byteLength);
  };
  const f32 = hf.kind.endsWith('f32');
  if (hf.kind === 'heap.load_f32' || hf.kind === 'heap.load_i32') {
    return (addr) => {
      c.host_calls += 1;
      const at = addr >>> 0;
      if (!inside(ctx, heapId, at, 4, false)) throw refuse(hf, ctx, heapId, 'load of', at, 4);
      return f32 ? view().getFloat32(at, true) : view().getInt32(at, true);
    };
  }
  if (hf.kind === 'heap.store_f32' || hf.kind === 'heap.store_i32') {
    return (addr, value) => {
      c.host_calls += 1;
      const at = addr >>> 0;
      if (!inside(ctx, heapId, at, 4, true)) throw refuse(hf, ctx, heapId, 'store to', at, 4);
      if (f32) view().setFloat32(at, value, true);
      else view().setInt32(at, value, true);
    };
  }
  const privateId = arg(hf, 'private');
  if (hf.kind === 'heap.copy_in') {
    return (heapAddr, privAddr, len) => {
      c.host_calls += 1;
      c.page_fills += 1;
      const h = heapAddr >>> 0;
      const p = privAddr >>> 0;
      const n = len >>> 0;
      const priv = ctx.array(privateId);
      if (p + n > priv.length) {
        throw new WebAssembly.RuntimeError(`host heap.copy_in: private[${p}, ${p + n}) outside memory`);
      }
      const within = spans(ctx, heapId, h, h + n, false);
      if (!within.length) throw refuse(hf, ctx, heapId, 'page fill of', h, n);
      priv.fill(0, p, p + n);
      const heap = ctx.array(heapId);
      for (const [a, b] of within) priv.set(heap.subarray(a, b), p + a - h);
    };
  }
  if (hf.kind === 'heap.copy_out') {
    return (privAddr, heapAddr, len) => {
      c.host_calls += 1;
      c.page_flushes += 1;
      const h = heapAddr >>> 0;
      const p = privAddr >>> 0;
      const n = len >>> 0;
      const priv = ctx.array(privateId);
      if (p + n > priv.length) {
        throw new WebAssembly.RuntimeError(`host heap.copy_out: private[${p}, ${p + n}) outside memory`);
      }
      const within = spans(ctx, heapId, h, h + n, true);
      if (!within.length) throw refuse(hf, ctx, heapId, 'page write-back to', h, n);
      const heap = ctx.array(heapId);
      for (const [a, b] of within) heap.set(priv.subarray(p + a - h, p + b - h), a);
    };
  }
  throw new Error(`no JavaScript implementation of host function kind ${hf.kind}`);
}

const IMPLS = {
  // does nothing; measures the wasm -> host call cost and probes host imports
  noop: (hf, ctx) => {
    const c = ctx.counters;
    return () => { c.host_calls += 1; };
  },
  'heap.load_f32': heapKind,
  'heap.load_i32': heapKind,
  'heap.store_f32': heapKind,
  'heap.store_i32': heapKind,
  'heap.copy_in': heapKind,
  'heap.copy_out': heapKind,
};

function hostImpl(hf, ctx) {
  const make = IMPLS[hf.kind];
  if (!make) throw new Error(`no JavaScript implementation of host function kind ${hf.kind}`);
  return make(hf, ctx);
}

module.exports = { IMPLS, hostImpl, kinds: Object.keys(IMPLS) };
