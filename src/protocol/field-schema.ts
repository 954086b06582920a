/**
 * The instrument schema of a deployment: the canonical quote fields first
 * (in their fixed order, so their slots never move), then the fields the
 * configuration declares under `schema.fields`. A quote's state is one slot
 * per field, so the hot path works on slot numbers, never on names.
 */
import { CANONICAL_FIELDS, type FieldSpec } from './fields.js';

/** Longest text value accepted, in characters. */
export const MAX_TEXT_LENGTH = 64;

export class FieldSchema {
  /** Field names by slot: canonical fields, then configured ones. */
  readonly names: readonly string[];
  /** Number of slots. */
  readonly count: number;
  /** Field name -> slot. */
  readonly index: ReadonlyMap<string, number>;
  /** 1 where the slot holds text (in a state's `texts`), 0 where it holds a number (in `values`). */
  readonly isText: Uint8Array;
  /** The text slots, in order; empty for an all-numeric schema, which then never touches text at all. */
  readonly textSlots: readonly number[];
  /** Slot of `ts` (source event time) and `seq` (source sequence). */
  readonly ts: number;
  readonly seq: number;
  /** Slots a trade sets. */
  readonly last: number;
  readonly lastSize: number;
  readonly volume: number;

  constructor(configured: readonly FieldSpec[] = []) {
    const names: string[] = [...CANONICAL_FIELDS];
    const types: boolean[] = names.map(() => false);
    for (const f of configured) {
      // Validated at config load; this guards direct construction.
      if (names.includes(f.name)) throw new RangeError(`schema field ${JSON.stringify(f.name)} is declared twice or clashes with a canonical field`);
      names.push(f.name);
      types.push(f.type === 'text');
    }
    this.names = names;
    this.count = names.length;
    this.index = new Map(names.map((n, i) => [n, i]));
    this.isText = Uint8Array.from(types, (t) => (t ? 1 : 0));
    this.textSlots = types.flatMap((t, i) => (t ? [i] : []));
    this.ts = this.index.get('ts')!;
    this.seq = this.index.get('seq')!;
    this.last = this.index.get('last')!;
    this.lastSize = this.index.get('lastSize')!;
    this.volume = this.index.get('volume')!;
  }
}

/** The schema without configured fields. */
export const CANONICAL_SCHEMA = new FieldSchema();

/** A text value as accepted: a string of at most 64 characters without control characters; else null. */
export function toText(v: unknown): string | null {
  if (typeof v !== 'string' || v.length > MAX_TEXT_LENGTH) return null;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return null;
  }
  return v;
}
