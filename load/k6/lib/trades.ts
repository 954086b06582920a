/**
 * Trade prints as a resuming protocol client keeps them (docs/PROTOCOL.md,
 * Trade prints): the position `{e, q}` of each symbol, from the `ack`'s
 * `pos` and then the `q` of every trade; after a reconnect, a `sub` with
 * `since` set to those positions; the `ack`'s `rec` says whether every
 * trade since was recovered.
 *
 * {@link TradeTape} checks what arrives: a trade at or below the position
 * held is a duplicate, and a trade that skips some is missing trades. A
 * skip shows only where the numbering is contiguous, so the check follows
 * one of two sequences:
 * - `q`: positions the gateway numbers itself (a trade feed without
 *   JetStream: 1, 2, 3, ... per symbol);
 * - `id`: integer trade ids that the feed numbers 1, 2, 3, ... per symbol,
 *   as the scenario's own feed does (lib/trade-feed.ts), whatever the
 *   positions (JetStream positions are stream sequence x 1000 + index, not
 *   contiguous per symbol).
 * With `none` only duplicates are found. A `gap` or `rec: false` announces
 * a loss; the check starts again after it.
 *
 * Plain TypeScript with type-only imports and no k6 modules, so it runs
 * under Node too: the unit tests and the integration test against real
 * gateways (test/k6-trades.nats.test.ts) use this very file.
 */
import type { MsgpackMap } from './msgpack.ts';

/** A position: the epoch, and `q` within it. */
export interface Position {
  e: string;
  q: number;
}

export interface Trade {
  t: 'trade';
  s: string;
  q: number;
  px: number;
  sz: number;
  side?: 'b' | 's';
  id?: string | number;
  ts?: number;
}

/** The trades with `from` < q <= `to` were lost to this client. */
export interface Gap {
  t: 'gap';
  s: string;
  from: number;
  to: number;
}

/** What a trade `ack` carries besides the common fields. */
export interface TradeAckFields {
  ok: string[];
  /** Each accepted symbol's current position. */
  pos?: Record<string, Position>;
  /** For a `sub` with `since`: per resumed symbol, whether every trade since was recovered. */
  rec?: Record<string, boolean>;
}

/** How trades are checked for skips; see the module comment. */
export type TradeSequence = 'id' | 'q' | 'none';
export const TRADE_SEQUENCES: readonly TradeSequence[] = ['id', 'q', 'none'];

/**
 * Why a decoded `trade` or `gap` map breaks the protocol, or null when it is
 * well-formed.
 */
export function tradeMessageError(m: MsgpackMap): string | null {
  const t = m['t'];
  if (typeof m['s'] !== 'string') return `${String(t)} without s`;
  if (t === 'gap') {
    const from = m['from'];
    const to = m['to'];
    if (typeof from !== 'number' || typeof to !== 'number' || !(from < to)) return `gap ${m['s']}: from and to must be numbers with from < to`;
    return null;
  }
  if (typeof m['q'] !== 'number' || typeof m['px'] !== 'number' || typeof m['sz'] !== 'number') return `trade ${m['s']}: q, px and sz must be numbers`;
  const side = m['side'];
  if (side !== undefined && side !== 'b' && side !== 's') return `trade ${m['s']}: side must be "b" or "s"`;
  const id = m['id'];
  if (id !== undefined && typeof id !== 'string' && typeof id !== 'number') return `trade ${m['s']}: id must be a string or an integer`;
  if (m['ts'] !== undefined && typeof m['ts'] !== 'number') return `trade ${m['s']}: ts must be a number`;
  return null;
}

/** `sub` to the trade channel as a JSON text frame; `since` resumes the symbols it names. */
export function tradeSubRequest(id: string | number, symbols: readonly string[], opts: { since?: Record<string, Position>; last?: number; throttleMs?: number } = {}): string {
  const req: Record<string, unknown> = { op: 'sub', id, channel: 'trade', symbols };
  if (opts.since !== undefined && Object.keys(opts.since).length > 0) req['since'] = opts.since;
  if (opts.last !== undefined && opts.last > 0) req['last'] = opts.last;
  if (opts.throttleMs !== undefined && opts.throttleMs > 0) req['throttleMs'] = opts.throttleMs;
  return JSON.stringify(req);
}

