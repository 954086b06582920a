/**
 * The published packages as a user receives them. `npm pack` makes the
 * tarballs of tickgate (the server, its `tickgate` command, and the SDK at
 * `tickgate/client`) and of clients/js (`@tickgate/client`, the SDK alone);
 * publint and @arethetypeswrong/cli lint them; a separate project installs
 * them offline, type-checks an app against them under NodeNext and bundler
 * resolution, bundles a browser app with esbuild, and runs: the packed
 * server's own `tickgate serve` answers, and the app, compiled by tsc, reads
 * a snapshot from it through each package.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, type BuildOptions } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './helpers/nats-server.js';
import { ensureBuilt, ROOT, waitReady } from './helpers/process.js';

const CLIENT_DIR = join(ROOT, 'clients/js');
const BIN = (tool: string) => join(ROOT, 'node_modules/.bin', tool);
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment without npm's own `npm_*` variables (under `npm test`
 * they carry the outer project's settings, which must not leak into the npm
 * commands run here for other directories) and without `TICKGATE_*` ones, so
 * the packed server runs on its own defaults.
 */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|TICKGATE_)/i.test(k)) env[k] = v;
  return { ...env, NO_COLOR: '1', npm_config_update_notifier: 'false', ...extra };
}

/** Runs a command to completion (bounded by `timeoutMs`); never throws on a non-zero exit. */
function run(cmd: string, args: string[], cwd: string, timeoutMs = 30_000, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: cleanEnv(env), timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return r;
}

interface Packed {
  tarball: string;
  files: string[];
}

async function pack(dir: string, dest: string, ignoreScripts: boolean): Promise<Packed> {
  const args = ['pack', '--json', '--pack-destination', dest, ...(ignoreScripts ? ['--ignore-scripts'] : [])];
  const r = ok(await run('npm', args, dir, 60_000), `npm pack in ${dir}`);
  // Lifecycle scripts print to stdout too; the JSON report is the last thing printed.
  const json = r.stdout.slice(r.stdout.lastIndexOf('\n[') + 1);
  const [info] = JSON.parse(json) as Array<{ filename: string; files: Array<{ path: string }> }>;
  return { tarball: join(dest, info!.filename), files: info!.files.map((f) => f.path) };
}

type LockEntry = { version: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; [k: string]: unknown };
type Manifest = { dependencies?: Record<string, string>; [k: string]: unknown };

/**
 * A lockfile for the consumer, taken from the project's own package-lock.json:
 * the exact versions this repository installs, for the dependencies of the
 * packed packages plus `extra` (what the consumer app itself uses).
 *
 * Why a lockfile: `npm ci` fills npm's cache with package tarballs, keyed by
 * integrity, but not with the registry's version lists, so an offline
 * `npm install <tarball>` cannot resolve a range like `^3.1.3` on a fresh
 * machine (ENOTCACHED). With every version and integrity given, the offline
 * install takes each tarball from the cache.
 */
