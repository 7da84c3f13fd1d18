'use strict';
// The JavaScript worker's protocol, for every JS engine: speaks harness/core/protocol.py and
// mirrors harness/worker/main.py. Executes any Plan generically (devices, host/export/buffer
// memories, instances with imports, write/copy/call/read steps), counts what it does, times
// like harness/worker/measure.py (cold first inference, warm-up, calibration, samples) and
// writes response.json.
//
// What differs between engines (files, memory figures, CPU pinning, versions) comes from a
// `host` object: node_worker.js for Node, jsc_worker.js for the JavaScriptCore shell.

const {
  DEFAULT_SETTINGS, clockOf, median, timeCold, timeSteady, timeInterleaved, now, secs,
} = require('./js_measure.js');
const { LoadedPlan, Trap, Unsupported } = require('./js_plan.js');

const PROTOCOL = 1;

// -- the runtime spec (name:key=value,...) --------------------------------------------------
function specParams(spec) {
  const out = {};
  const colon = spec.indexOf(':');
  if (colon < 0) return out;
  for (const part of spec.slice(colon + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

// -- protocol ---------------------------------------------------------------------------------
let host = null;   // set by serve(): the engine's files, memory figures, pinning, versions

function loadTensors(entries) {
  const out = {};
  for (const [name, e] of Object.entries(entries || {})) out[name] = host.readBytes(e.path);
  return out;
}

function readPlan(p) {
  return JSON.parse(host.readText(p));
}

// The CPUs in a /proc/<pid>/status text's Cpus_allowed_list ("0-1,3" -> [0, 1, 3]); null
// when the text has none
function allowedCpus(status) {
  const m = /Cpus_allowed_list:\s+(\S+)/.exec(status);
  if (!m) return null;
  const out = [];
  for (const part of m[1].split(',')) {
    const [lo, hi] = part.split('-').map(Number);
    for (let c = lo; c <= (hi === undefined ? lo : hi); c++) out.push(c);
  }
  return out;
}

function joinPath(dir, name) {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

function dirName(file) {
  const i = file.lastIndexOf('/');
  return i < 0 ? '.' : file.slice(0, i) || '/';
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// One plan loaded and run once (harness/worker/variant.py `load_variant`).
function loadVariant(plan, data, s, params = {}) {
  const before = host.memoryNow();
  const lp = new LoadedPlan(plan, data, false, { staleViews: params.stale_views === '1',
    agents: host.agents });
  lp.load();
  const afterLoad = host.memoryNow();
  const peakAfterLoad = host.peakRss();
  const linearAfterSetup = lp.memoryCensus()[1];
  lp.resetCounters();
  const firstS = timeCold(() => lp.runOnce(), clockOf(s));
  const afterFirst = host.memoryNow();
  const perRun = { ...lp.counters };
  const firstOut = Object.fromEntries(Object.entries(lp.outputs).map(([k, v]) => [k, v.slice()]));
  lp.resetCounters();
  return { plan, lp, before, afterLoad, afterFirst, peakAfterLoad, linearAfterSetup, firstS,
    perRun, firstOut };
}

// After the samples (harness/worker/variant.py `finish_variant`): same counters and outputs
// every inference, what stays committed, optional breakdown, outputs written.
function finishVariant(v, timing, data, s, outDir, prefix = '', sharedProcess = false) {
  const { lp } = v;
  const resp = { status: 'ok', message: '' };
  const n = timing.warmup_runs + timing.rewarm_runs + timing.inner * timing.samples_s.length;
  const drift = Object.keys(lp.counters).filter((k) => lp.counters[k] !== v.perRun[k] * n);
  if (drift.length) {
    throw new Error(`counters differ between inferences: per run ${JSON.stringify(v.perRun)}, ` +
      `after ${n} runs ${JSON.stringify(lp.counters)}`);
  }
  // what the inferences left committed (a kernel that grows memory shows here)
  const [nMemories, linear] = lp.memoryCensus();
  const byDevice = lp.memoryCensusByDevice();
  const changed = Object.keys(lp.outputs).filter((k) => !equalBytes(lp.outputs[k], v.firstOut[k]));
  if (changed.length) {
    resp.status = 'crashed';
    resp.message = `outputs ${JSON.stringify(changed)} changed between inferences ` +
      '(state leaks from one inference into the next)';
  }
  let breakdown = null;
  if (s.breakdown) {
    // a separate, instrumented copy of the plan: the main samples above ran without its timers
    const ilp = new LoadedPlan(v.plan, data, true, { agents: host.agents });
    ilp.load();
    const runs = Math.max(1, Math.min(s.max_inner,
      Math.ceil(3 * s.sample_s / Math.max(median(timing.samples_s), 1e-9))));
    breakdown = ilp.breakdown(runs);
  }
  const outputs = {};
  for (const [name, raw] of Object.entries(v.firstOut)) {
    const p = joinPath(outDir, `${prefix}out_${name}.bin`);
    host.writeBytes(p, raw);
    outputs[name] = p;
  }
  // process figures a host cannot see (the jsc shell reads no /proc) are null: left out,
  // never reported as 0
  const diff = (a, b) => (a === null || b === null ? null : a - b);
  const memory = { linear_bytes_after_setup: v.linearAfterSetup, linear_bytes: linear,
    memories: nMemories,
    linear_bytes_by_device: Object.fromEntries(Object.entries(byDevice).map(([k, d]) => [k, d[1]])),
    vms_reserved: diff(v.afterLoad.vms, v.before.vms),
    // resident after the first inference: pages a mapped image faulted in show here
    rss_first_delta: diff(v.afterFirst.rss, v.before.rss) };
  if (sharedProcess) {
    // what this variant's load added; the process figures are the group's
    Object.assign(memory, { rss_load_delta: diff(v.afterLoad.rss, v.before.rss),
      group_peak_rss: host.peakRss() });
  } else {
    Object.assign(memory, { rss_start: v.before.rss, vms_start: v.before.vms,
      rss_after_load: v.afterLoad.rss, vms_after_load: v.afterLoad.vms,
      peak_rss_after_load: v.peakAfterLoad, peak_rss: host.peakRss() });
  }
  for (const k of Object.keys(memory)) if (memory[k] === null) delete memory[k];
  Object.assign(resp, {
    phases: { compile_s: lp.compile_s, instantiate_s: lp.instantiate_s, setup_s: lp.setup_s,
      first_run_s: timing.first_s,
      // memories grown under live instances: set-up and the first inference grow them
      ...(lp.growing ? { grows: lp.growStats.grows, grow_s: secs(lp.growStats.grow_ns) } : {}) },
    timing: { clock: timing.clock, inner: timing.inner, warmup_runs: timing.warmup_runs,
      warmup_s: timing.warmup_s, steady: timing.steady, samples_s: timing.samples_s,
      ...(timing.rewarm_runs ? { rewarm_runs: timing.rewarm_runs } : {}),
      ...(timing.passes && timing.passes.length ? { passes: timing.passes } : {}) },
    counters: v.perRun, memory, outputs,
  });
  if (breakdown) resp.breakdown = breakdown;
  if (lp.pool) {  // where the agents ran, and what a step's hand-off costs
    resp.agents = { agents: lp.pool.agents, cpus: lp.pool.cpus,
      handoff_s: lp.pool.handoffS(now, secs) };
  }
  return resp;
}

function runCell(req, params, outDir) {
  const data = loadTensors(req.inputs);
  const s = { ...DEFAULT_SETTINGS, ...(req.settings || {}) };
  const slowdown = Number(params.slowdown || 0) / 100;
  const gate = host.makeGate(req);
  if (gate) gate(); // the other side of the pair sets up first
  const v = loadVariant(readPlan(req.plan_path), data, s, params);
  const timing = timeSteady(() => v.lp.runOnce(), s, v.firstS, clockOf(s), gate, slowdown);
  return finishVariant(v, timing, data, s, outDir);
}

function failedVariant(e) {
  if (e instanceof Trap) {
    return { status: 'trapped', message: oneLine(e).replace(/^Trap: /, 'RuntimeError: ') };
  }
  if (e instanceof Unsupported) return { status: 'unsupported', message: e.message };
  return { status: 'crashed', message: oneLine(e) };
}

// A comparison group (harness/worker/group.py): every variant loaded in this process,
// sampled interleaved; a variant that fails ends alone.
function runGroup(req, params, outDir) {
  const data = loadTensors(req.inputs);
  const s = { ...DEFAULT_SETTINGS, ...(req.settings || {}) };
  const slowdown = Number(params.slowdown || 0) / 100;
  const blame = host.openBlame(req.blame_path);
  const results = req.variants.map(() => null);
  const loaded = new Map();
  const t0 = now();
  let t1 = t0;
  let t2 = t0;
  try {
    req.variants.forEach((variant, i) => {
      blame.set(i);
      try {
        loaded.set(i, loadVariant(readPlan(variant.plan_path), data, s, params));
      } catch (e) {
        results[i] = failedVariant(e);
      }
    });
    const alive = [...loaded.keys()].sort((a, b) => a - b);
    t1 = now();
    const timings = timeInterleaved(alive.map((i) => { const { lp } = loaded.get(i); return () => lp.runOnce(); }),
      s, alive.map((i) => loaded.get(i).firstS), clockOf(s), (k) => blame.set(alive[k]), slowdown);
    t2 = now();
    alive.forEach((i, k) => {
      blame.set(i);
      if (!(timings[k] && Array.isArray(timings[k].samples_s))) { // it threw
        results[i] = failedVariant(timings[k]);
        return;
      }
      try {
        results[i] = finishVariant(loaded.get(i), timings[k], data, s, outDir, `v${i}_`,
          alive.length > 1);
      } catch (e) {
        results[i] = failedVariant(e);
      }
    });
  } finally {
    blame.close();
  }
  return { status: 'ok', message: '', variants: results,
    group: { variants: req.variants.length, order: 'rotating', samples: s.samples,
      load_s: secs(t1 - t0), measure_s: secs(t2 - t1), finish_s: secs(now() - t2) } };
}

function hex(bytes) {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

function runProbe(req) {
  const caps = {};
  for (const probe of req.probes) {
    try {
      const lp = new LoadedPlan(readPlan(probe.plan_path), loadTensors(probe.inputs), 0,
        { agents: host.agents });
      lp.load();
      lp.runOnce();
      const got = Object.fromEntries(Object.entries(lp.outputs).map(([k, v]) => [k, hex(v)]));
      const ok = JSON.stringify(got) === JSON.stringify(probe.expect);
      caps[probe.capability] = { ok, detail: ok ? '' :
        `ran but produced ${JSON.stringify(got)}, expected ${JSON.stringify(probe.expect)}` };
      lp.close();
    } catch (e) {
      caps[probe.capability] = { ok: false, detail: oneLine(e) };
    }
  }
  return { status: 'ok', message: '', capabilities: caps };
}

function runOverhead(req) {
  const s = { ...DEFAULT_SETTINGS, ...(req.settings || {}) };
  const timings = {};
  for (const [name, p] of Object.entries(req.plans)) {
    const lp = new LoadedPlan(readPlan(p), {}, 0);
    lp.load();
    lp.resetCounters();
    const run = () => lp.runOnce();
    const firstS = timeCold(run);
    const perRun = { ...lp.counters };
    const t = timeSteady(run, s, firstS);
    timings[name] = { samples_s: t.samples_s, inner: t.inner, counters: perRun };
  }
  return { status: 'ok', message: '', timings };
}

function oneLine(e) {
  const name = e && e.constructor ? e.constructor.name : 'Error';
  const text = `${name}: ${e && e.message !== undefined ? e.message : String(e)}`.trim();
  return text.split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 4).join(' | ').slice(0, 500);
}

// `--measure insts` (harness/run/insts.py): under callgrind, for each plan (with its own
// inputs: plans of several workloads share the worker), once loaded and warmed up (V8 has
// tiered its functions up), segments of `inferences[k]` inferences, each ended by a mark (Node: an fsync, which callgrind dumps
// before: `--dump-before=fsync`). A plan that fails still makes all its marks, so the
// dumps of the plans after it stay in place.
function runInsts(req, params, outDir) {
  if (!host.openMark) throw new Error('this JS host cannot mark callgrind segments');
  const mark = host.openMark(outDir);
  const counted = {};
  const want = 1 + req.inferences.length;
  try {
    for (const [name, file] of Object.entries(req.plans)) {
      let made = 0;
      try {
        // each plan has its own inputs: plans of several workloads share one worker
        const lp = new LoadedPlan(readPlan(file), loadTensors(req.inputs[name]));
        lp.load();
        for (let i = 0; i < req.warmup; i++) lp.runOnce();
        // a full collection now (node --expose-gc), not one of the earlier plans' garbage
        // inside a segment
        if (typeof globalThis.gc === 'function') globalThis.gc();
        mark();
        made += 1;
        for (const n of req.inferences) {
          for (let i = 0; i < n; i++) lp.runOnce();
          mark();
          made += 1;
        }
        counted[name] = '';
      } catch (e) {
        counted[name] = oneLine(e);
        for (; made < want; made++) mark();
      }
    }
  } finally {
    mark.close();
  }
  return { status: 'ok', message: '', counted };
}

// The race probe (harness/probes/race.py): the plan's inferences run `runs` times, each
// one's outputs written apart, for the harness to judge.
function runRace(req, params, outDir) {
  const lp = new LoadedPlan(readPlan(req.plan_path), loadTensors(req.inputs), 0,
    { agents: host.agents });
  lp.load();
  const runs = [];
  for (let k = 0; k < req.runs; k++) {
    lp.runOnce();
    const files = {};
    for (const [name, raw] of Object.entries(lp.outputs)) {
      const p = joinPath(outDir, `race${k}_${name}.bin`);
      host.writeBytes(p, raw);
      files[name] = p;
    }
    runs.push(files);
  }
  lp.close();
  return { status: 'ok', message: '', runs };
}

const HANDLERS = { cell: runCell, group: runGroup, probe: runProbe, overhead: runOverhead,
  insts: runInsts, race: runRace };

// Answer the request at `reqPath` in response.json beside it; `engineHost` supplies what
// differs between engines. Returns the process exit code.
function serve(engineHost, reqPath) {
  host = engineHost;
  const outDir = dirName(reqPath);
  const t0 = now();
  let resp;
  let info;
  try {
    const req = JSON.parse(host.readText(reqPath));
    const params = specParams(req.runtime);
    const handler = HANDLERS[req.kind];
    if (!handler) throw new Error(`unknown request kind ${req.kind}`);
    const affinity = host.pin(req.pin);
    info = host.runtimeInfo(req.runtime, params);
    resp = handler(req, params, outDir);
    resp.affinity = affinity;
  } catch (e) {
    if (e instanceof Trap) {
      resp = { status: 'trapped', message: oneLine(e).replace(/^Trap: /, 'RuntimeError: ') };
    } else if (e instanceof Unsupported) {
      resp = { status: 'unsupported', message: e.message };
    } else {
      resp = { status: 'crashed', message: oneLine(e), traceback: String(e && e.stack) };
    }
  }
  if (info !== undefined) resp.runtime = info;
  resp.protocol = PROTOCOL;
  resp.worker_s = secs(now() - t0);
  host.writeJsonAtomic(joinPath(outDir, 'response.json'), resp);
  return 0;
}

module.exports = { serve, oneLine, allowedCpus };
