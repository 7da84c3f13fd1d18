'use strict';
// Just enough of the wasm binary format (harness/plugins/wasmbin.py) for the V8 worker's memory census:
// imported memories, defined memories (initial pages) and exports.
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
  const name = () => { const n = uleb(); pos += n; return bytes.subarray(pos - n, pos).toString('utf8'); };
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

module.exports = { moduleInfo };