/**
 * What a trade did: `ok`; `duplicate` (at or below the position held, or an
 * id already seen: not applied); `missing` (applied, but `n` trades before
 * it never came); `orphan` (a symbol with no position: no `ack` for it);
 * `unchecked` (sequence `id` and the trade has no integer id: applied, the
 * check starts again from it).
 */
export type TradeOutcome = { kind: 'ok' } | { kind: 'duplicate' } | { kind: 'missing'; n: number } | { kind: 'orphan' } | { kind: 'unchecked' };

/** What an `ack` said of the symbols resumed with `since`. */
export interface ResumeResult {
  recovered: string[];
  notRecovered: string[];
}

interface Held {
  e: string;
  q: number;
  /** The last integer id (sequence `id`); undefined until a trade names one, and after an announced loss. */
  id: number | undefined;
}

const OK: TradeOutcome = { kind: 'ok' };
const DUPLICATE: TradeOutcome = { kind: 'duplicate' };
const ORPHAN: TradeOutcome = { kind: 'orphan' };
const UNCHECKED: TradeOutcome = { kind: 'unchecked' };

/**
 * The positions of one client's trade subscriptions, kept across its
 * connections, and the checks of what arrives.
 */
export class TradeTape {
  private readonly held = new Map<string, Held>();

  constructor(readonly sequence: TradeSequence) {}

  /** The `sub` for `symbols`: with `since` for those that have a position (every one after the first connection). */
  request(id: string | number, symbols: readonly string[], throttleMs = 0): string {
    const since: Record<string, Position> = {};
    for (const s of symbols) {
      const h = this.held.get(s);
      if (h !== undefined) since[s] = { e: h.e, q: h.q };
    }
    return tradeSubRequest(id, symbols, { since, throttleMs });
  }

  /**
   * Applies the `ack` of a {@link request}: a symbol that had a position was
   * resumed, and keeps it if `rec` says recovered; otherwise (not recovered,
   * or a fresh subscription) its position becomes the acked one.
   */
  acked(ack: TradeAckFields): ResumeResult {
    const out: ResumeResult = { recovered: [], notRecovered: [] };
    for (const s of ack.ok) {
      const p = ack.pos?.[s];
      const h = this.held.get(s);
      if (h !== undefined) {
        if (ack.rec?.[s] === true) {
          out.recovered.push(s);
          continue;
        }
        out.notRecovered.push(s);
      }
      if (p !== undefined) this.held.set(s, { e: p.e, q: p.q, id: undefined });
    }
    return out;
  }

  apply(t: Trade): TradeOutcome {
    const h = this.held.get(t.s);
    if (h === undefined) return ORPHAN;
    if (t.q <= h.q) return DUPLICATE;
    let missing = this.sequence === 'q' ? t.q - h.q - 1 : 0;
    h.q = t.q;
    if (this.sequence === 'id') {
      const id = t.id;
      if (typeof id !== 'number' || !Number.isInteger(id)) {
        h.id = undefined;
        return UNCHECKED;
      }
      if (h.id !== undefined) {
        if (id <= h.id) return DUPLICATE;
        missing = id - h.id - 1;
      }
      h.id = id;
    }
    return missing > 0 ? { kind: 'missing', n: missing } : OK;
  }

  /** Applies a `gap`: the position moves past what it names. Returns the positions it says were lost. */
  gap(g: Gap): number {
    const h = this.held.get(g.s);
    if (h !== undefined) {
      if (g.to > h.q) h.q = g.to;
      h.id = undefined;
    }
    return g.to - g.from;
  }

  /** The position held, or undefined before the symbol's first `ack`. */
  position(symbol: string): Position | undefined {
    const h = this.held.get(symbol);
    return h === undefined ? undefined : { e: h.e, q: h.q };
  }

  get size(): number {
    return this.held.size;
  }
}
