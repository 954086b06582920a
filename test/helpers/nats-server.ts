/**
 * Starts real nats-server processes on free loopback ports for a test, and
 * stops them: one server (optionally with JetStream, or with extra config
 * such as TLS or nkey users), or a cluster of several routed together.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  url: string;
  port: number;
  /** Process id (e.g. for SIGSTOP). */
  pid: number;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** One nats-server process, started and waited for. */
interface Spawned {
  proc: ChildProcess;
  exited: Promise<void>;
  /** SIGCONT (a stopped process handles nothing else), SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

async function spawnNats(args: string[], port: number): Promise<Spawned> {
  const proc: ChildProcess = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 10_000;
    proc.once('error', (err) => reject(new Error(`cannot start nats-server (is it installed?): ${err.message}`)));
    proc.once('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${stderr}`)));
    const poll = () => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline) reject(new Error(`nats-server did not listen on ${port} within 10 s: ${stderr}`));
        else setTimeout(poll, 25);
      });
    };
    poll();
  });
  return {
    proc,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const pid = proc.pid!;
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
      const timer = setTimeout(() => proc.exitCode === null && proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Starts nats-server (optionally with JetStream) and waits until it accepts
 * clients. `conf`: extra nats-server configuration (e.g. a `tls { }` or
 * `authorization { }` block), written to a file passed with -c; the address
 * and port flags still apply.
 */
export async function startNatsServer(opts: { jetstream?: boolean; port?: number; storeDir?: string; conf?: string } = {}): Promise<NatsServer> {
  const port = opts.port ?? (await freePort());
  const dir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'tickgate-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(port), '-l', join(dir, 'nats.log')];
  if (opts.jetstream) args.push('-js', '-sd', dir);
  if (opts.conf !== undefined) {
    const file = join(dir, 'nats.conf');
    writeFileSync(file, opts.conf);
    args.push('-c', file);
  }
  const s = await spawnNats(args, port);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: s.proc.pid!,
    async stop() {
      await s.stop();
      // A store dir the caller gave is the caller's: it may start the server on it again.
      if (opts.storeDir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One node of a {@link NatsCluster}. */
export interface NatsNode {
  /** server_name, e.g. "n1". */
  name: string;
  url: string;
  port: number;
  /** Port of the monitoring endpoints (/connz, /routez, /jsz). */
  httpPort: number;
  pid: number;
  /** SIGSTOP: the process stops answering, its TCP connections stay open. */
  freeze(): void;
  /** SIGCONT after a freeze. */
  thaw(): void;
  /** SIGKILL: gone at once, connections reset. */
  kill(): Promise<void>;
  /** Whether a client connection with this name is on this node now (its /connz). */
  hasClient(name: string): Promise<boolean>;
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** Every node's client URL. */
  urls: string[];
  /** The node a client named `name` is connected to, waiting up to `ms` for it to appear. */
  nodeOf(name: string, ms?: number): Promise<NatsNode>;
  stop(): Promise<void>;
}

async function getJson(url: string): Promise<Record<string, unknown>> {
  return (await (await fetch(url, { signal: AbortSignal.timeout(1000) })).json()) as Record<string, unknown>;
}

/**
 * Starts `size` nats-server nodes routed into one cluster on loopback (each
 * with its own client, route and monitoring port; with `jetstream`, clustered
 * JetStream with a store dir per node) and waits until every node has its
 * routes (and, with JetStream, a meta leader). Routes advertise each node's
 * client URL, so clients learn the others from any one.
 */
export async function startNatsCluster(opts: { size?: number; jetstream?: boolean } = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-natscluster-'));
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), http: await freePort(), route: await freePort() })));
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.route}`).join(', ');
  const spawned: Spawned[] = [];
  const nodes: NatsNode[] = [];
  const stopAll = async () => {
    await Promise.all(spawned.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < size; i++) {
      const name = `n${i + 1}`;
      const p = ports[i]!;
      const conf = [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${p.client}`,
        `http: 127.0.0.1:${p.http}`,
        `log_file: "${join(dir, `${name}.log`)}"`,
        opts.jetstream ? `jetstream { store_dir: "${join(dir, name)}" }` : '',
        `cluster { name: tickgate-test, listen: 127.0.0.1:${p.route}, routes: [${routes}] }`,
      ].join('\n');
      const file = join(dir, `${name}.conf`);
      writeFileSync(file, conf + '\n');
      const s = await spawnNats(['-c', file], p.client);
      spawned.push(s);
      const pid = s.proc.pid!;
      nodes.push({
        name,
        url: `nats://127.0.0.1:${p.client}`,
        port: p.client,
        httpPort: p.http,
        pid,
        freeze: () => process.kill(pid, 'SIGSTOP'),
        thaw: () => process.kill(pid, 'SIGCONT'),
        async kill() {
          if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
          await s.exited;
        },
        async hasClient(client: string) {
          try {
            const connz = await getJson(`http://127.0.0.1:${p.http}/connz?limit=1024`);
            return ((connz['connections'] as Array<{ name?: string }> | undefined) ?? []).some((c) => c.name === client);
          } catch {
            return false; // frozen or gone
          }
        },
      });
    }
    // Routes settle within about 2 s; JetStream then elects a meta leader.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await Promise.all(
        nodes.map(async (n) => {
          try {
            const routez = await getJson(`http://127.0.0.1:${n.httpPort}/routez`);
            if ((routez['num_routes'] as number) < size - 1) return false;
            if (!opts.jetstream) return true;
            const jsz = await getJson(`http://127.0.0.1:${n.httpPort}/jsz`);
            return Boolean((jsz['meta_cluster'] as { leader?: string } | undefined)?.leader);
          } catch {
            return false;
          }
        }),
      );
      if (ok.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error(`NATS cluster did not form within 20 s (logs in ${dir})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await stopAll();
    throw err;
  }
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    async nodeOf(client: string, ms = 5000) {
      const deadline = Date.now() + ms;
      for (;;) {
        for (const n of nodes) if (await n.hasClient(client)) return n;
        if (Date.now() > deadline) throw new Error(`no node lists a client named ${client}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: stopAll,
  };
}

/** Files of a test PKI made by openssl: a CA, a server certificate for 127.0.0.1, a client certificate. */
export interface TestPki {
  dir: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second CA that signed nothing here: a client trusting only it must refuse the server. */
  otherCaFile: string;
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

/** Generates a CA and certificates (P-256, valid 2 days) with openssl in a temp dir. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-pki-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    openssl(dir, ['req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=tickgate test ${ca}`]);
  }
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    openssl(dir, ['req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=tickgate test ${who}`]);
    openssl(dir, ['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.pem`, '-days', '2', '-extfile', `${who}.ext`]);
  }
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    otherCaFile: join(dir, 'other-ca.pem'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
