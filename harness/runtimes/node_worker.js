'use strict';
// Node's worker: `node [v8 flags] node_worker.js REQUEST.json`. Plain JavaScript, no packages.
// The protocol is js_protocol.js; this file is Node's `host`: files through fs, memory figures
// from /proc and process, CPU pinning through taskset, the lockstep gate over pipes.

const fs = require('fs');
const path = require('path');
const { serve, allowedCpus } = require('./js_protocol.js');

function readBytes(file) {
  const buf = fs.readFileSync(file);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
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

// the CPUs this worker may run on, read when it starts (`pin`), before a plan's agents pin
// its main thread to the first of them
let workerCpus = null;

// `--pin`: Node cannot set its own CPU affinity, so taskset does it (every thread); the
// affinity actually in force is read back from the kernel either way
function pin(cpus) {
  if (cpus && cpus.length) {
    require('child_process').execFileSync('taskset', ['-a', '-p', '-c', cpus.join(','),
      String(process.pid)], { stdio: 'ignore' });
  }
  try {
    workerCpus = allowedCpus(fs.readFileSync('/proc/self/status', 'utf8'));
  } catch (e) {
    workerCpus = null;
  }
  return workerCpus;
}

// A plan's agents (node_agents.js): agent i on the i-th CPU the worker may run on, this
// thread (agent 0) pinned to the first for as long as the worker lives; never two agents
// on one CPU
function agents(n, spec, Trap, Unsupported) {
  const { NodeAgentPool } = require('./node_agents.js');
  const cpus = workerCpus || [];
  if (n > cpus.length) {
    throw new Unsupported(`${n} agents need ${n} CPUs of their own; this worker may run on ` +
      `${cpus.length} (${cpus.join(', ')}): agents never share a CPU`);
  }
  require('child_process').execFileSync('taskset', ['-p', '-c', String(cpus[0]),
    String(process.pid)], { stdio: 'ignore' });
  return new NodeAgentPool(cpus.slice(0, n), spec, Trap);
}

// Who is running now, in the file the parent reads when the worker dies
// (harness/worker/group.py `Blame`): one fixed-width line, -1 for nobody.
function openBlame(file) {
  if (!file) return { set() {}, close() {} };
  const fd = fs.openSync(file, 'w', 0o600);
  const set = (i) => fs.writeSync(fd, `${String(i).padStart(7)}\n`, 0);
  return { set, close() { set(-1); fs.closeSync(fd); } };
}

// The worker side of harness/worker/lockstep.py: at a gate write one byte to `ready`, then block
// reading one from `go`; EOF on `go` releases the worker for good.
function makeGate(req) {
  const fds = req.lockstep;
  if (!fds) return null;
  const buf = Buffer.alloc(1);
  let open = true;
  return () => {
    if (!open) return;
    let got = 0;
    try {
      fs.writeSync(fds.ready_fd, '.');
      got = fs.readSync(fds.go_fd, buf, 0, 1, null);
    } catch (e) {
      got = 0;
    }
    if (!got) {
      open = false;
      try { fs.closeSync(fds.ready_fd); } catch (e) { /* already closed */ }
    }
  };
}


function runtimeInfo(spec, params) {
  const tier = params.tier || 'default';
  return {
    name: 'v8', spec, version: process.versions.v8,
    config: { tier, node_flags: process.execArgv },
    node: process.version,
  };
}

// A callgrind segment mark: an fsync of a file of its own, which `--dump-before=fsync`
// turns into a dump (JavaScript has no client requests)
function openMark(dir) {
  const fd = fs.openSync(path.join(dir, 'callgrind.mark'), 'w');
  const mark = () => fs.fsyncSync(fd);
  mark.close = () => fs.closeSync(fd);
  return mark;
}

const NODE_HOST = {
  readText: (file) => fs.readFileSync(file, 'utf8'),
  readBytes,
  writeBytes: (file, bytes) => fs.writeFileSync(file, bytes),
  writeJsonAtomic,
  memoryNow,
  peakRss,
  pin,
  agents,
  openBlame,
  makeGate,
  runtimeInfo,
  openMark,
};

function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write('usage: node node_worker.js REQUEST.json\n');
    return 2;
  }
  return serve(NODE_HOST, argv[0]);
}

process.exitCode = main(process.argv.slice(2));
