#!/usr/bin/env node
/**
 * The `tickgate` command: `tickgate serve` runs the gateway, `tickgate tap`
 * prints a live stream as JSON lines, `tickgate healthcheck` asks a running
 * gateway whether it is ready (the image's HEALTHCHECK).
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `usage: tickgate <command> [options]

Commands:
  serve [--config FILE] [--print-config]   run the gateway (see tickgate serve --help)
  tap SYMBOL... [--url URL] [--deltas] [--throttle MS] [--duration S] [--count N] [--stats]
                                           print live updates as JSON lines (see tickgate tap --help)
  tap --book SYMBOL... [--depth N] [...]   print order books as JSON lines, checksums verified
  tap --trades SYMBOL... [--last N] [--since E:Q] [...]
                                           print trade prints as JSON lines, each once, resumed after reconnects
  healthcheck [--config FILE] [--pid N] [--path P] [--timeout MS]
                                           exit 0 if the gateway on this machine answers 200 (see tickgate healthcheck --help)`;

const HEALTHCHECK_USAGE = `usage: tickgate healthcheck [--config FILE] [--pid N] [--path /readyz|/healthz] [--timeout MS]

Loads the configuration as the gateway does (config/default.json, then the
config file, then TICKGATE_* environment variables), asks the gateway's
metrics port (metrics.port, else port) on this machine for PATH and exits 0
on 200, 1 otherwise (refused, timed out, 503 while draining or disconnected
from the feed).

  --config FILE   the gateway's config file (default: TICKGATE_CONFIG)
  --pid N         without --config: use the --config of process N's command line
                  (in the image, 1: tini, started with the gateway's command)
  --path PATH     /readyz (default: listening and the feed connected) or
                  /healthz (the process answers)
  --timeout MS    give up after MS milliseconds, 1 to 60000 (default 2000)
  --help          show this help`;

/** The value of `--config` on a command line (`--config FILE` or `--config=FILE`), if any. */
function configArg(argv: readonly string[]): string | undefined {
  for (let i = argv.length - 1; i >= 0; i--) {
    const a = argv[i]!;
    if (a === '--config' && i + 1 < argv.length) return argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length);
  }
  return undefined;
}

/**
 * The config file process `pid` was started with, resolved against its
 * working directory, or undefined when its command line has none (it then
 * reads TICKGATE_CONFIG, which this process shares in a container).
 */
function configOfProcess(pid: number): string | undefined {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  const file = configArg(argv);
  return file === undefined ? undefined : resolvePath(readlinkSync(`/proc/${pid}/cwd`), file);
}

/** `tickgate healthcheck`: 0 when the gateway answers 200 on PATH, 1 when not, 2 on a usage error. */
async function runHealthcheck(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: { config: { type: 'string' }, pid: { type: 'string' }, path: { type: 'string' }, timeout: { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`tickgate healthcheck: ${(err as Error).message}\n${HEALTHCHECK_USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HEALTHCHECK_USAGE + '\n');
    return 0;
  }
  const usage = (msg: string) => {
    process.stderr.write(`tickgate healthcheck: ${msg}\n${HEALTHCHECK_USAGE}\n`);
    return 2;
  };
  const path = args.path ?? '/readyz';
  if (path !== '/readyz' && path !== '/healthz') return usage(`--path: expected /readyz or /healthz, got ${JSON.stringify(path)}`);
  const timeoutMs = args.timeout === undefined ? 2000 : Number(args.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 60_000) return usage(`--timeout: expected an integer from 1 to 60000, got ${JSON.stringify(args.timeout)}`);
  const pid = args.pid === undefined ? undefined : Number(args.pid);
  if (pid !== undefined && (!Number.isInteger(pid) || pid < 1)) return usage(`--pid: expected a process id, got ${JSON.stringify(args.pid)}`);

  let url: string;
  let tls: boolean;
  try {
    const { loadConfig } = await import('./config.js');
    const file = args.config ?? (pid === undefined ? undefined : configOfProcess(pid));
    const config = loadConfig({ file });
    // A wildcard bind address is reached on loopback; anything else as configured.
    const host = config.host === '0.0.0.0' || config.host === '' ? '127.0.0.1' : config.host === '::' ? '::1' : config.host;
    const port = config.metrics.port ?? config.port;
    // The separate metrics port is always plain HTTP; the main port speaks TLS when tls.certFile is set.
    tls = config.metrics.port === null && config.tls.certFile !== '';
    url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
  } catch (err) {
    process.stderr.write(`tickgate healthcheck: ${(err as Error).message}\n`);
    return 1;
  }
  const request = tls ? httpsRequest : httpRequest;
  const status = await new Promise<number | string>((resolve) => {
    // The gateway's own certificate is not checked: this asks whether the local process answers, it sends no secret.
    const req = request(url, { method: 'GET', timeout: timeoutMs, ...(tls ? { rejectUnauthorized: false } : {}) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 'no status');
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: Error) => resolve(err.message));
    req.end();
  });
  if (status === 200) {
    process.stdout.write(`tickgate healthcheck: ${url}: 200\n`);
    return 0;
  }
  process.stderr.write(`tickgate healthcheck: ${url}: ${status}\n`);
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const { runServer } = await import('./main.js');
      return runServer(rest, 'tickgate serve');
    }
    case 'tap': {
      const { runTap } = await import('./tap.js');
      return runTap(rest);
    }
    case 'healthcheck':
      return runHealthcheck(rest);
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE + '\n');
      return 0;
    default:
      if (command !== undefined && command.startsWith('--')) {
        // `tickgate --config FILE`, as before there were subcommands: serve.
        const { runServer } = await import('./main.js');
        return runServer(argv, 'tickgate serve');
      }
      process.stderr.write(`tickgate: ${command === undefined ? 'no command given' : `unknown command ${JSON.stringify(command)}`}\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then((code) => {
  // -1: the server runs on, and exits by itself on SIGTERM or SIGINT.
  if (code >= 0) process.exit(code);
});
