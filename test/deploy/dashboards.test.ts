// The Grafana dashboard (deploy/grafana/switchboard.json) and the alert rules
// (deploy/k8s/prometheus-rule.yaml) ask only for what a replica really exports: every PromQL
// expression parses (Prometheus' own grammar, @prometheus-io/lezer-promql), and every metric it
// names is declared in the /metrics of a real replica (in this process) on a real Redis. Also: the
// dashboard has the panels operators need, and the rules cover the alerts the deploy needs.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import t from 'tap';
import { getJson } from '../helpers/http.js';
import { inProcessFleet } from '../helpers/in-process-replica.js';
import { REPO_ROOT } from '../helpers/replica.js';
import { loadKustomization, only } from './kustomize.js';

const DASHBOARD_FILE = join(REPO_ROOT, 'deploy/grafana/switchboard.json');
/** The dashboard's data source variable, as panels refer to it (Grafana's syntax, not a template string). */
const DATASOURCE_VARIABLE = ['$', '{datasource}'].join('');

interface Expression {
  /** Where it was found, for messages: a panel's title or an alert's name. */
  where: string;
  expr: string;
}

/** Grafana's variables, replaced by values that keep the expression valid PromQL. */
function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m').replace(/\$\{?(\w+)\}?/g, 'value');
}

/** The metric names an expression selects; throws on a syntax error or a selector without a metric name. */
function metricNames(expr: string): string[] {
  const tree = parser.parse(expr);
  const names: string[] = [];
  const problems: string[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) problems.push(`syntax error at ${node.from}: ${JSON.stringify(expr.slice(Math.max(0, node.from - 20), node.to + 20))}`);
      if (node.name !== 'VectorSelector') return;
      const identifier = node.node.getChild('Identifier');
      if (identifier === null) problems.push(`a selector without a metric name at ${node.from}`);
      else names.push(expr.slice(identifier.from, identifier.to));
    },
  });
  if (problems.length > 0) throw new Error(problems.join('; '));
  return names;
}

/**
 * The series names a scrape can carry: each declared family (`# TYPE`), with a histogram's
 * `_bucket`, `_sum` and `_count`. Declared, not sampled: a labelled counter has no sample
 * until its first increment, and is still exported.
 */
function exportedNames(metricsText: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const family = name as string;
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(family + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(family + suffix);
    else names.add(family);
  }
  return names;
}

const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8'));
const panels = (dashboard.panels as any[]).filter((panel) => panel.type !== 'row');
const dashboardExpressions: Expression[] = [
  ...panels.flatMap((panel) => (panel.targets as { expr: string }[]).map((target) => ({ where: `panel "${panel.title}"`, expr: target.expr }))),
  ...(dashboard.templating.list as any[])
    .filter((variable) => variable.type === 'query')
    .map((variable) => ({ where: `variable $${variable.name}`, expr: /^label_values\((\w+)/.exec(variable.definition)?.[1] ?? variable.definition })),
];
const rules = only(loadKustomization().manifests, 'PrometheusRule').spec.groups.flatMap((group: any) => group.rules) as {
  alert: string;
  expr: string;
  for?: string;
}[];
const ruleExpressions: Expression[] = rules.map((rule) => ({ where: `alert ${rule.alert}`, expr: rule.expr }));

const fleet = await inProcessFleet(t);
const metrics = await getJson(`${fleet.replicas[0]!.url}/metrics`);
const exported = exportedNames(metrics.text);

t.test('a replica declares the metrics the dashboards rely on', async (t) => {
  t.equal(metrics.status, 200, 'GET /metrics answers 200');
  t.ok(exported.has('switchboard_open_streams') && exported.has('switchboard_delivery_latency_seconds_bucket'), `${exported.size} series names declared`);
});

for (const [source, expressions] of [
  ['the dashboard', dashboardExpressions],
  ['the alert rules', ruleExpressions],
] as const) {
  t.test(`every expression in ${source} parses and names only exported metrics`, async (t) => {
    t.ok(expressions.length > 0, `${expressions.length} expressions`);
    for (const { where, expr } of expressions) {
      let names: string[] = [];
      t.doesNotThrow(() => {
        names = metricNames(withoutGrafanaVariables(expr));
      }, `${where}: valid PromQL`);
      t.ok(names.length > 0, `${where}: names a metric`);
      for (const name of names) t.ok(exported.has(name), `${where}: ${name} is exported`);
    }
  });
}

t.test('the dashboard shows what an operator needs', async (t) => {
  const uses = (metric: string, also: RegExp = /./): boolean =>
    dashboardExpressions.some(({ expr, where }) => where.startsWith('panel') && metricNames(withoutGrafanaVariables(expr)).includes(metric) && also.test(expr));
  t.ok(uses('switchboard_open_streams', /by \(pod, instance\)/), 'streams per replica');
  t.ok(uses('switchboard_events_accepted_total', /rate\(/), 'publish rate');
  t.ok(uses('switchboard_events_delivered_total', /rate\(/), 'delivery rate');
  t.ok(uses('switchboard_delivery_latency_seconds_bucket', /histogram_quantile\(0\.99/), 'delivery latency (p99)');
  t.ok(uses('switchboard_events_zero_receivers_total'), 'publishes that reached no stream');
  t.ok(uses('switchboard_resets_total', /by \(cause\)/), 'resets by cause');
  t.ok(uses('switchboard_streams_ended_total', /reason="slow_client"/), 'slow-client cuts');
  t.ok(uses('switchboard_shard_probe_age_seconds'), 'probe age per subscriber path');
  t.ok(uses('switchboard_ready'), 'readiness');
  t.ok(uses('switchboard_fleet_streams'), 'presence: streams per replica, fleet-wide');
  t.equal(new Set(panels.map((panel) => panel.id)).size, panels.length, 'panel ids are unique');
  t.ok(
    panels.every((panel) => panel.datasource?.uid === DATASOURCE_VARIABLE),
    'every panel reads the data source chosen in the dashboard',
  );
});

t.test('the alert rules cover a hotspot, readiness, zero receivers and slow-client cuts', async (t) => {
  const rule = (metric: string, also: RegExp = /./) => rules.find((r) => metricNames(r.expr).includes(metric) && also.test(r.expr));
  const hotspot = rule('switchboard_open_streams', /sum by \(namespace, job\) \(switchboard_open_streams\)/);
  t.ok(hotspot, `a replica's share of the fleet's streams (${hotspot?.alert})`);
  t.equal(hotspot?.for, '10m', 'held for 10 minutes');
  t.ok(rule('switchboard_ready', /== 0/), 'a replica unready');
  t.ok(rule('switchboard_events_zero_receivers_total'), 'events reaching nobody');
  t.ok(rule('switchboard_streams_ended_total', /reason="slow_client"/), 'slow-client cuts');
  t.ok(
    rules.every((r) => /^[1-9]\d*m$/.test(r.for ?? '')),
    'each waits some minutes before firing (a deploy or a blip is no alert)',
  );
});
