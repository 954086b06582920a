/**
 * Loopback source addresses for many connections to one server port.
 *
 * Each outgoing TCP connection needs a (source address, source port) pair of
 * its own towards one destination, and the kernel hands out source ports
 * from `net.ipv4.ip_local_port_range` (about 28,000 on Linux by default).
 * Beyond that, connections must come from other source addresses; Linux
 * routes all of 127.0.0.0/8 to the loopback interface, so 127.0.0.2,
 * 127.0.0.3, ... work without any setup. `ws` takes one per connection
 * through its `localAddress` option.
 */
import { readFileSync } from 'node:fs';

/** Size of the kernel's ephemeral port range; 28,232 (Linux default) if it cannot be read. */
export function ephemeralPortCount(): number {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo !== undefined && hi !== undefined && Number.isInteger(lo) && Number.isInteger(hi) && hi >= lo) return hi - lo + 1;
  } catch {
    // not Linux, or no /proc
  }
  return 28_232;
}

/** Default connections per source address: 90% of the ephemeral range, leaving room for ports in TIME_WAIT. */
export function defaultPerAddress(): number {
  return Math.floor(ephemeralPortCount() * 0.9);
}

/** The address `offset` places after `first` in 127.0.0.0/8, e.g. ('127.0.0.2', 1) -> '127.0.0.3'. */
export function loopbackAddress(first: string, offset: number): string {
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(first);
  if (m === null) throw new RangeError(`expected a 127.x.y.z address, got ${JSON.stringify(first)}`);
  const base = (Number(m[1]) << 16) | (Number(m[2]) << 8) | Number(m[3]);
  const v = base + offset;
  if (!Number.isInteger(offset) || offset < 0 || v > 0xfffffe) throw new RangeError(`${first} + ${offset} leaves 127.0.0.0/8`);
  return `127.${(v >> 16) & 255}.${(v >> 8) & 255}.${v & 255}`;
}

/**
 * The source address of connection `index`: connections fill `first`, then
 * the next address, `perAddress` at a time.
 */
export function sourceAddressFor(index: number, perAddress: number, first: string): string {
  return loopbackAddress(first, Math.floor(index / Math.max(1, perAddress)));
}
