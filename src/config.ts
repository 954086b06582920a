/**
 * Configuration schema. Every key has a default, a doc string and a format;
 * the common ones also have an environment variable. Sources, later wins:
 * schema defaults < config/default.json < the file named by --config or
 * TICKGATE_CONFIG < environment variables.
 */
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import convict from 'convict';
import { CANONICAL_FIELDS, MAX_CONFIGURED_FIELDS, isFieldName, type FieldSpec } from './protocol/fields.js';

/** Invalid configuration: the message names the key, the value and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export type Codec = 'msgpack' | 'json';

/** Client authentication at the upgrade (`auth.mode`). */
export type AuthMode = 'none' | 'jwt' | 'apikey';

/** One API key as configured: only its SHA-256 is known to the gateway. */
export interface ApiKeyConfig {
  id: string;
  sha256: string;
  user: string;
  entitlements: string[];
}

/** One NATS feed as configured. */
/** What a feed carries: merged quote records, or L2 order books. */
export type FeedKind = 'quote' | 'book' | 'trade';

export interface FeedConfig {
  /** Feed name, used in metrics and logs. */
  name: string;
  /** What its payloads are (default quote). */
  kind: FeedKind;
  /** NATS subject, wildcards allowed. */
  subject: string;
  codec: Codec;
  /** Payload field holding the symbol (used when `symbolToken` is null). */
  symbolField: string;
  /** 0-based subject token holding the symbol (negative counts from the end); null: use `symbolField`. */
  symbolToken: number | null;
  /** Source field name -> canonical or configured (`schema.fields`) field name. */
  fields: Record<string, string>;
  /** Optional NATS queue group (several gateways sharing one stream of ticks). Usually null: every gateway needs every tick. */
  queue: string | null;
  /** A feed silent this long is stale (its symbols' subscribers get stat stale); 0: only when NATS is disconnected. */
  staleAfterMs: number;
  /**
   * Quote feeds: JetStream stream keeping the last full-state tick per
   * subject, read at start (warm start). Trade feeds: the stream the trades
   * are read from, whose sequence gives their positions. Null: none.
   */
  jetstream: string | null;
  /** Trade feeds: each trade also adds its size to the symbol's quote `volume`. */
  volume: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const NAME_RE = /^[A-Za-z0-9_-]{1,32}$/;
const CANONICAL = new Set<string>(CANONICAL_FIELDS);
/** Keys of a wire update besides its fields; a configured field may not take one. */
const RESERVED_WIRE_KEYS = ['s', 't', 'q', 'd', 'n'];

function describe(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/**
 * A list given as a string (an environment variable) is a JSON array.
 * Anything else stays the string, which validate() then names: convict would
 * take a JSON object from the environment for keys under the list's key.
 */
function coerceJson(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    const parsed: unknown = JSON.parse(v);
    return Array.isArray(parsed) ? parsed : v;
  } catch {
    return v;
  }
}

/**
 * Validates and fills defaults of one raw feed entry; throws naming `feeds[i].key`.
 * `targets`: the field names a rename may map to (canonical and configured);
 * null checks only that each target is a string, for the convict format,
 * which cannot see `schema.fields`.
 */
function parseFeed(raw: unknown, i: number, targets: ReadonlySet<string> | null): FeedConfig {
  const at = (key: string) => `feeds[${i}]${key ? '.' + key : ''}`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${at('')}: expected an object, got ${describe(raw)}`);
  }
  const o = raw as Record<string, unknown>;
  const known = new Set(['name', 'kind', 'subject', 'codec', 'symbolField', 'symbolToken', 'fields', 'queue', 'staleAfterMs', 'jetstream', 'volume']);
  for (const k of Object.keys(o)) {
    if (!known.has(k)) throw new ConfigError(`${at(k)}: unknown key (expected one of ${[...known].join(', ')})`);
  }
  const name = o['name'];
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new ConfigError(`${at('name')}: expected 1-32 characters of A-Z a-z 0-9 _ -, got ${describe(name)}`);
  }
  const kind = o['kind'] ?? 'quote';
  if (kind !== 'quote' && kind !== 'book' && kind !== 'trade') {
    throw new ConfigError(`${at('kind')}: expected "quote", "book" or "trade", got ${describe(kind)}`);
  }
  const subject = o['subject'] ?? `md.${name}.>`;
  if (typeof subject !== 'string' || !/^[^\s]+$/.test(subject) || subject.split('.').some((t) => t === '')) {
    throw new ConfigError(`${at('subject')}: expected a NATS subject such as "md.${name}.>", got ${describe(subject)}`);
  }
  const codec = o['codec'] ?? 'msgpack';
  if (codec !== 'msgpack' && codec !== 'json') {
    throw new ConfigError(`${at('codec')}: expected "msgpack" or "json", got ${describe(codec)}`);
  }
  const symbolField = o['symbolField'] ?? 's';
  if (typeof symbolField !== 'string' || symbolField === '') {
    throw new ConfigError(`${at('symbolField')}: expected a non-empty field name, got ${describe(symbolField)}`);
  }
  const symbolToken = o['symbolToken'] ?? null;
  if (symbolToken !== null && !Number.isInteger(symbolToken)) {
    throw new ConfigError(`${at('symbolToken')}: expected an integer subject token index or null, got ${describe(symbolToken)}`);
  }
  const rawFields = o['fields'] ?? {};
  if (typeof rawFields !== 'object' || rawFields === null || Array.isArray(rawFields)) {
    throw new ConfigError(`${at('fields')}: expected an object mapping source names to field names, got ${describe(rawFields)}`);
  }
  const fields: Record<string, string> = {};
  for (const [src, dst] of Object.entries(rawFields as Record<string, unknown>)) {
    if (typeof dst !== 'string' || (targets !== null && !targets.has(dst))) {
      const declared = targets === null ? '' : ` (${[...targets].filter((t) => !CANONICAL.has(t)).join(', ') || 'none declared'})`;
      throw new ConfigError(
        `${at(`fields.${src}`)}: expected a canonical field (${CANONICAL_FIELDS.join(', ')}) or one declared in schema.fields${declared}, got ${describe(dst)}`,
      );
    }
    // defineProperty: a source field may be called "__proto__".
    Object.defineProperty(fields, src, { value: dst, enumerable: true, writable: true, configurable: true });
  }
  const queue = o['queue'] ?? null;
  if (queue !== null && (typeof queue !== 'string' || queue === '')) {
    throw new ConfigError(`${at('queue')}: expected a non-empty queue group name or null, got ${describe(queue)}`);
  }
  const staleAfterMs = o['staleAfterMs'] ?? 10_000;
  if (!Number.isInteger(staleAfterMs) || (staleAfterMs as number) < 0 || (staleAfterMs as number) > 86_400_000) {
    throw new ConfigError(`${at('staleAfterMs')}: expected an integer from 0 to 86400000 (milliseconds; 0 = never for silence alone), got ${describe(staleAfterMs)}`);
  }
  const js = o['jetstream'] ?? null;
  if (js !== null && (typeof js !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(js))) {
    throw new ConfigError(`${at('jetstream')}: expected a JetStream stream name (A-Z a-z 0-9 _ -) or null, got ${describe(js)}`);
  }
  if (kind === 'book' && js !== null) {
    throw new ConfigError(`${at('jetstream')}: warm start reads the last quote per subject; a book feed starts from its next snapshot, so set it to null, got ${describe(js)}`);
  }
  if (kind !== 'quote' && Object.keys(fields).length > 0) {
    throw new ConfigError(`${at('fields')}: renames apply to quote fields; a ${kind} feed's payload keys are fixed, got ${describe(rawFields)}`);
  }
  const volume = o['volume'] ?? false;
  if (typeof volume !== 'boolean' || (volume && kind !== 'trade')) {
    throw new ConfigError(`${at('volume')}: expected true or false, and true only on a trade feed (its trades then add to the quote's volume), got ${describe(volume)}`);
  }
  if (kind === 'trade' && queue !== null) {
    throw new ConfigError(`${at('queue')}: a trade feed needs every trade on every gateway (queue groups split them), got ${describe(queue)}`);
  }
  return {
    name,
    kind,
    subject,
    codec,
    symbolField,
    symbolToken: symbolToken as number | null,
    fields,
    queue: queue as string | null,
    staleAfterMs: staleAfterMs as number,
    jetstream: js as string | null,
    volume,
  };
}

