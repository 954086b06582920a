/**
 * The built dashboard's static files (`dist/dashboard/`), read once at start
 * and served from memory: `/` is its index.html, `/assets/...` the bundles.
 * Nothing is read from disk per request, so a request can never reach
 * outside the directory.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StaticFile {
  type: string;
  body: Uint8Array;
  /** Cache-Control: bundles have content hashes in their names and never change; index.html is revalidated. */
  cache: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/** `dist/dashboard` of this package, whether running from dist/src or (under tsx) from src. */
export function dashboardDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dir, 'dist', 'dashboard');
}

/** URL path -> file, for every file under `dir`; empty when the dashboard is not built. */
export function loadStaticFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!existsSync(dir)) return files;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      const url = '/' + relative(dir, path).split(sep).join('/');
      const immutable = url.startsWith('/assets/');
      files.set(url === '/index.html' ? '/' : url, {
        type: TYPES[extname(name)] ?? 'application/octet-stream',
        body: readFileSync(path),
        cache: immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      });
    }
  };
  walk(dir);
  return files;
}
