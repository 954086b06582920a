/**
 * Multi-core mode: N gateway worker threads on one port. Each worker is a
 * complete gateway (own NATS subscription and state, own uWS app listening
 * on the same port; the kernel spreads connections between them). This
 * thread serves /metrics (aggregated over the workers), /healthz and /readyz
 * on metrics.port, and drains the workers on shutdown.
 *
 * Metrics: this thread collects the process-wide ones (`process_*`, which
 * any thread would read the same) once. Each worker's counters are summed;
 * its gauges and runtime metrics (event-loop lag, heap, GC) keep a `worker`
 * label ("0".."N-1", this thread's own runtime metrics "main"), since adding
 * up per-thread state gives nonsense (see `forAggregation` in metrics.ts).
 */
import { createServer, type Server } from 'node:http';
import { Worker } from 'node:worker_threads';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Config } from './config.js';
import { budgetSlots, type BudgetShare } from './fanout/buffer-budget.js';
import type { Logger } from './log.js';
import { collectRuntimeMetrics, forAggregation, registerBuildInfo, type MetricJson } from './metrics.js';
import type { FromWorker, ToWorker } from './worker.js';

const REQUEST_TIMEOUT_MS = 5000;

export class WorkerPool {
  private readonly workers: Worker[] = [];
  private server: Server | null = null;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve(m: FromWorker): void }>();
  private draining = false;
  /** This thread's own metrics: process-wide, its runtime, build info. */
  private readonly registry = new Registry();

  constructor(
    readonly config: Config,
    private readonly log: Logger,
  ) {
    collectRuntimeMetrics(this.registry, 'process');
  }

  /** Starts every worker and the admin server; rejects if any worker fails to start. */
  async start(): Promise<void> {
    // Under tsx (development) the worker is a .ts file: a worker thread does
    // not inherit the loader, so a small bootstrap registers it first.
    const ts = import.meta.url.endsWith('.ts');
    const url = new URL(ts ? './worker.ts' : './worker.js', import.meta.url);
    const bootstrap = ts
      ? `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`
      : null;
    let uws = 'unknown';
    // One buffer budget for the process: each worker's total in its own slot, every worker checks the sum.
    const slots = budgetSlots(this.config.workers);
    const started = Array.from({ length: this.config.workers }, (_, slot) => {
      // Workers serve their own routes on the shared port; this thread owns metrics.port.
      const config: Config = { ...this.config, metrics: { ...this.config.metrics, port: null } };
      const budget: BudgetShare = { slots, slot };
      const workerData = { config, budget };
      const w = bootstrap === null ? new Worker(url, { workerData }) : new Worker(bootstrap, { eval: true, workerData });
      this.workers.push(w);
      return new Promise<void>((resolve, reject) => {
        w.on('message', (m: FromWorker) => {
          if (m.type === 'started') {
            uws = m.uws;
            resolve();
          } else if (m.type === 'failed') reject(new Error(m.message));
          else if ('id' in m) {
            this.pending.get(m.id)?.resolve(m);
            this.pending.delete(m.id);
          }
        });
        w.once('error', reject);
        w.once('exit', (code) => {
          // Its clients are gone with it: its last total must not weigh on the others' budget.
          Atomics.store(new Int32Array(slots), slot, 0);
          if (!this.draining) this.log.error({ code, worker: w.threadId }, 'gateway worker exited');
          reject(new Error(`worker exited with code ${code}`));
        });
      });
    });
    try {
      await Promise.all(started);
    } catch (err) {
      await Promise.all(this.workers.map((w) => w.terminate()));
      throw err;
    }
    registerBuildInfo(this.registry, uws);
    await this.listen();
    this.log.info({ workers: this.workers.length, port: this.config.port, metricsPort: this.config.metrics.port }, 'tickgate workers running');
  }

  private ask(w: Worker, m: Omit<ToWorker & { id: number }, 'id'> & { type: 'metrics' | 'ready' }): Promise<FromWorker> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker ${w.threadId} did not answer ${m.type}`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
      });
      w.postMessage({ ...m, id } as ToWorker);
    });
  }

  /** Process metrics once, workers' counters summed, their gauges and runtime metrics by `worker`. */
  async metrics(): Promise<{ type: string; body: string }> {
    const all = await Promise.all(this.workers.map((w) => this.ask(w, { type: 'metrics' })));
    const own = (await this.registry.getMetricsAsJSON()) as unknown as MetricJson[];
    const reg = AggregatorRegistry.aggregate([
      forAggregation(own, 'main'),
      ...all.map((m, i) => forAggregation(m.type === 'metrics' ? (m.metrics as MetricJson[]) : [], String(i))),
    ] as never);
    return { type: reg.contentType, body: await reg.metrics() };
  }

  async readiness(): Promise<{ ready: boolean; reasons: string[] }> {
    if (this.draining) return { ready: false, reasons: ['gateway is draining'] };
    const all = await Promise.all(this.workers.map((w) => this.ask(w, { type: 'ready' })));
    const reasons = all.flatMap((m, i) => (m.type === 'ready' ? m.reasons.map((r) => `worker ${i}: ${r}`) : []));
    return { ready: reasons.length === 0, reasons };
  }

  private listen(): Promise<void> {
    this.server = createServer((req, res) => {
      const reply = (status: number, type: string, body: string) => {
        res.writeHead(status, { 'Content-Type': type });
        res.end(body);
      };
      const path = (req.url ?? '/').split('?')[0];
      const route =
        path === '/healthz'
          ? Promise.resolve({ status: 200, type: 'application/json', body: '{"status":"ok"}\n' })
          : path === '/readyz'
            ? this.readiness().then((r) => ({ status: r.ready ? 200 : 503, type: 'application/json', body: JSON.stringify(r) + '\n' }))
            : path === '/metrics'
              ? this.metrics().then((m) => ({ status: 200, ...m }))
              : Promise.resolve({ status: 404, type: 'text/plain', body: 'not found\n' });
      route.then(
        (r) => reply(r.status, r.type, r.body),
        (err: unknown) => reply(500, 'text/plain', `internal error: ${(err as Error).message}\n`),
      );
    });
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.config.metrics.port!, this.config.host, () => resolve());
    });
  }

  /** Drains every worker (each sends its clients bye DRAINING) and stops. */
  async stop(opts: { delayMs?: number } = {}): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    const delayMs = opts.delayMs ?? this.config.drain.delayMs;
    // A worker ends on its own once its sockets are closed; one that does not
    // is terminated after the drain should have finished.
    const deadline = delayMs + this.config.drain.timeoutMs + 5000;
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              this.log.warn({ worker: w.threadId }, 'worker did not end after draining; terminating it');
              void w.terminate();
            }, deadline);
            w.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            w.postMessage({ type: 'stop', delayMs } satisfies ToWorker);
          }),
      ),
    );
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.log.info('tickgate stopped');
  }
}
