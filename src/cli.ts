#!/usr/bin/env node
/**
 * The `tickgate` command: `tickgate serve` runs the gateway, `tickgate tap`
 * prints a live stream as JSON lines.
 */

const USAGE = `usage: tickgate <command> [options]

Commands:
  serve [--config FILE] [--print-config]   run the gateway (see tickgate serve --help)
  tap SYMBOL... [--url URL] [--deltas] [--throttle MS] [--duration S] [--count N] [--stats]
                                           print live updates as JSON lines (see tickgate tap --help)
  tap --book SYMBOL... [--depth N] [...]   print order books as JSON lines, checksums verified
  tap --trades SYMBOL... [--last N] [--since E:Q] [...]
                                           print trade prints as JSON lines, each once, resumed after reconnects`;

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
