/**
 * nats-server with a plain-text WebSocket listener (and optionally
 * JetStream), and a publisher on it that speaks the NATS text protocol the
 * way the k6 feed VUs do (load/k6/lib/book-feed.ts): text frames out, PONG
 * to every PING.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { NatsLines, frameText, natsConnect } from '../../load/k6/lib/book-feed.js';
import { freePort } from './nats-server.js';

export interface NatsWs {
  url: string;
  wsUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts nats-server from a config file. It pings every client every
 * 200 ms and drops one after 2 unanswered pings, so a publisher that does
 * not answer them is found out within a second.
 */
export async function startNatsWithWebSocket(opts: { jetstream?: boolean } = {}): Promise<NatsWs> {
  const [port, wsPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-nats-ws-'));
  const conf = join(dir, 'nats.conf');
  const js = opts.jetstream ? `jetstream {\n  store_dir: "${join(dir, 'js')}"\n}\n` : '';
  writeFileSync(conf, `listen: "127.0.0.1:${port}"\nping_interval: "200ms"\nping_max: 2\n${js}websocket {\n  listen: "127.0.0.1:${wsPort}"\n  no_tls: true\n}\n`);
  const proc = spawn('nats-server', ['-c', conf, '-l', join(dir, 'nats.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const listening = (p: number) =>
    new Promise<boolean>((resolve) => {
      const s = tcpConnect(p, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => (s.destroy(), resolve(false)));
    });
  const deadline = Date.now() + 10_000;
  while (!((await listening(port)) && (await listening(wsPort)))) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`nats-server with websocket did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${wsPort}`,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A k6 feed VU's connection, in Node: text frames out, binary frames in, PONG to every PING. */
export class FeedSocket {
  readonly errors: string[] = [];
  pings = 0;
  private pongs = 0;
  private readonly lines = new NatsLines();
  private waiters: Array<() => void> = [];

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      for (const e of this.lines.push(frameText(new Uint8Array(data)))) {
        if (e.kind === 'ping') {
          this.pings++;
          this.send('PONG\r\n');
        } else if (e.kind === 'pong') this.pongs++;
        else if (e.kind === 'error') this.errors.push(e.text);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(url: string, name: string): Promise<FeedSocket> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    const f = new FeedSocket(ws);
    f.send(natsConnect(name));
    await f.flush();
    return f;
  }

  /** As k6's `socket.send(string)`: one text frame. */
  send(text: string): void {
    this.ws.send(text, { binary: false });
  }

  /** Sends a PING and waits for its PONG: everything sent before has been processed by the server. */
  async flush(): Promise<void> {
    const want = this.pongs + 1;
    this.send('PING\r\n');
    const deadline = Date.now() + 5000;
    while (this.pongs < want) {
      if (Date.now() > deadline) throw new Error(`no PONG from nats-server; errors: ${this.errors.join('; ')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  close(): void {
    this.ws.close();
  }
}
