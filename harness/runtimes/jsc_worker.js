'use strict';
// The JavaScriptCore shell's worker: `jsc [options] jsc_worker.js -- DIR VERSION REQUEST.json`,
// DIR being this file's directory. The protocol is js_protocol.js, loaded through a small
// CommonJS loader (the shell has no `require`); this file is the shell's `host`: files through
// readFile/writeFile, memory figures from /proc, the clock from preciseTime(). The harness pins
// the process before it starts (harness/worker/launch.py), so pinning here only reads back.

/* global readFile, writeFile, preciseTime, scriptArgs: false */
const [DIR, VERSION, REQUEST] = typeof scriptArgs !== 'undefined' ? scriptArgs : globalThis.arguments;

// nanoseconds as a BigInt, as js_measure.js expects (preciseTime: seconds, sub-µs)
globalThis.membenchNow = () => BigInt(Math.round(preciseTime() * 1e9));

const MODULES = {};
function require(name) {
  const file = `${DIR}/${name.replace(/^\.\//, '')}`;
  if (!(file in MODULES)) {
    const module = { exports: {} };
    MODULES[file] = module;
    // eslint-disable-next-line no-new-func
    new Function('module', 'exports', 'require', readFile(file))(module, module.exports, require);
  }
  return MODULES[file].exports;
}

const protocol = require('./js_protocol.js');

function procStatus() {
  try {
    return readFile('/proc/self/status');
  } catch (e) {
    return '';
  }
}

// null when unknown (the shell's readFile sees /proc files as empty): never a made-up 0
function statusKb(field) {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(procStatus());
  return m ? Number(m[1]) * 1024 : null;
}

const JSC_HOST = {
  readText: (file) => readFile(file),
  readBytes: (file) => new Uint8Array(readFile(file, 'binary')),
  writeBytes: (file, bytes) => {
    writeFile(file, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  },
  // the shell has no rename: the harness reads response.json only after the worker exited
  writeJsonAtomic: (file, obj) => { writeFile(file, JSON.stringify(obj, null, 1)); },
  memoryNow: () => ({ rss: statusKb('VmRSS'), vms: statusKb('VmSize') }),
  peakRss: () => statusKb('VmHWM'),
  pin: () => protocol.allowedCpus(procStatus()),
  // threads=N: the shell's test262 agents ($.agent) are not wired into this worker
  agents: (n, spec, Trap, Unsupported) => {
    throw new Unsupported('threads=N: this worker runs every dispatch on the jsc shell\'s ' +
                          'one thread (its $.agent workers could share the memory, but the ' +
                          'shell can neither pin its threads nor read its CPUs)');
  },
  openBlame: (file) => {
    if (!file) return { set() {}, close() {} };
    const set = (i) => { writeFile(file, `${String(i).padStart(7)}\n`); };
    return { set, close() { set(-1); } };
  },
  makeGate: (req) => {
    if (req.lockstep) throw new Error('jsc cannot take part in a lockstep pair (no pipes)');
    return null;
  },
  runtimeInfo: (spec, params) => ({
    name: 'jsc', spec, version: VERSION, config: { flags: params.flags || '' },
  }),
};

protocol.serve(JSC_HOST, REQUEST);
