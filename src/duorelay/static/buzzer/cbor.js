"use strict";
/*
 * A small CBOR decoder (RFC 8949), enough for what a WMBP server sends a host:
 * maps, arrays, text and byte strings, integers, true/false/null/undefined, and
 * half/single/double floats. Definite lengths only (the server's cbor2 never
 * writes indefinite ones); tags are skipped (their content is returned).
 *
 *   CBOR.decode(arrayBufferOrUint8Array) -> value
 *
 * Maps become plain objects without a prototype (so a "__proto__" key is just a
 * key); integer keys become their decimal string. Byte strings become
 * Uint8Array. Integers beyond Number.MAX_SAFE_INTEGER become BigInt. Bytes after
 * the first complete item are ignored, as WMBP does. Malformed input throws.
 */
(function (global) {
  const MAX_DEPTH = 64;
  const utf8 = new TextDecoder("utf-8", { fatal: true });

  function decode(input) {
    const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let pos = 0;

    function need(n) {
      if (n > bytes.length - pos) throw new RangeError("CBOR: unexpected end of data");
    }

    // The argument of an initial byte: a Number, or a BigInt beyond 2^53 - 1.
    function argument(info) {
      let value;
      if (info < 24) return info;
      if (info === 24) { need(1); value = view.getUint8(pos); pos += 1; return value; }
      if (info === 25) { need(2); value = view.getUint16(pos); pos += 2; return value; }
      if (info === 26) { need(4); value = view.getUint32(pos); pos += 4; return value; }
      if (info === 27) {
        need(8);
        value = view.getBigUint64(pos);
        pos += 8;
        return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
      }
      throw new SyntaxError(`CBOR: unsupported additional info ${info} (indefinite length?)`);
    }

    function length(info) {
      const n = argument(info);
      if (typeof n !== "number") throw new RangeError("CBOR: length too large");
      need(n); // every string byte, array item or map key takes at least one byte
      return n;
    }

    function half(h) {
      const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
      if (exp === 0) return sign * frac * 2 ** -24;
      if (exp === 31) return frac ? NaN : sign * Infinity;
      return sign * (1 + frac / 1024) * 2 ** (exp - 15);
    }

    function item(depth) {
      if (depth > MAX_DEPTH) throw new RangeError("CBOR: nested too deeply");
      need(1);
      const initial = bytes[pos++], major = initial >> 5, info = initial & 0x1f;
      switch (major) {
        case 0: return argument(info);
        case 1: { const n = argument(info); return typeof n === "number" ? -1 - n : -1n - n; }
        case 2: case 3: {
          const n = length(info);
          const chunk = bytes.subarray(pos, pos + n);
          pos += n;
          return major === 2 ? chunk.slice() : utf8.decode(chunk);
        }
        case 4: {
          const n = length(info), out = [];
          for (let i = 0; i < n; i++) out.push(item(depth + 1));
          return out;
        }
        case 5: {
          const n = length(info), out = Object.create(null);
          for (let i = 0; i < n; i++) {
            const key = item(depth + 1);
            if (typeof key !== "string" && typeof key !== "number" && typeof key !== "bigint") {
              throw new TypeError("CBOR: map key is not a string or an integer");
            }
            out[String(key)] = item(depth + 1);
          }
          return out;
        }
        case 6: argument(info); return item(depth + 1); // tag: keep the content
        default: // major 7: simple values and floats
          switch (info) {
            case 20: return false;
            case 21: return true;
            case 22: return null;
            case 23: return undefined;
            case 25: { need(2); const v = half(view.getUint16(pos)); pos += 2; return v; }
            case 26: { need(4); const v = view.getFloat32(pos); pos += 4; return v; }
            case 27: { need(8); const v = view.getFloat64(pos); pos += 8; return v; }
            default: throw new SyntaxError(`CBOR: unsupported simple value ${info}`);
          }
      }
    }

    return item(0);
  }

  global.CBOR = Object.freeze({ decode });
})(globalThis);
