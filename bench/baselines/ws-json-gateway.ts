/**
 * Baseline for the benchmark: the market-data gateway most Node.js developers
 * write first, with the `ws` package. It subscribes to NATS `md.sim.>`, keeps
 * the last state of every symbol, and for each tick sends every subscribed
 * client `{"t":"upd","s":...,"d":{changed fields}}` as its own JSON text
 * frame, encoded per client. A new subscription gets an `ack`, then a `snap`
 * of each known symbol. No batching, no backpressure handling, no
 * conflation: nothing clever, and nothing wasteful either (no compression,
 * no per-tick allocation beyond the message itself).
 *
 *   tsx bench/baselines/ws-json-gateway.ts --nats nats://127.0.0.1:4222 --port 8090
 *
 * Client requests: `{"op":"sub","id":1,"symbols":["AAPL"]}`, `{"op":"unsub","symbols":[...]}`.
 * `GET /healthz` answers `{"symbols":N}`.
 */
import { createServer, type Server } from 'node:http';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Unpackr } from 'msgpackr';
import WebSocket, { WebSocketServer } from 'ws';

export interface WsJsonGateway {
  port: number;
  stop(): Promise<void>;
}

type Fields = Record<string, unknown>;
const MAX_SYMBOLS_PER_REQUEST = 2000;

export async function startWsJsonGateway(opts: { natsUrl: string; host?: string; port?: number; subject?: string }): Promise<WsJsonGateway> {
  const state = new Map<string, Fields>();
  const subs = new Map<string, Set<WebSocket>>();
  const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
  const nc: NatsConnection = await connect({ servers: opts.natsUrl, name: 'ws-json-baseline' });

  nc.subscribe(opts.subject ?? 'md.sim.>', {
    callback: (_err, msg) => {
      let tick: Fields;
      try {
        tick = unpackr.unpack(msg.data) as Fields;
      } catch {
        return;
      }
      const s = tick['s'];
      if (typeof s !== 'string') return;
      delete tick['s'];
      const held = state.get(s);
      if (held === undefined) state.set(s, { ...tick });
      else Object.assign(held, tick);
      const clients = subs.get(s);
      if (clients === undefined) return;
      for (const ws of clients) {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ t: 'upd', s, d: tick }));
      }
    },
  });

  const http: Server = createServer((req, res) => {
    if (req.url === '/healthz') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ symbols: state.size }));
    else res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: 256 * 1024 });
  wss.on('connection', (ws) => {
    const mine = new Set<string>();
    ws.on('message', (data, isBinary) => {
      let req: { op?: unknown; id?: unknown; symbols?: unknown };
      try {
        req = isBinary ? {} : (JSON.parse(data.toString()) as typeof req);
      } catch {
        req = {};
      }
      const symbols = Array.isArray(req.symbols) ? req.symbols.filter((x): x is string => typeof x === 'string').slice(0, MAX_SYMBOLS_PER_REQUEST) : null;
      if ((req.op !== 'sub' && req.op !== 'unsub') || symbols === null) {
        ws.send(JSON.stringify({ t: 'err', code: 'BAD_REQUEST' }));
        return;
      }
      for (const s of symbols) {
        if (req.op === 'sub') {
          mine.add(s);
          let set = subs.get(s);
          if (set === undefined) subs.set(s, (set = new Set()));
          set.add(ws);
        } else {
          mine.delete(s);
          subs.get(s)?.delete(ws);
        }
      }
      ws.send(JSON.stringify({ t: 'ack', id: req.id ?? null, op: req.op, ok: symbols }));
      if (req.op === 'sub') {
        for (const s of symbols) {
          const d = state.get(s);
          if (d !== undefined) ws.send(JSON.stringify({ t: 'snap', s, d }));
        }
      }
    });
    ws.on('close', () => {
      for (const s of mine) subs.get(s)?.delete(ws);
    });
    ws.on('error', () => ws.terminate());
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = http.address();
  return {
    port: typeof addr === 'object' && addr !== null ? addr.port : 0,
    async stop() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await nc.close();
    },
  };
}

async function main(): Promise<number> {
  const { values: v } = parseArgs({ options: { nats: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' } } });
  const gw = await startWsJsonGateway({ natsUrl: v.nats ?? 'nats://127.0.0.1:4222', host: v.host ?? '127.0.0.1', port: Number(v.port ?? '8090') });
  process.stdout.write(JSON.stringify({ ev: 'listening', port: gw.port }) + '\n');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await gw.stop();
  return 0;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`ws-json-gateway: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
