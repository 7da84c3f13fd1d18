'use strict';
// Timing loops of harness/measure.py, in JavaScript for the V8 worker (same settings, same
// phases): cold first inference; warm-up in batches until steady (or warmup_max_s);
// calibration of `inner` from the median of the last steady_window batches; samples.

const now = () => process.hrtime.bigint();
const secs = (ns) => Number(ns) / 1e9;

const DEFAULT_SETTINGS = {
  warmup_s: 0.05, warmup_runs: 2, warmup_max_s: 2.0, steady_window: 5, steady_tol: 0.02,
  batch_s: 0.001, sample_s: 0.01, samples: 10, max_inner: 1000000, seed: 0, breakdown: false,
};

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function timeCold(run) {
  const t0 = now();
  run();
  return secs(now() - t0);
}

function isSteady(batches, window, tol) {
  if (batches.length <= window) return false;
  const before = Math.min(...batches.slice(0, -window));
  return Math.min(...batches.slice(-window)) >= before * (1 - tol);
}

function warmUp(run, s, firstS) {
  const out = { runs: 0, elapsed_s: 0, steady: false, estimate_s: 0, batches_s: [] };
  let per = Math.max(firstS, 1e-9);
  const start = now();
  for (;;) {
    const batch = Math.max(1, Math.min(s.max_inner, Math.ceil(s.batch_s / per)));
    const t0 = now();
    for (let i = 0; i < batch; i++) run();
    const t1 = now();
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

function timeSteady(run, s, firstS) {
  const wu = warmUp(run, s, firstS);
  const inner = Math.max(1, Math.min(s.max_inner, Math.ceil(s.sample_s / Math.max(wu.estimate_s, 1e-9))));
  const samples = [];
  for (let i = 0; i < s.samples; i++) {
    const t0 = now();
    for (let j = 0; j < inner; j++) run();
    samples.push(secs(now() - t0) / inner);
  }
  return { first_s: firstS, warmup_runs: wu.runs, warmup_s: wu.elapsed_s, steady: wu.steady,
    inner, samples_s: samples };
}

module.exports = { DEFAULT_SETTINGS, median, timeCold, timeSteady, now, secs };
