#!/usr/bin/env node
/**
 * Entry point: `node dist/src/main.js [--config FILE] [--print-config]`.
 * `tickgate serve` (src/cli.ts) runs the same `runServer`.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, printableConfig } from './config.js';
import { Gateway } from './gateway.js';
import { WorkerPool } from './workers.js';
import { createLogger } from './log.js';

const usage = (prog: string): string => `usage: ${prog} [--config FILE] [--print-config]

  --config FILE    JSON config file merged over config/default.json (or TICKGATE_CONFIG)
  --print-config   print the effective configuration (secrets redacted) and exit
  --help           show this help

Environment: TICKGATE_HOST, TICKGATE_PORT, TICKGATE_NATS_SERVERS (comma-separated),
TICKGATE_LOG_LEVEL, TICKGATE_CONFIG. See README.md for every key.`;

/**
 * Runs the gateway with command-line arguments `argv` (without node and the
 * script). Resolves with an exit code, or -1 once the gateway is running (it
 * then exits on SIGTERM or SIGINT after draining).
 */
export async function runServer(argv: string[], prog = 'tickgate'): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: { config: { type: 'string' }, 'print-config': { type: 'boolean' }, help: { type: 'boolean' } },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`tickgate: ${(err as Error).message}\n${usage(prog)}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(usage(prog) + '\n');
    return 0;
  }
  try {
    if (args['print-config']) {
      process.stdout.write(printableConfig({ file: args.config }) + '\n');
      return 0;
    }
    const config = loadConfig({ file: args.config });
    const log = createLogger(config.log.level, config.log.pretty);
    // One gateway in this thread, or N worker threads sharing the port.
    const gateway = config.workers > 1 ? new WorkerPool(config, log) : new Gateway(config, log);
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      log.info({ signal }, 'shutting down');
      gateway.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    await gateway.start();
    return -1;
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`tickgate: ${e instanceof ConfigError ? '' : e.name + ': '}${e.message}\n`);
    return 1;
  }
}

// Run only as the entry point, not when the CLI imports runServer.
const entry = process.argv[1];
if (entry !== undefined && realpathSync(entry) === fileURLToPath(import.meta.url)) {
  runServer(process.argv.slice(2)).then((code) => {
    if (code >= 0) process.exit(code);
  });
}
