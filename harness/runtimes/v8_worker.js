'use strict';
// V8 worker: `node [v8 flags] v8_worker.js REQUEST.json`. Plain JavaScript, no packages.
//
// Speaks the protocol of harness/protocol.py and mirrors harness/worker.py: executes any
// Plan generically (devices, host/export/buffer memories, instances with imports,
// write/copy/call/read steps), counts what it does, times like harness/measure.py (cold
// first inference, warm-up, calibration, samples) and writes response.json atomically.

const fs = require('fs');
const path = require('path');
const { hostImpl } = require('./v8_hostfuncs.js');

const PROTOCOL = 1;
const COUNTERS = ['bytes_copied', 'calls', 'host_calls', 'bytes_written', 'bytes_read'];
const PAGE = 65536;
const now = () => process.hrtime.bigint();
const secs = (ns) => Number(ns) / 1e9;

class Trap extends Error {}

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

// -- plan execution ---------------------------------------------------------------------------
class LoadedPlan {
  constructor(plan, data, slowdown) {
    this.plan = plan;
    this.data = data;                  // tensor name -> Uint8Array
    this.slowdown = slowdown || 0;
    this.counters = Object.fromEntries(COUNTERS.map((k) => [k, 0]));
    this.compile_s = {};
    this.instantiate_s = {};
    this.setup_s = 0;
    this.memories = {};                // memory id -> WebAssembly.Memory
    this.buffers = {};                 // memory id -> Uint8Array (kind buffer)
    this.instances = {};
    this.outputs = {};
    this.steps = [];
    this.views = {};
  }

