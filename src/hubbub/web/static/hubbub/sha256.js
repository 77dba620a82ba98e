// sha256.js: SHA-256 that takes its input in pieces, for files hashed as they stream.

// Int32, not Uint32: V8 keeps small integers unboxed, and the arithmetic is mod 2^32 anyway.
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/**
 * Incremental SHA-256 (FIPS 180-4). WebCrypto's digest() takes the whole input at
 * once and exists only in secure contexts; a file is hashed while it streams.
 */
export class Sha256 {
  constructor() {
    this._state = new Int32Array([
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ]);
    this._block = new Uint8Array(64);
    this._blockLength = 0;
    this._length = 0;
    this._w = new Int32Array(64);
  }

  /** Add bytes (a Uint8Array, ArrayBuffer or string, taken as UTF-8). */
  update(data) {
    let bytes = data;
    if (typeof data === "string") bytes = new TextEncoder().encode(data);
    else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (!(data instanceof Uint8Array)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this._length += bytes.byteLength;
    let offset = 0;
    if (this._blockLength > 0) {
      const take = Math.min(64 - this._blockLength, bytes.byteLength);
      this._block.set(bytes.subarray(0, take), this._blockLength);
      this._blockLength += take;
      offset = take;
      if (this._blockLength < 64) return this;
      this._compress(this._block, 0, 64);
      this._blockLength = 0;
    }
    const whole = offset + Math.floor((bytes.byteLength - offset) / 64) * 64;
    this._compress(bytes, offset, whole);
    offset = whole;
    if (offset < bytes.byteLength) {
      this._block.set(bytes.subarray(offset));
      this._blockLength = bytes.byteLength - offset;
    }
    return this;
  }

  // Compresses every whole 64-byte block of bytes[offset, end), the state in locals
  // throughout (one call per update, not per block: this is what makes it fast in V8).
  _compress(bytes, offset, end) {
    const w = this._w;
    const s = this._state;
    let h0 = s[0], h1 = s[1], h2 = s[2], h3 = s[3], h4 = s[4], h5 = s[5], h6 = s[6], h7 = s[7];
    for (let p = offset; p + 64 <= end; p += 64) {
      for (let i = 0; i < 16; i++) {
        const j = p + i * 4;
        w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
      }
      for (let i = 16; i < 64; i++) {
        let u = w[i - 2];
        const t1 = ((u >>> 17) | (u << 15)) ^ ((u >>> 19) | (u << 13)) ^ (u >>> 10);
        u = w[i - 15];
        const t2 = ((u >>> 7) | (u << 25)) ^ ((u >>> 18) | (u << 14)) ^ (u >>> 3);
        w[i] = (((t1 + w[i - 7]) | 0) + ((t2 + w[i - 16]) | 0)) | 0;
      }
      let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (let i = 0; i < 64; i++) {
        const t1 =
          ((((((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
            ((e & f) ^ (~e & g))) |
            0) +
            ((h + ((K[i] + w[i]) | 0)) | 0)) |
          0;
        const t2 =
          ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
            ((a & b) ^ (a & c) ^ (b & c))) |
          0;
        h = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = b;
        b = a;
        a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0;
      h1 = (h1 + b) | 0;
      h2 = (h2 + c) | 0;
      h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0;
      h5 = (h5 + f) | 0;
      h6 = (h6 + g) | 0;
      h7 = (h7 + h) | 0;
    }
    s[0] = h0;
    s[1] = h1;
    s[2] = h2;
    s[3] = h3;
    s[4] = h4;
    s[5] = h5;
    s[6] = h6;
    s[7] = h7;
  }

  /** The digest in lower-case hex. The hash cannot be updated afterwards. */
  hex() {
    const bitLength = this._length * 8;
    const padding = new Uint8Array(((this._blockLength < 56 ? 56 : 120) - this._blockLength) + 8);
    padding[0] = 0x80;
    const view = new DataView(padding.buffer);
    view.setUint32(padding.length - 8, Math.floor(bitLength / 0x100000000));
    view.setUint32(padding.length - 4, bitLength >>> 0);
    const length = this._length;
    this.update(padding);
    this._length = length;
    return Array.from(this._state, (word) => (word >>> 0).toString(16).padStart(8, "0")).join("");
  }
}
