'use strict';
// One agent of a plan (harness/runtimes/node_agents.js starts it): a worker_threads thread
// with instances of its own over the plan's shared memories. It pins itself to its CPU,
// instantiates its modules (compiled once by the main thread, sent with workerData), then
// waits for each Parallel step and runs its branch's calls. The control words are the
// hand-off of harness/runtimes/agents.py in Atomics: spin, then Atomics.wait.

const { workerData } = require('worker_threads');
const { CTL, spinUntil, errorText } = require('./node_agents_ctl.js');

const { agent, cpu, modules, instances, memories, steps, control, messages, spin } = workerData;
const ctl = new Int32Array(control);

function pinSelf() {
  if (cpu === null || cpu === undefined) return;
  const fs = require('fs');
  const tid = fs.readlinkSync('/proc/thread-self').split('/').pop();
  require('child_process').execFileSync('taskset', ['-p', '-c', String(cpu), tid],
    { stdio: 'ignore' });
}

function fail(e) {
  errorText(messages, agent, e);
  Atomics.store(ctl, CTL.ERROR + agent, e instanceof WebAssembly.RuntimeError ? 2 : 1);
}

function start() {
  pinSelf();
  const insts = {};
  for (const inst of instances) {
    const importObject = {};
    for (const imp of inst.imports) {
      if (imp.kind !== 'memory' || !(imp.target in memories)) {
        throw new Error(`agent ${agent}: ${inst.name} imports ${imp.target}, which agents ` +
                        'cannot share (only shared memories reach them)');
      }
      (importObject[imp.module] = importObject[imp.module] || {})[imp.field] = memories[imp.target];
    }
    insts[inst.name] = new WebAssembly.Instance(modules[inst.module], importObject);
  }
  // each step's branch for this agent, bound once: fn and its arguments
  const branches = steps.map((branch) => (branch[agent] || []).map((call) => {
    const fn = insts[call.instance].exports[call.export];
    const args = call.arg_type === 'i64' ? call.args.map((a) => BigInt(a))
      : call.args.map((a) => a | 0);
    return () => fn(...args);
  }));
  return branches;
}

function main() {
  let branches;
  try {
    branches = start();
  } catch (e) {
    fail(e);
    Atomics.add(ctl, CTL.READY, 1);
    Atomics.notify(ctl, CTL.READY);
    return;
  }
  Atomics.add(ctl, CTL.READY, 1);
  Atomics.notify(ctl, CTL.READY);
  let seen = 0;
  for (;;) {
    seen = spinUntil(ctl, CTL.GENERATION, (g) => g !== seen, spin);
    if (Atomics.load(ctl, CTL.STOP)) {
      Atomics.add(ctl, CTL.ARRIVED, 1);
      Atomics.notify(ctl, CTL.ARRIVED);
      return;
    }
    const k = Atomics.load(ctl, CTL.STEP);
    try {
      if (k >= 0) for (const call of branches[k]) call();
    } catch (e) {
      fail(e);
    }
    Atomics.add(ctl, CTL.ARRIVED, 1);
    Atomics.notify(ctl, CTL.ARRIVED);
  }
}

main();
