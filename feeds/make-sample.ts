/**
 * Regenerates the sample capture feeds/samples/sim-small.ndjson.gz: the
 * simulator (fixed seed, 50 symbols, 3,000 ticks at 1,000 a second, so
 * about three seconds) published to a real nats-server while recordCapture
 * records it.
 *
 *   npx tsx feeds/make-sample.ts [--url nats://HOST:PORT] [--out FILE]
 *
 * Without --url it starts its own nats-server on a free loopback port
 * (`nats-server` must be on PATH). Payloads come out the same on every run
 * except `ts` (the wall clock when each tick was due); the `t` times vary
 * with timer jitter.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startNatsServer } from '../test/helpers/nats-server.js';
import { recordCapture } from './record.js';
import { parseSimArgs, runSim, type SimOptions } from './sim.js';

export const SAMPLE = fileURLToPath(new URL('./samples/sim-small.ndjson.gz', import.meta.url));

/** The simulator run behind the sample, as feed:sim arguments (every other option at its default). */
export const SAMPLE_SIM_ARGS = ['--symbols', '50', '--rate', '1000', '--count', '3000', '--seed', '20240601', '--codec', 'msgpack', '--prefix', 'md.sim'];

function simOptions(url: string): SimOptions {
  const o = parseSimArgs(['--url', url, ...SAMPLE_SIM_ARGS], {});
  if (o === 'help') throw new Error('unreachable: no --help given');
  return o;
}

/** Records the SAMPLE_SIM_ARGS simulator run published on the NATS server at `url` into `out` (replaced if present). */
export async function makeSample(url: string, out: string): Promise<{ records: number; bytes: number; seconds: number }> {
  const sim = simOptions(url);
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const recording = recordCapture({
    url,
    subjects: [`${sim.prefix}.>`],
    out,
    force: true,
    // A safety bound only: the count ends the recording.
    duration: 60,
    count: sim.count,
    onReady: () => ready(),
  });
  // If recording fails before it is ready, report that instead of waiting forever.
  await Promise.race([isReady, recording]);
  await runSim(sim);
  const summary = await recording;
  if (summary.records !== sim.count) {
    throw new Error(`recorded ${summary.records} of ${String(sim.count)} ticks (stopped by ${summary.stoppedBy})`);
  }
  return { records: summary.records, bytes: summary.bytes, seconds: summary.seconds };
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({ options: { url: { type: 'string' }, out: { type: 'string' } }, strict: true }).values;
  } catch (err) {
    process.stderr.write(`make-sample: ${(err as Error).message}\nusage: npx tsx feeds/make-sample.ts [--url nats://HOST:PORT] [--out FILE]\n`);
    return 2;
  }
  const out = values.out ?? SAMPLE;
  const nats = values.url === undefined ? await startNatsServer() : null;
  try {
    const summary = await makeSample(values.url ?? nats!.url, out);
    process.stderr.write(JSON.stringify({ out, ...summary }) + '\n');
    return 0;
  } catch (err) {
    process.stderr.write(`make-sample: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await nats?.stop();
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  void main().then((code) => process.exit(code));
}
