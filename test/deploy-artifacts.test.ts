/**
 * Checks the deployment artifacts against the gateway they deploy: the
 * Grafana dashboards query only metrics a running gateway exports, the Helm
 * chart's config loads through the gateway's own loader, its probes, drain
 * and secrets fit the gateway, its templates use only documented values, and
 * the Dockerfile builds a lean, non-root image that Node runs directly under
 * tini. Helm cannot run here, so the chart is checked by what its files say.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { isMap, isScalar, parse as parseYaml, parseDocument, type YAMLMap } from 'yaml';
import { loadConfig, printableConfig } from '../src/config.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';
import { freePort } from './helpers/nats-server.js';
import { Ajv } from 'ajv';

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

/** The gateway's own metrics, and prom-client's standard process and Node.js ones. */
const METRIC_RE = /\b(?:tickgate|process|nodejs)_[a-z0-9_]+/g;
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
      for (const m of expr.matchAll(/\b((?:tickgate|process|nodejs)_[a-z0-9_]+)(\{[^}]*\})?/g)) {
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
/** Template files, with those of subfolders (tests/test-connection.yaml). */
const chartTemplates = (readdirSync(join(ROOT, CHART, 'templates'), { recursive: true }) as string[])
  .filter((f) => /\.(yaml|tpl|txt)$/.test(f))
  .sort();

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

/** The schema of a dotted values path in values.schema.json, or undefined when the schema does not name it. */
function schemaAt(path: string): JsonObject | undefined {
  let node: Json | undefined = JSON.parse(chartFile('values.schema.json')) as Json;
  for (const key of path.split('.')) {
    if (!isObject(node)) return undefined;
    const props: Json | undefined = node['properties'];
    if (isObject(props) && Object.hasOwn(props, key)) node = props[key];
    else if (node['additionalProperties'] !== false && !isObject(props)) return node; // a free-form map
    else if (isObject(node['additionalProperties'])) node = node['additionalProperties'];
    else if (node['additionalProperties'] === true) return node;
    else return undefined;
  }
  return isObject(node) ? node : undefined;
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

/*
 * The chart is checked by what its files say: Helm is not installed here, no
 * npm package renders Go templates with Helm's functions offline, and a
 * hand-written renderer for the subset the chart uses would test itself
 * rather than Helm. Checked: values.yaml validates against values.schema.json
 * (draft-07, with ajv, as Helm validates before rendering) and wrong values
 * fail; every `.Values.a.b` a template names exists in values.yaml and in the
 * schema; the config loads through the gateway's own loader; each optional
 * resource is gated by its value; security contexts, probe timings, the
 * ServiceAccount, the NetworkPolicy and the test hook are wired to their
 * values by the template lines that render them; the test hook's script runs
 * against a real gateway. Not checked: that the templates render (syntax,
 * whitespace chomping, indentation of toYaml output), fields read relative
 * to a `with`/`range` block, and what the Kubernetes API would accept.
 */
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
    const rule = chartFile('templates/prometheusrule.yaml');
    expect(rule).toMatch(/\.Files\.Get "files\/alerts\.yml" \| replace "runbook_url: \\"docs\/OPERATIONS\.md#" \$runbooks \| fromYaml/);
    expect(rule).toContain('printf "runbook_url: \\"%sdocs/OPERATIONS.md#" .Values.prometheusRule.runbookBaseUrl');
    // prometheusRule.runbookBaseUrl reaches every alert only if each runbook_url is written exactly as the replace expects.
    const alertsText = chartFile('files/alerts.yml');
    const urls = alertsText.match(/runbook_url:.*/g) ?? [];
    expect(urls.length).toBeGreaterThan(0);
    for (const u of urls) expect(u).toMatch(/^runbook_url: "docs\/OPERATIONS\.md#[a-z0-9-]+"$/);
    expect(chartFile('templates/grafana-dashboard.yaml')).toMatch(/\.Files\.Get "files\/tickgate-dashboard\.json"/);
  });

  it('references only values that values.yaml defines and values.schema.json types', () => {
    // `.Values.a.b` paths only: fields read relative to a `with`/`range` block (`.host` in a range of ingress.hosts) are not checked here.
    const missing: string[] = [];
    for (const file of chartTemplates) {
      for (const path of valuesPaths(chartFile(`templates/${file}`))) {
        if (resolve(values, path) === undefined) missing.push(`${file}: .Values.${path}`);
        if (schemaAt(path) === undefined) missing.push(`${file}: .Values.${path} not in values.schema.json`);
      }
    }
    expect(missing).toEqual([]);
  });

  describe('values.schema.json', () => {
    const schema = JSON.parse(chartFile('values.schema.json')) as JsonObject;
    // Helm validates values against the chart's schema (draft-07) before rendering; ajv applies the same rules here.
    const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
    const withValue = (path: string, v: Json | undefined): JsonObject => {
      const copy = structuredClone(values) as JsonObject;
      const keys = path.split('.');
      let node = copy;
      for (const k of keys.slice(0, -1)) node = node[k] as JsonObject;
      if (v === undefined) delete node[keys.at(-1)!];
      else node[keys.at(-1)!] = v;
      return copy;
    };

    it('is JSON Schema draft-07 and accepts values.yaml', () => {
      expect(schema['$schema']).toBe('http://json-schema.org/draft-07/schema#');
      expect(validate(values), JSON.stringify(validate.errors)).toBe(true);
    });

    it('types every value of values.yaml, and refuses keys it does not know', () => {
      const untyped: string[] = [];
      const walk = (node: Json, prefix: string) => {
        if (!isObject(node)) return;
        for (const [k, v] of Object.entries(node)) {
          const path = prefix + k;
          const at = schemaAt(path);
          if (at === undefined) untyped.push(path);
          // Below a free-form map (annotations, resources, selectors), Kubernetes' own types apply.
          else if (isObject(at['properties'] as Json)) walk(v, `${path}.`);
        }
      };
      walk(values, '');
      expect(untyped).toEqual([]);
      expect(schema['additionalProperties']).toBe(false);
      expect(validate(withValue('serviceAcount', { create: true })), 'a misspelt top-level key').toBe(false);
      expect(validate(withValue('probes.readiness.periodSecond', 5)), 'a misspelt probe key').toBe(false);
    });

    it.each([
      ['replicaCount', 'two', '/replicaCount', 'type'],
      ['image.pullPolicy', 'Sometimes', '/image/pullPolicy', 'enum'],
      ['service.type', 'ExternalName', '/service/type', 'enum'],
      ['podAntiAffinity', 'sometimes', '/podAntiAffinity', 'enum'],
      ['serviceAccount.create', 'yes', '/serviceAccount/create', 'type'],
      ['probes.liveness.periodSeconds', 0, '/probes/liveness/periodSeconds', 'minimum'],
      ['podSecurityContext.runAsUser', -1, '/podSecurityContext/runAsUser', 'minimum'],
      ['networkPolicy.nats.ports', [], '/networkPolicy/nats/ports', 'minItems'],
      ['config.port', 70000, '/config/port', 'maximum'],
      ['config.drain.delayMs', '5s', '/config/drain/delayMs', 'type'],
      ['auth.publicKeys.format', 'der', '/auth/publicKeys/format', 'enum'],
      ['serviceMonitor.interval', 'often', '/serviceMonitor/interval', 'pattern'],
    ] as const)('refuses %s: %j', (path, value, instancePath, keyword) => {
      expect(validate(withValue(path, value as Json))).toBe(false);
      expect(validate.errors).toEqual(expect.arrayContaining([expect.objectContaining({ instancePath, keyword })]));
    });

    it('accepts what Helm adds when the chart is a dependency of another: global values and an enabled condition', () => {
      expect(validate({ ...values, global: { imageRegistry: 'registry.example.com' }, enabled: true }), JSON.stringify(validate.errors)).toBe(true);
    });

    it('lets a platform assign the uid and gid (OpenShift): runAsUser and runAsGroup may be null or absent', () => {
      expect(validate(withValue('podSecurityContext.runAsUser', null)), JSON.stringify(validate.errors)).toBe(true);
      expect(validate(withValue('podSecurityContext.runAsGroup', undefined)), JSON.stringify(validate.errors)).toBe(true);
    });
  });

  describe('pod and container security', () => {
    it('defaults to non-root, read-only, no capabilities, no privilege escalation, RuntimeDefault seccomp', () => {
      expect(resolve(values, 'podSecurityContext')).toEqual({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } });
      expect(resolve(values, 'securityContext')).toEqual({
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
    });

    it('the default uid is the image\'s USER, so removing it changes nothing for runAsNonRoot', () => {
      const user = dockerStages(read('Dockerfile')).at(-1)!.instructions.filter((i) => i.op === 'USER').at(-1)!.args;
      expect(user).toBe(`${String(resolve(values, 'podSecurityContext.runAsUser'))}:${String(resolve(values, 'podSecurityContext.runAsGroup'))}`);
    });

    it.each([
      ['templates/deployment.yaml', 'podSecurityContext', 6],
      ['templates/deployment.yaml', 'securityContext', 10],
      ['templates/tests/test-connection.yaml', 'podSecurityContext', 2],
      ['templates/tests/test-connection.yaml', 'securityContext', 6],
    ] as const)('%s renders %s from values', (file, key, indent) => {
      const pad = ' '.repeat(indent);
      expect(chartFile(file)).toContain(`${pad}{{- with .Values.${key} }}\n${pad}`);
      expect(chartFile(file)).toMatch(new RegExp(`\\{\\{- with \\.Values\\.${key} \\}\\}\\n(?:\\s*#.*\\n)?${pad}securityContext:\\n${pad}  \\{\\{- toYaml \\. \\| nindent ${indent + 2} \\}\\}\\n${pad}\\{\\{- end \\}\\}`));
    });

    it('hard-codes no uid, gid or privilege in a template', () => {
      for (const file of chartTemplates) {
        const text = chartFile(`templates/${file}`);
        expect(text, file).not.toMatch(/runAsUser:|runAsGroup:|runAsNonRoot:|allowPrivilegeEscalation:|readOnlyRootFilesystem:/);
      }
    });
  });

  describe('service account', () => {
    const sa = chartFile('templates/serviceaccount.yaml');

    it('is created by default, without an API token, and named by serviceAccount.name', () => {
      expect(resolve(values, 'serviceAccount')).toEqual({ create: true, name: '', annotations: {}, automountServiceAccountToken: false });
      const lines = sa.trimEnd().split('\n');
      expect(lines[0]).toBe('{{- if .Values.serviceAccount.create }}');
      expect(lines.at(-1)).toBe('{{- end }}');
      expect(sa).toContain('kind: ServiceAccount');
      expect(sa).toMatch(/name: \{\{ include "tickgate\.serviceAccountName" \. \}\}/);
      expect(sa).toMatch(/\{\{- with \.Values\.serviceAccount\.annotations \}\}\n\s*annotations:/);
      expect(sa).toMatch(/^automountServiceAccountToken: \{\{ \.Values\.serviceAccount\.automountServiceAccountToken \}\}$/m);
      expect(deployment).toMatch(/^ {6}serviceAccountName: \{\{ include "tickgate\.serviceAccountName" \. \}\}$/m);
      expect(deployment).toMatch(/^ {6}automountServiceAccountToken: \{\{ \.Values\.serviceAccount\.automountServiceAccountToken \}\}$/m);
      // The test pod never needs a token either.
      expect(chartFile('templates/tests/test-connection.yaml')).toMatch(/^ {2}automountServiceAccountToken: false$/m);
    });

    it('falls back to the full name when created, the namespace default when not', () => {
      const name = helper('tickgate.serviceAccountName');
      expect(name).toMatch(/if \.Values\.serviceAccount\.create -\}\}\n\{\{- default \(include "tickgate\.fullname" \.\) \.Values\.serviceAccount\.name -\}\}\n\{\{- else -\}\}\n\{\{- default "default" \.Values\.serviceAccount\.name -\}\}/);
    });
  });

  describe('probe timings', () => {
    it.each([
      ['startupProbe', 'startup'],
      ['readinessProbe', 'readiness'],
      ['livenessProbe', 'liveness'],
    ] as const)('%s takes probes.%s', (probe, key) => {
      const block = new RegExp(`${probe}:\\n((?: {12}.*\\n)+)`).exec(deployment)?.[1];
      expect(block, probe).toBeDefined();
      expect(block).toContain(`{{- toYaml .Values.probes.${key} | nindent 12 }}`);
      // No timing left in the template itself.
      expect(block).not.toMatch(/(periodSeconds|timeoutSeconds|failureThreshold|successThreshold|initialDelaySeconds):/);
      const timings = resolve(values, `probes.${key}`) as JsonObject;
      expect(Object.keys(timings).length).toBeGreaterThan(0);
      for (const v of Object.values(timings)) expect(v).toBeGreaterThanOrEqual(1);
    });

    it('gives a starting pod the time the gateway may take to connect to NATS and warm up', () => {
      const startup = resolve(values, 'probes.startup') as { periodSeconds: number; failureThreshold: number };
      const nats = loadConfig({ env: {}, overrides: values.config }).nats;
      expect(startup.periodSeconds * startup.failureThreshold * 1000).toBeGreaterThanOrEqual(nats.connectTimeoutMs + nats.warmTimeoutMs);
      // Readiness reacts faster than liveness restarts.
      const ready = resolve(values, 'probes.readiness') as { periodSeconds: number; failureThreshold: number };
      const live = resolve(values, 'probes.liveness') as { periodSeconds: number; failureThreshold: number };
      expect(ready.periodSeconds * ready.failureThreshold).toBeLessThan(live.periodSeconds * live.failureThreshold);
    });
  });

  describe('helm test hook', () => {
    const hook = chartFile('templates/tests/test-connection.yaml');
    const script = /- \|\n((?: {10}.*\n|\n)+)/.exec(hook)?.[1]?.replace(/^ {10}/gm, '');
    let gw: TestGateway;

    beforeAll(async () => {
      gw = await startGateway();
    });
    afterAll(async () => {
      await gw?.stop();
    });

    it('is a test-hook pod on the gateway image, outside the Services\' selector', () => {
      expect(hook).toMatch(/^kind: Pod$/m);
      expect(hook).toMatch(/^ {4}helm\.sh\/hook: test$/m);
      expect(hook).toMatch(/^ {2}restartPolicy: Never$/m);
      const image = (t: string) => /image: (".*")/.exec(t)?.[1];
      expect(image(hook)).toBe(image(deployment));
      expect(hook).toMatch(/- node\n\s*- -e\n\s*- \|/);
      // The Services select tickgate.selectorLabels: a test pod carrying them would get client traffic.
      expect(hook).not.toContain('tickgate.selectorLabels');
      expect(hook).not.toContain('include "tickgate.labels"');
      expect(hook).toContain('{{- include "tickgate.testSelectorLabels" . | nindent 4 }}');
      expect(helper('tickgate.testSelectorLabels')).toContain('app.kubernetes.io/component: test');
      expect(hook).toMatch(/value: "\{\{ include "tickgate\.metricsScheme" \. \| lower \}\}:\/\/\{\{ include "tickgate\.fullname" \. \}\}-metrics:\{\{ include "tickgate\.metricsPort" \. \}\}"/);
    });

    /** Runs the pod's script with Node, as the pod does; asynchronously, since the gateway it asks runs in this process. */
    const runScript = (url: string) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((done) => {
        const p = spawn(process.execPath, ['-e', script!], { env: { PATH: process.env['PATH'] ?? '', TICKGATE_TEST_URL: url }, timeout: 20_000 });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.once('close', (status) => done({ status, stdout, stderr }));
      });

    it('passes against a ready gateway: /readyz and /metrics', async () => {
      expect(script).toBeDefined();
      const r = await runScript(gw.http);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toBe('/readyz 200\n/metrics 200\n');
    });

    it('fails when nothing answers', async () => {
      const r = await runScript(`http://127.0.0.1:${await freePort()}`);
      expect(r.status).toBe(1);
      expect(r.stderr).not.toBe('');
    });
  });

  describe('NetworkPolicy', () => {
    const np = chartFile('templates/networkpolicy.yaml');
    const lines = np.trimEnd().split('\n');

    it('is off by default and gated by networkPolicy.enabled', () => {
      expect(resolve(values, 'networkPolicy.enabled')).toBe(false);
      expect(lines.find((l) => !l.startsWith('#'))).toBe('{{- if .Values.networkPolicy.enabled }}');
      expect(lines.at(-1)).toBe('{{- end }}');
      expect(lines).toContain('apiVersion: networking.k8s.io/v1');
      expect(lines).toContain('kind: NetworkPolicy');
      expect(np).toMatch(/podSelector:\n\s*matchLabels:\n\s*\{\{- include "tickgate\.selectorLabels" \. \| nindent 6 \}\}/);
      expect(np).toMatch(/policyTypes:\n\s*- Ingress\n\s*- Egress/);
    });

    it('lets clients reach the WebSocket port, monitoring and the test pod the metrics port', () => {
      expect(np).toMatch(/- ports:\n\s*- port: ws\n\s*protocol: TCP\n\s*\{\{- with \.Values\.networkPolicy\.clients \}\}\n\s*from:/);
      expect(np).toMatch(/\{\{- if eq \(include "tickgate\.metricsPortName" \.\) "metrics" \}\}\n\s*- ports:\n\s*- port: metrics/);
      expect(np).toMatch(/- namespaceSelector:\n\s*\{\{- toYaml \.Values\.networkPolicy\.metrics\.namespaceSelector \| nindent 12 \}\}\n\s*podSelector:\n\s*\{\{- toYaml \.Values\.networkPolicy\.metrics\.podSelector/);
      expect(np).toContain('{{- include "tickgate.testSelectorLabels" . | nindent 14 }}');
      expect(resolve(values, 'networkPolicy.metrics.namespaceSelector')).toEqual({ matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } });
      // The ports are the container's named ports.
      expect(deployment).toMatch(/- name: ws\n/);
      expect(deployment).toMatch(/- name: metrics\n/);
    });

    it('lets monitoring and the test pod reach /metrics on the WebSocket port when it has no port of its own', () => {
      // The clients rule, up to the metrics port's own rule.
      const ws = np.slice(np.indexOf('- port: ws'), np.indexOf('- port: metrics'));
      const m = /\{\{- with \.Values\.networkPolicy\.clients \}\}\n\s*from:\n\s*\{\{- toYaml \. \| nindent 8 \}\}\n\s*\{\{- if ne \(include "tickgate\.metricsPortName" \$\) "metrics" \}\}\n([\s\S]*?)\{\{- end \}\}\n\s*\{\{- end \}\}/.exec(ws);
      expect(m, ws).not.toBeNull();
      const peers = m![1]!;
      // Inside `with`, the values are reached from the root ($).
      expect(peers).toMatch(/- namespaceSelector:\n\s*\{\{- toYaml \$\.Values\.networkPolicy\.metrics\.namespaceSelector \| nindent 12 \}\}\n\s*podSelector:\n\s*\{\{- toYaml \$\.Values\.networkPolicy\.metrics\.podSelector \| nindent 12 \}\}/);
      expect(peers).toMatch(/- podSelector:\n\s*matchLabels:\n\s*\{\{- include "tickgate\.testSelectorLabels" \$ \| nindent 14 \}\}/);
      expect(peers).not.toMatch(/[^$]\.Values/);
      // Entries of `from:` (nindent 8), like the clients' own.
      expect(peers).toMatch(/^ {8}- namespaceSelector:$/m);
      expect(peers).toMatch(/^ {8}- podSelector:$/m);
      // The test pod's labels are what the test hook carries.
      expect(chartFile('templates/tests/test-connection.yaml')).toContain('tickgate.testSelectorLabels');
    });

    it('lets the gateway reach NATS on its ports and DNS, nothing else unless added', () => {
      expect(np).toMatch(/egress:\n\s*- ports:\n\s*\{\{- range \.Values\.networkPolicy\.nats\.ports \}\}\n\s*- port: \{\{ \. \}\}\n\s*protocol: TCP/);
      expect(np).toMatch(/\{\{- with \.Values\.networkPolicy\.nats\.to \}\}\n\s*to:/);
      expect(np).toMatch(/\{\{- if \.Values\.networkPolicy\.dns\.enabled \}\}\n\s*- ports:\n\s*- port: 53\n\s*protocol: UDP\n\s*- port: 53\n\s*protocol: TCP/);
      expect(resolve(values, 'networkPolicy.nats.ports')).toEqual([4222]);
      expect(resolve(values, 'networkPolicy.dns.enabled')).toBe(true);
      expect(resolve(values, 'networkPolicy.extraEgress')).toEqual([]);
    });
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

  it('checks health with `tickgate healthcheck`, which reads the gateway\'s own config', () => {
    // test/cli.test.ts runs the same command against a gateway whose metrics port only its config file names.
    const hc = last('HEALTHCHECK');
    expect(hc).toBeDefined();
    const m = /^(.*?)\bCMD\s+(\[.*\])$/.exec(hc!);
    expect(m, `HEALTHCHECK ${hc}`).not.toBeNull();
    expect(m![1]).toMatch(/--timeout=(\d+)s/);
    const cmd = JSON.parse(m![2]!) as string[];
    expect(cmd.slice(0, 3)).toEqual(['node', 'dist/src/cli.js', 'healthcheck']);
    // PID 1 is tini, started with the gateway's command line: its --config is the gateway's.
    expect(cmd.slice(3, 5)).toEqual(['--pid', '1']);
    // Liveness: a NATS outage or a drain (not ready) must not get every container restarted.
    expect(cmd[cmd.indexOf('--path') + 1]).toBe('/healthz');
    expect(hc).not.toMatch(/readyz/);
    // The probe's own timeout fits inside Docker's.
    const probeMs = Number(cmd[cmd.indexOf('--timeout') + 1]);
    expect(probeMs).toBeLessThan(Number(/--timeout=(\d+)s/.exec(m![1]!)![1]) * 1000);
    expect(readFileSync(join(ROOT, 'src/cli.ts'), 'utf8')).toMatch(/case 'healthcheck':/);
    expect(final.instructions.some((i) => i.op === 'COPY' && /\/app\/dist\/src \.\/dist\/src$/.test(i.args))).toBe(true);
  });

  it('carries OCI labels, version, revision and source from build args', () => {
    const labels = new Map<string, string>();
    for (const i of final.instructions.filter((x) => x.op === 'LABEL')) {
      for (const l of i.args.matchAll(/([\w.-]+)="([^"]*)"/g)) labels.set(l[1]!, l[2]!);
    }
    const oci = (k: string) => labels.get(`org.opencontainers.image.${k}`);
    expect(oci('title')).toBe('tickgate');
    expect(oci('description')).toBe(JSON.parse(read('package.json')).description);
    expect(oci('licenses')).toBe(JSON.parse(read('package.json')).license);
    const args = final.instructions.filter((x) => x.op === 'ARG').map((x) => x.args.split('=')[0]);
    for (const [key, arg] of [['version', 'VERSION'], ['revision', 'REVISION'], ['source', 'SOURCE']] as const) {
      expect(oci(key), key).toBe(`\${${arg}}`);
      expect(args, `ARG ${arg} in the final stage`).toContain(arg);
    }
  });

  describe('uWebSockets.js binaries', () => {
    const build = stages.find((s) => s.instructions.some((i) => i.op === 'RUN' && /npm prune --omit=dev/.test(i.args)))!;
    const prune = build?.instructions.find((i) => i.op === 'RUN' && /uws_linux_/.test(i.args))?.args;
    const pkg = join(ROOT, 'node_modules/uWebSockets.js');
    let dir: string;

    /** A copy of the installed package under `dir` whose .node files are symlinks (113 MB not copied); the prune then runs on it as in the build stage. */
    function runPrune(targetArch: string) {
      dir = mkdtempSync(join(tmpdir(), 'tickgate-uws-'));
      const copy = (from: string, to: string) => {
        mkdirSync(to, { recursive: true });
        for (const e of readdirSync(from, { withFileTypes: true })) {
          if (e.isDirectory()) copy(join(from, e.name), join(to, e.name));
          else if (e.name.endsWith('.node')) symlinkSync(join(from, e.name), join(to, e.name));
          else copyFileSync(join(from, e.name), join(to, e.name));
        }
      };
      copy(pkg, join(dir, 'node_modules/uWebSockets.js'));
      return spawnSync('sh', ['-c', prune!], { cwd: dir, env: { PATH: process.env['PATH'] ?? '', TARGETARCH: targetArch }, encoding: 'utf8' });
    }
    const left = (sub: string) => readdirSync(join(dir, 'node_modules/uWebSockets.js', sub)).filter((f) => f.endsWith('.node')).sort();

    afterEach(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('are pruned in the build stage, by TARGETARCH, before the final stage copies node_modules', () => {
      expect(build?.instructions.some((i) => i.op === 'ARG' && i.args === 'TARGETARCH')).toBe(true);
      expect(prune, 'a RUN in the build stage that prunes the uWebSockets.js binaries').toBeDefined();
      expect(prune).toMatch(/node -p process\.versions\.modules/);
      // Before: every platform and ABI the package ships.
      expect(readdirSync(join(pkg, 'binaries')).length).toBeGreaterThan(10);
    });

    it.runIf(process.platform === 'linux' && process.arch === 'x64')('keep only linux-x64 for this Node ABI, which still loads natively', () => {
      const r = runPrune('amd64');
      expect(r.status, r.stderr).toBe(0);
      expect(left('binaries')).toEqual([`uws_linux_x64_${process.versions.modules}.node`]);
      expect(left('dist')).toEqual([]);
      const load = spawnSync(
        process.execPath,
        ['-e', "const u = require('uWebSockets.js'); const bin = Object.keys(require.cache).filter((k) => k.endsWith('.node')); console.log(JSON.stringify({ app: typeof u.App, bin }))"],
        { cwd: dir, env: { PATH: process.env['PATH'] ?? '' }, encoding: 'utf8' },
      );
      expect(load.stderr, 'no fallback warning').toBe('');
      const out = JSON.parse(load.stdout) as { app: string; bin: string[] };
      expect(out.app).toBe('function');
      expect(out.bin.map((b) => b.split('/').at(-1))).toEqual([`uws_linux_x64_${process.versions.modules}.node`]);
    });

    it('keep linux-arm64 for an arm64 build and refuse other architectures', () => {
      const arm = runPrune('arm64');
      expect(arm.status, arm.stderr).toBe(0);
      expect(left('binaries')).toEqual([`uws_linux_arm64_${process.versions.modules}.node`]);
      rmSync(dir, { recursive: true, force: true });
      const other = runPrune('riscv64');
      expect(other.status).not.toBe(0);
      expect(other.stderr).toContain('unsupported TARGETARCH riscv64');
    });
  });

  it('has a .dockerignore that keeps node_modules and .git out of the context', () => {
    const ignored = read('.dockerignore')
      .split(/\r?\n/)
      .map((l) => l.trim().replace(/^\/|\/$/g, '').replace(/^\*\*\//, ''));
    expect(ignored).toContain('node_modules');
    expect(ignored).toContain('.git');
  });
});
