// deploy/k8s/ holds up without a cluster: every manifest parses, the kustomization lists them
// all, and the fields that make a rolling deploy lossless are there and agree with each other and
// with the service's config schema (src/config.ts): probes on /readyz and /healthz, a grace
// period longer than the drain, a PodDisruptionBudget, a Service and a ServiceMonitor whose
// selectors find the pods, an open-files limit above MAX_CONNECTIONS, and every secret the
// config requires coming from a Secret.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { ENV_VARIABLES, EnvSchema, loadConfig } from '../../src/config.js';
import { K8S_DIR, loadKustomization, only, type Manifest } from './kustomize.js';

const kustomization = loadKustomization();
const { manifests } = kustomization;
const deployment = only(manifests, 'Deployment');
const pod = deployment.spec.template;
const container = (pod.spec.containers as any[]).find((c) => c.name === 'switchboard');
/** Every secret the config refuses to boot without when Redis is configured. */
const REQUIRED_SECRETS = ['STREAM_TOKEN_SECRET', 'PUBLISH_API_KEY', 'CALLBACK_SECRET'] as const;
/** Values the test fills in for what the cluster would take from the Secret and the pod. */
const SECRET_VALUES: Record<string, string> = {
  STREAM_TOKEN_SECRET: 'k8s-test-stream-secret-0123456789',
  PUBLISH_API_KEY: 'k8s-test-publish-key-0123456789',
  CALLBACK_SECRET: `whsec_${Buffer.from('k8s-test-callback-secret-0123456789').toString('base64')}`,
};
const POD_NAME = 'switchboard-7c9d8f6b5-x2k4q';

/** The labels `selector` asks for are all on `labels`. */
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels?.[key] === value);

/** The env a replica would see: the generated ConfigMaps it loads, then its own env entries resolved as the kubelet would. */
function effectiveEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) Object.assign(env, kustomization.generatedConfigMaps.get(source.configMapRef?.name));
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) env[entry.name] = String(entry.value);
    else if (entry.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[entry.name] = POD_NAME;
    else if (entry.valueFrom?.secretKeyRef !== undefined && SECRET_VALUES[entry.name] !== undefined) env[entry.name] = SECRET_VALUES[entry.name] as string;
  }
  return env;
}

/** A setting's value for the replicas: set in the manifests, or the schema's default. */
function setting(name: string): number {
  const value = effectiveEnv()[name] ?? (EnvSchema.properties as Record<string, { default?: unknown }>)[name]?.default;
  return Number(value);
}

t.test('every manifest in deploy/k8s parses and is listed in the kustomization', async (t) => {
  const files = readdirSync(K8S_DIR).filter((file) => /\.ya?ml$/.test(file) && file !== 'kustomization.yaml');
  t.same([...kustomization.resourceFiles].sort(), files.sort(), 'resources: lists every manifest file, and only those');
  for (const manifest of manifests) {
    t.ok(manifest.apiVersion && manifest.kind && manifest.metadata?.name, `${manifest.kind}/${manifest.metadata?.name} has apiVersion, kind and a name`);
  }
  t.same(
    manifests.map((manifest) => manifest.kind).sort(),
    ['Deployment', 'PodDisruptionBudget', 'PrometheusRule', 'Service', 'ServiceMonitor'],
    'the five objects',
  );
  t.ok(container, 'the Deployment runs a container named switchboard');
  t.equal(container.image, 'switchboard', 'the image name kustomize `images:` rewrites');
  t.ok(
    (kustomization.spec.images as { name: string }[]).some((image) => image.name === container.image),
    'and the kustomization pins it',
  );
});

t.test('the Deployment: probes, a grace period above DRAIN_MS, a surge-first rollout', async (t) => {
  t.equal(deployment.apiVersion, 'apps/v1');
  t.ok(selects(deployment.spec.selector.matchLabels, pod.metadata.labels), 'its selector matches its pods');
  t.ok(deployment.spec.replicas >= 2, `${deployment.spec.replicas} replicas: a drained replica's streams have somewhere to go`);
  const http = (container.ports as any[]).find((port) => port.name === 'http');
  t.equal(String(http?.containerPort), effectiveEnv().PORT, 'the container port named http is the PORT the replica listens on');

  t.same(container.readinessProbe?.httpGet, { path: '/readyz', port: 'http' }, 'readiness: GET /readyz');
  t.same(container.livenessProbe?.httpGet, { path: '/healthz', port: 'http' }, 'liveness: GET /healthz');
  t.same(container.startupProbe?.httpGet, { path: '/healthz', port: 'http' }, 'startup: GET /healthz, so liveness does not count boot time');

  const drainMs = setting('DRAIN_MS');
  const graceSeconds = pod.spec.terminationGracePeriodSeconds;
  t.ok(Number.isInteger(graceSeconds) && graceSeconds * 1000 > drainMs, `terminationGracePeriodSeconds ${graceSeconds} s is above DRAIN_MS ${drainMs} ms`);
  t.same(deployment.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }, 'a new pod is ready before an old one drains');

  const security = container.securityContext;
  t.equal(pod.spec.securityContext?.runAsNonRoot, true, 'runs as non-root');
  t.equal(security?.allowPrivilegeEscalation, false, 'no privilege escalation');
  t.equal(security?.readOnlyRootFilesystem, true, 'read-only root filesystem (the replica writes nothing)');
  t.same(security?.capabilities?.drop, ['ALL'], 'every capability dropped');
});

