/**
 * Integration: the gateway's connection to NATS as real deployments secure
 * it, against nats-server configured for each: TLS with a private CA (made
 * by openssl here), mutual TLS, nkey users (keys from @nats-io/nkeys, as
 * re-exported by the NATS client), and a credentials file (an operator,
 * account and user JWT chain made offline with @nats-io/jwt, the server in
 * operator mode). Secrets never reach the logs; bad files stop the start
 * naming their key.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { encode as mpEncode } from '@msgpack/msgpack';
import { createAccount, createOperator, createUser, encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { connect, credsAuthenticator, nkeyAuthenticator, nkeys, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, printableConfig } from '../src/config.js';
import { NatsConnectError } from '../src/feed/nats-source.js';
import { Gateway } from '../src/gateway.js';
import { makeTestPki, startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { TestClient } from './helpers/ws-client.js';

const dir = mkdtempSync(join(tmpdir(), 'tickgate-natssec-'));
const pki = makeTestPki();
const cleanup: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
  pki.remove();
  rmSync(dir, { recursive: true, force: true });
});

let files = 0;
function file(text: string | Uint8Array): string {
  const path = join(dir, `secret-${++files}`);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

async function server(conf: string): Promise<NatsServer> {
  const s = await startNatsServer({ conf });
  cleanup.push(() => s.stop());
  return s;
}

/** A gateway in this process whose log lines (debug and up) are kept. */
function gateway(nats: Record<string, unknown>): { gw: Gateway; logs: string[]; start(): Promise<void> } {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });
  const config = loadConfig({
    env: {},
    overrides: { host: '127.0.0.1', port: 0, nats: { connectTimeoutMs: 2000, ...nats }, feeds: [{ name: 'sim', subject: 'md.sim.>' }] },
  });
  const gw = new Gateway(config, pino({ level: 'debug' }, sink));
  cleanup.push(() => gw.stop({ delayMs: 0, windowMs: 0, timeoutMs: 500 }).catch(() => undefined));
  return { gw, logs, start: () => gw.start() };
}

/** A tick published through `pub` reaches a WebSocket client of `gw`. */
async function expectData(gw: Gateway, pub: NatsConnection, symbol: string): Promise<void> {
  const c = await TestClient.connect(`ws://127.0.0.1:${gw.port}/v1/stream`);
  cleanup.push(() => c.close());
  c.send({ op: 'sub', symbols: [symbol] });
  await c.next((m) => m.t === 'ack', 'ack');
  pub.publish(`md.sim.${symbol}`, mpEncode({ s: symbol, bid: 1.5, ask: 1.6 }));
  await pub.flush();
  const snap = await c.next((m) => m.t === 'snap' && m['s'] === symbol, 'snap');
  expect(snap['d']).toEqual({ bid: 1.5, ask: 1.6 });
}

async function publisher(opts: NodeConnectionOptions): Promise<NatsConnection> {
  const nc = await connect(opts);
  cleanup.push(() => nc.close());
  return nc;
}

