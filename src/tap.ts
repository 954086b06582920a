/**
 * `tickgate tap`: subscribes to symbols and prints one JSON line per update,
 * for jq, pandas (`pd.read_json(path, lines=True)`) or a quick look. With
 * `--stats`, prints one line per second of rates and latency instead. With
 * `--book`, taps order books instead of quotes: the SDK keeps each book and
 * verifies every checksum, and tap fails when a book stays wrong after a
 * resync. With `--trades`, taps trade prints: every trade once, in order,
 * resumed by the SDK from its position after a reconnect, with resumes and
 * gaps as lines of their own.
 */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { ConnectError, TickgateClient, type AckResult, type BookDepth, type BookMismatch, type TradePosition, type TradeResume } from './client/index.js';

const BOOK_DEPTHS = [1, 5, 10, 25, 50, 100, 500, 1000];

export const TAP_USAGE = `usage: tickgate tap SYMBOL... [options]
       tickgate tap --book SYMBOL... [--depth N] [options]
       tickgate tap --trades SYMBOL... [--last N] [--since E:Q] [options]

Prints one JSON line per update: {"s":"AAPL","q":12,"state":{...}} with the
merged state, or with --deltas {"s":"AAPL","q":12,"d":{...}} with the fields
that changed ("snap":true on snapshots, "n" when updates were merged).

With --book, order books instead: one line per book message with the window
after it, best first, {"s":"BTC/USDT","q":7,"bids":[[price,size],...],"asks":[...]},
or with --deltas the levels it set ({"s","q","bids","asks"}, size 0 = removed;
"snap":true on a full book). Every message's checksum is verified; on a
mismatch tap resubscribes for a fresh book and says so on stderr.

With --trades, trade prints instead: one line per trade, in order, each once,
{"t":"trade","s":"AAPL","e":"TRADES.m1x","q":12000,"px":191.5,"sz":100,"side":"b","id":"T-7","ts":...}
(side, id and ts when the source sends them). After a reconnect tap resumes
after the last trade it printed, on the same gateway or another one, and
prints the outcome as a line of its own:
{"t":"rec","s":"AAPL","rec":true,"since":{"e":..,"q":..},"pos":{"e":..,"q":..}}
("rec":false with "reason" "epoch" or "history" when the trades in between
are lost). {"t":"gap","s":"AAPL","e":..,"from":A,"to":B} says the trades with
A < q <= B were lost (they left the gateway's history while tap was behind).
Lost trades are also reported on stderr. Resume a later tap from a line's e
and q with --since E:Q.

  --url URL        stream endpoint (default $TICKGATE_URL or ws://127.0.0.1:8080/v1/stream);
                   give it more than once for replicas, tried in turn
  --token TOKEN    credential for gateways with authentication (default $TICKGATE_TOKEN)
  --deltas         print the changed fields instead of the merged state
  --throttle MS    at most one update per symbol per MS milliseconds
  --duration S     stop after S seconds
  --count N        stop after N updates
  --stats          instead of updates, print one line per second:
                   {"ts":...,"updates":N,"perSec":N,"latencyMs":{"p50":..,"p99":..,"max":..}}
                   latency = receipt time - the update's source ts (includes clock skew;
                   null for books, which carry no ts)
  --book           tap the order books of the symbols
  --depth N        book levels per side: ${BOOK_DEPTHS.join(', ')} (default 10)
  --trades         tap the trade prints of the symbols
  --last N         with --trades: start with up to N most recent trades
  --since E:Q      with --trades: resume after position E:Q (epoch and q of a
                   trade line), for every symbol given
  --help           show this help

Exit status: 0 when stopped by --duration, --count or Ctrl-C; 1 when the
connection fails; 2 on bad arguments; 3 when a book's checksum is still
wrong after a resync.`;

interface TapOptions {
  urls: string[];
  token: string | undefined;
  symbols: string[];
  deltas: boolean;
  throttleMs: number;
  durationMs: number;
  count: number;
  stats: boolean;
  /** Book depth with --book, else null (quotes). */
  depth: BookDepth | null;
  /** --trades, with its --last and --since. */
  trades: { last: number; since: TradePosition | undefined } | null;
}

function fail(msg: string, code: number): number {
  process.stderr.write(`tickgate tap: ${msg}\n`);
  return code;
}