  load() {
    const plan = this.plan;
    const engineOf = Object.fromEntries(plan.devices.map((d) => [d.name, d.engine]));
    const deviceOf = Object.fromEntries(plan.instances.map((i) => [i.name, i.device]));
    const compiled = {};
    for (const inst of plan.instances) {
      const engine = engineOf[inst.device];
      const key = `${engine}\u0000${inst.module}`;
      if (!(key in compiled)) {
        const mod = plan.modules.find((m) => m.name === inst.module);
        const bytes = Buffer.from(mod.wasm, 'base64');
        const t0 = now();
        compiled[key] = new WebAssembly.Module(bytes);
        const label = engine === 'default' ? inst.module : `${inst.module}@${engine}`;
        this.compile_s[label] = secs(now() - t0);
      }
    }
    for (const mem of plan.memories) {
      if (mem.kind === 'host') {
        const desc = { initial: mem.min_pages };
        if (mem.max_pages !== null && mem.max_pages !== undefined) desc.maximum = mem.max_pages;
        if (mem.shared) desc.shared = true;
        this.memories[mem.id] = new WebAssembly.Memory(desc);
      } else if (mem.kind === 'buffer') {
        this.buffers[mem.id] = new Uint8Array(mem.size);
      }
    }
    const hostFns = {};
    for (const hf of plan.host_funcs || []) hostFns[hf.id] = hostImpl(hf, this);
    for (const inst of plan.instances) {
      const importObject = {};
      for (const imp of inst.imports) {
        let value;
        if (imp.kind === 'memory') {
          if (!(imp.target in this.memories)) {
            throw new Error(`memory ${imp.target} is not available yet (instantiation order?)`);
          }
          value = this.memories[imp.target];
        } else if (imp.target.startsWith('host:')) {
          value = hostFns[imp.target.slice(5)];
        } else {
          const dot = imp.target.indexOf('.');
          const src = imp.target.slice(0, dot);
          if (deviceOf[src] !== inst.device) {
            throw new Error(`${inst.name} imports ${imp.target} across devices`);
          }
          value = this.instances[src].exports[imp.target.slice(dot + 1)];
        }
        (importObject[imp.module] = importObject[imp.module] || {})[imp.field] = value;
      }
      const key = `${engineOf[inst.device]}\u0000${inst.module}`;
      const t0 = now();
      try {
        this.instances[inst.name] = new WebAssembly.Instance(compiled[key], importObject);
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError) throw new Trap(e.message);
        throw e;
      }
      this.instantiate_s[inst.name] = secs(now() - t0);
      for (const mem of plan.memories) {
        if (mem.kind === 'export' && mem.instance === inst.name) {
          this.memories[mem.id] = this.instances[inst.name].exports[mem.export];
        }
      }
    }
    const t0 = now();
    for (const step of this.compileSteps(plan.setup)) step();
    this.setup_s = secs(now() - t0);
    this.steps = this.compileSteps(plan.run);
  }

  // uint8 view of a plan memory, re-made when a wasm memory's buffer was replaced (growth)
  array(memId) {
    if (memId in this.buffers) return this.buffers[memId];
    const mem = this.memories[memId];
    if (mem === undefined) throw new Error(`memory ${memId} is not available`);
    let v = this.views[memId];
    if (v === undefined || v.buffer !== mem.buffer) {
      v = new Uint8Array(mem.buffer);
      this.views[memId] = v;
    }
    return v;
  }

  region(r) {
    const arr = this.array(r.memory);
    if (r.offset + r.size > arr.length) {
      throw new Error(`region ${JSON.stringify(r)} exceeds memory ${r.memory} (${arr.length} bytes)`);
    }
    return r;
  }

  compileSteps(steps) {
    const c = this.counters;
    const out = [];
    for (const step of steps) {
      if (step.op === 'write') {
        const src = this.data[step.tensor];
        const dst = this.region(step.dst);
        if (src.length !== dst.size) {
          throw new Error(`write ${step.tensor}: ${src.length} bytes into ${dst.size}`);
        }
        out.push(() => {
          this.array(dst.memory).set(src, dst.offset);
          c.bytes_written += src.length;
        });
      } else if (step.op === 'copy') {
        const src = this.region(step.src);
        const dst = this.region(step.dst);
        out.push(() => {
          const from = this.array(src.memory).subarray(src.offset, src.offset + src.size);
          this.array(dst.memory).set(from, dst.offset);
          c.bytes_copied += src.size;
        });
      } else if (step.op === 'call') {
        const fn = this.instances[step.instance].exports[step.export];
        if (typeof fn !== 'function') throw new Error(`${step.instance} has no export ${step.export}`);
        if (fn.length !== step.args.length) {
          throw new Error(`${step.export} takes ${fn.length} arguments, plan passes ${step.args.length}`);
        }
        const args = step.args.map((a) => a | 0);
        out.push(() => {
          try {
            fn(...args);
          } catch (e) {
            if (e instanceof WebAssembly.RuntimeError) throw new Trap(e.message);
            throw e;
          }
          c.calls += 1;
        });
      } else if (step.op === 'read') {
        const src = this.region(step.src);
        const dst = new Uint8Array(src.size);
        this.outputs[step.tensor] = dst;
        out.push(() => {
          dst.set(this.array(src.memory).subarray(src.offset, src.offset + src.size));
          c.bytes_read += src.size;
        });
      } else {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
    }
    return out;
  }

  runOnce() {
    for (const step of this.steps) step();
  }

  // runOnce followed by busy work lasting `slowdown` of the inference's own time
  slowed() {
    if (!this.slowdown) return () => this.runOnce();
    const frac = this.slowdown;
    return () => {
      const t0 = now();
      this.runOnce();
      const t1 = now();
      const end = t1 + BigInt(Math.floor(Number(t1 - t0) * frac));
      let acc = 0;
      while (now() < end) acc = (acc * 1103515245 + 12345) & 0x7fffffff;
      return acc;
    };
  }

  resetCounters() {
    for (const k of COUNTERS) this.counters[k] = 0;
  }

  // Per device: [wasm memories, linear bytes committed], as harness/runtimes/executor.py
  // counts them: host memories at their size; each memory an instance's module defines
  // through its export when exported, else at the size its binary declares.
  memoryCensusByDevice() {
    const out = Object.fromEntries(this.plan.devices.map((d) => [d.name, [0, 0]]));
    const add = (dev, n) => { out[dev][0] += 1; out[dev][1] += n; };
    for (const mem of this.plan.memories) {
      if (mem.kind === 'host' && mem.id in this.memories) add(mem.device, this.array(mem.id).length);
    }
    const wasm = Object.fromEntries(this.plan.modules.map((m) => [m.name, m.wasm]));
    for (const inst of this.plan.instances) {
      const info = moduleInfo(Buffer.from(wasm[inst.module], 'base64'));
      info.defined.forEach((minPages, k) => {
        const index = info.importedMemories + k;
        const exp = info.exports.find((e) => e.kind === 2 && e.index === index);
        add(inst.device, exp === undefined ? minPages * PAGE :
          this.instances[inst.name].exports[exp.name].buffer.byteLength);
      });
    }
    return out;
  }

  memoryCensus() {
    let count = 0;
    let bytes = 0;
    for (const [c, b] of Object.values(this.memoryCensusByDevice())) { count += c; bytes += b; }
    return [count, bytes];
  }
}

