'use strict';
// V8 worker: `node [v8 flags] v8_worker.js REQUEST.json`. Plain JavaScript, no packages.
//
// Speaks the protocol of harness/core/protocol.py and mirrors harness/worker/main.py: executes any
// Plan generically (devices, host/export/buffer memories, instances with imports,
// write/copy/call/read steps), counts what it does, times like harness/worker/measure.py (cold
// first inference, warm-up, calibration, samples) and writes response.json atomically.

const fs = require('fs');
const path = require('path');
const {
  DEFAULT_SETTINGS, clockOf, median, timeCold, timeSteady, timeInterleaved, makeGate, now, secs,
} = require('./v8_measure.js');
const { LoadedPlan, Trap } = require('./v8_plan.js');

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
function loadTensors(entries) {
  const out = {};
  for (const [name, e] of Object.entries(entries || {})) {
    const buf = fs.readFileSync(e.path);
    out[name] = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  return out;
}

function readPlan(p) {
  return JSON.parse(fs.readFileSync(p, 'utf8'));
}

function writeJsonAtomic(file, obj) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(obj, null, 1));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

function memoryNow() {
  let vms = 0;
  try {
    const m = /VmSize:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) vms = Number(m[1]) * 1024;
  } catch (e) { /* not Linux: no virtual size */ }
  return { rss: process.memoryUsage().rss, vms };
}

function peakRss() {
  return process.resourceUsage().maxRSS * 1024;
}

