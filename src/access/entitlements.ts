/**
 * Entitlements: which feeds and symbols a user may see. Patterns are
 * `feed:symbol` with `*` (any run of characters) and `?` (one character) in
 * either part, a bare `symbol` pattern for any feed, or `*` for everything:
 * `["sim:*", "nasdaq:AAPL", "fx:EUR/*"]`.
 */

interface Rule {
  feed: RegExp | null; // null: any feed
  symbol: RegExp | null; // null: any symbol
}

function glob(p: string): RegExp | null {
  if (p === '*') return null;
  const re = p.replace(/[.+^${}()|[\]\\/]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

/** A compiled entitlement list. */
export class Entitlements {
  /** Everything allowed: checks are skipped. */
  readonly all: boolean;
  private readonly rules: Rule[];

  constructor(readonly patterns: readonly string[]) {
    this.rules = patterns.map((p) => {
      const i = p.indexOf(':');
      return i < 0 ? { feed: null, symbol: glob(p) } : { feed: glob(p.slice(0, i)), symbol: glob(p.slice(i + 1)) };
    });
    this.all = this.rules.some((r) => r.feed === null && r.symbol === null);
  }

  static readonly ALL = new Entitlements(['*']);

  /** May the user see `symbol` coming from `feed`? */
  allows(feed: string, symbol: string): boolean {
    if (this.all) return true;
    for (const r of this.rules) {
      if ((r.feed === null || r.feed.test(feed)) && (r.symbol === null || r.symbol.test(symbol))) return true;
    }
    return false;
  }

  /** Could `symbol` be allowed from some feed? (For symbols whose feed is not known yet.) */
  mayAllow(symbol: string): boolean {
    if (this.all) return true;
    return this.rules.some((r) => r.symbol === null || r.symbol.test(symbol));
  }
}