// -- just enough of the wasm binary format (harness/wasmbin.py) -------------------------------
function moduleInfo(bytes) {
  let pos = 8;
  const byte = () => bytes[pos++];
  const uleb = () => {
    let result = 0;
    let mul = 1;
    for (;;) {
      const b = byte();
      result += (b & 0x7f) * mul;
      mul *= 128;
      if (!(b & 0x80)) return result;
    }
  };
  const name = () => { const n = uleb(); pos += n; return bytes.subarray(pos - n, pos).toString('utf8'); };
  const limits = () => { const flags = uleb(); const min = uleb(); if (flags & 1) uleb(); return min; };
  const info = { importedMemories: 0, defined: [], exports: [] };
  while (pos < bytes.length) {
    const id = byte();
    const size = uleb();
    const end = pos + size;
    if (id === 2) {
      for (let n = uleb(); n > 0; n--) {
        name(); name();
        const kind = byte();
        if (kind === 0) uleb();
        else if (kind === 1) { byte(); limits(); }
        else if (kind === 2) { limits(); info.importedMemories += 1; }
        else if (kind === 3) { byte(); byte(); }
        else if (kind === 4) { byte(); uleb(); }
      }
    } else if (id === 5) {
      for (let n = uleb(); n > 0; n--) info.defined.push(limits());
    } else if (id === 7) {
      for (let n = uleb(); n > 0; n--) {
        const exportName = name();
        const kind = byte();
        info.exports.push({ name: exportName, kind, index: uleb() });
      }
    }
    pos = end;
  }
  return info;
}

// -- timing (harness/measure.py) -------------------------------------------------------------
const DEFAULT_SETTINGS = { warmup_s: 0.05, warmup_runs: 2, sample_s: 0.01, samples: 10,
  max_inner: 1000000, seed: 0 };

function timeCold(run) {
  const t0 = now();
  run();
  return secs(now() - t0);
}

function timeSteady(run, s, firstS) {
  let best = firstS;
  const start = now();
  let runs = 0;
  while (runs < s.warmup_runs || secs(now() - start) < s.warmup_s) {
    const t0 = now();
    run();
    best = Math.min(best, secs(now() - t0));
    runs += 1;
  }
  const inner = Math.max(1, Math.min(s.max_inner, Math.ceil(s.sample_s / Math.max(best, 1e-9))));
  const samples = [];
  for (let i = 0; i < s.samples; i++) {
    const t0 = now();
    for (let j = 0; j < inner; j++) run();
    samples.push(secs(now() - t0) / inner);
  }
  return { first_s: firstS, warmup_runs: runs, inner, samples_s: samples };
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

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function runCell(req, params, outDir) {
  const plan = readPlan(req.plan_path);
  const data = loadTensors(req.inputs);
  const s = { ...DEFAULT_SETTINGS, ...(req.settings || {}) };
  const before = memoryNow();
  const lp = new LoadedPlan(plan, data, Number(params.slowdown || 0) / 100);
  const resp = { status: 'ok', message: '' };
  lp.load();
  const afterLoad = memoryNow();
  lp.resetCounters();
  const run = lp.slowed();
  const firstS = timeCold(run);
  const perRun = { ...lp.counters };
  const firstOut = Object.fromEntries(Object.entries(lp.outputs).map(([k, v]) => [k, v.slice()]));
  lp.resetCounters();
  const timing = timeSteady(run, s, firstS);
  const n = timing.warmup_runs + timing.inner * timing.samples_s.length;
  const drift = COUNTERS.filter((k) => lp.counters[k] !== perRun[k] * n);
  if (drift.length) {
    throw new Error(`counters differ between inferences: per run ${JSON.stringify(perRun)}, ` +
      `after ${n} runs ${JSON.stringify(lp.counters)}`);
  }
  // what the inferences left committed (a kernel that grows memory shows here)
  const [nMemories, linear] = lp.memoryCensus();
  const byDevice = lp.memoryCensusByDevice();
  const changed = Object.keys(lp.outputs).filter((k) => !equalBytes(lp.outputs[k], firstOut[k]));
  if (changed.length) {
    resp.status = 'crashed';
    resp.message = `outputs ${JSON.stringify(changed)} changed between inferences ` +
      '(state leaks from one inference into the next)';
  }
  const outputs = {};
  for (const [name, raw] of Object.entries(firstOut)) {
    const p = path.join(outDir, `out_${name}.bin`);
    fs.writeFileSync(p, raw);
    outputs[name] = p;
  }
  Object.assign(resp, {
    phases: { compile_s: lp.compile_s, instantiate_s: lp.instantiate_s, setup_s: lp.setup_s,
      first_run_s: firstS },
    timing: { inner: timing.inner, warmup_runs: timing.warmup_runs, samples_s: timing.samples_s },
    counters: perRun,
    memory: { baseline_rss: before.rss, rss_after_load: afterLoad.rss,
      peak_rss: process.resourceUsage().maxRSS * 1024, linear_bytes: linear,
      memories: nMemories,
      linear_bytes_by_device: Object.fromEntries(Object.entries(byDevice).map(([k, v]) => [k, v[1]])),
      vms_reserved: afterLoad.vms - before.vms },
    outputs,
  });
  return resp;
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

const HANDLERS = { cell: runCell, probe: runProbe, overhead: runOverhead };

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
    info = runtimeInfo(req.runtime, params);
    resp = handler(req, params, outDir);
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
