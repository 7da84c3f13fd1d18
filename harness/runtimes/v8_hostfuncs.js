'use strict';
// The host-function catalogue of harness/hostfuncs.py, in JavaScript, for the V8 worker.
// Each kind implements the same semantics and counts every call in ctx.counters.host_calls.
// `ctx` is the loaded plan (see v8_worker.js): counters, plus array(memId) for heap access.

const IMPLS = {
  // does nothing; measures the wasm -> host call cost and probes host imports
  noop: (hf, ctx) => {
    const c = ctx.counters;
    return () => { c.host_calls += 1; };
  },
};

function hostImpl(hf, ctx) {
  const make = IMPLS[hf.kind];
  if (!make) throw new Error(`no JavaScript implementation of host function kind ${hf.kind}`);
  return make(hf, ctx);
}

module.exports = { IMPLS, hostImpl, kinds: Object.keys(IMPLS) };
