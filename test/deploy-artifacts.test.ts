/**
 * Checks the deployment artifacts against the gateway they deploy: the
 * Grafana dashboards query only metrics a running gateway exports, the Helm
 * chart's config loads through the gateway's own loader and probes the right
 * port and paths, and the Dockerfile builds a lean, non-root image that Node
 * runs directly under tini.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const read = (rel: string) => readFileSync(join(ROOT, rel), 'utf8');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every string held under key `key`, anywhere in `node`. */
function stringsUnder(node: Json, key: string, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const v of node) stringsUnder(v, key, out);
  else if (isObject(node)) {
    for (const [k, v] of Object.entries(node)) {
      if (k === key && typeof v === 'string') out.push(v);
      else stringsUnder(v, key, out);
    }
  }
  return out;
}

/** Panels in display order, including those nested in collapsed rows. */
function allPanels(dashboard: JsonObject): JsonObject[] {
  const out: JsonObject[] = [];
  const walk = (list: Json | undefined) => {
    if (!Array.isArray(list)) return;
    for (const p of list) {
      if (!isObject(p)) continue;
      out.push(p);
      walk(p['panels']);
    }
  };
  walk(dashboard['panels']);
  return out;
}

/** Metric names in Prometheus text format: `# TYPE` names with their type, and sample names. */
function scrapedNames(text: string): { types: Map<string, string>; samples: Set<string> } {
  const types = new Map<string, string>();
  const samples = new Set<string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    else if (line && !line.startsWith('#')) {
      const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
      if (s) samples.add(s[1]!);
    }
  }
  return { types, samples };
}

const METRIC_RE = /tickgate_[a-z0-9_]+/g;
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

