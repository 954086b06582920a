/**
 * A gateway worker thread: one full gateway (its own NATS connection,
 * symbol state and uWS app on the shared port), driven by the supervisor
 * in src/workers.ts over messages.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import type { Config } from './config.js';
import type { BudgetShare } from './fanout/buffer-budget.js';
import { Gateway } from './gateway.js';
import { createLogger } from './log.js';

/** Supervisor -> worker. */
export type ToWorker = { type: 'metrics'; id: number } | { type: 'ready'; id: number } | { type: 'stop'; delayMs: number };
/** Worker -> supervisor. */
export type FromWorker =
  | { type: 'started'; uws: string }
  | { type: 'failed'; message: string }
  | { type: 'metrics'; id: number; metrics: unknown[] }
  | { type: 'ready'; id: number; ready: boolean; reasons: string[] }
  | { type: 'stopped' };

const port = parentPort!;
const { config, budget } = workerData as { config: Config; budget: BudgetShare };
const log = createLogger(config.log.level, config.log.pretty).child({ worker: threadId });
const send = (m: FromWorker) => port.postMessage(m);

let gateway: Gateway;
try {
  // Process-wide metrics (CPU, memory, fds) are the supervisor's to report, once.
  gateway = new Gateway(config, log, 'thread');
  // The buffer budget is the process's: this worker counts in its slot and enforces against the sum.
  gateway.hub.registry.budget.share(budget);
  await gateway.start();
  send({ type: 'started', uws: gateway.uwsVersion });
} catch (err) {
  send({ type: 'failed', message: (err as Error).message });
  process.exit(1);
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'metrics':
      void gateway.metrics.getMetricsAsJSON().then((metrics) => send({ type: 'metrics', id: m.id, metrics }));
      break;
    case 'ready': {
      const r = gateway.readinessReasons();
      send({ type: 'ready', id: m.id, ready: r.length === 0, reasons: r });
      break;
    }
    case 'stop':
      // The listen socket must be closed before the thread ends (uWS aborts the process otherwise); stop() does.
      void gateway.stop({ delayMs: m.delayMs }).finally(() => {
        send({ type: 'stopped' });
        // Let uWS finish closing the sockets on its loop, then end the thread
        // by letting the loop run dry (process.exit here crashed uWS in tests).
        port.close();
      });
      break;
  }
});
