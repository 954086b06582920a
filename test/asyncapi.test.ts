/**
 * docs/asyncapi.yaml, the protocol in machine-readable form: valid AsyncAPI
 * 3.0.0 by @asyncapi/parser; naming exactly the message types, ops and codes
 * the code has (lists taken from the code, both directions); and describing
 * what a running gateway really sends: every frame and message from real
 * connections (quotes, a book, trades, acks of each op, errors, heartbeats,
 * byes) validates against its schema, with no key the document lacks.
 */
import { readFileSync } from 'node:fs';
import { decode, encode } from '@msgpack/msgpack';
import { DiagnosticSeverity, Parser, type AsyncAPIDocumentInterface, type Diagnostic } from '@asyncapi/parser';
import { Ajv, type ValidateFunction } from 'ajv';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REJECT_CODES } from '../src/access/admission.js';
import type { ChannelStatus } from '../src/fanout/channel.js';
import { HubCounters } from '../src/fanout/counters.js';
import { decodeRequest, isRequestError } from '../src/protocol/codec.js';
import { CANONICAL_FIELDS } from '../src/protocol/fields.js';
import {
  BOOK_DEPTHS,
  BYE_CODES,
  CHANNELS,
  CLIENT_OPS,
  CLOSE_CODE,
  ERROR_CODES,
  PROTOCOL_VERSION,
  SYMBOL_STATUSES,
  type SymbolStatus,
} from '../src/protocol/messages.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { TestClient, type Msg } from './helpers/ws-client.js';

type Json = Record<string, unknown>;

const text = readFileSync(new URL('../docs/asyncapi.yaml', import.meta.url), 'utf8');
const parser = new Parser();

/**
 * Diagnostics that do not fail the test, each with why. The parser suggests
 * the newest AsyncAPI version (information, not a warning); the document
 * targets 3.0.0 on purpose, the version every 3.x tool reads.
 */
const EXPLAINED: ReadonlySet<string> = new Set(['asyncapi-latest-version']);

const describeDiagnostic = (d: Diagnostic) => `${DiagnosticSeverity[d.severity]} ${d.code} at ${d.path.join('.') || '(root)'}: ${d.message}`;

let doc: AsyncAPIDocumentInterface;
let diagnostics: Diagnostic[];

/** The document as parsed: $refs resolved, the parser's own x-parser-* annotations left in. */
let json: Json;

/** Drops specification extensions (x-parser-schema-id and the like), which are not JSON Schema keywords. */
function plain<T>(v: T): T {
  if (Array.isArray(v)) return v.map(plain) as T;
  if (v === null || typeof v !== 'object') return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('x-')) out[k] = plain(x);
  return out as T;
}

/**
 * The same schema with every object that lists its properties closed
 * (`additionalProperties: false` where it says nothing): the document leaves
 * objects open for clients, and this checks that the server sends no key the
 * document does not name. Objects that declare their extra keys (quote
 * fields, per-symbol maps) keep their own rule.
 */
function closed(schema: Json): Json {
  const s: Json = { ...schema };
  if (s['type'] === 'object' && s['properties'] !== undefined && s['additionalProperties'] === undefined) s['additionalProperties'] = false;
  for (const k of ['properties'] as const) {
    const props = s[k] as Record<string, Json> | undefined;
    if (props) s[k] = Object.fromEntries(Object.entries(props).map(([n, p]) => [n, closed(p)]));
  }
  for (const k of ['items', 'additionalProperties', 'not'] as const) {
    const v = s[k];
    if (Array.isArray(v)) s[k] = v.map((x: Json) => closed(x));
    else if (v !== null && typeof v === 'object') s[k] = closed(v as Json);
  }
  for (const k of ['allOf', 'anyOf', 'oneOf'] as const) {
    const v = s[k] as Json[] | undefined;
    if (v) s[k] = v.map(closed);
  }
  return s;
}

// Strict, so a keyword ajv does not know fails the test, except strictRequired: the
// schemas say "key absent" as `not: { required: [key] }`, which names no property.
const ajv = new Ajv({ strict: true, strictRequired: false, allErrors: true, allowUnionTypes: true });

