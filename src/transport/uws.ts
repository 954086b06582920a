/**
 * Loads uWebSockets.js and tells whether its native binary is running.
 *
 * Some builds fall back to a pure-JS implementation when their binary cannot
 * load (wrong glibc, wrong Node ABI), printing only a warning. That fallback
 * is many times slower, so the gateway refuses it unless allowed.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type * as UWS from 'uWebSockets.js';

const require = createRequire(import.meta.url);

/** uWebSockets.js is running without its native binary. */
export class UwsFallbackError extends Error {
  override readonly name = 'UwsFallbackError';
}

export interface LoadedUws {
  uws: typeof UWS;
  /** True when a native `.node` binary of the package was loaded. */
  native: boolean;
  /** Package name and version, and the binary file, for the start log. */
  version: { package: string; version: string; binary: string | null };
}

/** Requires uWebSockets.js once and reports how it loaded. */
export function loadUws(): LoadedUws {
  const entry = require.resolve('uWebSockets.js');
  const uws = require('uWebSockets.js') as typeof UWS;
  // Official and repackaged builds alike load `uws_<platform>_<arch>_<abi>.node`
  // from inside the package; the fallback loads none.
  const pkgDir = dirname(dirname(entry));
  const binary = Object.keys(require.cache).find((k) => k.startsWith(pkgDir) && k.endsWith('.node')) ?? null;
  let pkg = { name: 'uWebSockets.js', version: 'unknown' };
  try {
    pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as typeof pkg;
  } catch {
    // version stays unknown
  }
  return { uws, native: binary !== null, version: { package: pkg.name, version: pkg.version, binary: binary && basename(binary) } };
}

/** Loads uWebSockets.js and throws unless it is native or the fallback is allowed. */
export function requireUws(allowFallback: boolean): LoadedUws {
  const loaded = loadUws();
  if (!loaded.native && !allowFallback) {
    throw new UwsFallbackError(
      'uWebSockets.js is running its slow pure-JS fallback (UWS_USE_FALLBACK is set, or its native binary did not load for Node ' +
        `${process.version}, ABI ${process.versions.modules}). Install a build with a binary for this platform, ` +
        'or set uws.allowFallback (TICKGATE_ALLOW_UWS_FALLBACK=true) to start anyway.',
    );
  }
  return loaded;
}