convict.addFormat({
  name: 'feed-list',
  validate(value: unknown) {
    if (!Array.isArray(value) || value.length === 0) {
      throw new Error(`expected a non-empty array of feeds, got ${describe(value)}`);
    }
    const names = new Set<string>();
    value.forEach((f, i) => {
      const feed = parseFeed(f, i, null);
      if (names.has(feed.name)) throw new Error(`feeds[${i}].name: duplicate feed name ${describe(feed.name)}`);
      names.add(feed.name);
    });
  },
  coerce: coerceJson,
});

/**
 * Validates `schema.fields` and fills each entry's `type` (default "number");
 * throws naming `schema.fields[i].key`. Names are checked against everything a
 * wire update already carries: the canonical fields and the update's own keys.
 */
function parseFieldSpecs(raw: unknown): FieldSpec[] {
  if (!Array.isArray(raw)) {
    throw new ConfigError(`schema.fields: expected an array of {name, type}, got ${describe(raw)}`);
  }
  if (raw.length > MAX_CONFIGURED_FIELDS) {
    throw new ConfigError(`schema.fields: at most ${MAX_CONFIGURED_FIELDS} configured fields are supported, got ${raw.length}`);
  }
  const known = new Set(['name', 'type']);
  const seen = new Map<string, number>();
  return raw.map((entry: unknown, i): FieldSpec => {
    const at = (key: string) => `schema.fields[${i}]${key ? '.' + key : ''}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new ConfigError(`${at('')}: expected an object {name, type}, got ${describe(entry)}`);
    }
    const o = entry as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!known.has(k)) throw new ConfigError(`${at(k)}: unknown key (expected one of ${[...known].join(', ')})`);
    }
    const name = o['name'];
    if (!isFieldName(name)) {
      throw new ConfigError(`${at('name')}: expected 1-32 characters of A-Z a-z 0-9 _, not starting with a digit (/^[A-Za-z_][A-Za-z0-9_]{0,31}$/), got ${describe(name)}`);
    }
    if (CANONICAL.has(name)) {
      throw new ConfigError(`${at('name')}: ${describe(name)} is a canonical field (${CANONICAL_FIELDS.join(', ')}); configured fields need other names`);
    }
    if (RESERVED_WIRE_KEYS.includes(name)) {
      throw new ConfigError(`${at('name')}: ${describe(name)} is reserved for the wire protocol (${RESERVED_WIRE_KEYS.join(', ')})`);
    }
    // Clients keep state in plain objects, where this key would set the prototype.
    if (name === '__proto__') throw new ConfigError(`${at('name')}: "__proto__" cannot be a field name`);
    const first = seen.get(name);
    if (first !== undefined) throw new ConfigError(`${at('name')}: duplicate field name ${describe(name)} (also schema.fields[${first}].name)`);
    seen.set(name, i);
    const type = o['type'] ?? 'number';
    if (type !== 'number' && type !== 'text') {
      throw new ConfigError(`${at('type')}: expected "number" or "text", got ${describe(type)}`);
    }
    return { name, type };
  });
}

// Only the shape is checked here: convict's message would append the whole
// list as "value was ...", so loadConfig checks the entries with
// parseFieldSpecs and names the entry alone.
convict.addFormat({
  name: 'field-list',
  validate(value: unknown) {
    if (!Array.isArray(value)) throw new Error(`expected an array of {name, type}, got ${describe(value)}`);
  },
  coerce: coerceJson,
});

convict.addFormat({
  name: 'tcp-port',
  validate(value: unknown) {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
      throw new Error(`expected a TCP port, an integer from 0 to 65535, got ${describe(value)}`);
    }
  },
  // Strict: "8080abc" stays a string and fails, where parseInt would take 8080.
  coerce: (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
});

convict.addFormat({
  name: 'optional-port',
  validate(value: unknown) {
    if (value === null) return;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
      throw new Error(`expected null or a TCP port, an integer from 0 to 65535, got ${describe(value)}`);
    }
  },
  coerce: (v: unknown) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
});

const JWT_ALGS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
convict.addFormat({
  name: 'jwt-algorithms',
  validate(value: unknown) {
    if (!Array.isArray(value) || value.length === 0 || value.some((a) => !JWT_ALGS.includes(a as string))) {
      throw new Error(`expected a non-empty list of ${JWT_ALGS.join(', ')} ("none" is never accepted), got ${describe(value)}`);
    }
  },
});

convict.addFormat({
  name: 'api-keys',
  validate(value: unknown) {
    if (!Array.isArray(value)) throw new Error(`expected an array of {id, sha256, user, entitlements}, got ${describe(value)}`);
    value.forEach((k: unknown, i) => {
      const o = k as Record<string, unknown>;
      const at = `[${i}]`;
      if (typeof o !== 'object' || o === null) throw new Error(`${at}: expected an object`);
      if (typeof o['id'] !== 'string' || o['id'] === '') throw new Error(`${at}.id: expected a non-empty string`);
      if (typeof o['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(o['sha256'])) {
        throw new Error(`${at}.sha256: expected 64 lowercase hex digits (sha256 of the key), got ${describe(o['sha256'])}`);
      }
      if (typeof o['user'] !== 'string' || o['user'] === '') throw new Error(`${at}.user: expected a non-empty string`);
      if (!Array.isArray(o['entitlements']) || o['entitlements'].some((e) => typeof e !== 'string')) {
        throw new Error(`${at}.entitlements: expected an array of patterns such as "sim:*"`);
      }
    });
  },
});

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);
convict.addFormat({
  name: 'flag',
  validate(value: unknown) {
    if (typeof value !== 'boolean') throw new Error(`expected true or false, got ${describe(value)}`);
  },
  coerce: (v: unknown) => {
    if (typeof v !== 'string') return v;
    const k = v.trim().toLowerCase();
    return TRUE.has(k) ? true : FALSE.has(k) ? false : v;
  },
});

convict.addFormat({
  name: 'url-list',
  validate(value: unknown) {
    if (!Array.isArray(value)) throw new Error(`expected an array of NATS URLs, got ${describe(value)}`);
    for (const u of value) {
      if (typeof u !== 'string' || !/^(nats|tls|ws|wss):\/\/[^\s/]+/.test(u) && !/^[^\s/:]+:\d+$/.test(u)) {
        throw new Error(`expected NATS URLs such as "nats://127.0.0.1:4222", got ${describe(u)}`);
      }
    }
  },
  coerce: (v: unknown) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
});

function intIn(min: number, max: number) {
  return (value: unknown) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new Error(`expected an integer from ${min} to ${max}, got ${describe(value)}`);
    }
  };
}

/** Default of backpressure.maxTotalBufferedBytes: 256 MiB. */
const DEFAULT_TOTAL_BUFFERED_BYTES = 256 * 1024 * 1024;

const schema = {
  workers: {
    doc: 'Gateway worker threads sharing the port (one per core to use); more than 1 needs NATS feeds and metrics.port (aggregated metrics are served there).',
    format: intIn(1, 64),
    default: 1,
    env: 'TICKGATE_WORKERS',
  },
  host: {
    doc: 'Address the WebSocket and HTTP listener binds to (use 0.0.0.0 or :: in containers).',
    format: String,
    default: '127.0.0.1',
    env: 'TICKGATE_HOST',
  },
  port: {
    doc: 'TCP port of the WebSocket and HTTP listener (0 picks a free port).',
    format: 'tcp-port',
    default: 8080,
    env: 'TICKGATE_PORT',
  },
  log: {
    level: {
      doc: 'Log level.',
      format: LOG_LEVELS,
      default: 'info',
      env: 'TICKGATE_LOG_LEVEL',
    },
    pretty: {
      doc: 'Human-readable logs instead of JSON lines.',
      format: 'flag',
      default: false,
      env: 'TICKGATE_LOG_PRETTY',
    },
  },
  nats: {
    warmTimeoutMs: {
      doc: 'Time allowed at start for reading a feed\'s JetStream warm-start stream (past it the gateway starts with what it has, and logs a warning) and for reaching a trade feed\'s stream (past it the start fails with an error naming the feed). Each JetStream request in it may take a tenth, 1 to 5 s, and is tried again until the time is up.',
      format: intIn(100, 600_000),
      default: 10_000,
    },
    servers: {
      doc: 'NATS server URLs. Empty: run on the embedded synthetic feed, no NATS needed.',
      format: 'url-list',
      default: [] as string[],
      env: 'TICKGATE_NATS_SERVERS',
    },
    name: { doc: 'Connection name shown by the NATS server.', format: String, default: 'tickgate' },
    user: { doc: 'NATS user name.', format: String, default: '', env: 'TICKGATE_NATS_USER' },
    pass: { doc: 'NATS password.', format: String, default: '', sensitive: true, env: 'TICKGATE_NATS_PASS' },
    token: { doc: 'NATS authentication token.', format: String, default: '', sensitive: true, env: 'TICKGATE_NATS_TOKEN' },
    reconnectWaitMs: { doc: 'Wait between NATS reconnect attempts.', format: intIn(10, 60_000), default: 1000 },
    connectTimeoutMs: {
      doc: 'Time allowed for the first NATS connection before start fails, and for each reconnect attempt to one server (a frozen server accepts TCP but never answers).',
      format: intIn(100, 120_000),
      default: 5000,
    },
    pingIntervalMs: {
      doc: 'The gateway pings its NATS server this often; with maxPingsOut, how soon a silent server (hung, frozen, partitioned: TCP open, nothing answers) is given up for another. Detected after between maxPingsOut and maxPingsOut + 1 intervals.',
      format: intIn(100, 600_000),
      default: 2000,
    },
    maxPingsOut: {
      doc: 'Pings left unanswered before the NATS connection counts as dead and the gateway reconnects to another server (default: detected within 8-10 s).',
      format: intIn(1, 1000),
      default: 4,
    },
    tls: {
      caFile: {
        doc: 'PEM file of the CA(s) that sign the NATS servers\' certificates; set, the connection must be TLS. Empty: the system CAs (TLS only when a server or a tls:// URL asks for it).',
        format: String,
        default: '',
        env: 'TICKGATE_NATS_TLS_CA_FILE',
      },
      certFile: { doc: 'PEM client certificate for mutual TLS to NATS (with keyFile).', format: String, default: '', env: 'TICKGATE_NATS_TLS_CERT_FILE' },
      keyFile: { doc: 'PEM private key of certFile.', format: String, default: '', env: 'TICKGATE_NATS_TLS_KEY_FILE' },
    },
    credsFile: {
      doc: 'NATS credentials file (user JWT and nkey seed, as nsc or a managed NATS service issues it). Read at every connection attempt, so a rotated file is used on the next reconnect.',
      format: String,
      default: '',
      env: 'TICKGATE_NATS_CREDS_FILE',
    },
    nkeySeedFile: {
      doc: 'File holding the user nkey seed (SU...) for nkey authentication (server users given by nkey). Not with credsFile, which carries its own.',
      format: String,
      default: '',
      env: 'TICKGATE_NATS_NKEY_SEED_FILE',
    },
    pendingMsgsLimit: {
      doc: 'Messages of one feed the gateway may hold received but not yet processed; past it (the gateway cannot keep up) the feed\'s oldest are dropped and counted as a slow-consumer episode, rather than NATS closing the whole connection.',
      format: intIn(1, 100_000_000),
      default: 65_536,
    },
    pendingBytesLimit: {
      doc: 'Payload bytes of one feed held received but not yet processed; past it, as pendingMsgsLimit.',
      format: intIn(1024, 4 * 1024 * 1024 * 1024),
      default: 64 * 1024 * 1024,
    },
  },
  feeds: {
    doc: 'Feeds to ingest: [{name, subject (default md.<name>.>), codec: msgpack|json, symbolField (default "s") or symbolToken, fields: {source: canonical or schema.fields name}, queue}].',
    format: 'feed-list',
    // Filled by parseFeed, so the default has the type loadConfig returns.
    default: [parseFeed({ name: 'sim', subject: 'md.sim.>', codec: 'msgpack', symbolField: 's' }, 0, null)],
  },
  schema: {
    fields: {
      doc: `Extra instrument fields of this deployment, after the canonical ones: [{name, type: number|text (default number; text is at most 64 characters)}], merged and conflated like the canonical fields. Names: 1-32 characters of A-Z a-z 0-9 _, not starting with a digit, none of the canonical fields or the wire keys ${RESERVED_WIRE_KEYS.join(', ')}; at most ${MAX_CONFIGURED_FIELDS}. A feed's fields map may rename a source field to one of them.`,
      format: 'field-list',
      default: [] as FieldSpec[],
      env: 'TICKGATE_SCHEMA_FIELDS',
    },
  },
  embedded: {
    symbols: { doc: 'Embedded feed: number of synthetic symbols.', format: intIn(1, 100_000), default: 500 },
    ticksPerSec: { doc: 'Embedded feed: ticks per second across all symbols.', format: intIn(1, 1_000_000), default: 2000 },
    seed: { doc: 'Embedded feed: random seed (same seed, same market).', format: intIn(0, 2 ** 31 - 1), default: 1 },
    books: {
      doc: 'Embedded feed: symbols with an order book (feed simbook), the most active ones; at most embedded.symbols (more are capped), 0: no books.',
      format: intIn(0, 100_000),
      default: 50,
    },
    bookChangesPerSec: { doc: 'Embedded feed: book messages per second across all its books.', format: intIn(1, 1_000_000), default: 2000 },
    tradesPerSec: {
      doc: 'Embedded feed: trade messages per second across all symbols (feed simtrade; one print each, now and then a batch of several), 0: no trade feed.',
      format: intIn(0, 1_000_000),
      default: 500,
    },
  },
  ws: {
    heartbeatMs: {
      doc: 'Send a client an hb message when it has been sent nothing for this long.',
      format: intIn(100, 600_000),
      default: 5000,
    },
    idleTimeoutSec: {
      doc: 'Close connections that answer nothing (not even WebSocket pings) for this long.',
      format: intIn(8, 960),
      default: 120,
    },
    maxFrameBytes: {
      doc: 'Largest server frame; a larger batch is split into several frames.',
      format: intIn(4096, 16 * 1024 * 1024),
      default: 256 * 1024,
    },
    flushIntervalMs: {
      doc: 'Longest a client\'s frame is held so that updates arriving close together share it. With ws.flushAdaptive (the default) this is the ceiling: frames are held only as long as the event loop\'s load calls for, and an idle client\'s first update goes out at once. 0: a frame at the end of every event-loop turn that has something for the client (no holding at all).',
      format: intIn(0, 1000),
      default: 5,
      env: 'TICKGATE_WS_FLUSH_INTERVAL_MS',
    },
    flushAdaptive: {
      doc: 'Adapt the hold to load (0 below 10% event-loop utilisation, the whole ws.flushIntervalMs from 25%). false: a client\'s frames are at least the whole interval apart whatever the load (the first update after a quiet spell still leaves at once).',
      format: Boolean,
      default: true,
      env: 'TICKGATE_WS_FLUSH_ADAPTIVE',
    },
  },
  backpressure: {
    highWaterBytes: {
      doc: 'A client whose socket buffers at least this many bytes stops receiving updates one by one: they are conflated per symbol.',
      format: intIn(1024, 1024 * 1024 * 1024),
      default: 512 * 1024,
    },
    lowWaterBytes: {
      doc: 'A conflating client whose buffer drains below this gets its merged updates and resumes normal delivery.',
      format: intIn(0, 1024 * 1024 * 1024),
      default: 128 * 1024,
    },
    maxBufferedBytes: {
      doc: 'Hard limit: a client whose socket buffers more is closed at once with bye SLOW_CONSUMER.',
      format: intIn(64 * 1024, 1024 * 1024 * 1024),
      default: 16 * 1024 * 1024,
    },
    maxTotalBufferedBytes: {
      doc:
        'Budget for the bytes buffered for all clients of the process together (all workers). Past it, the clients buffering the most are closed first with bye SLOW_CONSUMER until the total is under 90% of it. ' +
        'The default, 256 MiB, is a fixed bound rather than a share of memory: the gateway cannot tell what else shares its memory limit, and 256 MiB is 16 clients at the default per-client limit; size it to the memory you give the gateway (OPERATIONS.md). ' +
        '0: unlimited (each client is bounded by maxBufferedBytes only). Otherwise at least maxBufferedBytes; left at the default, it is raised to a larger maxBufferedBytes.',
      format: intIn(0, 1024 * 1024 * 1024 * 1024),
      default: DEFAULT_TOTAL_BUFFERED_BYTES,
      env: 'TICKGATE_BACKPRESSURE_MAX_TOTAL_BUFFERED_BYTES',
    },
    slowConsumerMs: {
      doc: 'A client that stays above the high water mark this long is closed with bye SLOW_CONSUMER (0: never for time alone).',
      format: intIn(0, 3_600_000),
      default: 15_000,
    },
    retryMs: {
      doc: 'retryMs sent in bye SLOW_CONSUMER: how long the client should wait before reconnecting.',
      format: intIn(0, 3_600_000),
      default: 5000,
    },
  },
  trade: {
    history: {
      size: {
        doc: 'Recent trades kept per symbol for last: N and for resuming with since (older ones come from the feed\'s JetStream stream, if it has one).',
        format: intIn(1, 10_000_000),
        default: 10_000,
      },
      ttlSec: {
        doc: 'Trades older than this leave the per-symbol history (0: kept until history.size pushes them out).',
        format: intIn(0, 30 * 86_400),
        default: 3600,
      },
    },
  },
  book: {
    maxLevels: {
      doc: 'Price levels kept per side of each order book; levels beyond (the worst ones) are dropped and counted.',
      format: intIn(1, 100_000),
      default: 1000,
    },
    maxDepth: {
      doc: 'Largest depth a client may subscribe to (depths are 1, 5, 10, 25, 50, 100, 500, 1000); at most book.maxLevels.',
      format: intIn(1, 1000),
      default: 100,
    },
  },
  throttle: {
    minMs: {
      doc: 'Smallest throttleMs a subscription may ask for; smaller values are raised to it.',
      format: intIn(1, 3_600_000),
      default: 50,
    },
    maxMs: {
      doc: 'Largest throttleMs a subscription may ask for; larger values are lowered to it.',
      format: intIn(1, 3_600_000),
      default: 60_000,
    },
  },
  limits: {
    maxSymbolsPerClient: { doc: 'Most symbols one connection may subscribe to.', format: intIn(1, 1_000_000), default: 2000 },
    maxMessageBytes: { doc: 'Largest client message processed (bytes).', format: intIn(256, 16 * 1024 * 1024), default: 64 * 1024 },
    maxMessagesPerSec: { doc: 'Client messages per second per connection (burst of the same size).', format: intIn(1, 100_000), default: 100 },
    maxViolations: {
      doc: 'Limit violations within 10 s after which a connection gets bye LIMIT_EXCEEDED and is closed.',
      format: intIn(1, 100_000),
      default: 20,
    },
    maxListSymbols: { doc: 'Most symbols returned by one symbols request.', format: intIn(1, 1_000_000), default: 1000 },
    maxConnectionsPerIp: {
      doc: 'Most concurrent connections from one client address (0: no limit). Behind a proxy, see trustProxyHeader.',
      format: intIn(0, 10_000_000),
      default: 1000,
    },
    maxConnectionsPerUser: {
      doc: 'Most concurrent connections per authenticated user (0: no limit; not applied with auth.mode none).',
      format: intIn(0, 10_000_000),
      default: 50,
    },
    trustProxyHeader: {
      doc: 'Header holding the client address set by a trusted proxy, e.g. x-forwarded-for (its last entry is used); empty: the socket address. Set it only behind a proxy that overwrites it.',
      format: String,
      default: '',
    },
    subscribeTimeoutMs: {
      doc: 'Close a connection that has not subscribed to anything this long after opening (bye IDLE); 0: never.',
      format: intIn(0, 86_400_000),
      default: 60_000,
    },
  },
  auth: {
    mode: {
      doc: 'Client authentication at the WebSocket upgrade: none (development), jwt, or apikey.',
      format: ['none', 'jwt', 'apikey'],
      default: 'none' as AuthMode,
      env: 'TICKGATE_AUTH_MODE',
    },
    allowQueryToken: {
      doc: 'Accept the token as a ?token= query parameter (for browsers that cannot set headers; it may end up in proxy logs).',
      format: 'flag',
      default: true,
    },
    jwt: {
      secret: { doc: 'HS256 shared secret (at least 32 bytes).', format: String, default: '', sensitive: true, env: 'TICKGATE_JWT_SECRET' },
      publicKeyFile: { doc: 'PEM file with the RS256 or ES256 public key (SPKI) that signs tokens.', format: String, default: '' },
      jwksFile: { doc: 'JWKS file (JSON) with the public keys that sign tokens, chosen by kid.', format: String, default: '' },
      algorithms: {
        doc: 'Accepted signature algorithms.',
        format: 'jwt-algorithms',
        default: ['HS256', 'RS256', 'ES256'] as string[],
      },
      issuer: { doc: 'Required iss claim (empty: not checked).', format: String, default: '' },
      audience: { doc: 'Required aud claim (empty: not checked).', format: String, default: '' },
      clockSkewSec: { doc: 'Tolerance for exp and nbf, seconds.', format: intIn(0, 600), default: 30 },
      userClaim: { doc: 'Claim naming the user (per-user limits, logs).', format: String, default: 'sub' },
      entitlementsClaim: {
        doc: 'Claim listing what the user may see: patterns like "sim:*", "nasdaq:AAPL", "*" (all).',
        format: String,
        default: 'ent',
      },
    },
    apiKeys: {
      doc: 'API keys: [{id, sha256 (hex SHA-256 of the key), user, entitlements: [patterns]}]. Only hashes are configured.',
      format: 'api-keys',
      default: [] as ApiKeyConfig[],
      sensitive: true,
    },
    failedAttempts: {
      max: {
        doc: 'Failed connection attempts (refused by authentication at the upgrade, or ended by the server\'s bye AUTH_EXPIRED within windowMs of admission) from one client address (IPv6 by its /64 prefix), or for one user, within windowMs after which its upgrades get 429 TOO_MANY_ATTEMPTS until the window ends; signature checks in flight count too, and a blocked address still gets one check per windowMs / max, which admits a valid token (0: no limit).',
        format: intIn(0, 1_000_000),
        default: 30,
      },
      windowMs: {
        doc: 'Window of auth.failedAttempts.max, from the first failure of an address or user; also how soon after admission a bye AUTH_EXPIRED counts as a failed attempt.',
        format: intIn(1000, 86_400_000),
        default: 60_000,
      },
      maxTracked: {
        doc: 'Most client addresses (and, separately, users) tracked for auth.failedAttempts.max; beyond it the least recently used are forgotten.',
        format: intIn(1, 10_000_000),
        default: 10_000,
      },
    },
  },
  origin: {
    allowed: {
      doc: 'Origins allowed to open WebSocket connections from a browser, e.g. ["https://trading.example.com"]; empty: any origin.',
      format: Array,
      default: [] as string[],
    },
    allowMissing: {
      doc: 'Allow clients that send no Origin header (non-browser clients).',
      format: 'flag',
      default: true,
    },
  },
  tls: {
    certFile: { doc: 'PEM certificate chain; with keyFile, the listener speaks TLS (wss://). Empty: plain (terminate TLS at an ingress).', format: String, default: '' },
    keyFile: { doc: 'PEM private key for certFile.', format: String, default: '' },
    passphrase: { doc: 'Passphrase of keyFile, if encrypted.', format: String, default: '', sensitive: true, env: 'TICKGATE_TLS_PASSPHRASE' },
  },
  drain: {
    delayMs: {
      doc: 'On shutdown, report not ready but keep serving this long first, so load balancers stop sending new clients before the byes go out.',
      format: intIn(0, 600_000),
      default: 0,
      env: 'TICKGATE_DRAIN_DELAY_MS',
    },
    windowMs: {
      doc: 'On shutdown, clients get bye DRAINING with retryMs spread uniformly over [0, windowMs], so their reconnects spread over this window.',
      format: intIn(0, 600_000),
      default: 5000,
      env: 'TICKGATE_DRAIN_WINDOW_MS',
    },
    timeoutMs: {
      doc: 'On shutdown, connections still open this long after the byes are closed; keep it below the orchestrator\'s grace period.',
      format: intIn(0, 600_000),
      default: 10_000,
      env: 'TICKGATE_DRAIN_TIMEOUT_MS',
    },
  },
  metrics: {
    port: {
      doc: 'Serve /metrics, /healthz and /readyz on this separate port (on host); null: on the main port.',
      format: 'optional-port',
      default: null as number | null,
      env: 'TICKGATE_METRICS_PORT',
    },
    latency: {
      doc: 'Record the latency histograms (ingest and delivery). Off only to measure what they cost.',
      format: 'flag',
      default: true,
      env: 'TICKGATE_METRICS_LATENCY',
    },
  },
  uws: {
    allowFallback: {
      doc: 'Start even when uWebSockets.js runs its slow pure-JS fallback instead of the native binary.',
      format: 'flag',
      default: false,
      env: 'TICKGATE_ALLOW_UWS_FALLBACK',
    },
  },
};

