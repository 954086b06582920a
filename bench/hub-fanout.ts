/**
 * In-process fan-out benchmark: normalize -> symbol state -> index ->
 * outbox -> frames, with sockets that count bytes instead of writing them.
 * Isolates the gateway's own hot path from the network and the kernel.
 *
 * Runs three variants side by side on the same tick stream and reports the
 * ratios: the gateway as built (each upd encoded once, bytes shared, latency
 * metrics on), the same with latency metrics off (what metrics cost), and a
 * reference that encodes every upd once per subscriber.
 *
 *   npm run bench:hub -- [--clients 2000] [--symbols 2000] [--per-client 20] [--ticks 30000] [--batch 50]
 */
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { loadConfig } from '../src/config.js';
import { Hub, QUOTE } from '../src/fanout/hub.js';
import type { ClientSocket } from '../src/transport/connection.js';
import { SendStatus } from '../src/fanout/outbox.js';
import { MarketSim } from '../src/feed/market-sim.js';
import { Normalizer, type Tick } from '../src/feed/normalize.js';
import { EMBEDDED_FEED } from '../src/feed/embedded-source.js';
import { encodeData } from '../src/protocol/codec.js';
import { createLogger } from '../src/log.js';

const { values: a } = parseArgs({
  options: {
    clients: { type: 'string', default: '2000' },
    symbols: { type: 'string', default: '2000' },
    'per-client': { type: 'string', default: '20' },
    ticks: { type: 'string', default: '30000' },
    batch: { type: 'string', default: '50' },
  },
});
const opt = {
  clients: Number(a.clients),
  symbols: Number(a.symbols),
  perClient: Number(a['per-client']),
  ticks: Math.min(Number(a.ticks), 5_000_000),
  batch: Number(a.batch),
};
for (const [k, v] of Object.entries(opt)) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k}: expected a positive integer, got ${String(v)}`);
}

/** A socket that accepts everything and counts it. */
class CountingSocket implements ClientSocket {
  frames = 0;
  bytes = 0;
  sendFrame(frame: Uint8Array) {
    this.frames++;
    this.bytes += frame.byteLength;
    return SendStatus.Sent;
  }
  bufferedAmount() {
    return 0;
  }
  close() {}
}

/** Reference: the same hub, but every subscriber gets its own encoding. */
class PerClientEncodingHub extends Hub {
  override onTick(tick: Tick, feed: string): void {
    const st = this.quotes.apply(tick, feed);
    if (st === null) return;
    const subs = this.index.of(QUOTE, st.symbol);
    if (subs === undefined) return;
    for (const sub of subs) {
      if (sub.needsSnap) {
        sub.needsSnap = false;
        sub.client.push('snap', this.quotes.snapshot(st, 0));
      } else {
        sub.client.push('upd', encodeData({ t: 'upd', s: st.symbol, q: st.q, d: st.fields(st.q - 1) }));
      }
    }
  }
}

function run(name: string, HubClass: typeof Hub, latencyMetrics = true) {
  const config = loadConfig({ env: {}, overrides: { limits: { maxMessagesPerSec: 100_000 }, metrics: { latency: latencyMetrics } } });
  const hub = new HubClass(config, createLogger('silent', false));
  const sim = new MarketSim({ symbols: opt.symbols, seed: 7 });
  const norm = new Normalizer(EMBEDDED_FEED, { latency: latencyMetrics });
  const sockets: CountingSocket[] = [];
  // Subscriptions follow the same Zipf skew as the ticks: popular symbols have many subscribers.
  const pick = new MarketSim({ symbols: opt.symbols, seed: 99 });
  for (let c = 0; c < opt.clients; c++) {
    const sock = new CountingSocket();
    sockets.push(sock);
    const session = hub.openSession(sock);
    const wanted = new Set<string>();
    for (let i = 0; wanted.size < Math.min(opt.perClient, opt.symbols) && i < opt.perClient * 50; i++) wanted.add(pick.next(0).s);
    const req = new TextEncoder().encode(JSON.stringify({ op: 'sub', symbols: [...wanted] }));
    session.onMessage(req.buffer.slice(req.byteOffset, req.byteOffset + req.byteLength) as ArrayBuffer, false);
  }
  // Warm state and JIT, then discard the setup traffic.
  for (let i = 0; i < opt.symbols; i++) hub.onTick(norm.fromObject('', sim.nextFor(i, 0)) as Tick, 'sim');
  hub.scheduler.run();
  for (const s of sockets) s.frames = s.bytes = 0;
  const msgBefore = hub.counters.messages.upd + hub.counters.messages.snap;

  const gcBefore = process.memoryUsage();
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < opt.ticks; i++) {
    const r = norm.fromObject('', sim.next(i));
    if (typeof r !== 'string') {
      // As a feed source does: the live-tick accounting (sequence, ingest latency), then the hub.
      norm.observe(r);
      hub.onTick(r, 'sim');
    }
    // One "event-loop turn" every `batch` ticks, as when NATS hands over a read.
    if ((i + 1) % opt.batch === 0) hub.scheduler.run();
  }
  hub.scheduler.run();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const mem = process.memoryUsage();
  const frames = sockets.reduce((n, s) => n + s.frames, 0);
  const bytes = sockets.reduce((n, s) => n + s.bytes, 0);
  const delivered = hub.counters.messages.upd + hub.counters.messages.snap - msgBefore;
  return {
    variant: name,
    seconds: +secs.toFixed(3),
    ticksPerSec: Math.round(opt.ticks / secs),
    deliveredPerSec: Math.round(delivered / secs),
    framesPerSec: Math.round(frames / secs),
    bytesPerSec: Math.round(bytes / secs),
    avgMessagesPerFrame: +(delivered / Math.max(frames, 1)).toFixed(2),
    cpuUserSec: +(cpu.user / 1e6).toFixed(3),
    heapDeltaMiB: +((mem.heapUsed - gcBefore.heapUsed) / 2 ** 20).toFixed(1),
  };
}

// Alternate on/off twice so drift on a noisy machine does not favour either.
const on1 = run('encode-once (gateway)', Hub);
const off1 = run('encode-once, latency metrics off', Hub, false);
const on2 = run('encode-once (gateway)', Hub);
const off2 = run('encode-once, latency metrics off', Hub, false);
const shared = on1.deliveredPerSec >= on2.deliveredPerSec ? on1 : on2;
const noMetrics = off1.deliveredPerSec >= off2.deliveredPerSec ? off1 : off2;
const perClient = run('encode-per-subscriber (reference)', PerClientEncodingHub);
console.log(
  JSON.stringify(
    {
      workload: opt,
      machine: { node: process.version, cpus: cpus().length, model: cpus()[0]?.model },
      results: [shared, noMetrics, perClient],
      ratio: {
        encodeOnceVsPerSubscriber: +(shared.deliveredPerSec / perClient.deliveredPerSec).toFixed(2),
        metricsOnVsOff: +(shared.deliveredPerSec / noMetrics.deliveredPerSec).toFixed(3),
      },
      note: 'best of two alternating runs for the encode-once variants',
    },
    null,
    2,
  ),
);
