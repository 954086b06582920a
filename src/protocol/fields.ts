/**
 * Canonical tick fields. A symbol's state is a fixed row of these, indexed
 * by position, so the hot path works on numbers and never on field names.
 */
export const CANONICAL_FIELDS = [
  'bid',
  'ask',
  'bidSize',
  'askSize',
  'last',
  'lastSize',
  'volume',
  'open',
  'high',
  'low',
  'close',
  'ts',
  'seq',
] as const;

export type CanonicalField = (typeof CANONICAL_FIELDS)[number];

/** Number of canonical fields (the width of a state row). */
export const FIELD_COUNT = CANONICAL_FIELDS.length;

/** Canonical field name -> index in a state row. */
export const FIELD_INDEX: ReadonlyMap<string, number> = new Map(CANONICAL_FIELDS.map((f, i) => [f, i]));

/** A symbol name is 1-64 characters with no control characters. */
export function isValidSymbol(s: unknown): s is string {
  if (typeof s !== 'string' || s.length === 0 || s.length > 64) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** Value type of a configured field: a number, or text of at most 64 characters. */
export type FieldType = 'number' | 'text';

/** An extra instrument field declared per deployment (`schema.fields`), after the canonical ones. */
export interface FieldSpec {
  name: string;
  type: FieldType;
}

/** Most fields `schema.fields` may declare. */
export const MAX_CONFIGURED_FIELDS = 200;

const FIELD_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;

/** A field name is 1-32 characters of A-Z a-z 0-9 _, not starting with a digit. */
export function isFieldName(s: unknown): s is string {
  return typeof s === 'string' && FIELD_NAME_RE.test(s);
}
