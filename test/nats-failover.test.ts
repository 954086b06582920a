/**
 * Integration: the gateway on a real three-node NATS cluster (routes on
 * loopback), losing the node it is connected to. A frozen node (SIGSTOP:
 * TCP stays open, nothing answers) is noticed by the gateway's pings and
 * left for another node; a killed one at once. Either way clients keep
 * their WebSocket and `q` continues. JetStream warm start and trade recovery
 * run against replicated (R3) streams with a node down. Pings are set short
 * here (400 ms x 2) so the tests take seconds; the defaults detect a silent
 * server within 8-10 s.
 */
import { encode as mpEncode } from '@msgpack/msgpack';
import { jetstream, jetstreamManager, StorageType, type JetStreamClient } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { startNatsCluster, startNatsServer, type NatsCluster, type NatsNode } from './helpers/nats-server.js';
import { StateView, TestClient, type Msg } from './helpers/ws-client.js';

/** Gateway NATS timings for the tests: a silent server is given up after 0.8-1.2 s. */
const FAST = { pingIntervalMs: 400, maxPingsOut: 2, connectTimeoutMs: 1000, reconnectWaitMs: 100 };
/** The bound: fresh data through another node within 15 s of losing one. */
const FAILOVER_MS = 15_000;
/** A trade stream's consumer on a killed node is replaced once JetStream has elected new leaders (seconds) and its silence shows (2 pulls). */
const TRADE_RECOVERY_MS = 20_000;

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
  cleanup = [];
});

async function cluster(jetstream = false): Promise<NatsCluster> {
  const c = await startNatsCluster({ size: 3, jetstream });
  cleanup.push(() => c.stop());
  return c;
}

