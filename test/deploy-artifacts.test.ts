/**
 * Checks the deployment artifacts against the gateway they deploy: the
 * Grafana dashboards query only metrics a running gateway exports, the Helm
 * chart's config loads through the gateway's own loader, its probes, drain
 * and secrets fit the gateway, its templates use only documented values, and
 * the Dockerfile builds a lean, non-root image that Node runs directly under
 * tini. Helm cannot run here, so the chart is checked by what its files say.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { isMap, isScalar, parse as parseYaml, parseDocument, type YAMLMap } from 'yaml';
import { loadConfig, printableConfig } from '../src/config.js';
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

const CHART = 'helm/tickgate';
const chartFile = (rel: string) => read(`${CHART}/${rel}`);
const chartTemplates = readdirSync(join(ROOT, CHART, 'templates')).sort();

/** The body of `{{- define "name" -}}` in _helpers.tpl, up to the next define. */
function helper(name: string): string {
  const text = chartFile('templates/_helpers.tpl');
  const start = text.indexOf(`{{- define "${name}" -}}`);
  expect(start, `define "${name}" in _helpers.tpl`).toBeGreaterThanOrEqual(0);
  const next = text.indexOf('{{- define ', start + 1);
  return text.slice(start, next === -1 ? undefined : next);
}

/** Every `.Values.a.b` path used in `text`. */
function valuesPaths(text: string): string[] {
  return [...text.matchAll(/\.Values\.([A-Za-z0-9_.]+)/g)].map((m) => m[1]!);
}

