/**
 * Processes of a benchmark and what it reads about them: starting Node
 * scripts, nats-server and the gateway as children (optionally pinned to
 * CPUs with taskset), talking to them over stdin/stdout JSON lines, sampling
 * their CPU and memory from /proc, and stopping every one of them whatever
 * happens.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/helpers/nats-server.js';

export { freePort };

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Linux reports process CPU times in USER_HZ ticks, 100 per second on every mainstream architecture. */
export const USER_HZ = 100;
const STOP_GRACE_MS = 5000;
const STDERR_TAIL = 16 * 1024;
/** Largest stdout kept with `keepStdout` (reports are a few KiB). */
const MAX_STDOUT = 4 * 1024 * 1024;
/** Longest JSON line kept waiting for a reader. */
const MAX_PENDING_LINES = 1000;

/** Every child still running, so that an exit path we did not foresee still kills them. */
const live = new Set<Proc>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Whether `taskset` can pin processes here. */
export function hasTaskset(): boolean {
  try {
    return spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** CPU list for taskset (e.g. "1" or "0-2"); null: not pinned. */
  cpus?: string | null;
  /** Keep stdin open for commands. */
  stdin?: boolean;
  /** Raise the soft limit on open files to this for the child (up to the hard limit). */
  nofile?: number;
  /** Keep everything it prints on stdout (up to MAX_STDOUT), for a report printed at exit. */
  keepStdout?: boolean;
}

/** A child process with line-oriented JSON stdout and a bounded stderr tail. */
export class Proc {
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  private err = '';
  private out = '';
  private readonly lines: Array<Record<string, unknown>> = [];
  private waiter: (() => void) | null = null;
  private partial = '';

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    opts: SpawnOptions = {},
  ) {
    let [cmd, argv] = [command, args];
    // The shell raises the limit and execs; taskset execs too: the pid is the one to measure and signal.
    if (opts.nofile !== undefined) [cmd, argv] = ['sh', ['-c', `ulimit -n ${Math.floor(opts.nofile)} && exec "$0" "$@"`, cmd, ...argv]];
    if (opts.cpus) [cmd, argv] = ['taskset', ['-c', opts.cpus, cmd, ...argv]];
    this.proc = spawn(cmd, argv, {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? tmpdir(), ...opts.env },
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    live.add(this);
    const keep = opts.keepStdout ?? false;
    this.proc.stdout!.on('data', (d: Buffer) => {
      const text = d.toString();
      if (keep && this.out.length < MAX_STDOUT) this.out += text;
      this.onStdout(text);
    });
    this.proc.stderr!.on('data', (d: Buffer) => {
      this.err = (this.err + d.toString()).slice(-STDERR_TAIL);
    });
    this.proc.stdin?.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code) => {
        live.delete(this);
        resolve(code);
        this.waiter?.();
      });
      this.proc.once('error', (e) => {
        this.err += `\n${e.message}`;
        live.delete(this);
        resolve(null);
        this.waiter?.();
      });
    });
  }

  private onStdout(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      if (!line.startsWith('{')) continue;
      try {
        if (this.lines.length < MAX_PENDING_LINES) this.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not ours
      }
    }
    if (this.lines.length > 0) this.waiter?.();
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null && this.proc.pid !== undefined;
  }

  stderr(): string {
    return this.err;
  }

  /** What it printed on stdout; empty unless started with `keepStdout`. */
  stdout(): string {
    return this.out;
  }

  send(line: string): void {
    if (this.running && this.proc.stdin?.writable) this.proc.stdin.write(line + '\n');
  }

  /** Closes stdin: processes driven by commands take that as the order to finish. */
  endInput(): void {
    this.proc.stdin?.end();
  }

  /** The next JSON line whose `ev` is `ev` (earlier lines of other kinds are dropped); rejects after `ms` or if the process exits. */
  async next<T>(ev: string, ms: number): Promise<T> {
    const deadline = performance.now() + ms;
    for (;;) {
      const i = this.lines.findIndex((l) => l['ev'] === ev || l['ev'] === 'error');
      if (i >= 0) {
        const [line] = this.lines.splice(0, i + 1).slice(-1);
        if (line!['ev'] === 'error') throw new Error(`${this.name}: ${String(line!['msg'])}`);
        return line as T;
      }
      const tail = this.err.trim() === '' ? '' : `: ${this.err.trim().slice(-2000)}`;
      if (!this.running) throw new Error(`${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}) before "${ev}"${tail}`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${this.name}: no "${ev}" within ${ms / 1000} s${tail}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = null;
          resolve();
        };
      });
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.proc.kill(signal);
  }

  /** SIGTERM (stdin closed first), then SIGKILL if it is still there after the grace period. */
  async stop(graceMs = STOP_GRACE_MS): Promise<number | null> {
    if (!this.running) return this.exited;
    this.endInput();
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** A TypeScript script of this repository run by Node through tsx. */
export function nodeScript(name: string, script: string, args: string[], opts: SpawnOptions & { nodeArgs?: string[] } = {}): Proc {
  return new Proc(name, process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', script, ...args], opts);
}

/**
 * The environment every benchmark gateway runs with: on `natsUrl`, listening
 * on 127.0.0.1:`port`, logging warnings only, and draining at once (a stop
 * must not hold the run). `extra` adds or overrides keys.
 */
export function gatewayEnv(natsUrl: string, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    TICKGATE_NATS_SERVERS: natsUrl,
    TICKGATE_HOST: '127.0.0.1',
    TICKGATE_PORT: String(port),
    TICKGATE_LOG_LEVEL: 'warn',
    TICKGATE_DRAIN_WINDOW_MS: '0',
    TICKGATE_DRAIN_TIMEOUT_MS: '2000',
    ...extra,
  };
}

/** Polls `check` every 200 ms until it holds; fails if `proc` exits first or after `ms`. */
export async function waitUntil(check: () => Promise<boolean>, proc: Proc, signal: AbortSignal, ms = 30_000): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (!proc.running) throw new Error(`${proc.name} exited: ${proc.stderr().slice(-2000)}`);
    if (performance.now() > deadline) throw new Error(`${proc.name}: not ready within ${ms / 1000} s`);
    await sleep(200, signal);
  }
}