function consumerLock(roots: Record<string, string>, extra: string[], local: Record<string, { file: string; manifest: Manifest }>): object {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const out: Record<string, unknown> = {};
  // Node's lookup: from a package at `from`, the nearest node_modules/<name> up the tree.
  const resolve = (from: string, name: string): string | undefined => {
    for (let base = from; ; ) {
      const p = `${base === '' ? '' : base + '/'}node_modules/${name}`;
      if (lock.packages[p] !== undefined) return p;
      if (base === '') return undefined;
      const i = base.lastIndexOf('/node_modules/');
      base = i < 0 ? '' : base.slice(0, i);
    }
  };
  const visit = (from: string, deps: Record<string, string>, optional: Record<string, string>): void => {
    for (const name of [...Object.keys(deps), ...Object.keys(optional)]) {
      const at = resolve(from, name);
      if (at === undefined) {
        if (name in optional) continue; // not installed here (another platform's binary)
        throw new Error(`package-lock.json has no ${name} (needed from ${from || 'the root'})`);
      }
      if (at in out) continue;
      const { dev: _dev, devOptional: _devOptional, ...entry } = lock.packages[at]!;
      out[at] = entry;
      visit(at, entry.dependencies ?? {}, entry.optionalDependencies ?? {});
    }
  };
  const all: Record<string, string> = {};
  for (const { manifest } of Object.values(local)) Object.assign(all, manifest.dependencies);
  for (const name of extra) all[name] = '*';
  visit('', all, {});
  for (const [name, { file, manifest }] of Object.entries(local)) {
    const integrity = `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
    out[`node_modules/${name}`] = { ...manifest, resolved: `file:${file}`, integrity };
  }
  return { name: 'consumer', lockfileVersion: 3, requires: true, packages: { '': { name: 'consumer', dependencies: roots }, ...out } };
}

// A Node.js app: the SDK through both packages, with the `ws` package as
// its WebSocket, and the server entry's types.
const NODE_APP = `import WebSocket from 'ws';
import { TickgateClient, type Update } from 'tickgate/client';
import { TickgateClient as SdkOnlyClient, RequestError } from '@tickgate/client';
import type { runServer } from 'tickgate';

const start: typeof runServer | null = null;

async function firstSnapshot(client: TickgateClient | SdkOnlyClient, symbol: string): Promise<Update> {
  await client.connect();
  // The iterator first, so the subscription's snapshot is its first update.
  const updates = client.updates();
  const ack = await client.subscribe([symbol]);
  if (!ack.ok.includes(symbol)) throw new Error('not subscribed: ' + JSON.stringify(ack));
  for await (const u of updates) if (u.symbol === symbol) return u;
  throw new Error('updates ended');
}

const [url, symbol = 'AAPL'] = process.argv.slice(2);
if (url === undefined) throw new Error('usage: node node.js URL [SYMBOL]');
const timer = setTimeout(() => {
  console.error('no snapshot within 10 s');
  process.exit(1);
}, 10_000);
const seen: Record<string, { snapshot: boolean; q: number; bid: number | undefined; ask: number | undefined }> = {};
for (const [name, Client] of [['tickgate/client', TickgateClient], ['@tickgate/client', SdkOnlyClient]] as const) {
  const client = new Client({ url, WebSocket, reconnect: false });
  const u = await firstSnapshot(client, symbol);
  seen[name] = { snapshot: u.snapshot, q: u.q, bid: u.state.bid, ask: u.state.ask };
  await client.close();
}
clearTimeout(timer);
console.log(JSON.stringify({ symbol, seen, errorClass: RequestError.name, start }));
`;

// A browser app: the platform's WebSocket, nothing from Node.js.
const BROWSER_APP = `import { TickgateClient } from '@tickgate/client';

const client = new TickgateClient({ url: 'wss://example.invalid/v1/stream' });
export async function show(el: { textContent: string | null }): Promise<void> {
  await client.connect();
  const updates = client.updates();
  await client.subscribe(['AAPL']);
  for await (const u of updates) el.textContent = u.symbol + ' ' + (u.state.bid ?? '');
}
`;

// Must fail to type-check: shows that the packages' types are read (an untyped import would be any).
const WRONG_APP = `import { TickgateClient } from '@tickgate/client';

export const client = new TickgateClient({ url: 42 });
`;

const COMMON = { target: 'ES2022', strict: true, skipLibCheck: false, types: ['node'], pretty: false };
const TSCONFIGS = {
  'tsconfig.nodenext.json': { compilerOptions: { ...COMMON, module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], outDir: 'out', rootDir: '.' } },
  'tsconfig.bundler.json': { compilerOptions: { ...COMMON, module: 'ESNext', moduleResolution: 'bundler', lib: ['ES2022', 'DOM'], noEmit: true } },
};
const APP_FILES = ['src/node.ts', 'src/browser.ts', 'wrong/app.ts'];

let tmp = '';
let consumer = '';
let root: Packed;
let client: Packed;
let server: ChildProcess | null = null;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'tickgate-packages-'));
  consumer = join(tmp, 'consumer');
  // The root package's prepack runs `npm run build`, whose dashboard step
  // first deletes dist/dashboard, which other test files running alongside
  // serve. So this builds what that step would (tsc here; the dashboard only
  // when missing: `npm test` builds it before the tests) and packs without
  // scripts. The client package's prepack owns clients/js/dist and runs.
  const clientPacked = pack(CLIENT_DIR, tmp, false); // its build runs alongside
  clientPacked.catch(() => undefined); // awaited below; not unhandled should the build throw first
  ensureBuilt();
  if (!existsSync(join(ROOT, 'dist/dashboard/index.html'))) ok(await run(process.execPath, ['scripts/build-dashboard.mjs'], ROOT), 'dashboard build');
  [root, client] = await Promise.all([pack(ROOT, tmp, true), clientPacked]);

  // What a lockfile records of a package: from its package.json.
  const manifest = (dir: string): Manifest => {
    const { version, license, dependencies, bin, engines } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
    return { version, license, ...(dependencies === undefined ? {} : { dependencies }), ...(bin === undefined ? {} : { bin }), ...(engines === undefined ? {} : { engines }) };
  };
  const extra = ['ws', '@types/ws', '@types/node'];
  const lockVersions = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> };
  const roots: Record<string, string> = { tickgate: `file:${root.tarball}`, '@tickgate/client': `file:${client.tarball}` };
  for (const name of extra) roots[name] = lockVersions.packages[`node_modules/${name}`]!.version;
  mkdirSync(join(consumer, 'src'), { recursive: true });
  mkdirSync(join(consumer, 'wrong'));
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: roots }, null, 2));
  const local = { tickgate: { file: root.tarball, manifest: manifest(ROOT) }, '@tickgate/client': { file: client.tarball, manifest: manifest(CLIENT_DIR) } };
  writeFileSync(join(consumer, 'package-lock.json'), JSON.stringify(consumerLock(roots, extra, local), null, 2));
  ok(await run('npm', ['install', '--offline', '--no-audit', '--no-fund', root.tarball, client.tarball], consumer, 60_000), 'offline install');

  writeFileSync(join(consumer, 'src/node.ts'), NODE_APP);
  writeFileSync(join(consumer, 'src/browser.ts'), BROWSER_APP);
  writeFileSync(join(consumer, 'wrong/app.ts'), WRONG_APP);
  for (const [name, cfg] of Object.entries(TSCONFIGS)) writeFileSync(join(consumer, name), JSON.stringify({ ...cfg, files: APP_FILES }, null, 2));
}, 120_000);

afterAll(async () => {
  if (server !== null && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGKILL');
    await exited;
  }
  if (tmp !== '') rmSync(tmp, { recursive: true, force: true });
});

describe('packed tarballs', { timeout: 60_000 }, () => {
  it('publint finds no problem in either package, warnings included', async () => {
    const results = await Promise.all([root, client].map((p) => run(BIN('publint'), ['run', '--strict', p.tarball], tmp)));
    for (const [i, r] of results.entries()) {
      ok(r, `publint ${[root, client][i]!.tarball}`);
      expect(r.stdout).toContain('All good!');
    }
  });

  it('@arethetypeswrong/cli resolves every entry point to its types under node16 (from ESM) and bundler', async () => {
    // Both packages are ESM only ("type": "module", exports without a
    // "require" condition; the SDK's sources are ES modules): the esm-only
    // profile leaves out the resolutions such a package does not serve,
    // require() from CommonJS (node16-cjs) and TypeScript's pre-exports
    // node10, and checks the rest. --no-definitely-typed: the packages ship
    // their own declarations, and the check stays offline.
    const results = await Promise.all(
      [root, client].map((p) => run(BIN('attw'), ['--profile', 'esm-only', '--no-definitely-typed', '--format', 'json', p.tarball], tmp)),
    );
    const entries: string[][] = [];
    for (const [i, r] of results.entries()) {
      ok(r, `attw ${[root, client][i]!.tarball}`);
      // The JSON report also lists what the profile leaves out; nothing else may be there.
      const report = JSON.parse(r.stdout) as { problems?: Record<string, Array<{ resolutionKind?: string }>>; analysis: { entrypoints: Record<string, unknown> } };
      const counted = Object.values(report.problems ?? {}).flat().filter((p) => p.resolutionKind !== 'node10' && p.resolutionKind !== 'node16-cjs');
      expect(counted).toEqual([]);
      entries.push(Object.keys(report.analysis.entrypoints).sort());
    }
    expect(entries).toEqual([
      ['.', './client', './package.json'],
      ['.', './package.json'],
    ]);
  });

  it('tickgate holds the built server, its declarations, the command, the default config and the dashboard, and no sources or tests', () => {
    for (const f of ['dist/src/cli.js', 'dist/src/main.js', 'dist/src/main.d.ts', 'dist/src/worker.js', 'dist/src/client/index.js', 'dist/src/client/index.d.ts', 'config/default.json', 'dist/dashboard/index.html']) {
      expect(root.files).toContain(f);
    }
    expect(root.files.filter((f) => /\.test\.|^test\/|^src\/|\.ts$(?<!\.d\.ts)/.test(f))).toEqual([]);
  });

  it('@tickgate/client holds only its build, no native binary, and depends on @msgpack/msgpack alone', async () => {
    const listing = ok(await run('tar', ['-tzf', client.tarball], tmp), 'tar').stdout.trim().split('\n');
    expect(listing.length).toBeGreaterThan(5);
    expect(listing.filter((f) => !/^package\/(dist\/[\w.-]+\.(js|d\.ts|js\.map)|package\.json|README\.md)$/.test(f))).toEqual([]);
    expect(listing.filter((f) => /\.node$|uWebSockets|uws/i.test(f))).toEqual([]);
    expect(listing).toContain('package/dist/index.d.ts');
    const installed = JSON.parse(readFileSync(join(consumer, 'node_modules/@tickgate/client/package.json'), 'utf8')) as Record<string, unknown>;
    const rootVersion = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(installed).toMatchObject({ name: '@tickgate/client', version: rootVersion, license: 'Apache-2.0' });
    expect(Object.keys(installed['dependencies'] as object)).toEqual(['@msgpack/msgpack']);
    for (const k of ['peerDependencies', 'optionalDependencies', 'bundleDependencies', 'bundledDependencies']) expect(installed[k]).toBeUndefined();
  });
});

describe('a consumer project with the packages installed', { timeout: 60_000 }, () => {
  it('bundles a browser app with esbuild without uWebSockets.js, ws or node: modules, small', async () => {
    const sizes: Record<string, { bytes: number; gzip: number }> = {};
    const entries: Array<[string, BuildOptions]> = [
      ['@tickgate/client', { entryPoints: [join(consumer, 'src/browser.ts')] }],
      ['tickgate/client', { stdin: { contents: `export { TickgateClient } from 'tickgate/client';`, resolveDir: consumer, loader: 'ts' } }],
    ];
    for (const [name, entry] of entries) {
      const r = await build({ ...entry, absWorkingDir: consumer, bundle: true, minify: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, metafile: true, logLevel: 'silent' });
      const inputs = Object.keys(r.metafile.inputs);
      expect(inputs.some((f) => f.includes('/dist/') && f.endsWith('client.js'))).toBe(true);
      expect(inputs.filter((f) => /uWebSockets|uws-js|node_modules\/ws\/|^node:/.test(f))).toEqual([]);
      const [out] = Object.values(r.metafile.outputs);
      expect(out!.imports).toEqual([]);
      const text = r.outputFiles[0]!.text;
      expect(text).not.toMatch(/uWebSockets|["']node:|(from|require\(|import\()\s*["']ws["']/);
      sizes[name] = { bytes: text.length, gzip: gzipSync(text).length };
    }
    // Found: about 40 KB minified, 12 KB gzipped (SDK and its MessagePack decoder).
    for (const s of Object.values(sizes)) {
      expect(s.bytes).toBeLessThan(64 * 1024);
      expect(s.gzip).toBeLessThan(20 * 1024);
    }
  });

  it('tsc types the apps from the packages under NodeNext and under bundler resolution, and reports the one deliberate error', async () => {
    const results = await Promise.all(Object.keys(TSCONFIGS).map((config) => run(process.execPath, [TSC, '-p', config], consumer, 60_000)));
    for (const r of results) {
      const errors = [...r.stdout.matchAll(/^(\S+)\((\d+),\d+\): error (TS\d+)/gm)].map((m) => `${m[1]}:${m[2]} ${m[3]}`);
      expect(r.stdout).not.toMatch(/TS2307|TS7016/);
      // url: 42 where the SDK's types say string | readonly string[].
      expect(errors).toEqual(['wrong/app.ts:3 TS2322']);
      expect(r.code).not.toBe(0);
    }
  });

  it('runs the packed tickgate command: --help, and serve --print-config from the packed default config', async () => {
    const tickgate = join(consumer, 'node_modules/.bin/tickgate');
    const help = ok(await run(tickgate, ['--help'], consumer), 'tickgate --help');
    expect(help.stdout).toMatch(/^usage: tickgate <command>/);
    // Run from the consumer, so config/default.json can only come from the package.
    const printed = ok(await run(tickgate, ['serve', '--print-config'], consumer), 'tickgate serve --print-config');
    expect(JSON.parse(printed.stdout)).toMatchObject({ port: 8080, feeds: [{ name: 'sim', subject: 'md.sim.>' }] });
  });

  it('the packed tickgate serve answers with its dashboard, and the app compiled by tsc reads a snapshot from it through each package', async () => {
    const emitted = join(consumer, 'out/src/node.js');
    expect(existsSync(emitted)).toBe(true); // from the NodeNext check above
    const port = await freePort();
    let stderr = '';
    const proc = spawn(join(consumer, 'node_modules/.bin/tickgate'), ['serve'], {
      cwd: consumer,
      env: cleanEnv({ TICKGATE_HOST: '127.0.0.1', TICKGATE_PORT: String(port), TICKGATE_LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    server = proc;
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    await waitReady(`http://127.0.0.1:${port}/readyz`, 15_000, { proc, stdout: () => '', stderr: () => stderr, exited });

    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);

    const r = ok(await run(process.execPath, [emitted, `ws://127.0.0.1:${port}/v1/stream`, 'AAPL'], consumer, 20_000), 'consumer app');
    const got = JSON.parse(r.stdout) as { symbol: string; seen: Record<string, { snapshot: boolean; q: number; bid: unknown; ask: unknown }>; errorClass: string };
    expect(got.errorClass).toBe('RequestError');
    expect(Object.keys(got.seen)).toEqual(['tickgate/client', '@tickgate/client']);
    for (const s of Object.values(got.seen)) {
      expect(s.snapshot).toBe(true);
      expect(s.q).toBeGreaterThan(0);
      expect(typeof s.bid).toBe('number');
      expect(typeof s.ask).toBe('number');
    }

    proc.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('no exit within 15 s'), 15_000).unref())]);
    expect(code).toBe(0);
    server = null;
  });
});