const dashboards = readdirSync(join(ROOT, 'dashboards'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => ({ file: `dashboards/${f}`, json: JSON.parse(read(`dashboards/${f}`)) as JsonObject }));

describe('dashboards', () => {
  let gw: TestGateway;
  let scrape: { types: Map<string, string>; samples: Set<string> };

  beforeAll(async () => {
    gw = await startGateway();
    scrape = scrapedNames(await (await fetch(`${gw.http}/metrics`)).text());
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('exist', () => {
    expect(dashboards.map((d) => d.file)).toContain('dashboards/tickgate.json');
  });

  it.each(dashboards)('$file queries only metrics the gateway exports', ({ json }) => {
    const exprs = stringsUnder(json['panels'] ?? [], 'expr');
    expect(exprs.length).toBeGreaterThan(0);
    // Template variable queries name metrics too.
    const variableQueries = stringsUnder(json['templating'] ?? {}, 'definition');
    const referenced = new Set([...exprs, ...variableQueries].flatMap((e) => e.match(METRIC_RE) ?? []));
    const exported = (name: string) => scrape.types.has(name) || scrape.samples.has(name);
    const missing = [...referenced].filter((name) => {
      if (exported(name)) return false;
      const suffix = HISTOGRAM_SUFFIXES.find((s) => name.endsWith(s));
      return !(suffix && scrape.types.get(name.slice(0, -suffix.length)) === 'histogram');
    });
    expect(missing).toEqual([]);
  });

  it.each(dashboards)('$file filters every metric by job and instance', ({ json }) => {
    for (const expr of stringsUnder(json['panels'] ?? [], 'expr')) {
      for (const m of expr.matchAll(/(tickgate_[a-z0-9_]+)(\{[^}]*\})?/g)) {
        expect(m[2], `${m[1]} in ${expr}`).toMatch(/job=~"\$job"/);
        expect(m[2], `${m[1]} in ${expr}`).toMatch(/instance=~"\$instance"/);
      }
    }
  });

  it.each(dashboards)('$file has the datasource, job and instance variables', ({ json }) => {
    expect(json['schemaVersion']).toBeGreaterThanOrEqual(39);
    const templating = json['templating'];
    const list = isObject(templating) && Array.isArray(templating['list']) ? templating['list'].filter(isObject) : [];
    const byName = new Map(list.map((v) => [v['name'], v]));
    expect(byName.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(byName.get('job')).toMatchObject({
      type: 'query',
      definition: 'label_values(tickgate_connections, job)',
      datasource: { uid: '${datasource}' },
    });
    expect(byName.get('instance')).toMatchObject({
      type: 'query',
      definition: 'label_values(tickgate_connections{job=~"$job"}, instance)',
      datasource: { uid: '${datasource}' },
    });
  });

  it.each(dashboards)('$file points every panel and query at ${datasource}', ({ json }) => {
    const panels = allPanels(json);
    expect(panels.length).toBeGreaterThan(0);
    for (const p of panels) {
      expect(p['datasource'], `panel ${String(p['title'])}`).toMatchObject({ uid: '${datasource}' });
      for (const t of Array.isArray(p['targets']) ? p['targets'] : []) {
        expect(t, `query in panel ${String(p['title'])}`).toMatchObject({ datasource: { uid: '${datasource}' } });
      }
    }
  });
});

describe('helm chart', () => {
  const values = parseYaml(read('helm/tickgate/values.yaml')) as { config: Record<string, unknown> };
  const deployment = read('helm/tickgate/templates/deployment.yaml');

  it('has a config the gateway loads', () => {
    expect(values.config).toBeTypeOf('object');
    const config = loadConfig({ env: {}, overrides: values.config });
    expect(config.port).toBe(values.config['port']);
  });

  it('has only top-level config keys the schema knows', () => {
    const schemaKeys = Object.keys(loadConfig({ env: {} }));
    for (const key of Object.keys(values.config)) expect(schemaKeys, `config.${key}`).toContain(key);
  });

  it('gives the gateway the config port as the pod sees it', () => {
    // As deployed: the ConfigMap file plus the env the template sets, which must win over the image's env.
    const dir = mkdtempSync(join(tmpdir(), 'tickgate-chart-'));
    try {
      const file = join(dir, 'tickgate.json');
      writeFileSync(file, JSON.stringify(values.config));
      const env = { TICKGATE_HOST: String(values.config['host']), TICKGATE_PORT: String(values.config['port']) };
      const config = loadConfig({ env, file });
      expect(config.port).toBe(values.config['port']);
      expect(config.host).toBe(values.config['host']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('probes /readyz and /healthz on the config port', () => {
    const port = /-\s*name:\s*(\S+)\s*\n\s*containerPort:\s*\{\{[^}]*\.Values\.config\.port\s*\}\}/.exec(deployment);
    expect(port, 'containerPort from .Values.config.port').not.toBeNull();
    const portName = port![1]!;
    for (const [probe, path] of [
      ['readinessProbe', '/readyz'],
      ['livenessProbe', '/healthz'],
    ] as const) {
      const m = new RegExp(`${probe}:\\s*\\n\\s*httpGet:\\s*\\n\\s*path:\\s*(\\S+)\\s*\\n\\s*port:\\s*(.+)`).exec(deployment);
      expect(m, probe).not.toBeNull();
      expect(m![1]).toBe(path);
      expect([portName, '{{ .Values.config.port }}']).toContain(m![2]!.trim());
    }
    expect(deployment).toMatch(/name:\s*TICKGATE_PORT\s*\n\s*value:\s*\{\{\s*\.Values\.config\.port\b/);
  });

  it('runs the gateway directly with the mounted config, non-root and read-only', () => {
    expect(deployment).toMatch(/args:\s*\["node", "dist\/src\/main\.js", "--config", "\/etc\/tickgate\/tickgate\.json"\]/);
    expect(deployment).toMatch(/mountPath:\s*\/etc\/tickgate\b/);
    expect(read('helm/tickgate/templates/configmap.yaml')).toMatch(/tickgate\.json:\s*\{\{\s*toJson \.Values\.config/);
    expect(deployment).toMatch(/runAsNonRoot:\s*true/);
    expect(deployment).toMatch(/readOnlyRootFilesystem:\s*true/);
    expect(deployment).toMatch(/allowPrivilegeEscalation:\s*false/);
    expect(deployment).toMatch(/checksum\/config:\s*\{\{\s*include \(print \$\.Template\.BasePath "\/configmap\.yaml"\) \. \| sha256sum\s*\}\}/);
  });
});

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | undefined;
  workdir: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions, joining continuation lines. */
function dockerStages(text: string): Stage[] {
  const logical = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const op = m[1]!.toUpperCase();
    const args = m[2]!;
    if (op === 'FROM') {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(args)!;
      stages.push({ from: f[1]!, name: f[2], workdir: '/', instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) continue;
    if (op === 'WORKDIR') stage.workdir = args;
    stage.instructions.push({ op, args });
  }
  return stages;
}

/** Sources and flags of a COPY: `COPY [--from=x] a b dest` or the JSON form. */
function copyParts(args: string): { from: string | undefined; sources: string[] } {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const rest = words.filter((w) => !w.startsWith('--')).join(' ');
  const paths = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: paths.slice(0, -1) };
}

describe('Dockerfile', () => {
  const stages = dockerStages(read('Dockerfile'));
  const final = stages.at(-1)!;
  const last = (op: string) => final.instructions.filter((i) => i.op === op).at(-1)?.args;

  it('runs on node:20-bookworm-slim as a non-root user', () => {
    expect(final.from).toBe('node:20-bookworm-slim');
    const user = last('USER');
    expect(user).toBeDefined();
    expect(user!.split(':')[0]).not.toMatch(/^(root|0)$/);
  });

  it('starts node directly under tini and exposes 8080', () => {
    const entrypoint = JSON.parse(last('ENTRYPOINT') ?? 'null') as string[] | null;
    expect(entrypoint?.[0]).toMatch(/(^|\/)tini$/);
    const cmd = JSON.parse(last('CMD') ?? 'null') as string[] | null;
    expect(cmd?.slice(0, 2)).toEqual(['node', 'dist/src/main.js']);
    expect(cmd).not.toContain('npm');
    expect(final.instructions.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))).toContain('8080');
  });

  it('copies no sources, tests or dev dependencies into the final stage', () => {
    for (const i of final.instructions) {
      if (i.op === 'RUN') expect(i.args, 'npm install in the final stage').not.toMatch(/\bnpm (ci|install|i)\b(?!.*--omit=dev)/);
      if (i.op !== 'COPY' && i.op !== 'ADD') continue;
      const { from, sources } = copyParts(i.args);
      const source = from === undefined ? undefined : stages.find((s) => s.name === from);
      const prefix = source ? source.workdir.replace(/\/?$/, '/') : '';
      for (const raw of sources) {
        const path = raw.replace(/^\.\//, '').replace(prefix, '').replace(/\/$/, '');
        expect(path, `${i.op} ${i.args}`).not.toMatch(/^(\.|src|test)(\/|$)/);
        if (/(^|\/)node_modules$/.test(path)) {
          expect(source, `${i.op} ${i.args}: node_modules from a build stage`).toBeDefined();
          const pruned = source!.instructions.some((s) => s.op === 'RUN' && /npm (prune|ci)\b[^&;|]*--omit=dev/.test(s.args));
          expect(pruned, `stage ${from} prunes dev dependencies`).toBe(true);
        }
      }
    }
  });

  it('has a .dockerignore that keeps node_modules and .git out of the context', () => {
    const ignored = read('.dockerignore')
      .split(/\r?\n/)
      .map((l) => l.trim().replace(/^\/|\/$/g, '').replace(/^\*\*\//, ''));
    expect(ignored).toContain('node_modules');
    expect(ignored).toContain('.git');
  });
});
