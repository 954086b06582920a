/**
 * The Grafana dashboard's panels, and their queries run by promtool over a
 * real gateway's scrape: each must parse and return a value above zero, so
 * a wrong label name or value, or a typo in PromQL, fails.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ROOT } from './process.js';

export interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'dashboards/tickgate.json'), 'utf8')) as { panels: Panel[] };

/** The panels of the row titled `title`, up to the next row. */
export function rowPanels(title: string): Panel[] {
  const start = dashboard.panels.findIndex((p) => p.type === 'row' && p.title === title);
  if (start < 0) return [];
  const end = dashboard.panels.findIndex((p, i) => i > start && p.type === 'row');
  return dashboard.panels.slice(start + 1, end < 0 ? undefined : end);
}

/**
 * Runs every query of `panels` with promtool over the samples of `metrics`
 * in `scrape` (Prometheus text), as two minutes of series: counters from 0,
 * gauges constant. Returns how many queries ran and promtool's verdict.
 */
export function runPanelQueries(scrape: string, metrics: readonly string[], panels: readonly Panel[]): { queries: number; status: number | null; output: string } {
  const types = new Map([...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const series: { series: string; values: string }[] = [];
  for (const line of scrape.split('\n')) {
    const m = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || !metrics.includes(m[1]!)) continue;
    const labels = ['job="tickgate"', 'instance="gw:9000"', ...(m[2] ? [m[2]] : [])].join(', ');
    const v = m[3]!;
    // A histogram's _bucket, _sum and _count samples count up like counters.
    const type = types.get(m[1]!) ?? types.get(m[1]!.replace(/_(bucket|sum|count)$/, ''));
    series.push({ series: `${m[1]}{${labels}}`, values: type === 'counter' || type === 'histogram' ? `0 ${v} ${v}` : `${v} ${v} ${v}` });
  }
  const tests = panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      // The panel's query as Grafana sends it, then: does it return something above zero?
      expr: `clamp_max(count((${t.expr.replaceAll('$job', 'tickgate').replaceAll('$instance', 'gw:9000').replaceAll('$__rate_interval', '5m')}) > 0), 1)`,
      eval_time: '2m',
      exp_samples: [{ labels: '{}', value: 1 }],
    })),
  );
  const dir = mkdtempSync(join(tmpdir(), 'tickgate-dash-'));
  try {
    const file = join(dir, 'panels.test.yml');
    writeFileSync(file, stringify({ rule_files: [], evaluation_interval: '1m', tests: [{ interval: '1m', input_series: series, promql_expr_test: tests }] }));
    const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' });
    if (r.error) throw new Error(`promtool not runnable (apt-get install prometheus): ${r.error.message}`);
    return { queries: tests.length, status: r.status, output: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
