'use strict';
// Timing loops of harness/worker/measure.py, in JavaScript for the JS engines' worker (same
// settings, same phases): cold first inference; warm-up in batches until steady (or warmup_max_s);
// calibration of `inner` from the median of the last steady_window batches; samples.

// a nanosecond clock (BigInt): Node's hrtime; another engine's host (jsc_worker.js) sets
// globalThis.membenchNow before this file loads
const now = typeof process !== 'undefined' && process.hrtime
  ? () => process.hrtime.bigint() : globalThis.membenchNow;
const secs = (ns) => Number(ns) / 1e9;

// `clock` setting -> nanosecond clock. Node has no per-thread CPU clock: `cpu` is the
// process's CPU time (user + system, µs resolution), which also counts V8's background
// compiler threads; rows record which clock was used.
const CLOCKS = { wall: now };
if (typeof process !== 'undefined' && process.cpuUsage) {
  CLOCKS.cpu = () => { const u = process.cpuUsage(); return BigInt(u.user + u.system) * 1000n; };
}

function clockOf(s) {
  const clock = CLOCKS[s.clock || 'wall'];
  if (!clock) throw new Error(`unknown clock ${s.clock}; known: ${Object.keys(CLOCKS).join(', ')}`);
  return clock;
}

const DEFAULT_SETTINGS = {
  warmup_s: 0.05, warmup_runs: 2, warmup_max_s: 2.0, steady_window: 5, steady_tol: 0.02,
  batch_s: 0.001, sample_s: 0.01, samples: 10, max_inner: 1000000, seed: 0, breakdown: false,
  clock: 'wall',
};

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function timeCold(run, clock = now) {
  const t0 = clock();
  run();
  return secs(clock() - t0);
}

function isSteady(batches, window, tol) {
  if (batches.length <= window) return false;
  const before = Math.min(...batches.slice(0, -window));
  return Math.min(...batches.slice(-window)) >= before * (1 - tol);
}

function warmUp(run, s, firstS, clock) {
  const out = { runs: 0, elapsed_s: 0, steady: false, estimate_s: 0, batches_s: [] };
  let per = Math.max(firstS, 1e-9);
  const start = clock();
  for (;;) {
    const batch = Math.max(1, Math.min(s.max_inner, Math.ceil(s.batch_s / per)));
    const t0 = clock();
    for (let i = 0; i < batch; i++) run();
    const t1 = clock();
    per = Math.max(secs(t1 - t0) / batch, 1e-9);
    out.batches_s.push(per);
    out.runs += batch;
    out.elapsed_s = secs(t1 - start);
    const enough = out.runs >= s.warmup_runs && out.elapsed_s >= s.warmup_s;
    if (enough && isSteady(out.batches_s, s.steady_window, s.steady_tol)) {
      out.steady = true;
      break;
    }
    if (out.elapsed_s >= s.warmup_max_s) break;
  }
  out.estimate_s = median(out.batches_s.slice(-s.steady_window));
  return out;
}

// Real work (integer arithmetic, never a sleep) until `clock` has advanced `ns`.
function busyWork(ns, clock) {
  const end = clock() + BigInt(Math.floor(ns));
  let acc = 0;
  while (clock() < end) acc = (acc * 1103515245 + 12345) & 0x7fffffff;
  return acc;
}

// `gate` (lockstep A/B, harness/worker/lockstep.py): called before every sample and after the last.
// `slowdown` (a fraction): inside each sample, after its inferences, busy work for that
// share of their time (harness/worker/measure.py says why per sample and not per inference).
function timeSteady(run, s, firstS, clock = now, gate = null, slowdown = 0) {
  const wu = warmUp(run, s, firstS, clock);
  const inner = innerFor(s, wu.estimate_s);
  const samples = [];
  let rewarm = 0;
  for (let i = 0; i < s.samples; i++) {
    if (gate) {
      gate();
      run(); // untimed: puts back what the other side's sample evicted
      rewarm++;
    }
    const t0 = clock();
    for (let j = 0; j < inner; j++) run();
    if (slowdown) busyWork(Number(clock() - t0) * slowdown, clock);
    samples.push(secs(clock() - t0) / inner);
  }
  if (gate) gate();
  return { clock: s.clock || 'wall', first_s: firstS, warmup_runs: wu.runs,
    warmup_s: wu.elapsed_s, steady: wu.steady, inner, rewarm_runs: rewarm, samples_s: samples };
}

