import { describe, it, expect, expectTypeOf, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, printableConfig, type ApiKeyConfig, type Config, type FeedConfig } from './config.js';
import { MAX_CONFIGURED_FIELDS, type FieldSpec } from './protocol/fields.js';

let dir = '';
let fileCount = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tickgate-config-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a config file (an object as JSON, or raw text) and returns its path. */
function file(content: unknown): string {
  const path = join(dir, `config-${++fileCount}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** Loads with the given file or environment only; never reads process.env. */
function load(opts: { file?: unknown; env?: Record<string, string> } = {}) {
  return loadConfig({ env: opts.env ?? {}, ...(opts.file !== undefined ? { file: file(opts.file) } : {}) });
}

/** The ConfigError thrown by `fn`; fails when it does not throw one. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).name).toBe('ConfigError');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

function expectMessage(err: ConfigError, ...parts: string[]): void {
  for (const p of parts) expect(err.message).toContain(p);
}

const SIM_FEED: FeedConfig = {
  name: 'sim',
  kind: 'quote',
  subject: 'md.sim.>',
  codec: 'msgpack',
  symbolField: 's',
  symbolToken: null,
  fields: {},
  queue: null,
  staleAfterMs: 10_000,
  jetstream: null, volume: false,
};

/** The example configuration of the README: a msgpack feed and a json feed with renamed fields. */
const README_EXAMPLE = {
  port: 8080,
  nats: { servers: ['nats://127.0.0.1:4222'] },
  feeds: [
    { name: 'crypto', kind: 'quote', subject: 'md.crypto.>', codec: 'msgpack', symbolField: 's' },
    { name: 'fx', kind: 'quote', subject: 'quotes.fx.>', codec: 'json', symbolField: 'pair', fields: { b: 'bid', a: 'ask', px: 'last' } },
  ],
};

describe('loadConfig defaults', () => {
  it('gives every key its default', () => {
    const cfg = load();
    expect(cfg.host).toBe('127.0.0.1');
    expect(cfg.port).toBe(8080);
    expect(cfg.log).toEqual({ level: 'info', pretty: false });
    expect(cfg.nats).toEqual({
      servers: [],
      name: 'tickgate',
      user: '',
      pass: '',
      token: '',
      reconnectWaitMs: 1000,
      connectTimeoutMs: 5000,
      warmTimeoutMs: 10_000,
      pingIntervalMs: 2000,
      maxPingsOut: 4,
      tls: { caFile: '', certFile: '', keyFile: '' },
      credsFile: '',
      nkeySeedFile: '',
      pendingMsgsLimit: 65_536,
      pendingBytesLimit: 64 * 1024 * 1024,
    });
    expect(cfg.feeds).toEqual([SIM_FEED]);
    expect(cfg.embedded).toEqual({ symbols: 500, ticksPerSec: 2000, seed: 1, books: 50, bookChangesPerSec: 2000, tradesPerSec: 500 });
    expect(cfg.ws).toEqual({ heartbeatMs: 5000, idleTimeoutSec: 120, maxFrameBytes: 256 * 1024, flushIntervalMs: 5, flushAdaptive: true });
    expect(cfg.backpressure).toEqual({
      highWaterBytes: 512 * 1024,
      lowWaterBytes: 128 * 1024,
      maxBufferedBytes: 16 * 1024 * 1024,
      maxTotalBufferedBytes: 256 * 1024 * 1024,
      slowConsumerMs: 15_000,
      retryMs: 5000,
    });
    expect(cfg.throttle).toEqual({ minMs: 50, maxMs: 60_000 });
    expect(cfg.limits).toEqual({
      maxSymbolsPerClient: 2000,
      maxMessageBytes: 64 * 1024,
      maxMessagesPerSec: 100,
      maxViolations: 20,
      maxListSymbols: 1000,
      maxConnectionsPerIp: 1000,
      maxConnectionsPerUser: 50,
      trustProxyHeader: '',
      subscribeTimeoutMs: 60_000,
    });
    expect(cfg.auth.mode).toBe('none');
    expect(cfg.origin).toEqual({ allowed: [], allowMissing: true });
    expect(cfg.uws).toEqual({ allowFallback: false });
  });

  it('returns independent objects on each load', () => {
    const a = load();
    a.feeds[0]!.name = 'changed';
    a.nats.servers.push('nats://x:1');
    const b = load();
    expect(b.feeds).toEqual([SIM_FEED]);
    expect(b.nats.servers).toEqual([]);
  });
});

describe('loadConfig sources', () => {
  it('reads a config file', () => {
    const cfg = load({ file: { host: '0.0.0.0', port: 9100, log: { level: 'warn' }, ws: { maxFrameBytes: 65536 } } });
    expect(cfg.host).toBe('0.0.0.0');
    expect(cfg.port).toBe(9100);
    expect(cfg.log.level).toBe('warn');
    expect(cfg.ws.maxFrameBytes).toBe(65536);
    // Keys the file does not set keep their defaults.
    expect(cfg.ws.heartbeatMs).toBe(5000);
    expect(cfg.log.pretty).toBe(false);
  });

  it('reads the file named by TICKGATE_CONFIG', () => {
    expect(loadConfig({ env: { TICKGATE_CONFIG: file({ port: 9200 }) } }).port).toBe(9200);
  });

  it('prefers the file option to TICKGATE_CONFIG', () => {
    const cfg = loadConfig({ file: file({ port: 9300 }), env: { TICKGATE_CONFIG: file({ port: 9200 }) } });
    expect(cfg.port).toBe(9300);
  });

  it('reads environment variables', () => {
    const cfg = load({
      env: {
        TICKGATE_PORT: '9001',
        TICKGATE_HOST: '0.0.0.0',
        TICKGATE_NATS_SERVERS: 'nats://a.example:4222, tls://b.example:4223,,',
        TICKGATE_LOG_LEVEL: 'debug',
      },
    });
    expect(cfg.port).toBe(9001);
    expect(cfg.host).toBe('0.0.0.0');
    expect(cfg.nats.servers).toEqual(['nats://a.example:4222', 'tls://b.example:4223']);
    expect(cfg.log.level).toBe('debug');
  });

  it('accepts a single NATS server and host:port form', () => {
    expect(load({ env: { TICKGATE_NATS_SERVERS: 'nats://127.0.0.1:4222' } }).nats.servers).toEqual(['nats://127.0.0.1:4222']);
    expect(load({ env: { TICKGATE_NATS_SERVERS: 'localhost:4222' } }).nats.servers).toEqual(['localhost:4222']);
  });

  it('lets environment variables win over the file', () => {
    const cfg = load({
      file: { host: '10.1.2.3', port: 7000, log: { level: 'error' }, nats: { servers: ['nats://file:4222'] } },
      env: { TICKGATE_PORT: '9001', TICKGATE_NATS_SERVERS: 'nats://env:4222' },
    });
    expect(cfg.port).toBe(9001);
    expect(cfg.nats.servers).toEqual(['nats://env:4222']);
    // Keys without an env var come from the file.
    expect(cfg.host).toBe('10.1.2.3');
    expect(cfg.log.level).toBe('error');
  });

  it('applies overrides over the file', () => {
    const cfg = loadConfig({ env: {}, file: file({ port: 7000, ws: { heartbeatMs: 900 } }), overrides: { port: 0, ws: { heartbeatMs: 250 } } });
    expect(cfg.port).toBe(0);
    expect(cfg.ws.heartbeatMs).toBe(250);
  });

  // convict re-imports the environment after every load(); overrides are
  // set afterwards so a test asking for port 0 gets it whatever TICKGATE_PORT says.
  it('applies overrides over environment variables', () => {
    const cfg = loadConfig({ env: { TICKGATE_PORT: '9001' }, overrides: { port: 0 } });
    expect(cfg.port).toBe(0);
  });

  it('loads the README example', () => {
    const cfg = load({ file: README_EXAMPLE });
    expect(cfg.nats.servers).toEqual(['nats://127.0.0.1:4222']);
    expect(cfg.feeds).toEqual<FeedConfig[]>([
      { name: 'crypto', kind: 'quote', subject: 'md.crypto.>', codec: 'msgpack', symbolField: 's', symbolToken: null, fields: {}, queue: null, staleAfterMs: 10_000, jetstream: null, volume: false },
      {
        name: 'fx',
        kind: 'quote',
        subject: 'quotes.fx.>',
        codec: 'json',
        symbolField: 'pair',
        symbolToken: null,
        fields: { b: 'bid', a: 'ask', px: 'last' },
        queue: null,
        staleAfterMs: 10_000,
        jetstream: null, volume: false,
      },
    ]);
  });

  it('fills feed defaults from the name', () => {
    const cfg = load({ file: { feeds: [{ name: 'eq' }, { name: 'fx', symbolToken: -1, queue: 'gw' }] } });
    expect(cfg.feeds).toEqual<FeedConfig[]>([
      { name: 'eq', kind: 'quote', subject: 'md.eq.>', codec: 'msgpack', symbolField: 's', symbolToken: null, fields: {}, queue: null, staleAfterMs: 10_000, jetstream: null, volume: false },
      { name: 'fx', kind: 'quote', subject: 'md.fx.>', codec: 'msgpack', symbolField: 's', symbolToken: -1, fields: {}, queue: 'gw', staleAfterMs: 10_000, jetstream: null, volume: false },
    ]);
  });
});

describe('loadConfig errors', () => {
  it('rejects a port out of range, naming the key and the value', () => {
    expectMessage(configError(() => load({ env: { TICKGATE_PORT: '99999' } })), 'port', '99999');
    expectMessage(configError(() => load({ file: { port: 70000 } })), 'port', '70000');
    expectMessage(configError(() => load({ file: { port: -1 } })), 'port', '-1');
    expectMessage(configError(() => load({ file: { port: 80.5 } })), 'port', '80.5');
  });

  // A non-numeric port is reported with the text that produced it.
  it('names a non-numeric port from the environment', () => {
    expectMessage(configError(() => load({ env: { TICKGATE_PORT: 'http' } })), 'port', 'http');
  });

  it('rejects an unknown log level, naming the key and the value', () => {
    expectMessage(configError(() => load({ env: { TICKGATE_LOG_LEVEL: 'loud' } })), 'log.level', 'loud');
    expectMessage(configError(() => load({ file: { log: { level: 'verbose' } } })), 'log.level', 'verbose');
  });

  it('rejects unknown keys, naming them', () => {
    expectMessage(configError(() => load({ file: { colour: 'blue' } })), 'colour');
    expectMessage(configError(() => load({ file: { ws: { maxFrameByte: 4096 } } })), 'ws.maxFrameByte');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'a', symbol: 'x' }] } })), 'feeds[0].symbol');
  });

  it('rejects feeds that are not a non-empty array', () => {
    expectMessage(configError(() => load({ file: { feeds: 5 } })), 'feeds', '5');
    expectMessage(configError(() => load({ file: { feeds: null } })), 'feeds', 'null');
    expectMessage(configError(() => load({ file: { feeds: [] } })), 'feeds', '[]');
  });

  // convict would merge an object into the default feed list as a stray
  // property and start on the default feed; it must be rejected instead.
  it('rejects feeds given as an object', () => {
    expectMessage(configError(() => load({ file: { feeds: { name: 'eq', codec: 'json' } } })), 'feeds', '"eq"');
  });

  // A string that is not JSON still gets a message naming the key.
  it('names the key when feeds is a string that is not JSON', () => {
    expectMessage(configError(() => load({ file: { feeds: 'eq,fx' } })), 'feeds', 'eq,fx');
  });

  it('rejects a feed that is not an object', () => {
    expectMessage(configError(() => load({ file: { feeds: ['eq'] } })), 'feeds[0]', '"eq"');
  });

  it('rejects a feed without a valid name', () => {
    expectMessage(configError(() => load({ file: { feeds: [{ codec: 'json' }] } })), 'feeds[0].name', 'undefined');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'ok' }, { name: 'has space' }] } })), 'feeds[1].name', '"has space"');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'x'.repeat(33) }] } })), 'feeds[0].name', 'x'.repeat(33));
  });

  it('rejects duplicate feed names', () => {
    const err = configError(() => load({ file: { feeds: [{ name: 'a' }, { name: 'b' }, { name: 'a' }] } }));
    expectMessage(err, 'feeds[2].name', 'duplicate', '"a"');
  });

  it('rejects an unknown codec', () => {
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'a', codec: 'xml' }] } })), 'feeds[0].codec', '"xml"');
  });

  it('rejects a rename to a non-canonical field', () => {
    const err = configError(() => load({ file: { feeds: [{ name: 'fx', fields: { b: 'bid', a: 'offer' } }] } }));
    expectMessage(err, 'feeds[0].fields.a', '"offer"');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'fx', fields: { b: 1 } }] } })), 'feeds[0].fields.b', '1');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'fx', fields: ['bid'] }] } })), 'feeds[0].fields', '["bid"]');
  });

  it('rejects a non-integer symbolToken', () => {
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'a', symbolToken: 1.5 }] } })), 'feeds[0].symbolToken', '1.5');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'a', symbolToken: '2' }] } })), 'feeds[0].symbolToken', '"2"');
  });

  it('rejects a bad subject, symbolField or queue', () => {
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'a', kind: 'quote', subject: 'md..x' }] } })), 'feeds[0].subject', '"md..x"');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'a', kind: 'quote', subject: 'md a' }] } })), 'feeds[0].subject', '"md a"');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'a', symbolField: '' }] } })), 'feeds[0].symbolField', '""');
    expectMessage(configError(() => load({ file: { feeds: [{ name: 'a', queue: '' }] } })), 'feeds[0].queue', '""');
  });

  it('rejects a bad NATS URL', () => {
    expectMessage(configError(() => load({ env: { TICKGATE_NATS_SERVERS: 'http://127.0.0.1:4222' } })), 'nats.servers', 'http://127.0.0.1:4222');
    expectMessage(
      configError(() => load({ file: { nats: { servers: ['nats://ok:4222', 'not a url'] } } })),
      'nats.servers',
      'not a url',
    );
    expectMessage(configError(() => load({ file: { nats: { servers: [4222] } } })), 'nats.servers', '4222');
  });

  it('accepts a comma-separated server string in a file as a list', () => {
    expect(load({ file: { nats: { servers: 'nats://a:4222,nats://b:4222' } } }).nats.servers).toEqual(['nats://a:4222', 'nats://b:4222']);
  });

  it('rejects numbers out of their range', () => {
    expectMessage(configError(() => load({ file: { ws: { maxFrameBytes: 100 } } })), 'ws.maxFrameBytes', '100');
    expectMessage(configError(() => load({ file: { embedded: { seed: -1 } } })), 'embedded.seed', '-1');
  });

  it('rejects a file that is not valid JSON, naming the file', () => {
    const path = file('{ "port": 80, }');
    const err = configError(() => loadConfig({ env: {}, file: path }));
    expectMessage(err, path, 'invalid JSON');
    expect(err.cause).toBeInstanceOf(SyntaxError);
  });

  it('rejects a file whose top level is not an object', () => {
    const path = file('[{"port": 80}]');
    expectMessage(configError(() => loadConfig({ env: {}, file: path })), path, 'object');
  });

  it('rejects a missing file, naming it', () => {
    const path = join(dir, 'does-not-exist.json');
    const err = configError(() => loadConfig({ env: {}, file: path }));
    expectMessage(err, path, 'cannot be read');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
    expectMessage(configError(() => loadConfig({ env: { TICKGATE_CONFIG: path } })), path);
  });

  // Empty means unset, as with `TICKGATE_PORT=${PORT}` in a compose file.
  it('treats an empty environment variable as unset', () => {
    const cfg = load({ env: { TICKGATE_PORT: '', TICKGATE_LOG_LEVEL: '', TICKGATE_HOST: '' } });
    expect(cfg.port).toBe(8080);
    expect(cfg.log.level).toBe('info');
    expect(cfg.host).toBe('127.0.0.1');
  });
});

describe('cross-key checks', () => {
  it('requires low water < high water < hard limit, and throttle min <= max', () => {
    expectMessage(configError(() => load({ file: { backpressure: { lowWaterBytes: 600_000 } } })), 'backpressure.lowWaterBytes', '600000');
    expectMessage(
      configError(() => load({ file: { backpressure: { highWaterBytes: 20_000_000 } } })),
      'backpressure.highWaterBytes',
      '20000000',
    );
    expectMessage(configError(() => load({ file: { throttle: { minMs: 500, maxMs: 100 } } })), 'throttle.minMs', '500');
  });
});

describe('NATS failover, TLS and credentials keys', () => {
  it('detects a silent server within about 10 s by default', () => {
    const { pingIntervalMs, maxPingsOut } = load().nats;
    // Given up after between maxPingsOut and maxPingsOut + 1 unanswered intervals.
    expect(pingIntervalMs * maxPingsOut).toBeGreaterThanOrEqual(5000);
    expect(pingIntervalMs * (maxPingsOut + 1)).toBeLessThanOrEqual(10_000);
  });

  it('rejects ping and pending settings out of range, naming the key', () => {
    expectMessage(configError(() => load({ file: { nats: { pingIntervalMs: 10 } } })), 'nats.pingIntervalMs', '10');
    expectMessage(configError(() => load({ file: { nats: { maxPingsOut: 0 } } })), 'nats.maxPingsOut', '0');
    expectMessage(configError(() => load({ file: { nats: { pendingMsgsLimit: 0 } } })), 'nats.pendingMsgsLimit', '0');
    expectMessage(configError(() => load({ file: { nats: { pendingBytesLimit: 100 } } })), 'nats.pendingBytesLimit', '100');
  });

  it('reads the TLS and credential file paths from the environment', () => {
    const cfg = load({
      env: {
        TICKGATE_NATS_TLS_CA_FILE: '/etc/nats/ca.pem',
        TICKGATE_NATS_TLS_CERT_FILE: '/etc/nats/client.pem',
        TICKGATE_NATS_TLS_KEY_FILE: '/etc/nats/client.key',
        TICKGATE_NATS_CREDS_FILE: '/etc/nats/gw.creds',
      },
    });
    expect(cfg.nats.tls).toEqual({ caFile: '/etc/nats/ca.pem', certFile: '/etc/nats/client.pem', keyFile: '/etc/nats/client.key' });
    expect(cfg.nats.credsFile).toBe('/etc/nats/gw.creds');
    expect(load({ env: { TICKGATE_NATS_NKEY_SEED_FILE: '/etc/nats/gw.nk' } }).nats.nkeySeedFile).toBe('/etc/nats/gw.nk');
  });

  it('needs both halves of a client certificate, naming the missing one', () => {
    expectMessage(configError(() => load({ file: { nats: { tls: { certFile: '/c.pem' } } } })), 'nats.tls.keyFile', 'nats.tls.certFile');
    expectMessage(configError(() => load({ file: { nats: { tls: { keyFile: '/c.key' } } } })), 'nats.tls.certFile');
    expect(load({ file: { nats: { tls: { caFile: '/ca.pem' } } } }).nats.tls.caFile).toBe('/ca.pem');
  });

  it('refuses a credentials file together with an nkey seed', () => {
    expectMessage(configError(() => load({ file: { nats: { credsFile: '/a.creds', nkeySeedFile: '/a.nk' } } })), 'nats.nkeySeedFile', 'nats.credsFile');
  });
});

describe('printableConfig', () => {
  it('redacts passwords and tokens in NATS URLs and shows credential paths, not contents', () => {
    const text = printableConfig({
      env: { TICKGATE_NATS_SERVERS: 'nats://gw:Url-Secret-1@n1:4222,nats://Tok-Secret-2@n2:4222,nats://n3:4222', TICKGATE_NATS_CREDS_FILE: '/run/secrets/gw.creds' },
    });
    expect(text).not.toContain('Url-Secret-1');
    expect(text).not.toContain('Tok-Secret-2');
    const parsed = JSON.parse(text) as Config;
    expect(parsed.nats.servers).toEqual(['nats://gw:[redacted]@n1:4222', 'nats://[redacted]@n2:4222', 'nats://n3:4222']);
    expect(parsed.nats.credsFile).toBe('/run/secrets/gw.creds');
  });

  it('redacts the NATS password and token', () => {
    const text = printableConfig({
      env: { TICKGATE_NATS_USER: 'gateway', TICKGATE_NATS_PASS: 'pa55-Secret-xyz', TICKGATE_NATS_TOKEN: 'tok-Secret-123' },
    });
    expect(text).not.toContain('pa55-Secret-xyz');
    expect(text).not.toContain('tok-Secret-123');
    const parsed = JSON.parse(text) as { nats: { user: string; pass: string; token: string } };
    expect(parsed.nats.pass).toBe('[redacted]');
    expect(parsed.nats.token).toBe('[redacted]');
    expect(parsed.nats.user).toBe('gateway');
  });

  it('redacts secrets given in a file and leaves the loaded config untouched', () => {
    const path = file({ nats: { pass: 'from-file-pass', token: 'from-file-token' } });
    const text = printableConfig({ env: {}, file: path });
    expect(text).not.toContain('from-file-pass');
    expect(text).not.toContain('from-file-token');
    expect(loadConfig({ env: {}, file: path }).nats.pass).toBe('from-file-pass');
  });

  it('prints the effective configuration as JSON, empty secrets as they are', () => {
    const parsed = JSON.parse(printableConfig({ env: { TICKGATE_PORT: '9005' } })) as ReturnType<typeof loadConfig>;
    expect(parsed.port).toBe(9005);
    expect(parsed.feeds).toEqual([SIM_FEED]);
    expect(parsed.nats.pass).toBe('');
    expect(parsed.nats.token).toBe('');
  });

  it('fails like loadConfig on invalid configuration', () => {
    expectMessage(configError(() => printableConfig({ env: { TICKGATE_LOG_LEVEL: 'loud' } })), 'log.level');
  });
});

describe('Config type', () => {
  // Checked by tsc (npm test runs it over the tests): the leaves whose type
  // is not the widened raw default, as the derivation from the schema gives them.
  it('types the leaves whose value is narrower or richer than the raw default', () => {
    expectTypeOf<Config['auth']['mode']>().toEqualTypeOf<'none' | 'jwt' | 'apikey'>();
    expectTypeOf<Config['auth']['apiKeys']>().toEqualTypeOf<ApiKeyConfig[]>();
    expectTypeOf<Config['feeds']>().toEqualTypeOf<FeedConfig[]>();
    expectTypeOf<Config['metrics']['port']>().toEqualTypeOf<number | null>();
    expectTypeOf<Config['schema']['fields']>().toEqualTypeOf<FieldSpec[]>();
    expectTypeOf<Config['log']>().toEqualTypeOf<{ level: string; pretty: boolean }>();
    expectTypeOf<Config['nats']['servers']>().toEqualTypeOf<string[]>();
  });
});

describe('schema.fields', () => {
  /** `n` numeric field declarations f0, f1, ... */
  const numeric = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `f${i}`, type: 'number' }));

  it('defaults to no configured fields', () => {
    expect(load().schema).toEqual({ fields: [] });
  });

  it('keeps the declared order and fills type with "number"', () => {
    const cfg = load({ file: { schema: { fields: [{ name: 'mark', type: 'number' }, { name: 'openInterest' }, { name: 'status', type: 'text' }] } } });
    expect(cfg.schema.fields).toEqual<FieldSpec[]>([
      { name: 'mark', type: 'number' },
      { name: 'openInterest', type: 'number' },
      { name: 'status', type: 'text' },
    ]);
  });

  it('accepts names of 1 to 32 characters starting with a letter or _', () => {
    const names = ['x', '_', 'A1', 'open_interest', 'y'.repeat(32)];
    expect(load({ file: { schema: { fields: names.map((name) => ({ name })) } } }).schema.fields.map((f) => f.name)).toEqual(names);
  });

  it('reads TICKGATE_SCHEMA_FIELDS as JSON', () => {
    const cfg = load({ env: { TICKGATE_SCHEMA_FIELDS: '[{"name":"mark"},{"name":"status","type":"text"}]' } });
    expect(cfg.schema.fields).toEqual<FieldSpec[]>([
      { name: 'mark', type: 'number' },
      { name: 'status', type: 'text' },
    ]);
  });

  it('rejects TICKGATE_SCHEMA_FIELDS that is not a JSON array, naming the key', () => {
    expectMessage(configError(() => load({ env: { TICKGATE_SCHEMA_FIELDS: 'mark,status' } })), 'schema.fields', 'mark,status');
    expectMessage(configError(() => load({ env: { TICKGATE_SCHEMA_FIELDS: '{"name":"mark"}' } })), 'schema.fields', 'array', 'mark');
  });

  // As with feeds, convict would merge the object into the default [] and
  // start with no configured fields.
  it('rejects schema.fields given as an object or a number', () => {
    expectMessage(configError(() => load({ file: { schema: { fields: { name: 'mark' } } } })), 'schema.fields', '"mark"');
    expectMessage(configError(() => load({ file: { schema: { fields: 5 } } })), 'schema.fields', '5');
  });

  it('rejects an entry that is not an object', () => {
    expectMessage(configError(() => load({ file: { schema: { fields: [{ name: 'a' }, 'mark'] } } })), 'schema.fields[1]:', '"mark"');
    expectMessage(configError(() => load({ file: { schema: { fields: [null] } } })), 'schema.fields[0]:', 'null');
    expectMessage(configError(() => load({ file: { schema: { fields: [['mark']] } } })), 'schema.fields[0]:', '["mark"]');
  });

  it('rejects an unknown key, naming it', () => {
    expectMessage(configError(() => load({ file: { schema: { fields: [{ name: 'a', size: 8 }] } } })), 'schema.fields[0].size', 'unknown key', 'name, type');
  });

  it('rejects a bad name, naming the entry and the rule', () => {
    for (const name of ['', '1x', 'has space', 'a-b', 'é', 'z'.repeat(33), 5, undefined]) {
      const err = configError(() => load({ file: { schema: { fields: [{ name: 'ok' }, { name }] } } }));
      expectMessage(err, 'schema.fields[1].name', '1-32', '/^[A-Za-z_][A-Za-z0-9_]{0,31}$/', JSON.stringify(name) ?? 'undefined');
    }
  });

  it('rejects a name that is a canonical field, listing them', () => {
    const err = configError(() => load({ file: { schema: { fields: [{ name: 'mark' }, { name: 'a' }, { name: 'b' }, { name: 'bid' }] } } }));
    expectMessage(err, 'schema.fields[3].name', '"bid"', 'canonical', 'bid, ask, bidSize, askSize, last, lastSize, volume, open, high, low, close, ts, seq');
    expectMessage(configError(() => load({ file: { schema: { fields: [{ name: 'seq', type: 'text' }] } } })), 'schema.fields[0].name', '"seq"');
  });

  it('rejects the wire keys of an update', () => {
    for (const name of ['s', 't', 'q', 'd', 'n']) {
      expectMessage(configError(() => load({ file: { schema: { fields: [{ name }] } } })), 'schema.fields[0].name', `"${name}"`, 'reserved', 's, t, q, d, n');
    }
  });

  it('rejects __proto__, which clients could not keep in a plain object', () => {
    expectMessage(configError(() => load({ file: { schema: { fields: [{ name: '__proto__' }] } } })), 'schema.fields[0].name', '"__proto__"');
  });

  it('rejects a name declared twice, naming both entries', () => {
    const err = configError(() => load({ file: { schema: { fields: [{ name: 'mark' }, { name: 'status', type: 'text' }, { name: 'mark', type: 'text' }] } } }));
    expectMessage(err, 'schema.fields[2].name', 'duplicate', '"mark"', 'schema.fields[0].name');
  });

  it('rejects a bad type, naming what is expected', () => {
    for (const type of ['string', 'Number', '', 1, false]) {
      const err = configError(() => load({ file: { schema: { fields: [{ name: 'mark', type }] } } }));
      expectMessage(err, 'schema.fields[0].type', '"number" or "text"', JSON.stringify(type));
    }
  });

  it(`accepts up to ${MAX_CONFIGURED_FIELDS} fields and rejects more, giving the count`, () => {
    expect(MAX_CONFIGURED_FIELDS).toBe(200);
    expect(load({ file: { schema: { fields: numeric(200) } } }).schema.fields).toHaveLength(200);
    expectMessage(configError(() => load({ file: { schema: { fields: numeric(201) } } })), 'schema.fields: at most 200 configured fields are supported, got 201');
    expectMessage(configError(() => load({ file: { schema: { fields: numeric(250) } } })), 'schema.fields: at most 200 configured fields are supported, got 250');
  });

  // More than fit a 32-bit mask beside the canonical fields, and text mixed in.
  it('accepts 40 numeric fields and a text field', () => {
    const fields = [...numeric(40), { name: 'status', type: 'text' }];
    expect(load({ file: { schema: { fields } } }).schema.fields).toEqual(fields);
  });

  it('lets a feed rename a source field to a configured field', () => {
    const cfg = load({
      file: {
        schema: { fields: [{ name: 'mark' }, { name: 'status', type: 'text' }] },
        feeds: [{ name: 'perp', fields: { mp: 'mark', st: 'status', b: 'bid' } }],
      },
    });
    expect(cfg.feeds[0]!.fields).toEqual({ mp: 'mark', st: 'status', b: 'bid' });
  });

  it('rejects a rename to a field not declared, listing what is allowed', () => {
    const err = configError(() => load({ file: { schema: { fields: [{ name: 'mark' }] }, feeds: [{ name: 'perp', fields: { x: 'openInterest' } }] } }));
    expectMessage(err, 'feeds[0].fields.x', '"openInterest"', 'bid, ask', 'schema.fields (mark)');
    // Declared in another case only: names are case-sensitive.
    expectMessage(configError(() => load({ file: { schema: { fields: [{ name: 'mark' }] }, feeds: [{ name: 'perp', fields: { x: 'Mark' } }] } })), 'feeds[0].fields.x', '"Mark"');
  });

  it('applies schema.fields given as an override', () => {
    expect(loadConfig({ env: {}, overrides: { schema: { fields: [{ name: 'mark' }] } } }).schema.fields).toEqual([{ name: 'mark', type: 'number' }]);
  });

  it('is printed by printableConfig', () => {
    const parsed = JSON.parse(printableConfig({ env: { TICKGATE_SCHEMA_FIELDS: '[{"name":"status","type":"text"}]' } })) as Config;
    expect(parsed.schema.fields).toEqual([{ name: 'status', type: 'text' }]);
  });
});
