/**
 * Where a Node process spent its CPU: the top functions by self time in a
 * `.cpuprofile` written by `node --cpu-prof`.
 *
 *   tsx bench/cpu-profile.ts FILE.cpuprofile [--top 20]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ROOT } from './procs.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds on the process's monotonic clock (CLOCK_MONOTONIC on Linux, as process.hrtime). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A time range on the monotonic clock, in microseconds (as `process.hrtime.bigint() / 1000n`). */
export type MonoWindow = readonly [startUs: number, endUs: number];

export interface ProfileEntry {
  /** Function name, `(anonymous)` when it has none, or a V8 category such as `(garbage collector)`. */
  fn: string;
  /** File and line, relative to the repository when inside it. */
  where: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  percent: number;
}

export interface ProfileSummary {
  busyMs: number;
  idleMs: number;
  top: ProfileEntry[];
}

// `(program)` is native work outside JavaScript (uWS's socket handling, libuv): busy, not idle.
const IDLE = new Set(['(idle)']);

/**
 * Self time per function (aggregated over identical call frames), largest
 * first; only samples inside `windows` when given (e.g. a benchmark step,
 * leaving out start-up).
 */
export function summarizeProfile(profile: CpuProfile, top = 20, windows?: readonly MonoWindow[]): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const self = new Map<string, { fn: string; where: string; us: number }>();
  let busy = 0;
  let idle = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const node = byId.get(profile.samples[i]!);
    // A sample's time is the delta to the next one.
    const dt = Math.max(0, profile.timeDeltas[i + 1] ?? 0);
    if (node === undefined) continue;
    if (windows !== undefined && !windows.some(([a, b]) => t >= a && t < b)) continue;
    const cf = node.callFrame;
    const fn = cf.functionName || '(anonymous)';
    if (IDLE.has(fn)) {
      idle += dt;
      continue;
    }
    busy += dt;
    const file = cf.url.replace(/^file:\/\//, '').replace(ROOT, '');
    // Code transpiled on load (tsx) reports line 0: the file alone says enough.
    const where = file === '' ? '' : cf.lineNumber > 0 ? `${file}:${cf.lineNumber + 1}` : file;
    const key = `${fn}@${where}`;
    const e = self.get(key);
    if (e === undefined) self.set(key, { fn, where, us: dt });
    else e.us += dt;
  }
  const entries = [...self.values()].sort((a, b) => b.us - a.us).slice(0, top);
  return {
    busyMs: Math.round(busy / 1000),
    idleMs: Math.round(idle / 1000),
    top: entries.map((e) => ({ fn: e.fn, where: e.where, selfMs: Math.round(e.us / 100) / 10, percent: busy > 0 ? Math.round((e.us / busy) * 1000) / 10 : 0 })),
  };
}

export function summarizeProfileFile(file: string, top = 20, windows?: readonly MonoWindow[]): ProfileSummary {
  return summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, top, windows);
}

/** The summary as a Markdown table. */
export function profileTable(s: ProfileSummary): string {
  const lines = [
    `Busy ${(s.busyMs / 1000).toFixed(1)} s (idle ${(s.idleMs / 1000).toFixed(1)} s). Self time, share of busy time:`,
    '',
    '| % | self ms | function | where |',
    '|---:|---:|---|---|',
  ];
  for (const e of s.top) lines.push(`| ${e.percent.toFixed(1)} | ${e.selfMs.toFixed(0)} | \`${e.fn}\` | ${e.where} |`);
  return lines.join('\n');
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string' } }, allowPositionals: true });
  const file = positionals[0];
  if (file === undefined) {
    process.stderr.write('usage: tsx bench/cpu-profile.ts FILE.cpuprofile [--top 20]\n');
    process.exit(2);
  }
  process.stdout.write(profileTable(summarizeProfileFile(file, Number(values.top ?? '20'))) + '\n');
}