/** A 3-node JetStream cluster, a connection to it and the streams of the tests (three replicas, file storage). */
async function jsCluster(streams: Array<'MD_SIM' | 'TRADES'>) {
  const nodes = await cluster(true);
  const nc = await connect({ servers: nodes.urls, pingInterval: 400, maxPingOut: 2, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
  cleanup.push(() => nc.close());
  const jsm = await jetstreamManager(nc);
  for (const name of streams) {
    if (name === 'MD_SIM') await jsm.streams.add({ name, subjects: ['md.sim.>'], num_replicas: 3, max_msgs_per_subject: 1, storage: StorageType.File });
    else await jsm.streams.add({ name, subjects: ['trade.>'], num_replicas: 3, storage: StorageType.File });
  }
  return { nodes, nc, jsm, js: jetstream(nc) };
}

/** `n` trades of AAPL through JetStream (ids T-0 ...). */
async function publishTrades(js: ReturnType<typeof jetstream>, n: number) {
  for (let i = 0; i < n; i++) await jsPublish(js, 'trade.AAPL', mpEncode({ s: 'AAPL', px: 100 + i / 100, sz: 1, side: 'b', id: `T-${i}`, ts: 1764100000000 + i }), `t-${i}`);
}

async function gateway(name: string, servers: string[], overrides: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startGateway({ nats: { servers, name, ...FAST }, feeds: [{ name: 'sim', subject: 'md.sim.>', staleAfterMs: 0 }], ...overrides });
  cleanup.push(() => gw.stop());
  return gw;
}

async function client(gw: TestGateway): Promise<TestClient> {
  const c = await TestClient.connect(gw.url);
  cleanup.push(() => c.close());
  return c;
}

/** Publishes a tick for `symbol` every 25 ms (bid = a counter) through `servers`, until stopped. */
async function ticker(servers: string[], symbol: string) {
  const nc: NatsConnection = await connect({ servers, pingInterval: 400, maxPingOut: 2, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
  const t = { i: 0, stop: async () => {} };
  const timer = setInterval(() => {
    if (!nc.isClosed()) nc.publish(`md.sim.${symbol}`, mpEncode({ s: symbol, bid: ++t.i, ask: t.i + 1, ts: Date.now() }));
  }, 25);
  t.stop = async () => {
    clearInterval(timer);
    await nc.close();
  };
  cleanup.push(() => t.stop());
  return t;
}

const upds = (c: TestClient, s: string, from = 0) => c.messages.slice(from).filter((m) => m.t === 'upd' && m['s'] === s);

/**
 * Subscribes to AAPL, waits for live data, loses the node the gateway is on
 * (`lose`), and checks that fresh data comes through another node within
 * 15 s on the same WebSocket, q continuing. Returns the time it took.
 */
async function loseNodeInUse(nodes: NatsCluster, gw: TestGateway, name: string, lose: (n: NatsNode) => Promise<void> | void): Promise<number> {
  const onNode = await nodes.nodeOf(name);
  const pub = await ticker([nodes.nodes.find((n) => n !== onNode)!.url], 'AAPL');
  const c = await client(gw);
  c.send({ op: 'sub', symbols: ['AAPL'] });
  await c.until((x) => upds(x, 'AAPL').length >= 3, 'live updates');

  const lostAt = Date.now();
  await lose(onNode);
  const published = pub.i;
  const cut = c.messages.length;
  const fresh = await c.next((m) => m.t === 'upd' && m['s'] === 'AAPL' && (m['d'] as { bid: number }).bid > published, 'fresh data through another node', FAILOVER_MS, cut);
  const took = Date.now() - lostAt;
  // Same socket, one hello, and q went on from where it was: no gap, no repeat.
  expect(c.closed).toBeNull();
  expect(c.messages.filter((m) => m.t === 'hello')).toHaveLength(1);
  const before = c.messages.slice(0, c.messages.indexOf(fresh)).filter((m) => (m.t === 'upd' || m.t === 'snap') && m['s'] === 'AAPL').at(-1)!;
  expect(fresh['q']).toBe((before['q'] as number) + 1);
  expect(new StateView().apply(c.messages).violations).toEqual([]);
  const now = await nodes.nodeOf(name);
  expect(now).not.toBe(onNode);
  expect((await fetch(`${gw.http}/readyz`)).status).toBe(200);
  expect(await gw.metric('tickgate_feed_reconnects_total', { source: 'nats' })).toBeGreaterThanOrEqual(1);
  return took;
}

describe('NATS cluster failover', () => {
  it('leaves a frozen node for another within seconds; clients keep their socket and q', async () => {
    const nodes = await cluster();
    const gw = await gateway('gw-freeze', nodes.urls);
    let frozen: NatsNode | null = null;
    cleanup.push(async () => frozen?.thaw());
    const took = await loseNodeInUse(nodes, gw, 'gw-freeze', (n) => {
      frozen = n;
      n.freeze();
    });
    expect(took).toBeLessThan(FAILOVER_MS);
    // Noticed by the pings (the TCP connection never closed).
    expect(await gw.metric('tickgate_nats_stale_connections_total')).toBeGreaterThanOrEqual(1);
  });

  it('moves to a cluster-advertised node when the only configured one is killed', async () => {
    const nodes = await cluster();
    // Only n1 is configured: n2 and n3 are known from what the cluster advertises.
    const gw = await gateway('gw-kill', [nodes.nodes[0]!.url]);
    expect((await nodes.nodeOf('gw-kill')).name).toBe('n1');
    const took = await loseNodeInUse(nodes, gw, 'gw-kill', (n) => n.kill());
    expect(took).toBeLessThan(FAILOVER_MS);
  });

  it('is not ready, with its feeds stale, while no server answers, and live again when one does', async () => {
    const nats = await startNatsServer();
    cleanup.push(() => nats.stop());
    const gw = await gateway('gw-single', [nats.url]);
    const pub = await ticker([nats.url], 'MSFT');
    const c = await client(gw);
    c.send({ op: 'sub', symbols: ['MSFT'] });
    await c.until((x) => upds(x, 'MSFT').length >= 2, 'live updates');

    process.kill(nats.pid, 'SIGSTOP');
    let thawed = false;
    cleanup.push(async () => !thawed && process.kill(nats.pid, 'SIGCONT'));
    const frozenAt = Date.now();
    const cut = c.messages.length;
    await c.next((m) => m.t === 'stat' && m['s'] === 'MSFT' && m['st'] === 'stale', 'stat stale', 5000, cut);
    const notReady = await fetch(`${gw.http}/readyz`);
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { reasons: string[] }).reasons).toEqual(['feed source nats is reconnecting']);
    expect(Date.now() - frozenAt).toBeLessThan(5000);
    expect(await gw.metric('tickgate_feed_stale', { feed: 'sim' })).toBe(1);
    expect(await gw.metric('tickgate_ready')).toBe(0);

    process.kill(nats.pid, 'SIGCONT');
    thawed = true;
    const back = c.messages.length;
    await c.next((m) => m.t === 'stat' && m['s'] === 'MSFT' && m['st'] === 'live', 'stat live', 10_000, back);
    const fresh = await c.next((m) => m.t === 'upd' && m['s'] === 'MSFT', 'fresh upd', 5000, back);
    expect((fresh['d'] as { bid: number }).bid).toBeGreaterThan(0);
    expect(c.closed).toBeNull();
    expect(new StateView().apply(c.messages).violations).toEqual([]);
    expect((await fetch(`${gw.http}/readyz`)).status).toBe(200);
    await pub.stop();
  });
});

/** Publishes through JetStream and waits for the ack, retrying (same message id: stored once) while the cluster fails over. */
async function jsPublish(js: JetStreamClient, subject: string, data: Uint8Array, msgID: string): Promise<void> {
  // A stream leader's election takes a few seconds; "no responders" comes back at once meanwhile.
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await js.publish(subject, data, { msgID, timeout: 1000 });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Waits until the stream has a leader that is not `not`, and returns its name. */
async function streamLeader(nc: NatsConnection, stream: string, not?: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const leader = await jetstreamManager(nc, { timeout: 1000 })
      .then((jsm) => jsm.streams.info(stream))
      .then((si) => si.cluster?.leader)
      .catch(() => undefined);
    if (leader && leader !== not) return leader;
    if (Date.now() > deadline) throw new Error(`stream ${stream} has no leader (other than ${not})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('clustered JetStream (R3)', () => {
  it('warm-starts from an R3 stream whose leader is gone', { timeout: 60_000 }, async () => {
    const { nodes, nc, jsm, js } = await jsCluster(['MD_SIM']);
    const last = new Map<string, Record<string, number>>();
    for (let i = 0; i < 200; i++) {
      const s = `W${i % 40}`;
      const tick = { bid: 100 + i, ask: 101 + i, volume: i, ts: 1764100000000 + i };
      last.set(s, tick);
      await jsPublish(js, `md.sim.${s}`, mpEncode({ s, ...tick }), `w-${i}`);
    }
    // The stream's leader goes away; the other two elect a new one and keep every message.
    const leader = await streamLeader(nc, 'MD_SIM');
    await nodes.nodes.find((n) => n.name === leader)!.kill();
    await streamLeader(nc, 'MD_SIM', leader);
    // A freshly elected leader can answer before it has caught up: wait until it reports the 40 last ticks.
    const caughtUp = Date.now() + 20_000;
    while ((await jsm.streams.info('MD_SIM').then((si) => si.state.messages, () => -1)) !== 40) {
      if (Date.now() > caughtUp) throw new Error('the new stream leader never reported the 40 messages');
      await new Promise((r) => setTimeout(r, 200));
    }

    const gw = await gateway('gw-warm', nodes.urls, { feeds: [{ name: 'sim', subject: 'md.sim.>', jetstream: 'MD_SIM', staleAfterMs: 0 }] });
    expect(await gw.metric('tickgate_ingest_warm_ticks_total', { feed: 'sim' })).toBe(40);
    const c = await client(gw);
    const symbols = [...last.keys()];
    c.send({ op: 'sub', symbols });
    const view = await c.until((x) => {
      const v = new StateView().apply(x.messages);
      return v.state.size === symbols.length ? v : undefined;
    }, 'a snap per symbol');
    for (const s of symbols) expect(view.state.get(s)!.d).toEqual(last.get(s));
  });

  it('warm-starts and reads trades with a node down although JetStream may place their consumers on it', { timeout: 60_000 }, async () => {
    const { nodes, nc, js } = await jsCluster(['MD_SIM', 'TRADES']);
    for (let i = 0; i < 40; i++) await jsPublish(js, `md.sim.W${i}`, mpEncode({ s: `W${i}`, bid: 100 + i, ask: 101 + i, ts: 1764100000000 + i }), `w-${i}`);
    await publishTrades(js, 30);
    // A node that leads neither the quote stream nor the cluster goes: the streams keep their quorum, and for the
    // rest of the test the cluster still takes the node to be up, so about one consumer in three is placed on it and
    // its create request goes unanswered. (If it led the trade stream, the other two elect a new leader first.)
    const streamLead = await streamLeader(nc, 'MD_SIM');
    const jsz = (await (await fetch(`http://127.0.0.1:${nodes.nodes[0]!.httpPort}/jsz`)).json()) as { meta_cluster?: { leader?: string } };
    const lost = nodes.nodes.find((n) => n.name !== streamLead && n.name !== jsz.meta_cluster?.leader)!;
    await lost.kill();
    await streamLeader(nc, 'TRADES', lost.name);
    // Each gateway warm-starts once and reads the trade stream, each within 10 s (requests of 1 s). One that gave a
    // request 5 s would load nothing after two placements on the lost node (warm start) or fail to start after one
    // (trades): at least one of eight gateways would, more than 99 times in 100.
    const loaded: number[] = [];
    const trades: number[] = [];
    for (let i = 0; i < 8; i++) {
      const gw = await startGateway({
        nats: { servers: nodes.urls.filter((u) => u !== lost.url), name: `gw-warm-${i}`, ...FAST, warmTimeoutMs: 10_000 },
        feeds: [
          { name: 'sim', subject: 'md.sim.>', jetstream: 'MD_SIM', staleAfterMs: 0 },
          { name: 'tape', kind: 'trade', subject: 'trade.>', jetstream: 'TRADES', staleAfterMs: 0 },
        ],
      });
      try {
        loaded.push(await gw.metric('tickgate_ingest_warm_ticks_total', { feed: 'sim' }));
        trades.push(await gw.metric('tickgate_trades_total', { feed: 'tape' }));
      } finally {
        await gw.stop();
      }
    }
    expect(loaded).toEqual(Array(8).fill(40));
    expect(trades).toEqual(Array(8).fill(30));
  });

  it('starts with a trade feed right after the cluster\'s meta leader is lost, reading every trade', { timeout: 60_000 }, async () => {
    const { nodes, js } = await jsCluster(['TRADES']);
    await publishTrades(js, 30);
    // The meta leader alone answers JetStream's account check; while the other two elect a new one nothing does.
    const jsz = (await (await fetch(`http://127.0.0.1:${nodes.nodes[0]!.httpPort}/jsz`)).json()) as { meta_cluster?: { leader?: string } };
    const lost = nodes.nodes.find((n) => n.name === jsz.meta_cluster?.leader)!;
    await lost.kill();
    const gw = await gateway('gw-meta', nodes.urls.filter((u) => u !== lost.url), {
      nats: { servers: nodes.urls.filter((u) => u !== lost.url), name: 'gw-meta', ...FAST, warmTimeoutMs: 10_000 },
      feeds: [{ name: 'tape', kind: 'trade', subject: 'trade.>', jetstream: 'TRADES', staleAfterMs: 0 }],
    });
    expect(await gw.metric('tickgate_trades_total', { feed: 'tape' })).toBe(30);
  });

  it('recovers trades from an R3 stream across a killed node: same socket loses nothing, a resume on another gateway neither', async () => {
    const { nodes } = await jsCluster(['TRADES']);
    const feeds = [{ name: 'tape', kind: 'trade', subject: 'trade.>', jetstream: 'TRADES', staleAfterMs: 0 }];
    const a = await gateway('gw-ta', nodes.urls, { feeds });
    const b = await gateway('gw-tb', nodes.urls, { feeds });
    const onNode = await nodes.nodeOf('gw-ta');
    // The publisher avoids the node about to go (its acks would wait for the failover too).
    const pubNc = await connect({ servers: nodes.nodes.filter((n) => n !== onNode).map((n) => n.url), pingInterval: 400, maxPingOut: 2, maxReconnectAttempts: -1 });
    cleanup.push(() => pubNc.close());
    const js = jetstream(pubNc);
    const S = 'AAPL';
    const trade = (i: number) => ({ s: S, px: 100 + (i % 50) / 100, sz: 1 + (i % 7), side: i % 2 ? 'b' : 's', id: `T-${i}`, ts: 1764100000000 + i });
    const publish = async (from: number, to: number) => {
      for (let i = from; i < to; i++) await jsPublish(js, `trade.${S}`, mpEncode(trade(i)), `t-${i}`);
    };
    const tradesOf = (c: TestClient) => c.messages.filter((m) => m.t === 'trade' && m['s'] === S);

    const c = await client(a);
    c.send({ op: 'sub', id: 1, channel: 'trade', symbols: [S] });
    const ack = await c.next((m) => m.t === 'ack', 'ack');
    const epoch = (ack['pos'] as Record<string, { e: string }>)[S]!.e;
    expect(epoch).toMatch(/^TRADES\./);
    await publish(0, 300);
    await c.until((x) => tradesOf(x).length >= 300, '300 trades');

    // The node gateway A reads its stream through is killed while trades go on.
    await onNode.kill();
    await publish(300, 600);
    await c.until((x) => tradesOf(x).length >= 600, 'every trade on the same socket after the failover', TRADE_RECOVERY_MS);
    expect(c.closed).toBeNull();
    expect(tradesOf(c).map((m) => m['id'])).toEqual(Array.from({ length: 600 }, (_, i) => `T-${i}`));

    // The client drops and resumes on gateway B: the same positions, from the same stream.
    c.ws.terminate();
    const got = tradesOf(c).slice(0, 450);
    const other = await client(b);
    other.send({ op: 'sub', id: 2, channel: 'trade', symbols: [S], since: { [S]: { e: epoch, q: got.at(-1)!['q'] } } });
    const ack2 = await other.next((m) => m.t === 'ack', 'resume ack');
    expect(ack2['rec']).toEqual({ [S]: true });
    await publish(600, 700);
    await other.until((x) => got.length + tradesOf(x).length >= 700, 'the rest after the resume', TRADE_RECOVERY_MS);
    const all: Msg[] = [...got, ...tradesOf(other)];
    expect(all.map((m) => m['id'])).toEqual(Array.from({ length: 700 }, (_, i) => `T-${i}`));
    const qs = all.map((m) => m['q'] as number);
    expect(qs.every((q, i) => i === 0 || q > qs[i - 1]!)).toBe(true);
  }, 60_000);
});