type Schema = typeof schema;

/**
 * The value a convict schema describes: a node with a `default` is a leaf of
 * its default's type, any other node an object of its keys. Object-literal
 * inference has already widened the defaults ('info' is a string, 8080 a
 * number), so a leaf whose value is narrower or richer says so on its
 * default (`'none' as AuthMode`, `[] as ApiKeyConfig[]`).
 */
type FromSchema<S> = { [K in keyof S]: S[K] extends { default: infer D } ? D : FromSchema<S[K]> };

/** The effective, validated configuration. */
export type Config = FromSchema<Schema>;

export interface LoadOptions {
  /** Path of a JSON config file, merged over the defaults. */
  file?: string | undefined;
  /** Values applied last, over files and environment (tests, embedding). */
  overrides?: Record<string, unknown>;
  /** Environment to read variables from; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

const DEFAULT_FILE = fileURLToPath(new URL('../../config/default.json', import.meta.url));
const DEFAULT_FILE_SRC = fileURLToPath(new URL('../config/default.json', import.meta.url));

function readJson(path: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${what} ${path}: cannot be read (${(err as Error).message})`, { cause: err });
  }
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object at the top');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`${what} ${path}: invalid JSON (${(err as Error).message})`, { cause: err });
  }
}

/**
 * Checks what convict's merge would get wrong: it merges an object given for
 * an array key (feeds, schema.fields) into the default array instead of
 * rejecting it.
 */
function checkShape(source: Record<string, unknown>, what: string): Record<string, unknown> {
  const feeds = source['feeds'];
  if (feeds !== undefined && !Array.isArray(feeds) && typeof feeds !== 'string') {
    throw new ConfigError(`${what}: feeds: expected a non-empty array of feeds, got ${describe(feeds)}`);
  }
  const schemaNode = source['schema'];
  const fields = typeof schemaNode === 'object' && schemaNode !== null ? (schemaNode as Record<string, unknown>)['fields'] : undefined;
  if (fields !== undefined && fields !== null && typeof fields === 'object' && !Array.isArray(fields)) {
    throw new ConfigError(`${what}: schema.fields: expected an array of {name, type}, got ${describe(fields)}`);
  }
  return source;
}

/** Is `path` (e.g. "nats.servers") a leaf of the schema? */
function isLeaf(path: string): boolean {
  let node: unknown = schema;
  for (const k of path.split('.')) node = (node as Record<string, unknown> | undefined)?.[k];
  return typeof node === 'object' && node !== null && 'default' in node;
}

/** Flattens nested override objects into [schema leaf path, value] pairs. */
function leaves(o: Record<string, unknown>, prefix = ''): [string, unknown][] {
  return Object.entries(o).flatMap(([k, v]): [string, unknown][] => {
    const path = prefix + k;
    if (isLeaf(path) || typeof v !== 'object' || v === null || Array.isArray(v)) return [[path, v]];
    return leaves(v as Record<string, unknown>, `${path}.`);
  });
}

function makeConfig(opts: LoadOptions) {
  // An empty variable means unset, as in most shells' `VAR= cmd` habits.
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.env ?? process.env)) if (v !== undefined && v !== '') env[k] = v;
  // convict reads process.env itself; hand it the chosen environment instead.
  // It re-applies the environment after every load(), so variables beat files.
  const cfg = convict<Schema>(schema as never, { env, args: [] });
  const defaultFile = [DEFAULT_FILE_SRC, DEFAULT_FILE].find((p) => existsSync(p));
  if (defaultFile) cfg.load(checkShape(readJson(defaultFile, 'config file'), defaultFile));
  const file = opts.file ?? env['TICKGATE_CONFIG'];
  if (file) cfg.load(checkShape(readJson(file, 'config file'), file));
  if (opts.overrides) {
    checkShape(opts.overrides, 'overrides');
    // set() does not re-apply the environment: overrides win over everything.
    for (const [path, v] of leaves(opts.overrides)) {
      if (!isLeaf(path)) throw new ConfigError(`overrides: ${path}: not a configuration key`);
      cfg.set(path as never, v as never);
    }
  }
  return cfg;
}

