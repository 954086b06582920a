/**
 * CRC32 with the IEEE polynomial (reflected 0xEDB88320): the value of
 * Node's `zlib.crc32` and Python's `zlib.crc32`. The SDK runs in browsers,
 * which have no zlib, and the gateway's book checksum covers at most 800
 * bytes, so a byte-at-a-time table (1 KiB, built once) is enough and saves
 * the bundle a dependency.
 */

const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  TABLE[n] = c;
}

/** The unsigned CRC32 of the first `length` bytes of `bytes`. */
export function crc32(bytes: Uint8Array, length = bytes.length): number {
  let c = -1;
  for (let i = 0; i < length; i++) c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
