'use strict';
// A browser's `host` for js_protocol.js, running in a dedicated Web Worker of the page that
// browser_driver.js serves: files are read and written through that server with synchronous
// XHR (allowed in workers, never inside a timed region), the clock is performance.now() of a
// cross-origin-isolated page. Samples are sized to the timer: `sample_s` is raised to at
// least 200 timer ticks, and the tick is reported. What a page cannot see (its process's
// memory, CPU affinity) is left out (null), never made up.

const MODULES = {};
function get(url, binary) {
  const x = new XMLHttpRequest();
  x.open('GET', url, false);
  if (binary) x.responseType = 'arraybuffer';
  x.send();
  if (x.status !== 200) throw new Error(`GET ${url}: ${x.status} ${binary ? '' : x.responseText}`);
  return binary ? new Uint8Array(x.response) : x.responseText;
}

function post(url, data) {
  const x = new XMLHttpRequest();
  x.open('POST', url, false);
  x.send(data);
  if (x.status !== 200) throw new Error(`POST ${url}: ${x.status} ${x.responseText}`);
}

function require(name) {
  const file = name.replace(/^\.\//, '');
  if (!(file in MODULES)) {
    const module = { exports: {} };
    MODULES[file] = module;
    // eslint-disable-next-line no-new-func
    new Function('module', 'exports', 'require', get(`/js/${file}`))(module, module.exports, require);
  }
  return MODULES[file].exports;
}

// the smallest step performance.now() takes here (5 µs in a cross-origin-isolated Chromium)
function timerTick() {
  let best = Infinity;
  for (let i = 0; i < 200; i++) {
    const a = performance.now();
    let b = performance.now();
    while (b === a) b = performance.now();
    best = Math.min(best, b - a);
  }
  return best / 1e3;
}

const fsUrl = (file) => `/fs?path=${encodeURIComponent(file)}`;
const MIN_TICKS = 200;

onmessage = (e) => {
  const { request, browser, version } = e.data;
  globalThis.membenchNow = () => BigInt(Math.round(performance.now() * 1e6));
  const tick = timerTick();
  const host = {
    readText: (file) => {
      const text = get(fsUrl(file), false);
      if (file !== request) return text;
      const req = JSON.parse(text);
      const s = req.settings || {};
      if (s.sample_s !== undefined && s.sample_s < MIN_TICKS * tick) s.sample_s = MIN_TICKS * tick;
      return JSON.stringify(req);
    },
    readBytes: (file) => get(fsUrl(file), true),
    writeBytes: (file, bytes) => post(fsUrl(file), bytes),
    writeJsonAtomic: (file, obj) => post(fsUrl(file), JSON.stringify(obj, null, 1)),
    memoryNow: () => ({ rss: null, vms: null }),
    peakRss: () => null,
    pin: () => null,
    // threads=N: the page runs plans on its main thread, where Atomics.wait is refused;
    // agents would be Web Workers of a cross-origin-isolated page, not built here
    agents: (n, spec, Trap, Unsupported) => {
      throw new Unsupported('threads=N: the page runs every dispatch on its main thread ' +
                            '(Atomics.wait is refused there); Web Workers sharing a ' +
                            'WebAssembly.Memory need a cross-origin-isolated page, not ' +
                            'built here');
    },
    openBlame: (file) => {
      if (!file) return { set() {}, close() {} };
      const set = (i) => post(fsUrl(file), `${String(i).padStart(7)}\n`);
      return { set, close() { set(-1); } };
    },
    makeGate: (req) => {
      if (req.lockstep) throw new Error(`${browser} cannot take part in a lockstep pair`);
      return null;
    },
    runtimeInfo: (spec) => ({
      name: browser, spec, version, user_agent: navigator.userAgent,
      config: { timer_tick_s: tick, min_sample_s: MIN_TICKS * tick,
        cross_origin_isolated: globalThis.crossOriginIsolated === true },
    }),
  };
  try {
    require('./js_protocol.js').serve(host, request);
    postMessage({ ok: true });
  } catch (err) {
    postMessage({ error: String(err && err.stack ? err.stack : err) });
  }
};
