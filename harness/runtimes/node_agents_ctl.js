'use strict';
// The control words agents and the main thread share (an Int32Array over one
// SharedArrayBuffer), and the wait both sides use: spin on Atomics.load for a while, then
// Atomics.wait (a futex). The JavaScript twin of the hand-off in harness/runtimes/agents.py.

// word indexes, 16 apart (64 bytes: a spinning reader shares no cache line with a writer)
const CTL = { GENERATION: 0, ARRIVED: 16, STEP: 32, STOP: 48, READY: 64, ERROR: 80 };
const CTL_WORDS = 80 + 64;       // ERROR + one word per agent (at most 64)
const MESSAGE_BYTES = 1024;      // each agent's error message, UTF-8

// Wait until `ok(value of word i)`, spinning `spin` loads before each Atomics.wait; returns
// the value that satisfied it.
function spinUntil(ctl, i, ok, spin) {
  for (;;) {
    for (let n = 0; n < spin; n++) {
      const v = Atomics.load(ctl, i);
      if (ok(v)) return v;
    }
    const v = Atomics.load(ctl, i);
    if (ok(v)) return v;
    Atomics.wait(ctl, i, v);
  }
}

// Agent `agent`'s error message, written into its slot of `messages` (a SharedArrayBuffer).
function errorText(messages, agent, e) {
  const bytes = new TextEncoder().encode(String((e && e.message) || e)).slice(0, MESSAGE_BYTES);
  const slot = new Uint8Array(messages, agent * MESSAGE_BYTES, MESSAGE_BYTES);
  slot.fill(0);
  slot.set(bytes);
}

function readError(messages, agent) {
  const slot = new Uint8Array(messages, agent * MESSAGE_BYTES, MESSAGE_BYTES);
  const end = slot.indexOf(0);
  return new TextDecoder().decode(slot.slice(0, end < 0 ? MESSAGE_BYTES : end));
}

module.exports = { CTL, CTL_WORDS, MESSAGE_BYTES, spinUntil, errorText, readError };