export interface Nats {
  url: string;
  /** ws:// URL of its WebSocket listener, when it has one. */
  wsUrl: string | null;
  monitorUrl: string;
  proc: Proc;
  stop(): Promise<void>;
}

/** Starts nats-server from a config file, with a monitoring port and optionally a WebSocket listener. */
export async function startNats(opts: { websocket?: boolean; cpus?: string | null } = {}): Promise<Nats> {
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-bench-nats-'));
  const port = await freePort();
  const monitor = await freePort();
  const ws = opts.websocket ? await freePort() : null;
  const conf = [
    `listen: "127.0.0.1:${port}"`,
    `http: "127.0.0.1:${monitor}"`,
    ...(ws === null ? [] : [`websocket { listen: "127.0.0.1:${ws}", no_tls: true }`]),
  ].join('\n');
  writeFileSync(join(dir, 'nats.conf'), conf + '\n');
  const proc = new Proc('nats-server', 'nats-server', ['-c', join(dir, 'nats.conf'), '-l', join(dir, 'nats.log')], { cpus: opts.cpus ?? null });
  const stop = async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitTcp(port, proc, 10_000);
    if (ws !== null) await waitTcp(ws, proc, 10_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `nats://127.0.0.1:${port}`, wsUrl: ws === null ? null : `ws://127.0.0.1:${ws}`, monitorUrl: `http://127.0.0.1:${monitor}`, proc, stop };
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitTcp(port: number, proc: Proc, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => (s.destroy(), resolve(false)));
    });
    if (ok) return;
    if (!proc.running) throw new Error(`${proc.name} exited before listening on ${port}: ${proc.stderr().slice(-2000)}`);
    if (performance.now() > deadline) throw new Error(`${proc.name} did not listen on ${port} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** CPU ticks (user + system) of a process, or null once it has gone. */
export function procCpuTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may itself hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

/** User and system CPU ticks of a process separately, or null once it has gone. */
export function procCpuSplit(pid: number): { user: number; system: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]), system: Number(f[12]) };
  } catch {
    return null;
  }
}

/** CPU ticks of each thread of a process, summed by thread name (threads of one kind share a name). */
export function procThreadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid === String(pid) ? 'main' : name, (out.get(tid === String(pid) ? 'main' : name) ?? 0) + Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** Resident set size of a process in bytes, or null. */
export function procRss(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Busy, softirq and total ticks of one CPU (or of all together). */
export interface CpuTicks {
  busy: number;
  /** Kernel softirq time: on loopback, most of TCP's receive path runs here, attributed to no process. */
  softirq: number;
  total: number;
}

/** Ticks of all CPUs together (`all`) and of each CPU (`cpus[i]`), from /proc/stat. */
export function machineCpu(): { all: CpuTicks; cpus: CpuTicks[] } {
  const parse = (line: string): CpuTicks => {
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, softirq: v[6] ?? 0, total };
  };
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const all = parse(lines[0]!);
  const cpus: CpuTicks[] = [];
  for (const l of lines) {
    const m = /^cpu(\d+)\s/.exec(l);
    if (m) cpus[Number(m[1])] = parse(l);
  }
  return { all, cpus };
}

/** Busy and softirq % of the CPUs in `list` (e.g. "1" or "0-2"; all when null), averaged, between two samples. */
export function cpuBusy(a: { all: CpuTicks; cpus: CpuTicks[] }, b: { all: CpuTicks; cpus: CpuTicks[] }, list: string | null): { busy: number; softirq: number } | null {
  const ids = list === null ? null : cpuList(list);
  const pick = (x: { all: CpuTicks; cpus: CpuTicks[] }) =>
    ids === null
      ? x.all
      : ids.reduce<CpuTicks>((acc, i) => {
          const c = x.cpus[i];
          return c === undefined ? acc : { busy: acc.busy + c.busy, softirq: acc.softirq + c.softirq, total: acc.total + c.total };
        }, { busy: 0, softirq: 0, total: 0 });
  const p = pick(a);
  const q = pick(b);
  const total = q.total - p.total;
  if (total <= 0) return null;
  return { busy: Math.round(((q.busy - p.busy) / total) * 1000) / 10, softirq: Math.round(((q.softirq - p.softirq) / total) * 1000) / 10 };
}

/** "0-2,5" -> [0, 1, 2, 5]. */
export function cpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [lo, hi] = part.split('-').map(Number);
    if (lo === undefined || !Number.isInteger(lo)) continue;
    for (let i = lo; i <= (hi ?? lo) && i < lo + 1024; i++) out.push(i);
  }
  return out;
}

/** The soft and hard limits on open files of this process (children inherit them). */
export function openFileLimits(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const n = (s: string | undefined) => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

/** Prometheus text format to `name{labels}` -> value (labels as exposed). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

/** A gateway's /metrics, or an empty map if it does not answer within 5 s. */
export async function scrape(http: string): Promise<Map<string, number>> {
  try {
    const res = await fetch(`${http}/metrics`, { signal: AbortSignal.timeout(5000) });
    return parseMetrics(await res.text());
  } catch {
    return new Map();
  }
}

/** nats-server's /varz (null if it does not answer). */
export async function varz(monitorUrl: string): Promise<{ slow_consumers: number; in_msgs: number; out_msgs: number } | null> {
  try {
    const res = await fetch(`${monitorUrl}/varz`, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as { slow_consumers: number; in_msgs: number; out_msgs: number };
  } catch {
    return null;
  }
}

/** `p`, or a rejection as soon as `signal` aborts. */
export function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('interrupted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('interrupted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (err: unknown) => (signal.removeEventListener('abort', onAbort), reject(err as Error)),
    );
  });
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return unlessAborted(new Promise<void>((resolve) => setTimeout(resolve, ms).unref()), signal);
}

/** Number of CPUs this process may run on. */
export function cpuCount(): number {
  return cpus().length;
}
