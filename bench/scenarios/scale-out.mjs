// Scenario S — scale-out: targeted publishes per second through the backplane with one Redis,
// then with a 3-master Redis Cluster, and the Redis CPU each publish costs in either mode.
//
// HTTP is left out on purpose: it costs a replica several times what the publish costs Redis, so
// with replicas in front Redis is never the bottleneck on a small machine. Here one process drives
// the real backplane (RedisBackplane, or ClusterBackplane: the same publish script, PUBLISH or
// SPUBLISH) with closed-loop publishers, each event to one of `users` channels this process
// subscribes (one receiver per publish, as a targeted event to an open stream). For each mode:
// publishes/s, Redis CPU per publish (utime+stime of every redis-server, from /proc), how busy the
// busiest Redis was, and the publisher's own CPU. Redis' ceiling is one core per process (its
// commands run on one thread), so a mode's projected ceiling is `masters × 1 s / (Redis CPU per
// publish per master)`: what the figure shows when publishers are not the limit.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { cpuSeconds, freePort, spawnServer, stopServer } from '../lib/procs.mjs';

const silent = pino({ level: 'silent' });

/** `masters` redis-servers in cluster mode joined by redis-cli (no replicas: the figure is the masters' work). */
async function startCluster(masters) {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-bench-cluster-'));
  const nodes = [];
  for (let i = 0; i < masters; i++) {
    const port = await freePort();
    const bus = await freePort();
    const nodeDir = join(dir, String(i));
    spawnSync('mkdir', ['-p', nodeDir]);
    const child = spawnServer('redis-server', [
      ...['--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'],
      ...['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(bus), '--cluster-node-timeout', '2000'],
    ]);
    nodes.push({ port, child });
  }
  await waitFor(() => nodes.every(({ port }) => reply(port, 'PING').startsWith('+PONG')), 'cluster nodes answering');
  const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map(({ port }) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], {
    encoding: 'utf8',
  });
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  await waitFor(() => nodes.every(({ port }) => reply(port, 'CLUSTER INFO').includes('cluster_state:ok')), 'cluster_state:ok');
  return {
    pids: nodes.map(({ child }) => child.pid),
    seeds: nodes.map(({ port }) => ({ host: '127.0.0.1', port })),
    async stop() {
      await Promise.all(nodes.map(({ child }) => stopServer(child)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startSingle() {
  const port = await freePort();
  const child = spawnServer('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no']);
  await waitFor(() => reply(port, 'PING').startsWith('+PONG'), 'redis answering');
  return { pids: [child.pid], url: `redis://127.0.0.1:${port}`, stop: () => stopServer(child) };
}

/** One inline command through redis-cli (set-up only). */
function reply(port, command) {
  const r = spawnSync('redis-cli', ['-p', String(port), ...command.split(' ')], { encoding: 'utf8' });
  return r.status === 0 ? (command === 'PING' ? `+${r.stdout.trim()}` : r.stdout) : '';
}

async function waitFor(check, what) {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`scale-out: ${what} not within 30 s`);
    await sleep(100);
  }
}

/** The backplane of `mode` on `redis`, from the measured build's dist/. */
async function backplaneOn(root, mode, redis) {
  const dist = (file) => import(join(root, 'dist', 'backplane', file));
  const common = { username: undefined, password: undefined, tls: undefined, waitReplicas: 0 };
  const history = { historyMaxLen: 1000, historyTtlSeconds: 600 };
  if (mode === 'cluster') {
    const { createClusterConnections } = await dist('redis-connections.js');
    const { ClusterBackplane } = await dist('cluster-backplane.js');
    const connections = createClusterConnections({ mode: 'cluster', nodes: redis.seeds, ...common }, 'bench-scale-out', silent);
    const backplane = new ClusterBackplane(connections, { ...history, replicaId: 'bench-scale-out', probeIntervalMs: 1000, waitReplicas: 0, logger: silent });
    return { backplane, close: () => connections.commands.disconnect() };
  }
  const { createRedisConnections } = await dist('redis-connections.js');
  const { RedisBackplane } = await dist('redis-backplane.js');
  const connections = createRedisConnections({ mode: 'standalone', url: redis.url, ...common }, 'bench-scale-out', silent);
  const backplane = new RedisBackplane(connections, { ...history, replicaId: 'bench-scale-out', probeIntervalMs: 1000, waitReplicas: 0, logger: silent });
  return {
    backplane,
    close: () => {
      connections.commands.disconnect();
      connections.subscriber.disconnect();
    },
  };
}

/** Closed-loop publishers for `durationMs`: how many publishes were answered, and how many arrived. */
async function drive(backplane, { channels, concurrency, durationMs }) {
  let published = 0;
  let failed = 0;
  const end = performance.now() + durationMs;
  const payload = JSON.stringify({ bench: 'scale-out', pad: 'x'.repeat(100) });
  const publisher = async (k) => {
    for (let i = k; performance.now() < end; i += concurrency) {
      try {
        await backplane.publish({ channel: channels[i % channels.length], header: { t: 'message', a: Date.now() }, dataJson: payload });
        published++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, k) => publisher(k)));
  return { published, failed };
}

export async function scaleOut({ root, masters = 3, users = 3000, concurrency = 256, durationMs = 5000, log = () => {} }) {
  const { userChannel } = await import(join(root, 'dist', 'backplane', 'redis-keys.js'));
  const channels = Array.from({ length: users }, (_, i) => userChannel(`so${i}`));
  const out = {};
  for (const mode of ['single', 'cluster']) {
    log(`scale-out: ${mode === 'single' ? 'one Redis' : `a ${masters}-master cluster`}`);
    const redis = mode === 'single' ? await startSingle() : await startCluster(masters);
    const { backplane, close } = await backplaneOn(root, mode, redis);
    try {
      await backplane.start();
      let received = 0;
      backplane.onMessage(() => received++);
      for (let i = 0; i < channels.length; i += 500) await backplane.subscribe(channels.slice(i, i + 500));
      await drive(backplane, { channels, concurrency, durationMs: 500 }); // warm-up: scripts loaded, JIT warm
      await sleep(300); // the warm-up's last deliveries, not counted below
      const received0 = received;
      const redis0 = redis.pids.map(cpuSeconds);
      const self0 = process.cpuUsage();
      const t0 = performance.now();
      const { published, failed } = await drive(backplane, { channels, concurrency, durationMs });
      const seconds = (performance.now() - t0) / 1000;
      await sleep(300); // the last deliveries
      const redisCpu = redis.pids.map((pid, i) => cpuSeconds(pid) - redis0[i]);
      const self = process.cpuUsage(self0);
      const totalRedisCpu = redisCpu.reduce((a, b) => a + b, 0);
      const redisUsPerPublish = published > 0 ? (totalRedisCpu * 1e6) / published : null;
      out[mode] = {
        masters: redis.pids.length,
        published,
        failed,
        deliveryRatio: published > 0 ? (received - received0) / published : null,
        publishesPerSec: published / seconds,
        redisUsPerPublish,
        busiestRedisCores: Math.max(...redisCpu) / seconds,
        redisCores: totalRedisCpu / seconds,
        publisherCores: (self.user + self.system) / 1e6 / seconds,
        // Every master at one full core, publishes spread evenly over them (users in many slots).
        projectedCeilingPerSec: redisUsPerPublish ? (redis.pids.length * 1e6) / redisUsPerPublish : null,
      };
      log(`  ${JSON.stringify(out[mode])}`);
    } finally {
      await backplane.close();
      close();
      await redis.stop();
    }
  }
  return out;
}

/** The figure as a Markdown section: medians over rounds, with the spread. */
export function scaleOutMarkdown(rounds) {
  const median = (values) => {
    const sorted = values.filter((v) => v !== null).sort((a, b) => a - b);
    return sorted.length === 0 ? null : sorted[Math.floor((sorted.length - 1) / 2)];
  };
  const cell = (mode, key, digits) => {
    const values = rounds.map((round) => round[mode]?.[key] ?? null).filter((v) => v !== null);
    const m = median(values);
    if (m === null) return 'n/a';
    const spread = values.length > 1 ? ` (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})` : '';
    return `${m.toFixed(digits)}${spread}`;
  };
  const rows = [
    ['publishes/s', 'publishesPerSec', 0],
    ['delivered per publish', 'deliveryRatio', 3],
    ['Redis CPU per publish (µs, all masters)', 'redisUsPerPublish', 1],
    ['busiest Redis (cores)', 'busiestRedisCores', 2],
    ['publisher process (cores)', 'publisherCores', 2],
    ['projected ceiling, every master at 1 core (publishes/s)', 'projectedCeilingPerSec', 0],
  ];
  return [
    '',
    `## Scale-out: targeted publishes, 1 Redis vs a ${rounds[0]?.cluster?.masters ?? 3}-master cluster (${rounds.length} round(s), median (min–max))`,
    '',
    '| | 1 Redis | cluster |',
    '| --- | ---: | ---: |',
    ...rows.map(([label, key, digits]) => `| ${label} | ${cell('single', key, digits)} | ${cell('cluster', key, digits)} |`),
    '',
  ].join('\n');
}
