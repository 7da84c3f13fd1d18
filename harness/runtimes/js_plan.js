'use strict';
// Plan execution for the JS engines' worker (harness/runtimes/executor.py in JavaScript): loads a
// plan (compile each module once per engine, create memories, instantiate in plan order,
// write weights), turns the run steps into closures and counts what they actually do.

const { hostImpl } = require('./js_hostfuncs.js');
const { now, secs } = require('./js_measure.js');
const { moduleInfo, fromBase64, fillData } = require('./js_wasmbin.js');

const COUNTERS = ['bytes_copied', 'calls', 'host_calls', 'bytes_written', 'bytes_read'];
const PAGE = 65536;

class Trap extends Error {}
// the plan asks for what this host cannot do (the cell becomes `unsupported`)
class Unsupported extends Error {}

class LoadedPlan {
  // `faults.staleViews`: keep a memory's view after the memory grows (the bug a JS host
  // must not have: the old ArrayBuffer is detached); a runtime's `stale_views=1`, for the
  // test that shows a growing plan catches it
  // `faults.agents`: the host's factory of agents (Node's worker_threads) for plans whose
  // Parallel steps run on several; a host without one refuses such plans
  constructor(plan, data, instrument, faults = {}) {
    this.plan = plan;
    this.agentFactory = faults.agents || null;
    this.pool = null;
    this.agentOf = Object.fromEntries(plan.devices.map((d) => [d.name, d.agent || 0]));
    this.nAgents = 1 + Math.max(0, ...plan.devices.map((d) => d.agent || 0));
    this.staleViews = Boolean(faults.staleViews);
    // memories grown under live instances (Grow steps) and the time their grows took
    this.growing = [...plan.setup, ...plan.run].some((st) => st.op === 'grow');
    this.grown = {};                   // memory id -> the pages its Grow steps reach
    for (const st of [...plan.setup, ...plan.run]) {
      if (st.op === 'grow') this.grown[st.memory] = Math.max(this.grown[st.memory] || 0, st.pages);
    }
    this.growStats = { grows: 0, grow_ns: 0n };
    this.instrument = Boolean(instrument);  // time host functions (breakdown pass only)
    this.hostNs = 0n;
    this.windows = [];                 // windows of the Call step being executed
    this.data = data;                  // tensor name -> Uint8Array
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
        if (mod.precompiled) {
          throw new Error('a JS host loads no precompiled module files (wasmtime\'s ' +
                          'Module.deserialize_file maps one)');
        }
        let bytes = fromBase64(mod.wasm);
        // data segments built empty, filled with their tensors' bytes (before timing)
        const segments = mod.segments || [];
        if (segments.length) bytes = fillData(bytes, segments.map((t) => this.data[t]));
        const t0 = now();
        compiled[key] = new WebAssembly.Module(bytes);
        const label = engine === 'default' ? inst.module : `${inst.module}@${engine}`;
        this.compile_s[label] = secs(now() - t0);
      }
    }
    for (const mem of plan.memories) {
      if (mem.kind === 'host') {
        // a 64-bit memory (memory64) takes its limits as BigInts, with address 'i64'
        const limit = mem.memory64 ? BigInt : Number;
        const desc = { initial: limit(mem.min_pages) };
        if (mem.max_pages !== null && mem.max_pages !== undefined) desc.maximum = limit(mem.max_pages);
        if (mem.shared) desc.shared = true;
        if (mem.memory64) desc.address = 'i64';
        this.memories[mem.id] = new WebAssembly.Memory(desc);
      } else if (mem.kind === 'buffer') {
        this.buffers[mem.id] = new Uint8Array(mem.size);
      }
    }
    const hostFns = {};
    for (const hf of plan.host_funcs || []) hostFns[hf.id] = this.hostFn(hf);
    const agentSpec = { modules: {}, memories: {}, instances: {}, steps: [] };
    for (const inst of plan.instances) {
      const agent = this.agentOf[inst.device];
      if (agent > 0) {  // instantiated by its agent, on its thread
        agentSpec.modules[inst.module] = compiled[`${engineOf[inst.device]}\u0000${inst.module}`];
        for (const imp of inst.imports) {
          if (imp.kind === 'memory') agentSpec.memories[imp.target] = this.memories[imp.target];
        }
        (agentSpec.instances[agent] = agentSpec.instances[agent] || []).push(inst);
        continue;
      }
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
    if (this.nAgents > 1) this.startAgents(agentSpec);
    const t0 = now();
    for (const step of this.compileSteps(plan.setup)) step();
    this.setup_s = secs(now() - t0);
    this.steps = this.compileSteps(plan.run);
  }

  // the agents' threads, each given its instances and, per Parallel step, the calls of
  // every branch (the pool's threads run branch i of step k; this thread runs branch 0)
  startAgents(spec) {
    if (!this.agentFactory) {
      throw new Unsupported('a Parallel step (threads=N): this JavaScript host has no agents ' +
                            '(workers sharing a WebAssembly.Memory) here');
    }
    this.parallelSteps = [...this.plan.setup, ...this.plan.run].filter((st) => st.op === 'parallel');
    spec.steps = this.parallelSteps.map((st) => st.branches.map((b) => b.map((c) => ({
      instance: c.instance, export: c.export, args: c.args, arg_type: c.arg_type }))));
    this.pool = this.agentFactory(this.nAgents, spec, Trap, Unsupported);
  }

  close() {
    if (this.pool) this.pool.close();
  }

  // a call step's function: the export with its arguments, a trap raised as Trap
  callFn(step) {
    const fn = this.instances[step.instance].exports[step.export];
    if (typeof fn !== 'function') throw new Error(`${step.instance} has no export ${step.export}`);
    if (fn.length !== step.args.length) {
      throw new Error(`${step.export} takes ${fn.length} arguments, plan passes ${step.args.length}`);
    }
    // i64 parameters (a memory64 module's addresses) take BigInts
    const args = step.arg_type === 'i64' ? step.args.map((a) => BigInt(a))
      : step.args.map((a) => a | 0);
    return () => {
      try {
        fn(...args);
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError) throw new Trap(e.message);
        throw e;
      }
    };
  }

  hostFn(hf) {
    const impl = hostImpl(hf, this);
    if (!this.instrument) return impl;
    return (...args) => {
      const t0 = now();
      try {
        return impl(...args);
      } finally {
        this.hostNs += now() - t0;
      }
    };
  }

  // `runs` inferences timing every step: per-inference seconds by step kind (breakdown)
  breakdown(runs) {
    const kinds = this.plan.run.map((st) => st.op);
    const totals = { write: 0n, copy: 0n, call: 0n, read: 0n };
    this.hostNs = 0n;
    this.windows = [];                 // windows of the Call step being executed
    const tStart = now();
    for (let r = 0; r < runs; r++) {
      for (let i = 0; i < this.steps.length; i++) {
        const t0 = now();
        this.steps[i]();
        totals[kinds[i]] += now() - t0;
      }
    }
    const total = now() - tStart;
    const out = {};
    for (const [k, v] of Object.entries(totals)) out[`${k}_s`] = secs(v) / runs;
    out.host_call_s = secs(this.hostNs) / runs;
    out.total_s = secs(total) / runs;
    out.runs = runs;
    return out;
  }

  // uint8 view of a plan memory, re-made when a wasm memory's buffer was replaced (growth)
  array(memId) {
    if (memId in this.buffers) return this.buffers[memId];
    const mem = this.memories[memId];
    if (mem === undefined) throw new Error(`memory ${memId} is not available`);
    let v = this.views[memId];
    if (v === undefined || (v.buffer !== mem.buffer && !this.staleViews)) {
      v = new Uint8Array(mem.buffer);
      this.views[memId] = v;
    }
    return v;
  }

  // the bytes of a region now (subarray would return fewer past the end of a memory that
  // has not grown yet, or none from a detached view)
  bytes(r) {
    const a = this.array(r.memory);
    if (r.offset + r.size > a.length) {
      throw new RangeError(`region ${JSON.stringify(r)} is outside memory ${r.memory} ` +
        `(${a.length} bytes now)`);
    }
    return a.subarray(r.offset, r.offset + r.size);
  }

  // a region checked against what its memory will hold (once grown by the plan's Grow
  // steps: a step that runs before the grow it needs fails when it runs)
  region(r) {
    const cap = Math.max(this.array(r.memory).length, (this.grown[r.memory] || 0) * PAGE);
    if (r.offset + r.size > cap) {
      throw new Error(`region ${JSON.stringify(r)} exceeds memory ${r.memory} (${cap} bytes)`);
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
          const from = this.bytes(src);
          this.array(dst.memory).set(from, dst.offset);
          c.bytes_copied += src.size;
        });
      } else if (step.op === 'call') {
        const call = this.callFn(step);
        const windows = step.windows || [];
        out.push(() => {
          this.windows = windows;
          try {
            call();
          } finally {
            this.windows = [];
          }
          c.calls += 1;
        });
      } else if (step.op === 'read') {
        const src = this.region(step.src);
        const dst = new Uint8Array(src.size);
        this.outputs[step.tensor] = dst;
        out.push(() => {
          dst.set(this.bytes(src));
          c.bytes_read += src.size;
        });
      } else if (step.op === 'grow' && step.memory in this.buffers) {
        // a host buffer reallocated as a host's allocator grows one: a larger buffer that
        // keeps the bytes; every later step finds it through array()
        const stats = this.growStats;
        out.push(() => {
          const old = this.buffers[step.memory];
          if (old.length < step.pages * PAGE) {
            const t0 = now();
            const grown = new Uint8Array(step.pages * PAGE);
            grown.set(old);
            this.buffers[step.memory] = grown;
            stats.grow_ns += now() - t0;
            stats.grows += 1;
          }
        });
      } else if (step.op === 'grow') {
        // to `pages`, from the host, every instance live; a no-op once grown. Every later
        // step reads its view through array(), which sees the new ArrayBuffer
        const mem = this.memories[step.memory];
        if (mem === undefined) throw new Error(`grow: memory ${step.memory} is not available`);
        const wide = this.plan.memories.some((m) => m.id === step.memory && m.memory64);
        const stats = this.growStats;
        out.push(() => {
          const have = mem.buffer.byteLength / PAGE;
          if (have < step.pages) {
            const t0 = now();
            mem.grow(wide ? BigInt(step.pages - have) : step.pages - have);
            stats.grow_ns += now() - t0;
            stats.grows += 1;
          }
        });
      } else if (step.op === 'count') {
        // a counter kept by a wasm instance: add its little-endian value, then zero it
        const src = this.region(step.src);
        if (!(step.counter in c)) c[step.counter] = 0;
        out.push(() => {
          const raw = this.array(src.memory).subarray(src.offset, src.offset + src.size);
          let v = 0;
          for (let i = raw.length - 1; i >= 0; i--) v = v * 256 + raw[i];
          c[step.counter] += v;
          raw.fill(0);
        });
      } else if (step.op === 'parallel') {
        // branch i on agent i, all at once (the pool); counted when every branch has ended
        const k = this.parallelSteps.indexOf(step);
        const own = (step.branches[0] || []).map((call) => this.callFn(call));
        const calls = step.branches.reduce((n, b) => n + b.length, 0);
        const pool = this.pool;
        const branch0 = () => { for (const f of own) f(); };
        out.push(() => {
          pool.run(k, branch0);
          c.calls += calls;
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

  resetCounters() {
    for (const k of Object.keys(this.counters)) this.counters[k] = 0;
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
      const info = moduleInfo(fromBase64(wasm[inst.module]));
      const onAgent = this.agentOf[inst.device] > 0;  // its memories never grow (threads=N)
      info.defined.forEach((minPages, k) => {
        const index = info.importedMemories + k;
        const exp = info.exports.find((e) => e.kind === 2 && e.index === index);
        add(inst.device, exp === undefined || onAgent ? minPages * PAGE :
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

module.exports = { COUNTERS, LoadedPlan, Trap, Unsupported };