t.test('every env var the manifests name is in the config schema, and the config they make boots', async (t) => {
  const configMapNames = [...kustomization.generatedConfigMaps.values()].flatMap((env) => Object.keys(env));
  const containerNames = (container.env as { name: string }[]).map((entry) => entry.name);
  for (const name of [...configMapNames, ...containerNames]) t.ok(ENV_VARIABLES.includes(name), `${name} is in src/config.ts`);
  for (const source of container.envFrom)
    t.ok(kustomization.generatedConfigMaps.has(source.configMapRef?.name), `envFrom ${source.configMapRef?.name} is generated`);

  const env = effectiveEnv();
  let loaded: ReturnType<typeof loadConfig> | undefined;
  t.doesNotThrow(() => {
    loaded = loadConfig(env);
  }, 'the effective env passes the config schema');
  t.ok(loaded?.config.redis, 'with Redis configured (replicas share it)');
  t.equal(loaded?.config.replicaId, POD_NAME, "REPLICA_ID is the pod's name");
  t.same(loaded?.generated, {}, 'no secret is generated at boot: all come from the Secret');
});

t.test('the secrets the config requires come from the Secret, never from a literal', async (t) => {
  const secretNames = new Set<string>();
  for (const name of REQUIRED_SECRETS) {
    const entry = (container.env as any[]).find((candidate) => candidate.name === name);
    const ref = entry?.valueFrom?.secretKeyRef;
    t.ok(ref && entry.value === undefined, `${name} comes from a secretKeyRef`);
    t.equal(ref?.key, name, `${name}: the Secret's key has the variable's name`);
    t.notOk(ref?.optional, `${name} is not optional`);
    secretNames.add(ref?.name);
    for (const env of kustomization.generatedConfigMaps.values()) t.notOk(name in env, `${name} is not in a ConfigMap`);
    // Proof that the config needs it: without it the replica refuses to boot, naming it.
    const { [name]: _left, ...without } = effectiveEnv();
    t.throws(() => loadConfig(without), { code: 'invalid_config', message: new RegExp(name) }, `without ${name} the replica refuses to boot, naming it`);
  }
  t.equal(secretNames.size, 1, `all from one Secret (${[...secretNames].join(', ')})`);
  const readme = readFileSync(join(K8S_DIR, 'README.md'), 'utf8');
  const secretName = [...secretNames][0] as string;
  const create = readme.split('\n').find((line) => line.includes(`create secret generic ${secretName}`));
  t.ok(create, `README.md shows how to create ${secretName}`);
  for (const name of REQUIRED_SECRETS) t.match(readme, new RegExp(`--from-literal=${name}=`), `with ${name}`);
});

t.test('open files: the limit the pod asks for is above MAX_CONNECTIONS', async (t) => {
  const maxConnections = setting('MAX_CONNECTIONS');
  const annotation = pod.metadata.annotations?.[`ulimits.noderesource.dev/container.${container.name}`];
  t.ok(annotation, 'the pod carries the NRI ulimit-adjuster annotation for its container');
  const nofile = (parse(annotation ?? '[]') as { type: string; soft: number; hard: number }[]).find((limit) => limit.type === 'RLIMIT_NOFILE');
  t.ok(nofile, 'with an RLIMIT_NOFILE entry');
  t.ok(nofile && nofile.soft >= nofile.hard, 'soft = hard (Node would raise the soft limit to the hard one anyway)');
  t.ok(
    nofile && nofile.hard > maxConnections,
    `nofile ${nofile?.hard} is above MAX_CONNECTIONS ${maxConnections}: one descriptor per stream, plus the process's own`,
  );
  const readme = readFileSync(join(K8S_DIR, 'README.md'), 'utf8');
  t.match(readme, /## Open files/, 'README.md says how the limit is really set, per container runtime');
});

t.test('the Service, the PodDisruptionBudget and the ServiceMonitor find the pods', async (t) => {
  const service = only(manifests, 'Service');
  t.ok(selects(service.spec.selector, pod.metadata.labels), "the Service's selector matches the pods");
  const ports = service.spec.ports as { name: string; targetPort: string | number }[];
  for (const port of ports)
    t.ok(
      (container.ports as any[]).some((p) => p.name === port.targetPort),
      `Service port ${port.name} targets the container port ${port.targetPort}`,
    );

  const budget = only(manifests, 'PodDisruptionBudget');
  t.equal(budget.apiVersion, 'policy/v1');
  t.ok(selects(budget.spec.selector.matchLabels, pod.metadata.labels), "the budget's selector matches the pods");
  t.equal(budget.spec.maxUnavailable, 1, 'one replica at a time may be evicted');

  const monitor = only(manifests, 'ServiceMonitor') as Manifest;
  t.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
  t.ok(selects(monitor.spec.selector.matchLabels, service.metadata.labels), "the ServiceMonitor's selector matches the Service");
  for (const endpoint of monitor.spec.endpoints as { port: string; path: string }[]) {
    t.ok(
      ports.some((port) => port.name === endpoint.port),
      `it scrapes the Service port ${endpoint.port}`,
    );
    t.equal(endpoint.path, '/metrics', 'at /metrics');
  }
});

t.test('the README says why kustomize, and how to use Sentinel or Cluster', async (t) => {
  const readme = readFileSync(join(K8S_DIR, 'README.md'), 'utf8');
  t.match(readme, /## Why kustomize/, 'the choice is explained');
  for (const name of ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_SENTINEL_NAME', 'REDIS_CLUSTER_NODES']) t.match(readme, name, `mentions ${name}`);
});
