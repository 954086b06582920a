/**
 * Starts a real nats-server on a free loopback port for a test, and stops it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  url: string;
  port: number;
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

/** Starts nats-server (optionally with JetStream) and waits until it accepts clients. */
export async function startNatsServer(opts: { jetstream?: boolean; port?: number; storeDir?: string } = {}): Promise<NatsServer> {
  const port = opts.port ?? (await freePort());
  const dir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'tickgate-nats-'));
  const args = ['-a', '127.0.0.1', '-p', String(port), '-l', join(dir, 'nats.log')];
  if (opts.jetstream) args.push('-js', '-sd', dir);
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
    url: `nats://127.0.0.1:${port}`,
    port,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
      // A store dir the caller gave is the caller's: it may start the server on it again.
      if (opts.storeDir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}
