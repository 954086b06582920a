#!/usr/bin/env node
// Builds the browser side with esbuild:
//   dist/dashboard/             the dashboard: index.html + assets/ (content-hashed, minified)
//   dist/client/tickgate.min.js the client SDK as one browser ES module
// and prints their sizes. Both are bundled for the browser platform, so a
// Node.js-only import in the SDK fails the build.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { gzipSync } from 'node:zlib';

const root = new URL('..', import.meta.url).pathname;
const out = `${root}dist/dashboard`;
const common = { bundle: true, minify: true, format: 'esm', platform: 'browser', target: ['es2022'], logLevel: 'warning', metafile: true };

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const dash = await build({
  ...common,
  entryPoints: [`${root}dashboard/main.ts`],
  outdir: out,
  entryNames: 'assets/[name]-[hash]',
  assetNames: 'assets/[name]-[hash]',
  sourcemap: 'linked',
});
const sdk = await build({ ...common, entryPoints: [`${root}src/client/index.ts`], outfile: `${root}dist/client/tickgate.min.js` });

for (const [name, r] of [['dashboard', dash], ['SDK', sdk]]) {
  const leaked = Object.keys(r.metafile.inputs).filter((f) => /node_modules\/ws\/|^node:/.test(f));
  if (leaked.length > 0) throw new Error(`${name} bundle pulls in Node.js-only modules: ${leaked.join(', ')}`);
}

// index.html names the hashed bundles.
const outputs = Object.entries(dash.metafile.outputs);
const js = outputs.find(([f, o]) => f.endsWith('.js') && o.entryPoint !== undefined);
if (js === undefined) throw new Error('no JavaScript output for dashboard/main.ts');
const css = js[1].cssBundle;
const rel = (f) => `./assets/${basename(f)}`;
let html = readFileSync(`${root}dashboard/index.html`, 'utf8').replace('%MAIN_JS%', rel(js[0]));
html = css === undefined ? html.replace(/\s*<link rel="stylesheet" href="%MAIN_CSS%" \/>/, '') : html.replace('%MAIN_CSS%', rel(css));
writeFileSync(`${out}/index.html`, html);

const size = (f) => {
  const b = readFileSync(f);
  return `${(statSync(f).size / 1024).toFixed(1)} KiB (${(gzipSync(b).length / 1024).toFixed(1)} KiB gzip)`;
};
const abs = (f) => (f.startsWith('/') ? f : `${process.cwd()}/${f}`);
console.log(`dashboard: ${rel(js[0])} ${size(abs(js[0]))}${css === undefined ? '' : `, ${rel(css)} ${size(abs(css))}`}`);
console.log(`SDK:       dist/client/tickgate.min.js ${size(`${root}dist/client/tickgate.min.js`)}`);