/**
 * Loads and validates the configuration. Throws {@link ConfigError} naming
 * the key, the value and what was expected.
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  let cfg;
  try {
    cfg = makeConfig(opts);
    cfg.validate({ allowed: 'strict' });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`invalid configuration: ${(err as Error).message}`, { cause: err });
  }
  // Validated by convict; feeds and schema.fields entries are parsed below.
  const raw = cfg.getProperties() as unknown as Omit<Config, 'feeds' | 'schema'> & { feeds: unknown[]; schema: { fields: unknown } };
  const bp = raw.backpressure;
  if (bp.lowWaterBytes >= bp.highWaterBytes) {
    throw new ConfigError(`backpressure.lowWaterBytes: expected less than backpressure.highWaterBytes (${bp.highWaterBytes}), got ${bp.lowWaterBytes}`);
  }
  if (bp.highWaterBytes >= bp.maxBufferedBytes) {
    throw new ConfigError(`backpressure.highWaterBytes: expected less than backpressure.maxBufferedBytes (${bp.maxBufferedBytes}), got ${bp.highWaterBytes}`);
  }
  // Left at its default, the budget follows a per-client limit raised above it (a budget below one client's limit is a mistake only when chosen).
  if (bp.maxTotalBufferedBytes === DEFAULT_TOTAL_BUFFERED_BYTES && bp.maxBufferedBytes > DEFAULT_TOTAL_BUFFERED_BYTES) bp.maxTotalBufferedBytes = bp.maxBufferedBytes;
  if (bp.maxTotalBufferedBytes !== 0 && bp.maxTotalBufferedBytes < bp.maxBufferedBytes) {
    throw new ConfigError(
      `backpressure.maxTotalBufferedBytes: expected 0 (unlimited) or at least backpressure.maxBufferedBytes (${bp.maxBufferedBytes}), got ${bp.maxTotalBufferedBytes}`,
    );
  }
  if (raw.workers > 1 && raw.nats.servers.length === 0) {
    throw new ConfigError(`workers: ${raw.workers} workers need NATS feeds (nats.servers); the embedded feed runs in one worker only`);
  }
  if (raw.workers > 1 && raw.metrics.port === null) {
    throw new ConfigError(`workers: ${raw.workers} workers need metrics.port, where their metrics are served aggregated`);
  }
  if (raw.workers > 1 && raw.port === 0) {
    throw new ConfigError('workers: several workers share one port; set port to a fixed port, not 0');
  }
  const nt = raw.nats.tls;
  if ((nt.certFile === '') !== (nt.keyFile === '')) {
    const [set, unset] = nt.certFile ? ['certFile', 'keyFile'] : ['keyFile', 'certFile'];
    throw new ConfigError(`nats.tls.${unset}: mutual TLS needs both nats.tls.certFile and nats.tls.keyFile; nats.tls.${set} is set, nats.tls.${unset} is empty`);
  }
  if (raw.nats.credsFile && raw.nats.nkeySeedFile) {
    throw new ConfigError('nats.nkeySeedFile: a credentials file (nats.credsFile) carries its own nkey seed; set one of the two');
  }
  if (raw.book.maxDepth > raw.book.maxLevels) {
    throw new ConfigError(`book.maxDepth: expected at most book.maxLevels (${raw.book.maxLevels}), got ${raw.book.maxDepth}`);
  }
  if (raw.throttle.minMs > raw.throttle.maxMs) {
    throw new ConfigError(`throttle.minMs: expected at most throttle.maxMs (${raw.throttle.maxMs}), got ${raw.throttle.minMs}`);
  }
  const fields = parseFieldSpecs(raw.schema.fields);
  const targets = new Set<string>([...CANONICAL_FIELDS, ...fields.map((f) => f.name)]);
  return { ...raw, feeds: raw.feeds.map((f, i) => parseFeed(f, i, targets)), schema: { fields } };
}

/**
 * A NATS URL with the password or token of its user info (nats://user:pass@host)
 * replaced by "[redacted]", for logs and printed configuration.
 */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/)([^@/\s]*)@/i, (_m, scheme: string, info: string) => {
    const colon = info.indexOf(':');
    return `${scheme}${colon < 0 ? '[redacted]' : `${info.slice(0, colon)}:[redacted]`}@`;
  });
}

/** The effective configuration as JSON with secrets replaced by "[redacted]". */
export function printableConfig(opts: LoadOptions = {}): string {
  const cfg = loadConfig(opts);
  const redacted = structuredClone(cfg);
  for (const k of ['pass', 'token'] as const) if (redacted.nats[k]) redacted.nats[k] = '[redacted]';
  redacted.nats.servers = redacted.nats.servers.map(redactUrl);
  if (redacted.auth.jwt.secret) redacted.auth.jwt.secret = '[redacted]';
  if (redacted.tls.passphrase) redacted.tls.passphrase = '[redacted]';
  for (const k of redacted.auth.apiKeys) k.sha256 = '[redacted]';
  return JSON.stringify(redacted, null, 2);
}
