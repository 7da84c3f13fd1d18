'use strict';
// Just enough of the wasm binary format (harness/plugins/wasmbin.py) for the JS worker's memory
// census: imported memories, defined memories (initial pages) and exports. Plain JavaScript on
// Uint8Array, no Buffer or TextDecoder, so that every engine's shell runs it.

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

// base64 text (as plans carry wasm bytes) to bytes
function fromBase64(text) {
  const clean = text.replace(/[^A-Za-z0-9+/]/g, '');
  const out = new Uint8Array((clean.length * 3) >> 2);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < clean.length; i++) {
    acc = (acc << 6) | B64_INDEX[clean.charCodeAt(i)];
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, o);
}

// UTF-8 bytes to a string (wasm names)
function utf8(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i++];
    let cp = b;
    if (b >= 0xf0) cp = ((b & 0x07) << 18) | ((bytes[i++] & 0x3f) << 12) | ((bytes[i++] & 0x3f) << 6) | (bytes[i++] & 0x3f);
    else if (b >= 0xe0) cp = ((b & 0x0f) << 12) | ((bytes[i++] & 0x3f) << 6) | (bytes[i++] & 0x3f);
    else if (b >= 0xc0) cp = ((b & 0x1f) << 6) | (bytes[i++] & 0x3f);
    out += String.fromCodePoint(cp);
  }
  return out;
}
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
  const name = () => { const n = uleb(); pos += n; return utf8(bytes.subarray(pos - n, pos)); };
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

module.exports = { moduleInfo, fromBase64 };
