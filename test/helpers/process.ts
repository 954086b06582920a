/**
 * Runs the built gateway (`node dist/src/main.js`) as a real process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN = `${ROOT}dist/src/main.js`;

/** Builds dist/ from the current sources, so the process under test is what the tree says. */
export function ensureBuilt(): void {
  const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('build failed');
}

export interface RunningGateway {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts the gateway process with extra environment and arguments. */
export function spawnGateway(env: Record<string, string>, args: string[] = []): RunningGateway {
  const proc = spawn(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/**
 * Polls `url` until it answers 200, or fails after `ms`; with `gw`, fails at
 * once (with its stderr) if that process exits first, e.g. when its port was taken.
 */
export async function waitReady(url: string, ms = 10_000, gw?: RunningGateway): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (gw !== undefined && gw.proc.exitCode !== null) {
      throw new Error(`gateway exited with ${gw.proc.exitCode} before ${url} was ready: ${gw.stderr().slice(-500)}`);
    }
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready within ${ms} ms${gw ? `; stderr: ${gw.stderr().slice(-500)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