/** The value at a dotted path of parsed values.yaml, or undefined when a segment is missing. */
function resolve(values: Json, path: string): Json | undefined {
  let node: Json | undefined = values;
  for (const key of path.split('.')) {
    if (!isObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

/**
 * Keys of values.yaml without a comment: a key counts as documented when a
 * comment precedes it (for the first key of a map, the comment is the map's)
 * or follows its value; an undocumented key is fine if it holds a map whose
 * keys are all documented.
 */
function undocumentedKeys(map: YAMLMap, prefix = ''): string[] {
  const out: string[] = [];
  map.items.forEach((pair, i) => {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const value = pair.value as { comment?: string | null } | null;
    const commented =
      (isScalar(pair.key) && !!pair.key.commentBefore) || (i === 0 && !!map.commentBefore) || !!value?.comment;
    if (commented) return;
    if (isMap(pair.value) && pair.value.items.length > 0) out.push(...undocumentedKeys(pair.value, `${prefix}${key}.`));
    else out.push(prefix + key);
  });
  return out;
}

/** Config keys whose values the gateway treats as secrets: those --print-config redacts. */
function sensitiveConfigKeys(): string[] {
  const defaults = loadConfig({ env: {} }) as unknown as JsonObject;
  const emptyStrings: [string, string][] = [];
  const walk = (node: JsonObject, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      if (typeof v === 'string' && v === '') emptyStrings.push([prefix + k, k]);
      else if (isObject(v)) walk(v, `${prefix}${k}.`);
    }
  };
  walk(defaults, '');
  // One key at a time: some keys exclude each other (nats.credsFile, nats.nkeySeedFile).
  return emptyStrings
    .map(([path]) => path)
    .filter((path) => {
      const overrides: JsonObject = {};
      const keys = path.split('.');
      let node = overrides;
      for (const k of keys.slice(0, -1)) node = (node[k] ??= {}) as JsonObject;
      node[keys.at(-1)!] = 'set-to-find-secrets-0123456789abcdef';
      // A key that needs a partner (nats.tls.certFile and keyFile) is tried with it.
      if (path === 'nats.tls.certFile' || path === 'nats.tls.keyFile') Object.assign(node, { certFile: 'a', keyFile: 'b', [keys.at(-1)!]: 'set-to-find-secrets-0123456789abcdef' });
      const printed = JSON.parse(printableConfig({ env: {}, overrides })) as Json;
      return resolve(printed, path) === '[redacted]';
    });
}

describe('helm chart', () => {
  const values = parseYaml(chartFile('values.yaml')) as JsonObject & { config: JsonObject };
  const deployment = chartFile('templates/deployment.yaml');
  const configmap = chartFile('templates/configmap.yaml');
  const drain = (key: string) => resolve(values, `config.drain.${key}`);

  it('has a config the gateway loads', () => {
    expect(values.config).toBeTypeOf('object');
    const config = loadConfig({ env: {}, overrides: values.config });
    expect(config.port).toBe(values.config['port']);
    expect(config.metrics.port, 'config.metrics.port: a separate metrics port by default').toBe(resolve(values, 'config.metrics.port'));
    expect(config.metrics.port).not.toBe(config.port);
    expect(config.drain).toEqual({ delayMs: 5000, windowMs: 10_000, timeoutMs: 15_000 });
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

  it('loads the config with the file paths the chart adds for TLS and token keys', () => {
    const fileOf = (name: string) => /-\}\}(\/etc\/tickgate\/\S+?)\{\{-/.exec(helper(name))?.[1];
    const certFile = fileOf('tickgate.tlsCertFile');
    const keyFile = fileOf('tickgate.tlsKeyFile');
    expect(certFile).toBe('/etc/tickgate/tls/tls.crt');
    expect(keyFile).toBe('/etc/tickgate/tls/tls.key');
    const keys = helper('tickgate.publicKeysFile');
    const pem = /"pem" -\}\}(\/etc\/tickgate\/\S+?)\{\{-/.exec(keys)?.[1];
    const jwks = /else -\}\}(\/etc\/tickgate\/\S+?)\{\{-/.exec(keys)?.[1];
    expect(pem).toBeDefined();
    expect(jwks).toBeDefined();
    // The projected volume puts each file where the config says it is.
    for (const path of [certFile!, keyFile!]) expect(deployment).toContain(`path: ${path.replace('/etc/tickgate/', '')}`);
    expect(deployment).toMatch(/path: \{\{ include "tickgate\.publicKeysFile" \$ \| trimPrefix "\/etc\/tickgate\/" \}\}/);
    // loadConfig checks keys and formats, not files (the gateway opens them at start).
    const config = loadConfig({
      env: {},
      overrides: { ...values.config, tls: { certFile, keyFile }, auth: { mode: 'jwt', jwt: { jwksFile: jwks, publicKeyFile: pem } } },
    });
    expect(config.tls.certFile).toBe(certFile);
    const configJson = helper('tickgate.configJson');
    expect(configJson).toMatch(/set \$tls "certFile" \(include "tickgate\.tlsCertFile" \.\)/);
    expect(configJson).toMatch(/set \$tls "keyFile" \(include "tickgate\.tlsKeyFile" \.\)/);
    expect(configJson).toMatch(/ternary "publicKeyFile" "jwksFile" \(eq \.Values\.auth\.publicKeys\.format "pem"\)/);
  });

  it('probes /readyz and /healthz on the metrics port when config.metrics.port is set, else on the config port', () => {
    const port = /-\s*name:\s*(\S+)\s*\n\s*containerPort:\s*\{\{[^}]*\.Values\.config\.port\s*\}\}/.exec(deployment);
    expect(port, 'containerPort from .Values.config.port').not.toBeNull();
    const portName = port![1]!;
    expect(portName).toBe('ws');
    expect(deployment, 'containerPort metrics, only with config.metrics.port').toMatch(
      /\{\{- if eq \(include "tickgate\.metricsPortName" \.\) "metrics" \}\}\s*\n\s*- name: metrics\s*\n\s*containerPort: \{\{ include "tickgate\.metricsPort" \. \}\}/,
    );
    // The port name the probes use: "metrics" when config.metrics.port is set, else the main port.
    expect(helper('tickgate.metricsPortName')).toMatch(
      new RegExp(`if dig "metrics" "port" 0 \\.Values\\.config \\| int -\\}\\}metrics\\{\\{- else -\\}\\}${portName}\\{\\{- end -\\}\\}`),
    );
    expect(helper('tickgate.metricsPort')).toMatch(/dig "metrics" "port" 0 \.Values\.config \| int \| default \.Values\.config\.port/);
    expect(resolve(values, 'config.metrics.port'), 'metrics port on by default').toBeTypeOf('number');
    for (const [probe, path] of [
      ['startupProbe', '/healthz'],
      ['readinessProbe', '/readyz'],
      ['livenessProbe', '/healthz'],
    ] as const) {
      const m = new RegExp(`${probe}:\\s*\\n\\s*httpGet:\\s*\\n\\s*path:\\s*(\\S+)\\s*\\n\\s*port:\\s*(.+)`).exec(deployment);
      expect(m, probe).not.toBeNull();
      expect(m![1]).toBe(path);
      expect(m![2]!.trim(), probe).toBe('{{ include "tickgate.metricsPortName" . }}');
    }
    expect(deployment).toMatch(/name:\s*TICKGATE_PORT\s*\n\s*value:\s*\{\{\s*\.Values\.config\.port\b/);
  });

  it('runs the gateway directly with the mounted config, non-root and read-only', () => {
    expect(deployment).toMatch(/args:\s*\["node", "dist\/src\/main\.js", "--config", "\/etc\/tickgate\/tickgate\.json"\]/);
    expect(deployment).toMatch(/mountPath:\s*\/etc\/tickgate\b/);
    // The ConfigMap holds `config` as JSON plus file paths (tickgate.configJson starts from a copy of it).
    expect(configmap).toMatch(/tickgate\.json:\s*\{\{\s*include "tickgate\.configJson" \. \| quote\s*\}\}/);
    expect(helper('tickgate.configJson')).toMatch(/\$config := deepCopy \.Values\.config -\}\}[\s\S]*toJson \$config -\}\}/);
    expect(deployment).toMatch(/runAsNonRoot:\s*true/);
    expect(deployment).toMatch(/readOnlyRootFilesystem:\s*true/);
    expect(deployment).toMatch(/allowPrivilegeEscalation:\s*false/);
    expect(deployment).toMatch(/checksum\/config:\s*\{\{\s*include \(print \$\.Template\.BasePath "\/configmap\.yaml"\) \. \| sha256sum\s*\}\}/);
  });

  it('keeps secret values out of the ConfigMap', () => {
    // configmap.yaml renders `config` only, through tickgate.configJson, which adds file paths and reads no Secret.
    expect(valuesPaths(configmap).filter((p) => p !== 'config' && !p.startsWith('config.'))).toEqual([]);
    const configJson = helper('tickgate.configJson');
    for (const p of valuesPaths(configJson)) expect(p, `.Values.${p} in tickgate.configJson`).toMatch(/^(config|tls\.existingSecret|auth\.publicKeys\.\w+)$/);
    expect(configJson).not.toMatch(/secretKeyRef|lookup|\.Files|b64dec|jwtSecretKey|auth\.existingSecret/);
    expect(configmap).toMatch(/^\{\{- include "tickgate\.validate" \. \}\}/);
    // The chart refuses every key --print-config redacts, and values.yaml sets none of them.
    const sensitive = sensitiveConfigKeys();
    expect(sensitive).toEqual(expect.arrayContaining(['auth.jwt.secret', 'nats.pass', 'nats.token', 'tls.passphrase']));
    const validate = helper('tickgate.validate');
    for (const path of sensitive) {
      const dig = path.split('.').map((k) => `"${k}"`).join(' ');
      expect(validate, `tickgate.validate refuses config.${path}`).toContain(`{{- if dig ${dig} "" .Values.config -}}\n{{- fail "config.${path} `);
      expect(resolve(values, `config.${path}`), `config.${path} in values.yaml`).toBeUndefined();
    }
    // The JWT secret reaches the pod as an environment variable from a Secret.
    expect(deployment).toMatch(
      /- name: TICKGATE_JWT_SECRET\s*\n\s*valueFrom:\s*\n\s*secretKeyRef:\s*\n\s*name: \{\{ \.Values\.auth\.existingSecret \}\}\s*\n\s*key: \{\{ \.Values\.auth\.jwtSecretKey \}\}/,
    );
  });

  it('gives the drain time to finish before SIGKILL', () => {
    const grace = values['terminationGracePeriodSeconds'];
    const preStop = values['preStopSleepSeconds'];
    expect(grace).toBeTypeOf('number');
    expect(preStop).toBe(0);
    expect(drain('delayMs'), 'endpoints are removed before the byes').toBeGreaterThanOrEqual(5000);
    expect(grace as number).toBeGreaterThan(((drain('delayMs') as number) + (drain('timeoutMs') as number)) / 1000 + (preStop as number));
    expect(deployment).toMatch(/terminationGracePeriodSeconds: \{\{ include "tickgate\.terminationGracePeriodSeconds" \. \}\}/);
    const check = helper('tickgate.terminationGracePeriodSeconds');
    expect(check).toMatch(/dig "drain" "delayMs" 0 \.Values\.config/);
    expect(check).toMatch(/dig "drain" "timeoutMs" 10000 \.Values\.config/);
    expect(check).toMatch(/if lt \$grace \(int \$min\) -\}\}\s*\n\{\{- fail /);
    // The fallbacks are the gateway's defaults.
    const defaults = loadConfig({ env: {} }).drain;
    expect(defaults).toMatchObject({ delayMs: 0, timeoutMs: 10_000 });
  });

  it.each([
    ['hpa.yaml', 'autoscaling', 'autoscaling/v2', 'HorizontalPodAutoscaler'],
    ['poddisruptionbudget.yaml', 'podDisruptionBudget', 'policy/v1', 'PodDisruptionBudget'],
    ['servicemonitor.yaml', 'serviceMonitor', 'monitoring.coreos.com/v1', 'ServiceMonitor'],
    ['prometheusrule.yaml', 'prometheusRule', 'monitoring.coreos.com/v1', 'PrometheusRule'],
    ['ingress.yaml', 'ingress', 'networking.k8s.io/v1', 'Ingress'],
    ['grafana-dashboard.yaml', 'grafanaDashboard', 'v1', 'ConfigMap'],
  ])('templates/%s is guarded by %s.enabled', (file, key, apiVersion, kind) => {
    expect(chartTemplates).toContain(file);
    const lines = chartFile(`templates/${file}`).trimEnd().split('\n');
    expect(lines[0]).toBe(`{{- if .Values.${key}.enabled }}`);
    expect(lines.at(-1)).toBe('{{- end }}');
    expect(lines).toContain(`apiVersion: ${apiVersion}`);
    expect(lines).toContain(`kind: ${kind}`);
    expect(resolve(values, `${key}.enabled`)).toBeTypeOf('boolean');
  });

  it('has chart defaults an SRE expects', () => {
    expect(resolve(values, 'podDisruptionBudget')).toMatchObject({ enabled: true, maxUnavailable: 1 });
    expect(resolve(values, 'autoscaling')).toMatchObject({ minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 60 });
    expect(resolve(values, 'service')).toMatchObject({ type: 'ClusterIP', port: 8080 });
    expect(resolve(values, 'resources')).toEqual({ requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '2Gi' } });
    expect(resolve(values, 'ingress.annotations')).toMatchObject({
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '3600',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '3600',
    });
    expect(chartFile('values.yaml')).toMatch(/name: tickgate_connections/);
    const service = chartFile('templates/service.yaml');
    expect(service).toMatch(/- name: ws\s*\n\s*port: \{\{ \.Values\.service\.port \}\}\s*\n\s*targetPort: ws/);
    expect(service).toMatch(/- name: metrics\s*\n\s*port: \{\{ include "tickgate\.metricsPort" \. \}\}/);
    const monitor = chartFile('templates/servicemonitor.yaml');
    expect(monitor).toMatch(/- port: metrics\s*\n\s*path: \/metrics/);
    expect(deployment).toMatch(/podAntiAffinity:\s*\n\s*preferredDuringSchedulingIgnoredDuringExecution:/);
    expect(deployment).toMatch(/topologyKey: kubernetes\.io\/hostname/);
  });

  it('ships the alerting rules and the dashboard of dashboards/ unchanged', () => {
    const groups = (file: string) => (parseYaml(read(file)) as { groups: Json }).groups;
    expect(groups(`${CHART}/files/alerts.yml`), `copy dashboards/alerts.yml to ${CHART}/files/alerts.yml`).toEqual(groups('dashboards/alerts.yml'));
    expect(JSON.parse(chartFile('files/tickgate-dashboard.json')), `copy dashboards/tickgate.json to ${CHART}/files/tickgate-dashboard.json`).toEqual(
      JSON.parse(read('dashboards/tickgate.json')),
    );
    expect(chartFile('templates/prometheusrule.yaml')).toMatch(/\.Files\.Get "files\/alerts\.yml" \| fromYaml/);
    expect(chartFile('templates/grafana-dashboard.yaml')).toMatch(/\.Files\.Get "files\/tickgate-dashboard\.json"/);
  });

  it('references only values that values.yaml defines', () => {
    const missing: string[] = [];
    for (const file of chartTemplates) {
      for (const path of valuesPaths(chartFile(`templates/${file}`))) {
        if (resolve(values, path) === undefined) missing.push(`${file}: .Values.${path}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('documents every value in values.yaml', () => {
    const doc = parseDocument(chartFile('values.yaml'));
    expect(isMap(doc.contents)).toBe(true);
    expect(undocumentedKeys(doc.contents as YAMLMap)).toEqual([]);
  });

  it('tells how to connect and where the dashboard is', () => {
    const notes = chartFile('templates/NOTES.txt');
    expect(notes).toMatch(/\/v1\/stream/);
    expect(notes).toMatch(/dashboards\/tickgate\.json/);
    const readme = chartFile('README.md');
    expect(readme).toMatch(/helm install tickgate \.\/helm\/tickgate/);
    expect(readme).toMatch(/nats-io\.github\.io\/k8s\/helm\/charts/);
    expect(readme).toMatch(/config\.jetstream\.enabled=true/);
    expect(readme).toMatch(/jetstream: MD_SIM/);
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