function innerFor(s, estimateS) {
  return Math.max(1, Math.min(s.max_inner, Math.ceil(s.sample_s / Math.max(estimateS, 1e-9))));
}

// A comparison group's samples (harness/worker/measure.py `time_interleaved`): every variant
// warmed up on its own, then passes in which each living variant takes one sample, the
// order rotated by one per pass; one untimed inference before each sample. A slow variant
// takes part in fewer passes (`samplesFor`, spread by `takesPart`); each sample records its
// pass in `passes`. `onSwitch(i)` runs before variant i's turn. A variant that throws gets
// the error in place of its timing and leaves the rotation.
// harness/worker/measure.py `samples_for`: per variant, fewer samples when they are slow,
// >= MIN_PASSES; SAMPLE_COST as there
const MIN_PASSES = 10;
const SAMPLE_COST = 4;
function samplesFor(s, estimates, inners) {
  const budget = s.samples * SAMPLE_COST * s.sample_s;
  const floor = Math.min(s.samples, MIN_PASSES);
  return estimates.map((e, i) => Math.max(floor, Math.min(s.samples,
    Math.floor(budget / Math.max(e * (inners[i] + 1), 1e-12)))));
}

// harness/worker/measure.py `takes_part`: a variant's passes spread evenly
function takesPart(k, count, passes) {
  return Math.floor(((k + 1) * count) / passes) > Math.floor((k * count) / passes);
}

function timeInterleaved(runs, s, firstS, clock = now, onSwitch = null, slowdown = 0) {
  const n = runs.length;
  const out = runs.map((_, i) => ({ clock: s.clock || 'wall', first_s: firstS[i], warmup_runs: 0,
    warmup_s: 0, steady: true, inner: 1, rewarm_runs: 0, samples_s: [], passes: [] }));
  const estimates = runs.map(() => 0);
  const living = (t) => t && Array.isArray(t.samples_s);
  for (let i = 0; i < n; i++) {
    if (onSwitch) onSwitch(i);
    try {
      const wu = warmUp(runs[i], s, firstS[i], clock);
      Object.assign(out[i], { warmup_runs: wu.runs, warmup_s: wu.elapsed_s, steady: wu.steady,
        inner: innerFor(s, wu.estimate_s) });
      estimates[i] = wu.estimate_s;
    } catch (e) {
      out[i] = e;
    }
  }
  const counts = samplesFor(s, estimates, out.map((t) => (living(t) ? t.inner : 1)));
  const passes = Math.max(0, ...counts.filter((_, i) => living(out[i])));
  for (let k = 0; k < passes; k++) {
    for (let r = 0; r < n; r++) {
      const i = (k + r) % n;
      const t = out[i];
      if (!living(t) || !takesPart(k, counts[i], passes)) continue; // threw, or sits out
      if (onSwitch) onSwitch(i);
      try {
        runs[i]();
        t.rewarm_runs++;
        const t0 = clock();
        for (let j = 0; j < t.inner; j++) runs[i]();
        if (slowdown) busyWork(Number(clock() - t0) * slowdown, clock);
        t.samples_s.push(secs(clock() - t0) / t.inner);
        t.passes.push(k);
      } catch (e) {
        out[i] = e;
      }
    }
  }
  return out;
}

module.exports = {
  DEFAULT_SETTINGS, clockOf, median, timeCold, timeSteady, timeInterleaved, now, secs,
};
