'use strict';
// Agents for Node (harness/runtimes/agents.py in JavaScript): agent 0 is the worker's main
// thread; agent i > 0 is a worker_threads thread (node_agent.js) with instances of its own
// over the plan's shared WebAssembly.Memory objects, pinned to a CPU of its own. A Parallel
// step is a generation word bumped in a SharedArrayBuffer; each agent runs its branch and
// adds one to the arrivals; the main thread runs branch 0 and waits for them (Atomics.wait
// is allowed on Node's main thread). That hand-off is the only synchronisation.

const path = require('path');
const { Worker } = require('worker_threads');
const { CTL, CTL_WORDS, MESSAGE_BYTES, spinUntil, readError } = require('./node_agents_ctl.js');

// loads a waiter spins before it sleeps (as agents.py's SPIN)
const SPIN = 1 << 17;
// how long agents may take to start (instantiate) before the plan fails
const START_MS = 60000;

class NodeAgentPool {
  // `cpus`: the CPU of each agent; `spec`: modules (name -> WebAssembly.Module), memories
  // (id -> shared WebAssembly.Memory), per agent its instances, and per Parallel step the
  // calls of each branch
  constructor(cpus, spec, Trap) {
    this.cpus = cpus;
    this.agents = cpus.length;
    this.Trap = Trap;
    this.control = new SharedArrayBuffer(CTL_WORDS * 4);
    this.ctl = new Int32Array(this.control);
    this.messages = new SharedArrayBuffer(MESSAGE_BYTES * this.agents);
    this.generation = 0;
    this.workers = [];
    for (let i = 1; i < this.agents; i++) {
      const w = new Worker(path.join(__dirname, 'node_agent.js'), {
        workerData: { agent: i, cpu: cpus[i], modules: spec.modules,
          instances: spec.instances[i] || [], memories: spec.memories, steps: spec.steps,
          control: this.control, messages: this.messages, spin: SPIN },
      });
      w.unref();   // a finished plan's agents never keep the process alive
      this.workers.push(w);
    }
    const deadline = Date.now() + START_MS;
    for (;;) {
      const ready = Atomics.load(this.ctl, CTL.READY);
      if (ready >= this.agents - 1) break;
      if (Date.now() > deadline) throw new Error(`agents did not start in ${START_MS} ms`);
      Atomics.wait(this.ctl, CTL.READY, ready, 100);
    }
    this.raise();
  }

  // the first agent's error, as a Trap when it trapped
  raise() {
    for (let i = 1; i < this.agents; i++) {
      const kind = Atomics.load(this.ctl, CTL.ERROR + i);
      if (kind) {
        Atomics.store(this.ctl, CTL.ERROR + i, 0);
        const msg = `agent ${i}: ${readError(this.messages, i)}`;
        throw kind === 2 ? new this.Trap(msg) : new Error(msg);
      }
    }
  }

  // Parallel step `k` (-1: empty branches): agents 1.. run their branches; `branch0` runs here
  run(k, branch0) {
    const ctl = this.ctl;
    Atomics.store(ctl, CTL.STEP, k);
    Atomics.store(ctl, CTL.ARRIVED, 0);
    this.generation += 1;
    Atomics.store(ctl, CTL.GENERATION, this.generation);
    Atomics.notify(ctl, CTL.GENERATION);
    try {
      branch0();
    } finally {
      const want = this.agents - 1;
      spinUntil(ctl, CTL.ARRIVED, (v) => v >= want, SPIN);
    }
    this.raise();
  }

  // seconds a step of empty branches takes (median of 7 batches of 200)
  handoffS(now, secs) {
    const times = [];
    for (let b = 0; b < 7; b++) {
      const t0 = now();
      for (let i = 0; i < 200; i++) this.run(-1, () => {});
      times.push(secs(now() - t0) / 200);
    }
    times.sort((x, y) => x - y);
    return times[3];
  }

  close() {
    Atomics.store(this.ctl, CTL.STOP, 1);
    this.run(-1, () => {});
    for (const w of this.workers) w.terminate();
  }
}

module.exports = { NodeAgentPool };