function parse(argv: string[]): TapOptions | string {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      url: { type: 'string', multiple: true },
      token: { type: 'string' },
      deltas: { type: 'boolean' },
      throttle: { type: 'string' },
      duration: { type: 'string' },
      count: { type: 'string' },
      stats: { type: 'boolean' },
      book: { type: 'boolean' },
      depth: { type: 'string' },
      trades: { type: 'boolean' },
      last: { type: 'string' },
      since: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length === 0) throw new Error('no symbols given');
  const number = (name: string, v: string | undefined, dflt: number, integer: boolean): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
      throw new Error(`--${name}: expected a non-negative ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
    }
    return n;
  };
  let depth: BookDepth | null = null;
  if (values.book === true) {
    depth = number('depth', values.depth, 10, true) as BookDepth;
    if (!BOOK_DEPTHS.includes(depth)) throw new Error(`--depth: expected one of ${BOOK_DEPTHS.join(', ')}, got ${JSON.stringify(values.depth)}`);
  } else if (values.depth !== undefined) {
    throw new Error('--depth applies to --book only');
  }
  let trades: TapOptions['trades'] = null;
  if (values.trades === true) {
    if (values.book === true) throw new Error('--trades and --book: choose one');
    if (values.deltas === true) throw new Error('--deltas applies to quotes and books; every trade line is one print');
    trades = { last: number('last', values.last, 0, true), since: values.since === undefined ? undefined : parsePosition(values.since) };
  } else if (values.last !== undefined || values.since !== undefined) {
    throw new Error(`--${values.last !== undefined ? 'last' : 'since'} applies to --trades only`);
  }
  const env = process.env['TICKGATE_URL'];
  return {
    urls: values.url ?? [env ?? 'ws://127.0.0.1:8080/v1/stream'],
    token: values.token ?? process.env['TICKGATE_TOKEN'],
    symbols: positionals,
    deltas: values.deltas === true,
    throttleMs: number('throttle', values.throttle, 0, true),
    durationMs: number('duration', values.duration, 0, false) * 1000,
    count: number('count', values.count, 0, true),
    stats: values.stats === true,
    depth,
    trades,
  };
}

/** `E:Q`, as a trade line's `e` and `q`; the epoch may contain colons, q is what follows the last one. */
function parsePosition(v: string): TradePosition {
  const at = v.lastIndexOf(':');
  const e = v.slice(0, at);
  const q = Number(v.slice(at + 1));
  if (at <= 0 || v.slice(at + 1).trim() === '' || !Number.isSafeInteger(q) || q < 0) {
    throw new Error(`--since: expected EPOCH:Q (a trade line's "e" and "q"), got ${JSON.stringify(v)}`);
  }
  return { e, q };
}

/** What a resume that lost trades means, in words. */
function lostText(r: TradeResume & { recovered: false }): string {
  return r.reason === 'epoch'
    ? `the trades after ${r.since.e}:${r.since.q} cannot be recovered: the gateway numbers trades in another epoch (${r.position.e}); going on from ${r.position.e}:${r.position.q}`
    : `the trades after ${r.since.e}:${r.since.q} are no longer in the gateway's history; going on from ${r.position.e}:${r.position.q}`;
}

/** Buffers output lines and writes them once per event-loop turn: one write per frame, not per update. */
class LineWriter {
  private buf = '';
  private scheduled = false;
  private readonly flushNow = (): void => {
    this.scheduled = false;
    if (this.buf.length === 0) return;
    const out = this.buf;
    this.buf = '';
    process.stdout.write(out);
  };

  line(s: string): void {
    this.buf += s + '\n';
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushNow);
    }
  }

  /** Writes what is buffered and resolves once stdout has taken it. */
  end(): Promise<void> {
    this.flushNow();
    return new Promise((resolve) => process.stdout.write('', () => resolve()));
  }
}

/** Per-second update counts and latency percentiles. */
class Stats {
  private samples = new Float64Array(4096);
  private n = 0;
  updates = 0;
  private since = Date.now();

  /** Counts one update; `ts` is its source time, when it has one. */
  add(ts: number | undefined, now: number): void {
    this.updates++;
    if (ts === undefined) return;
    if (this.n === this.samples.length) {
      const bigger = new Float64Array(this.n * 2);
      bigger.set(this.samples);
      this.samples = bigger;
    }
    this.samples[this.n++] = Math.max(0, now - ts);
  }

