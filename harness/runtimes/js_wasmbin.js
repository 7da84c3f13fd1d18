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
// A cursor over `bytes`: its position, the byte there, an unsigned LEB128 from there
function cursor(bytes, pos) {
  const c = { pos };
  c.byte = () => bytes[c.pos++];
  c.uleb = () => {
    let result = 0;
    let mul = 1;
    for (;;) {
      const b = c.byte();
      result += (b & 0x7f) * mul;
      mul *= 128;
      if (!(b & 0x80)) return result;
    }
  };
  return c;
}

function moduleInfo(bytes) {
  const c = cursor(bytes, 8);
  const { byte, uleb } = c;
  const name = () => { const n = uleb(); c.pos += n; return utf8(bytes.subarray(c.pos - n, c.pos)); };
  const limits = () => { const flags = uleb(); const min = uleb(); if (flags & 1) uleb(); return min; };
  const info = { importedMemories: 0, defined: [], exports: [] };
  while (c.pos < bytes.length) {
    const id = byte();
    const size = uleb();
    const end = c.pos + size;
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
    c.pos = end;
  }
  return info;
}

function ulebBytes(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

// `bytes` with its data segments' contents replaced by `payloads` (Uint8Arrays, one per
// segment in order), each segment keeping its memory and offset: wasmbin.fill_data's twin
function fillData(bytes, payloads) {
  const c = cursor(bytes, 8);
  const { byte, uleb } = c;
  while (c.pos < bytes.length) {
    const start = c.pos;
    const id = byte();
    const size = uleb();
    const end = c.pos + size;
    if (id !== 11) { c.pos = end; continue; }
    const count = uleb();
    if (count !== payloads.length) {
      throw new Error(`the module has ${count} data segments; ${payloads.length} payloads`);
    }
    const parts = [Uint8Array.from(ulebBytes(count))];
    for (const payload of payloads) {
      const head = c.pos;
      const flags = uleb();
      if (flags === 2) uleb();
      if (flags === 0 || flags === 2) {
        const op = byte();
        if (op !== 0x41 && op !== 0x42 && op !== 0x23) throw new Error(`data offset opcode ${op}`);
        while (byte() & 0x80);
        if (byte() !== 0x0b) throw new Error('data offset: expected end');
      } else if (flags !== 1) throw new Error(`data segment flags ${flags}`);
      parts.push(bytes.subarray(head, c.pos));
      const skip = uleb(); // (read before adding: `c.pos += uleb()` loses the read)
      c.pos += skip;
      parts.push(Uint8Array.from(ulebBytes(payload.length)), payload);
    }
    const content = parts.reduce((n, p) => n + p.length, 0);
    const sizeBytes = ulebBytes(content);
    const out = new Uint8Array(start + 1 + sizeBytes.length + content + (bytes.length - end));
    out.set(bytes.subarray(0, start), 0);
    let o = start;
    out[o++] = 11;
    out.set(sizeBytes, o);
    o += sizeBytes.length;
    for (const p of parts) { out.set(p, o); o += p.length; }
    out.set(bytes.subarray(end), o);
    return out;
  }
  if (payloads.length) throw new Error(`the module has no data section; ${payloads.length} payloads`);
  return bytes;
}

module.exports = { moduleInfo, fromBase64, fillData };