/** Per component message: its payload schema, compiled open and closed. */
const validators = new Map<string, { open: ValidateFunction; closed: ValidateFunction; payload: Json }>();

/** Server message ids by `t` (and `op` for acks): how a received message finds its schema. */
const serverMessageFor = new Map<string, string>();
/** Client message ids by `op`. */
const clientMessageFor = new Map<string, string>();

let frameValidator: ValidateFunction;

const keyOf = (t: unknown, op: unknown) => (t === 'ack' ? `ack:${String(op)}` : String(t));

const errorsOf = (v: ValidateFunction) => (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`).join('; ');

function schemaAt(path: string): Json {
  let v: unknown = json;
  for (const k of path.split('.')) v = (v as Json)[k];
  return plain(v as Json);
}

const componentSchema = (name: string) => schemaAt(`components.schemas.${name}`);

function sortedStrings(xs: Iterable<unknown>): string[] {
  return [...xs].map(String).sort();
}

beforeAll(async () => {
  const parsed = await parser.parse(text);
  diagnostics = parsed.diagnostics;
  if (parsed.document === undefined) throw new Error(`docs/asyncapi.yaml does not parse:\n${diagnostics.map(describeDiagnostic).join('\n')}`);
  doc = parsed.document;
  json = doc.json() as unknown as Json;
  for (const m of doc.components().messages()) {
    const payload = plain(m.payload()!.json() as Json);
    validators.set(m.id(), { open: ajv.compile(payload), closed: ajv.compile(closed(payload)), payload });
    const props = payload['properties'] as Record<string, Json>;
    const t = props['t']?.['const'];
    const op = props['op']?.['const'];
    if (t !== undefined) {
      expect(serverMessageFor.has(keyOf(t, op)), `two messages for t ${String(t)}`).toBe(false);
      serverMessageFor.set(keyOf(t, op), m.id());
    } else {
      expect(typeof op, `${m.id()} has neither a const t nor a const op`).toBe('string');
      clientMessageFor.set(op as string, m.id());
    }
  }
  frameValidator = ajv.compile(closed(componentSchema('ServerFrame')));
});

describe('docs/asyncapi.yaml as AsyncAPI', () => {
  it('is AsyncAPI 3.0.0 with no error, warning or other unexplained diagnostic', async () => {
    // parse() runs the same rules as validate(); its diagnostics are those of the document as loaded in beforeAll.
    const all = diagnostics;
    if (all.length > 0) console.log(`asyncapi diagnostics:\n${all.map(describeDiagnostic).join('\n')}`);
    const errors = all.filter((d) => d.severity === DiagnosticSeverity.Error);
    expect(errors.map(describeDiagnostic)).toEqual([]);
    expect(all.filter((d) => !EXPLAINED.has(String(d.code))).map(describeDiagnostic)).toEqual([]);
    expect(doc.version()).toBe('3.0.0');
    expect(doc.defaultContentType()).toBe('application/msgpack');
  });

  it('is checked for real: a broken copy of the document gets error diagnostics where it breaks', async () => {
    // One fault (a parse is slow, and a first fault can hide others). The parser does not
    // check message examples against their payloads; the examples test below does, with ajv.
    const at = '      description: Every bye carries retryMs except AUTH_EXPIRED, which never does.\n';
    const broken = text.replace(at, `${at}      minProperties: many\n`);
    expect(broken).not.toBe(text);
    const errs = (await parser.validate(broken)).filter((d) => d.severity === DiagnosticSeverity.Error);
    expect(
      errs.map((d) => d.path.join('.')),
      errs.map(describeDiagnostic).join('\n'),
    ).toContain('components.schemas.Bye.minProperties');
  });

  it('describes the server: ws at /v1/stream, protocol version 1, the security schemes of the upgrade', () => {
    const servers = doc.servers().all();
    expect(sortedStrings(servers.map((s) => s.protocol()))).toEqual(['ws', 'wss']);
    const stream = doc.channels().get('stream')!;
    expect(stream.address()).toBe(`/v${PROTOCOL_VERSION}/stream`);
    expect(doc.info().version()).toBe(String(PROTOCOL_VERSION));
    expect(componentSchema('Hello')['properties']).toMatchObject({ v: { const: PROTOCOL_VERSION } });
    for (const s of servers) {
      const schemes = s.security().flatMap((req) => req.all().map((r) => r.scheme()));
      expect(sortedStrings(schemes.map((x) => `${x.type()}:${x.scheme() ?? x.in() ?? ''}:${x.name() ?? ''}`))).toEqual([
        'http:bearer:',
        'http:bearer:',
        'httpApiKey:header:Sec-WebSocket-Protocol',
        'httpApiKey:query:token',
      ]);
    }
    expect(componentSchema('UpgradeRefusal')['properties']).toMatchObject({ code: { enum: [...REJECT_CODES] } });
  });
});

describe('docs/asyncapi.yaml against the code', () => {
  it('names every message type the server sends and every op it accepts, and nothing else', () => {
    const sends = new Set<string>();
    const receives = new Set<string>();
    for (const op of doc.operations()) {
      const ids = op.messages().all().map((m) => m.id());
      if (op.action() === 'send') {
        for (const id of ids) sends.add(id);
        // Every request is answered: its reply lists what can come back.
        const reply = op.reply();
        expect(reply, `${op.id()} has no reply`).toBeDefined();
        for (const m of reply!.messages().all()) receives.add(m.id());
      } else {
        for (const id of ids) receives.add(id);
      }
    }
    const payloadOf = (id: string) => validators.get(id)!.payload['properties'] as Record<string, Json>;
    const docTypes = new Set([...receives].map((id) => payloadOf(id)['t']!['const']));
    const docOps = [...sends].map((id) => payloadOf(id)['op']!['const']);

    // What the server can send: every push is labelled with a key of HubCounters.messages (tickgate_messages_sent_total{type}).
    expect(sortedStrings(docTypes)).toEqual(sortedStrings(Object.keys(new HubCounters().messages)));
    // What it accepts: ClientRequest's ops (CLIENT_OPS follows the union, checked by the compiler).
    expect(sortedStrings(docOps)).toEqual(sortedStrings(CLIENT_OPS));
    // Every component message is used by an operation, sent or received, never both.
    expect(sortedStrings([...sends, ...receives])).toEqual(sortedStrings(doc.components().messages().all().map((m) => m.id())));
    expect([...sends].filter((id) => receives.has(id))).toEqual([]);
  });

  it('answers each op with its own ack, pong or symbols reply, or err', () => {
    for (const op of doc.operations().filterBySend()) {
      const request = op.messages().all()[0]!;
      const reqOp = (validators.get(request.id())!.payload['properties'] as Record<string, Json>)['op']!['const'];
      const replies = op
        .reply()!
        .messages()
        .all()
        .map((m) => validators.get(m.id())!.payload['properties'] as Record<string, Json>);
      expect(replies.map((p) => p['t']!['const']), String(reqOp)).toContain('err');
      for (const p of replies) if (p['t']!['const'] === 'ack') expect(p['op']!['const'], String(reqOp)).toBe(reqOp);
    }
  });

  it('lists the code lists of the code: error, bye and close codes, statuses, channels, depths, fields', () => {
    expect(componentSchema('ErrorCode')['enum']).toEqual([...ERROR_CODES]);
    expect(componentSchema('ByeCode')['enum']).toEqual([...BYE_CODES]);
    expect(doc.components().messages().get('bye')!.extensions().get('x-close-codes')?.value()).toEqual(CLOSE_CODE);
    expect(componentSchema('SymbolStatus')['enum']).toEqual([...SYMBOL_STATUSES]);
    expect(componentSchema('Channel')['enum']).toEqual([...CHANNELS]);
    const notQuote = CHANNELS.filter((c) => c !== 'quote');
    for (const m of ['Stat', 'SubAck', 'UnsubAck']) {
      const p = componentSchema(m)['properties'] as Record<string, Json>;
      expect((p['ch'] ?? p['channel'])!['enum'], m).toEqual(notQuote);
    }
    expect(componentSchema('BookDepth')['enum']).toEqual([...BOOK_DEPTHS]);
    expect(Object.keys(componentSchema('Fields')['properties'] as Json)).toEqual([...CANONICAL_FIELDS]);
    // The status the kinds send and the one the protocol types declare are one set (a compile-time check).
    const sameStatus: [ChannelStatus] extends [SymbolStatus] ? ([SymbolStatus] extends [ChannelStatus] ? true : false) : false = true;
    expect(sameStatus).toBe(true);
  });

  it('its request examples decode as their op, as MessagePack and as JSON, and validate', () => {
    for (const m of doc.components().messages()) {
      const v = validators.get(m.id())!;
      const examples = m.examples().all();
      expect(examples.length, `${m.id()} has no example`).toBeGreaterThan(0);
      for (const ex of examples) {
        const payload = ex.payload() as Json;
        expect(v.open(payload), `${m.id()} example ${ex.name() ?? ''}: ${errorsOf(v.open)}`).toBe(true);
        if (clientMessageFor.has(String(payload['op'])) && payload['t'] === undefined) {
          for (const r of [decodeRequest(toArrayBuffer(encode(payload)), true), decodeRequest(toArrayBuffer(new TextEncoder().encode(JSON.stringify(payload))), false)]) {
            expect(isRequestError(r) ? r : r.op, JSON.stringify(payload)).toBe(payload['op']);
          }
        }
      }
    }
  });

  it('rejects in its request schemas what the codec rejects as BAD_REQUEST, and has no op the codec does not know', () => {
    const long = (n: number) => 'x'.repeat(n);
    const bad: Json[] = [
      { op: 'sub', symbols: 'AAPL' },
      { op: 'sub', symbols: ['AAPL'], throttleMs: -1 },
      { op: 'sub', symbols: ['AAPL'], throttleMs: 1.5 },
      { op: 'sub', symbols: ['AAPL'], channel: 'news' },
      { op: 'sub', symbols: ['AAPL'], channel: 'book', depth: 7 },
      { op: 'sub', symbols: ['AAPL'], depth: 10 },
      { op: 'sub', symbols: ['AAPL'], last: 5 },
      { op: 'sub', symbols: ['AAPL'], channel: 'book', since: {} },
      { op: 'sub', symbols: ['AAPL'], channel: 'trade', last: -1 },
      { op: 'sub', symbols: ['AAPL'], channel: 'trade', since: { AAPL: { e: 'x' } } },
      { op: 'sub', symbols: ['AAPL'], channel: 'trade', since: { AAPL: { e: 'x', q: -1 } } },
      { op: 'sub', symbols: ['AAPL'], snapshot: 'yes' },
      { op: 'sub', symbols: ['AAPL'], id: { a: 1 } },
      { op: 'sub', symbols: ['AAPL'], id: long(129) },
      { op: 'sub', symbols: ['AAPL'], id: 1.5 },
      { op: 'unsub' },
      { op: 'unsub', symbols: ['AAPL'], channel: 'news' },
      { op: 'ping', ts: { a: 1 } },
      { op: 'ping', ts: long(65) },
      { op: 'symbols', limit: 0 },
      { op: 'symbols', prefix: long(65) },
      { op: 'symbols', prefix: 5 },
      { op: 'auth' },
      { op: 'auth', token: '' },
      { op: 'auth', token: long(8193) },
    ];
    for (const req of bad) {
      const r = decodeRequest(toArrayBuffer(encode(req)), true);
      expect(isRequestError(r) ? r.code : r, JSON.stringify(req)).toBe('BAD_REQUEST');
      const v = validators.get(clientMessageFor.get(req['op'] as string)!)!;
      expect(v.open(req), `the schema accepts ${JSON.stringify(req)}`).toBe(false);
    }
    const unknown = decodeRequest(toArrayBuffer(encode({ op: 'subscribe', id: 3 })), true);
    expect(isRequestError(unknown) ? unknown.code : unknown).toBe('UNKNOWN_OP');
    expect(clientMessageFor.has('subscribe')).toBe(false);
  });
});

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

describe('a running gateway sends what docs/asyncapi.yaml describes', () => {
  const SECRET = 'a-secret-of-at-least-32-bytes-for-hs256-signing!';
  const key = new TextEncoder().encode(SECRET);
  const token = (ent: string[], sub = 'alice') => new SignJWT({ ent }).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(key);
  let gw: TestGateway;
  let stopped = false;
  let url: string;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    gw = await startGateway({
      embedded: { symbols: 40, ticksPerSec: 2000, books: 5, bookChangesPerSec: 1000, tradesPerSec: 1000 },
      ws: { heartbeatMs: 200 },
      // A short history, so a throttled tape falls out of it and gets a gap.
      trade: { history: { size: 8 } },
      limits: { maxSymbolsPerClient: 20, subscribeTimeoutMs: 600 },
      // No clock skew allowance, so a token that expires in 2 s ends its connection then.
      auth: { mode: 'jwt', jwt: { secret: SECRET, clockSkewSec: 0 } },
    });
    // The endpoint as the document gives it.
    url = `ws://127.0.0.1:${gw.gateway.port}${doc.channels().get('stream')!.address()!}`;
  });

  afterAll(async () => {
    for (const c of clients) await c.close();
    if (!stopped) await gw?.stop();
  });

  function connect(target: string, opts: { protocols?: string[]; headers?: Record<string, string> } = {}): Promise<TestClient> {
    const ws = new WebSocket(target, opts.protocols ?? [], { headers: opts.headers ?? {} });
    const c = TestClient.wrap(ws);
    clients.push(c);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
    });
  }

  it('on every security scheme, for quotes, a book, trades, each op and its errors, heartbeats and byes', async () => {
    // No token: the refusal body is an UpgradeRefusal.
    const refusal = await new Promise<{ status: number; body: Json }>((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) as Json });
        });
      });
      ws.once('open', () => reject(new Error('the upgrade without a token was accepted')));
      ws.once('error', () => undefined);
    });
    expect(refusal.status).toBe(401);
    const refusalSchema = ajv.compile(closed(componentSchema('UpgradeRefusal')));
    expect(refusalSchema(refusal.body), errorsOf(refusalSchema)).toBe(true);
    expect(refusal.body['code']).toBe('AUTH_REQUIRED');

    const all = await token(['*']);
    // The bearer header (jwtBearer), the query (queryToken), the subprotocols (subprotocolToken).
    const a = await connect(url, { headers: { Authorization: `Bearer ${all}` } });
    const b = await connect(`${url}?token=${encodeURIComponent(all)}`);
    const idle = await connect(url, { protocols: ['tickgate.v1', `bearer.${all}`] });
    expect(idle.ws.protocol).toBe('tickgate.v1');
    // A token about to expire: bye AUTH_EXPIRED, without retryMs.
    const expiring = await new SignJWT({ ent: ['*'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('carol')
      .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
      .sign(key);
    const short = await connect(url, { headers: { Authorization: `Bearer ${expiring}` } });
    for (const c of [a, b, idle, short]) await c.next((m) => m.t === 'hello', 'hello');
    short.send({ op: 'sub', id: 1, symbols: ['EUR/USD'] });

    const sent: Json[] = [];
    const send = (c: TestClient, req: Json, as: 'msgpack' | 'json' = 'msgpack') => {
      sent.push(req);
      c.send(req, as);
    };
    const reply = (c: TestClient, id: unknown, what: string) => c.next((m) => m['id'] === id, what);

    send(a, { op: 'sub', id: 1, symbols: ['AAPL', 'EUR/USD', 'ZZZZ', ''] });
    send(a, { op: 'sub', id: 2, symbols: ['BTC/USDT'], throttleMs: 100 }, 'json');
    send(a, { op: 'sub', id: 3, channel: 'book', symbols: ['AAPL'], depth: 10 });
    send(a, { op: 'sub', id: 4, channel: 'trade', symbols: ['AAPL'], last: 3 });
    const tradeAck = await reply(a, 4, 'trade ack');
    const pos = (tradeAck['pos'] as Record<string, { e: string; q: number }>)['AAPL']!;
    send(a, { op: 'sub', id: 5, channel: 'trade', symbols: ['AAPL'], since: { AAPL: pos } });
    // A throttled tape on a busy symbol, with an 8-trade history: it falls behind and gets a gap.
    send(b, { op: 'sub', id: 1, channel: 'trade', symbols: ['AAPL', 'EUR/USD', 'BTC/USDT'], throttleMs: 500 });
    const has = (c: TestClient, p: (m: Msg) => boolean) => c.messages.some(p);
    await a.until(
      (c) =>
        ['snap', 'upd', 'book', 'bupd', 'trade'].every((t) => has(c, (m) => m.t === t)) &&
        has(c, (m) => m.t === 'stat' && m['s'] === 'ZZZZ') &&
        has(c, (m) => m.t === 'upd' && m['s'] === 'BTC/USDT'),
      'quotes, a book and trades',
      8000,
    );
    await b.next((m) => m.t === 'gap', 'a gap on the throttled tape', 8000);

    send(a, { op: 'ping', id: 6, ts: 1718000001000.5 });
    send(a, { op: 'ping', id: 'p', ts: 'client clock' });
    send(a, { op: 'symbols', id: 7, prefix: 'EUR', limit: 1 });
    send(a, { op: 'unsub', id: 8, symbols: ['ZZZZ'] });
    send(a, { op: 'unsub', id: 9, channel: 'book', symbols: ['AAPL'] }, 'json');
    send(a, { op: 'sub', id: 10, symbols: Array.from({ length: 25 }, (_, i) => `X${i}`) });
    a.send({ op: 'subscribe', id: 11 });
    a.send({ op: 'sub', id: 12, symbols: 'AAPL' }, 'json');
    a.sendRaw(Buffer.from([0xc1]), true);
    // A narrower token: the tape (feed simtrade) is no longer allowed and comes back in the ack's err.
    send(a, { op: 'auth', id: 13, token: await token(['sim:*']) });
    send(a, { op: 'auth', id: 14, token: await token(['*'], 'bob') });
    for (const id of [6, 'p', 7, 8, 9, 10, 11, 12, 13, 14]) await reply(a, id, `reply to ${String(id)}`);
    await a.next((m) => m.t === 'err' && m['id'] === undefined, 'err for an undecodable frame');

    // The connection that subscribes to nothing: heartbeats, then bye IDLE.
    await idle.next((m) => m.t === 'bye', 'bye IDLE', 5000);
    await idle.until((c) => c.closed, 'close after bye');
    await short.next((m) => m.t === 'bye', 'bye AUTH_EXPIRED', 5000);
    await short.until((c) => c.closed, 'close after bye AUTH_EXPIRED');
    // A shutdown: bye DRAINING to everyone still connected.
    stopped = true;
    await gw.stop();
    for (const c of [a, b]) await c.until((x) => x.closed, 'close after bye DRAINING');

    // What we sent is what the document says a client may send.
    for (const req of sent) {
      const v = validators.get(clientMessageFor.get(req['op'] as string)!)!;
      expect(v.open(req), `${JSON.stringify(req)}: ${errorsOf(v.open)}`).toBe(true);
    }

    // Every frame an array of documented messages; every message valid against its own schema, with no undocumented key.
    const seen = new Map<string, number>();
    let frames = 0;
    for (const c of clients) {
      for (const frame of c.frames) {
        frames++;
        expect(frameValidator(frame), `frame ${JSON.stringify(frame).slice(0, 500)}: ${errorsOf(frameValidator).slice(0, 1000)}`).toBe(true);
        for (const m of frame) {
          const id = serverMessageFor.get(keyOf(m.t, m['op']));
          expect(id, `no message in the document for ${JSON.stringify(m)}`).toBeDefined();
          const v = validators.get(id!)!.closed;
          expect(v(m), `${id}: ${JSON.stringify(m)}: ${errorsOf(v)}`).toBe(true);
          seen.set(id!, (seen.get(id!) ?? 0) + 1);
        }
      }
    }
    const serverIds = [...serverMessageFor.values()];
    expect(sortedStrings(seen.keys())).toEqual(sortedStrings(serverIds));
    console.log(`asyncapi: ${frames} frames, ${[...seen.values()].reduce((x, y) => x + y, 0)} messages validated: ${[...seen].map(([k, n]) => `${k} ${n}`).join(', ')}`);

    // The codes the run was meant to produce, in the places the document puts them.
    const msgs = clients.flatMap((c) => c.messages);
    const ackErrCodes = new Set(msgs.filter((m) => m.t === 'ack').flatMap((m) => (m['err'] as Json[]).map((e) => e['code'])));
    expect(sortedStrings(ackErrCodes)).toEqual(['BAD_SYMBOL', 'LIMIT_EXCEEDED', 'NOT_ENTITLED']);
    expect(sortedStrings(new Set(msgs.filter((m) => m.t === 'err').map((m) => m['code'])))).toEqual(['AUTH_INVALID', 'BAD_REQUEST', 'UNKNOWN_OP']);
    expect(sortedStrings(new Set(msgs.filter((m) => m.t === 'bye').map((m) => m['code'])))).toEqual(['AUTH_EXPIRED', 'DRAINING', 'IDLE']);
    // Recovered or not depends on how far AAPL ran past an 8-trade history in one round trip; the schema checked its shape.
    expect(Object.keys((msgs.find((m) => m.t === 'ack' && m['id'] === 5)?.['rec'] ?? {}) as Json)).toEqual(['AAPL']);
    expect(typeof msgs.find((m) => m.t === 'ack' && m['id'] === 13)?.['exp']).toBe('number');
    // The close code after each bye, as x-close-codes says.
    const closeCodes = doc.components().messages().get('bye')!.extensions().get('x-close-codes')!.value() as Record<string, number>;
    expect(idle.closed?.code).toBe(closeCodes['IDLE']);
    expect(short.closed?.code).toBe(closeCodes['AUTH_EXPIRED']);
    for (const c of [a, b]) expect(c.closed?.code).toBe(closeCodes['DRAINING']);
  }, 20_000);

  it('would catch a server message the document does not describe', () => {
    const snap = validators.get('snap')!.closed;
    const bupd = validators.get('bupd')!.closed;
    const frame = [{ t: 'snap', s: 'AAPL', q: 3, d: { bid: 1.5, status: 'open' } }];
    expect(frameValidator(frame), errorsOf(frameValidator)).toBe(true);
    expect(snap(frame[0]), errorsOf(snap)).toBe(true);
    expect(snap({ ...frame[0], extra: 1 })).toBe(false);
    expect(snap({ t: 'snap', s: 'AAPL', d: {} })).toBe(false);
    expect(snap({ t: 'snap', s: 'AAPL', q: 3, d: { 'bad name': 1 } })).toBe(false);
    expect(bupd({ t: 'bupd', s: 'AAPL', q: 4, bids: [[1, 2, 3]], cs: 1 })).toBe(false);
    const bye = validators.get('bye')!.closed;
    expect(bye({ t: 'bye', code: 'DRAINING', reason: 'r', retryMs: 0 }), errorsOf(bye)).toBe(true);
    expect(bye({ t: 'bye', code: 'AUTH_EXPIRED', reason: 'r' }), errorsOf(bye)).toBe(true);
    expect(bye({ t: 'bye', code: 'DRAINING', reason: 'r' })).toBe(false);
    expect(bye({ t: 'bye', code: 'AUTH_EXPIRED', reason: 'r', retryMs: 0 })).toBe(false);
    expect(frameValidator([])).toBe(false);
    expect(frameValidator([{ t: 'news', s: 'AAPL' }])).toBe(false);
    // A frame as the wire carries it: the decoded array of a real MessagePack frame.
    expect(frameValidator(decode(encode([{ t: 'hb', ts: 1, buf: 0, cf: 0 }])))).toBe(true);
  });
});