  /** The line for the interval that ends now, then starts the next. */
  line(now: number): string {
    const s = this.samples.subarray(0, this.n).sort();
    const pick = (p: number): number | null => (s.length === 0 ? null : Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]! * 1000) / 1000);
    const secs = Math.max(0.001, (now - this.since) / 1000);
    const out = JSON.stringify({
      ts: now,
      updates: this.updates,
      perSec: Math.round(this.updates / secs),
      latencyMs: { p50: pick(0.5), p99: pick(0.99), max: s.length === 0 ? null : Math.round(s[s.length - 1]! * 1000) / 1000 },
    });
    this.n = 0;
    this.updates = 0;
    this.since = now;
    return out;
  }
}

/** What went wrong with a book message, in words. */
function mismatchText(m: BookMismatch): string {
  switch (m.reason) {
    case 'checksum':
      return `checksum mismatch at q ${m.q}: computed ${m.actual}, gateway sent ${m.expected}`;
    case 'sequence':
      return `bupd q ${m.q} where ${m.expected} was due`;
    case 'malformed':
      return `malformed book message at q ${m.q}`;
  }
}

/** Runs `tickgate tap` with `argv` (the arguments after `tap`); resolves with the exit code. */
export async function runTap(argv: string[]): Promise<number> {
  let opts: TapOptions | string;
  try {
    opts = parse(argv);
  } catch (err) {
    return fail(`${(err as Error).message}\n${TAP_USAGE}`, 2);
  }
  if (opts === 'help') {
    process.stdout.write(TAP_USAGE + '\n');
    return 0;
  }
  const o = opts as TapOptions;
  const out = new LineWriter();
  const client = new TickgateClient(o.token === undefined ? { url: o.urls, WebSocket } : { url: o.urls, token: o.token, WebSocket });

  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (finish = resolve));
  let seen = 0;
  let stopped = false;
  let opened = false;
  const stats = o.stats ? new Stats() : null;

  const counted = (): void => {
    seen++;
    if (o.count > 0 && seen >= o.count) {
      stopped = true;
      finish(0);
    }
  };
  client.onUpdate((u) => {
    if (stopped) return;
    if (stats !== null) {
      stats.add(u.changed.ts, Date.now());
    } else {
      // Assembled around JSON.stringify of the two parts: no wrapper object per update.
      let line = `{"s":${JSON.stringify(u.symbol)},"q":${u.q}`;
      if (o.deltas) {
        line += `,"d":${JSON.stringify(u.changed)}`;
        if (u.snapshot) line += ',"snap":true';
        if (u.n !== undefined) line += `,"n":${u.n}`;
      } else {
        line += `,"state":${JSON.stringify(u.state)}`;
      }
      out.line(line + '}');
    }
    counted();
  });
  client.onBook((u) => {
    if (stopped) return;
    if (stats !== null) {
      stats.add(undefined, Date.now());
    } else {
      const { bids, asks } = o.deltas ? u.changed : u.book;
      let line = `{"s":${JSON.stringify(u.symbol)},"q":${u.q}`;
      if (!o.deltas || bids.length > 0 || u.snapshot) line += `,"bids":${JSON.stringify(bids)}`;
      if (!o.deltas || asks.length > 0 || u.snapshot) line += `,"asks":${JSON.stringify(asks)}`;
      if (o.deltas && u.snapshot) line += ',"snap":true';
      out.line(line + '}');
    }
    counted();
  });
  client.onTrade((t) => {
    if (stopped) return;
    if (stats !== null) {
      stats.add(t.ts, Date.now());
    } else {
      // Key by key, in a fixed order, without a wrapper object per trade.
      let line = `{"t":"trade","s":${JSON.stringify(t.symbol)},"e":${JSON.stringify(t.e)},"q":${t.q},"px":${t.px},"sz":${t.sz}`;
      if (t.side !== undefined) line += `,"side":"${t.side}"`;
      if (t.id !== undefined) line += `,"id":${JSON.stringify(t.id)}`;
      if (t.ts !== undefined) line += `,"ts":${t.ts}`;
      out.line(line + '}');
    }
    counted();
  });
  client.onTradeResume((r) => {
    if (stopped) return;
    const line: Record<string, unknown> = { t: 'rec', s: r.symbol, rec: r.recovered, since: r.since, pos: r.position };
    if (!r.recovered) {
      line['reason'] = r.reason;
      process.stderr.write(`tickgate tap: ${r.symbol}: ${lostText(r)}\n`);
    }
    if (stats === null) out.line(JSON.stringify(line));
  });
  client.onTradeGap((g) => {
    if (stopped) return;
    process.stderr.write(`tickgate tap: ${g.symbol}: trades lost (gap): ${g.e} q ${g.from} < q <= ${g.to} left the gateway's history while tap was behind\n`);
    if (stats === null) out.line(JSON.stringify({ t: 'gap', s: g.symbol, e: g.e, from: g.from, to: g.to }));
  });
  const tradeStale = new Set<string>();
  client.onTradeStatus((symbol, status) => {
    if (status === 'stale') {
      tradeStale.add(symbol);
      process.stderr.write(`tickgate tap: ${symbol}: trades stale\n`);
    } else if (status === 'live' && tradeStale.delete(symbol)) {
      process.stderr.write(`tickgate tap: ${symbol}: trades live\n`);
    }
  });
  client.onBookMismatch((m) => {
    if (stopped) return;
    if (m.attempt === 1) {
      process.stderr.write(`tickgate tap: ${m.symbol}: ${mismatchText(m)}; resubscribing for a fresh book\n`);
      return;
    }
    // The fresh book the resync asked for is wrong too: this client cannot verify the book.
    process.stderr.write(`tickgate tap: ${m.symbol}: the book is still wrong after a resync (${mismatchText(m)}); giving up\n`);
    stopped = true;
    finish(3);
  });
  client.onBookResync((r) => process.stderr.write(`tickgate tap: ${r.symbol}: resynchronised at q ${r.q}\n`));
  const bookStale = new Set<string>();
  client.onBookStatus((symbol, status) => {
    if (status === 'stale') {
      bookStale.add(symbol);
      process.stderr.write(`tickgate tap: ${symbol}: book stale\n`);
    } else if (status === 'live' && bookStale.delete(symbol)) {
      process.stderr.write(`tickgate tap: ${symbol}: book live\n`);
    }
  });
  client.onConnection((s) => {
    if (s.state === 'reconnecting') {
      const why = s.last.bye !== undefined ? `bye ${s.last.bye.code}: ${s.last.bye.reason}` : s.last.reason || `close code ${s.last.code}`;
      process.stderr.write(`tickgate tap: connection lost (${why}); reconnecting in ${s.delayMs} ms\n`);
    } else if (s.state === 'open') {
      if (opened) process.stderr.write(`tickgate tap: reconnected (session ${s.hello.sid})\n`);
      opened = true;
    }
  });
  client.onError((e) => process.stderr.write(`tickgate tap: ${e.message}\n`));
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    // The reader went away (e.g. `| head`): a normal way to stop.
    if (err.code === 'EPIPE') finish(0);
  });
  const onSignal = (): void => finish(0);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    await client.connect();
  } catch (err) {
    return fail(err instanceof ConnectError ? err.message : String(err), 1);
  }
  try {
    const th = o.throttleMs > 0 ? { throttleMs: o.throttleMs } : {};
    let ack: AckResult;
    if (o.trades !== null) {
      const { last, since } = o.trades;
      const acks = await Promise.all(o.symbols.map((s) => client.subscribeTrades(s, { ...th, last, ...(since === undefined ? {} : { since }) })));
      ack = { ok: acks.flatMap((a) => a.ok), err: acks.flatMap((a) => a.err) };
    } else if (o.depth === null) {
      ack = await client.subscribe(o.symbols, th);
    } else {
      const depth = o.depth;
      const acks = await Promise.all(o.symbols.map((s) => client.subscribeBook(s, { ...th, depth })));
      ack = { ok: acks.flatMap((a) => a.ok), err: acks.flatMap((a) => a.err) };
    }
    for (const e of ack.err) process.stderr.write(`tickgate tap: ${e.symbol}: ${e.code}: ${e.msg}\n`);
    if (ack.ok.length === 0) {
      await client.close();
      return fail('no symbol was accepted', 1);
    }
  } catch (err) {
    await client.close();
    return fail((err as Error).message, 1);
  }

  const timers: Array<ReturnType<typeof setTimeout>> = [];
  if (o.durationMs > 0) timers.push(setTimeout(() => finish(0), o.durationMs));
  if (stats !== null) timers.push(setInterval(() => out.line(stats.line(Date.now())), 1000));

  const code = await finished;
  for (const t of timers) clearTimeout(t);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  await client.close();
  await out.end();
  return code;
}
