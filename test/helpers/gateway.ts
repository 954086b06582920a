/**
 * Starts a gateway in this process on a free loopback port.
 */
import { loadConfig } from '../../src/config.js';
import { Gateway } from '../../src/gateway.js';
import { createLogger } from '../../src/log.js';

export interface TestGateway {
  gateway: Gateway;
  url: string;
  http: string;
  stop(): Promise<void>;
  /** Scrapes /metrics and returns the value of one sample (0 if absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export async function startGateway(overrides: Record<string, unknown> = {}): Promise<TestGateway> {
  const config = loadConfig({ env: {}, overrides: { host: '127.0.0.1', port: 0, ...overrides } });
  const gateway = new Gateway(config, createLogger(process.env['TEST_LOG_LEVEL'] ?? 'silent', false));
  await gateway.start();
  const http = `http://127.0.0.1:${gateway.port}`;
  return {
    gateway,
    url: `ws://127.0.0.1:${gateway.port}/v1/stream`,
    http,
    stop: () => gateway.stop({ delayMs: 0, windowMs: 0, timeoutMs: 1000 }),
    async metric(name, labels = {}) {
      const text = await (await fetch(`${http}/metrics`)).text();
      return sampleValue(text, name, labels);
    },
  };
}

/** Finds one sample in Prometheus text format by name and exact label subset. */
export function sampleValue(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: Record<string, string> = {};
    for (const kv of (m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)) have[kv[1]!] = kv[2]!;
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[4]);
  }
  return 0;
}