// `--pin`: Node cannot set its own CPU affinity, so taskset does it (every thread); the
// affinity actually in force is read back from the kernel either way
function pin(cpus) {
  if (cpus && cpus.length) {
    require('child_process').execFileSync('taskset', ['-a', '-p', '-c', cpus.join(','),
      String(process.pid)], { stdio: 'ignore' });
  }
  try {
    const m = /Cpus_allowed_list:\s+(\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (!m) return null;
    const out = [];
    for (const part of m[1].split(',')) {
      const [lo, hi] = part.split('-').map(Number);
      for (let c = lo; c <= (hi === undefined ? lo : hi); c++) out.push(c);
    }
    return out;
  } catch (e) {
    return null;
  }
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// One plan loaded and run once (harness/worker/variant.py `load_variant`).
function loadVariant(plan, data, s) {
  const before = memoryNow();
  const lp = new LoadedPlan(plan, data);
  lp.load();
  const afterLoad = memoryNow();
  const peakAfterLoad = peakRss();
  const linearAfterSetup = lp.memoryCensus()[1];
  lp.resetCounters();
  const firstS = timeCold(() => lp.runOnce(), clockOf(s));
  const perRun = { ...lp.counters };
  const firstOut = Object.fromEntries(Object.entries(lp.outputs).map(([k, v]) => [k, v.slice()]));
  lp.resetCounters();
  return { plan, lp, before, afterLoad, peakAfterLoad, linearAfterSetup, firstS, perRun, firstOut };
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
    const ilp = new LoadedPlan(v.plan, data, true);
    ilp.load();
    const runs = Math.max(1, Math.min(s.max_inner,
      Math.ceil(3 * s.sample_s / Math.max(median(timing.samples_s), 1e-9))));
    breakdown = ilp.breakdown(runs);
  }
  const outputs = {};
  for (const [name, raw] of Object.entries(v.firstOut)) {
    const p = path.join(outDir, `${prefix}out_${name}.bin`);
    fs.writeFileSync(p, raw);
    outputs[name] = p;
  }
  const memory = { linear_bytes_after_setup: v.linearAfterSetup, linear_bytes: linear,
    memories: nMemories,
    linear_bytes_by_device: Object.fromEntries(Object.entries(byDevice).map(([k, d]) => [k, d[1]])),
    vms_reserved: v.afterLoad.vms - v.before.vms };
  if (sharedProcess) {
    // what this variant's load added; the process figures are the group's
    Object.assign(memory, { rss_load_delta: v.afterLoad.rss - v.before.rss,
      group_peak_rss: peakRss() });
  } else {
    Object.assign(memory, { rss_start: v.before.rss, vms_start: v.before.vms,
      rss_after_load: v.afterLoad.rss, vms_after_load: v.afterLoad.vms,
      peak_rss_after_load: v.peakAfterLoad, peak_rss: peakRss() });
  }
  Object.assign(resp, {
    phases: { compile_s: lp.compile_s, instantiate_s: lp.instantiate_s, setup_s: lp.setup_s,
      first_run_s: timing.first_s },
    timing: { clock: timing.clock, inner: timing.inner, warmup_runs: timing.warmup_runs,
      warmup_s: timing.warmup_s, steady: timing.steady, samples_s: timing.samples_s,
      ...(timing.rewarm_runs ? { rewarm_runs: timing.rewarm_runs } : {}),
      ...(timing.passes && timing.passes.length ? { passes: timing.passes } : {}) },
    counters: v.perRun, memory, outputs,
  });
  if (breakdown) resp.breakdown = breakdown;
  return resp;
}

function runCell(req, params, outDir) {
  const data = loadTensors(req.inputs);
  const s = { ...DEFAULT_SETTINGS, ...(req.settings || {}) };
  const slowdown = Number(params.slowdown || 0) / 100;
  const gate = makeGate(req);
  if (gate) gate(); // the other side of the pair sets up first
  const v = loadVariant(readPlan(req.plan_path), data, s);
  const timing = timeSteady(() => v.lp.runOnce(), s, v.firstS, clockOf(s), gate, slowdown);
  return finishVariant(v, timing, data, s, outDir);
}

// Who is running now, in the file the parent reads when the worker dies
// (harness/worker/group.py `Blame`): one fixed-width line, -1 for nobody.
function makeBlame(file) {
  if (!file) return { set() {}, close() {} };
  const fd = fs.openSync(file, 'w', 0o600);
  const set = (i) => fs.writeSync(fd, `${String(i).padStart(7)}\n`, 0);
  return { set, close() { set(-1); fs.closeSync(fd); } };
}

function failedVariant(e) {
  if (e instanceof Trap) {
    return { status: 'trapped', message: oneLine(e).replace(/^Trap: /, 'RuntimeError: ') };
  }
  return { status: 'crashed', message: oneLine(e) };
}

// A comparison group (harness/worker/group.py): every variant loaded in this process,
// sampled interleaved; a variant that fails ends alone.
function runGroup(req, params, outDir) {
  const data = loadTensors(req.inputs);
  const s = { ...DEFAULT_SETTINGS, ...(req.settings || {}) };
  const slowdown = Number(params.slowdown || 0) / 100;
  const blame = makeBlame(req.blame_path);
  const results = req.variants.map(() => null);
  const loaded = new Map();
  const t0 = now();
  let t1 = t0;
  let t2 = t0;
  try {
    req.variants.forEach((variant, i) => {
      blame.set(i);
      try {
        loaded.set(i, loadVariant(readPlan(variant.plan_path), data, s));
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
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function runProbe(req) {
  const caps = {};
  for (const probe of req.probes) {
    try {
      const lp = new LoadedPlan(readPlan(probe.plan_path), loadTensors(probe.inputs), 0);
      lp.load();
      lp.runOnce();
      const got = Object.fromEntries(Object.entries(lp.outputs).map(([k, v]) => [k, hex(v)]));
      const ok = JSON.stringify(got) === JSON.stringify(probe.expect);
      caps[probe.capability] = { ok, detail: ok ? '' :
        `ran but produced ${JSON.stringify(got)}, expected ${JSON.stringify(probe.expect)}` };
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

function runtimeInfo(spec, params) {
  const tier = params.tier || 'default';
  return {
    name: 'v8', spec, version: process.versions.v8,
    config: { tier, node_flags: process.execArgv },
    node: process.version,
  };
}

const HANDLERS = { cell: runCell, group: runGroup, probe: runProbe, overhead: runOverhead };

function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write('usage: node v8_worker.js REQUEST.json\n');
    return 2;
  }
  const reqPath = argv[0];
  const outDir = path.dirname(reqPath);
  const t0 = now();
  let resp;
  let info;
  try {
    const req = JSON.parse(fs.readFileSync(reqPath, 'utf8'));
    const params = specParams(req.runtime);
    const handler = HANDLERS[req.kind];
    if (!handler) throw new Error(`unknown request kind ${req.kind}`);
    const affinity = pin(req.pin);
    info = runtimeInfo(req.runtime, params);
    resp = handler(req, params, outDir);
    resp.affinity = affinity;
  } catch (e) {
    if (e instanceof Trap) {
      resp = { status: 'trapped', message: oneLine(e).replace(/^Trap: /, 'RuntimeError: ') };
    } else {
      resp = { status: 'crashed', message: oneLine(e), traceback: String(e && e.stack) };
    }
  }
  if (info !== undefined) resp.runtime = info;
  resp.protocol = PROTOCOL;
  resp.worker_s = secs(now() - t0);
  writeJsonAtomic(path.join(outDir, 'response.json'), resp);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