async function startError(g: { start(): Promise<void> }): Promise<Error> {
  try {
    await g.start();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected start to fail');
}

describe('TLS to NATS', () => {
  it('connects with a private CA, and refuses a server its CA does not vouch for', async () => {
    const s = await server(`tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}" }\n`);
    const { gw, logs, start } = gateway({ servers: [s.url], tls: { caFile: pki.caFile } });
    await start();
    expect(gw.source.status).toMatchObject({ state: 'connected' });
    await expectData(gw, await publisher({ servers: s.url, tls: { caFile: pki.caFile } }), 'TLS1');
    expect(logs.join('')).toContain('"tls":true');

    // The system CAs do not know the test CA; another CA does not either.
    for (const caFile of [null, pki.otherCaFile]) {
      const g = gateway({ servers: [s.url], ...(caFile ? { tls: { caFile } } : {}) });
      const err = await startError(g);
      expect(err).toBeInstanceOf(NatsConnectError);
      expect(err.message).toMatch(/certificate/);
    }
  });

  it('presents a client certificate when the server requires one (mutual TLS)', async () => {
    const s = await server(`tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}", ca_file: "${pki.caFile}", verify: true }\n`);
    const withCert = { caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey };
    const { gw, start } = gateway({ servers: [s.url], tls: withCert });
    await start();
    await expectData(gw, await publisher({ servers: s.url, tls: withCert }), 'MTLS1');
    const without = gateway({ servers: [s.url], tls: { caFile: pki.caFile }, connectTimeoutMs: 500 });
    expect(await startError(without)).toBeInstanceOf(NatsConnectError);
  });

  it('names the key of a TLS file that cannot be read', () => {
    expect(() => gateway({ servers: ['nats://127.0.0.1:1'], tls: { caFile: join(dir, 'no-such-ca.pem') } })).toThrow(/^nats\.tls\.caFile: cannot read .*no-such-ca\.pem.*ENOENT/);
    expect(() => gateway({ servers: ['nats://127.0.0.1:1'], tls: { certFile: pki.clientCert, keyFile: join(dir, 'gone.key') } })).toThrow(ConfigError);
  });
});

describe('nkey users', () => {
  it('authenticates with the seed file, never logging it; a wrong key is refused', async () => {
    const gwUser = nkeys.createUser();
    const pubUser = nkeys.createUser();
    const s = await server(`authorization { users: [ { nkey: ${gwUser.getPublicKey()} }, { nkey: ${pubUser.getPublicKey()} } ] }\n`);
    const seed = new TextDecoder().decode(gwUser.getSeed());
    const seedFile = file(`# gateway nkey (nk -gen user)\n${seed}\n`);
    const { gw, logs, start } = gateway({ servers: [s.url], nkeySeedFile: seedFile });
    await start();
    await expectData(gw, await publisher({ servers: s.url, authenticator: nkeyAuthenticator(pubUser.getSeed()) }), 'NK1');
    const text = logs.join('');
    expect(text).not.toContain(seed);
    expect(text).not.toContain(seed.slice(2, 20));
    expect(printableConfig({ env: {}, overrides: { nats: { nkeySeedFile: seedFile } } })).not.toContain(seed);

    // A seed the server does not know.
    const stranger = gateway({ servers: [s.url], nkeySeedFile: file(new TextDecoder().decode(nkeys.createUser().getSeed())) });
    const err = await startError(stranger);
    expect(err).toBeInstanceOf(NatsConnectError);
    expect(err.message).toMatch(/Authorization Violation/i);
    expect(err.message).not.toContain('SU');
  });

  it('names the key of a missing or malformed seed file, without its contents', () => {
    expect(() => gateway({ servers: ['nats://127.0.0.1:1'], nkeySeedFile: join(dir, 'missing.nk') })).toThrow(/^nats\.nkeySeedFile: cannot read .*missing\.nk.*ENOENT/);
    // An account seed is not a user seed.
    const accountSeed = new TextDecoder().decode(nkeys.createAccount().getSeed());
    let err: Error | null = null;
    try {
      gateway({ servers: ['nats://127.0.0.1:1'], nkeySeedFile: file(accountSeed) });
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toMatch(/^nats\.nkeySeedFile: .* does not hold a user nkey seed/);
    expect(err!.message).not.toContain(accountSeed);
  });
});

describe('credentials file (operator, account and user JWTs)', () => {
  /** A server in operator mode trusting one account, and creds files for users of it. */
  async function operatorServer() {
    const operator = createOperator();
    const account = createAccount();
    const limits = { conn: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1, leaf: -1, wildcards: true };
    const operatorJwt = await encodeOperator('tickgate-test', operator);
    const accountJwt = await encodeAccount('MARKETS', account, { limits: limits as never }, { signer: operator });
    const s = await server(`operator: ${operatorJwt}\nresolver: MEMORY\nresolver_preload: { ${account.getPublicKey()}: ${accountJwt} }\n`);
    const creds = async (name: string, signer = account) => {
      const user = createUser();
      return { creds: fmtCreds(await encodeUser(name, user, signer), user), seed: new TextDecoder().decode(user.getSeed()) };
    };
    return { s, creds };
  }

  it('authenticates with a creds file as nsc issues it, never logging the JWT or seed', async () => {
    const { s, creds } = await operatorServer();
    const gwCreds = await creds('gateway');
    const credsFile = file(gwCreds.creds);
    const { gw, logs, start } = gateway({ servers: [s.url], credsFile });
    await start();
    await expectData(gw, await publisher({ servers: s.url, authenticator: credsAuthenticator((await creds('publisher')).creds) }), 'CR1');
    const jwt = new TextDecoder().decode(gwCreds.creds).split('\n')[1]!;
    for (const secret of [gwCreds.seed, jwt, jwt.split('.')[2]!]) expect(logs.join('')).not.toContain(secret);
    const printed = printableConfig({ env: {}, overrides: { nats: { credsFile } } });
    expect(printed).toContain(credsFile);
    expect(printed).not.toContain(gwCreds.seed);

    // A user signed by an account the server does not trust.
    const foreign = await creds('intruder', createAccount());
    const err = await startError(gateway({ servers: [s.url], credsFile: file(foreign.creds) }));
    expect(err).toBeInstanceOf(NatsConnectError);
    expect(err.message).not.toContain(foreign.seed);
  });

  it('names the key of a missing or malformed creds file', () => {
    expect(() => gateway({ servers: ['nats://127.0.0.1:1'], credsFile: join(dir, 'missing.creds') })).toThrow(/^nats\.credsFile: cannot read .*missing\.creds.*ENOENT/);
    expect(() => gateway({ servers: ['nats://127.0.0.1:1'], credsFile: file('not a creds file\n') })).toThrow(/^nats\.credsFile: .* is not a NATS credentials file/);
  });
});
