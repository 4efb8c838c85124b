// Nchan (nginx module, C), two ways:
//   nchan        — one nginx (master + 1 worker), memory store; "cross-replica" does not apply.
//   nchan-redis  — three nginx instances sharing one Redis (nchan_redis_pass), Switchboard's
//                  topology: a stream on instance i % 3, its events posted to instance (i+1) % 3.
// One worker per instance, so an instance is comparable to one Node replica.
import { mkdtempSync, openSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedis } from '../lib/redis.mjs';
import { freePort, processTree, spawnServer, stopServer, waitForPort } from '../lib/procs.mjs';

const MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';

function config({ dir, port, redisUrl }) {
  const pass = redisUrl ? 'nchan_redis_pass sb_redis;' : '';
  return `load_module ${MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
# Nchan uses more connection slots than client sockets (~1.05 per subscriber here); the
# 20,000 open-files cap (worker_rlimit_nofile) stays the real limit.
events { worker_connections 40000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  nchan_shared_memory_size 512m;
  ${redisUrl ? `upstream sb_redis { nchan_redis_server ${redisUrl}; }` : ''}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    # first_message newest: like Switchboard (no Last-Event-ID = start at the newest event), not
    # Nchan's default "oldest", which would replay buffered broadcasts to every new stream.
    location ~ ^/sub/(\\w+)$ { nchan_subscriber eventsource; nchan_subscriber_first_message newest; nchan_channel_id $1 bc; ${pass} }
    location ~ ^/subu/(\\w+)$ { nchan_subscriber eventsource; nchan_subscriber_first_message newest; nchan_channel_id $1; ${pass} }
    location ~ ^/pub/(\\w+)$ { nchan_publisher; nchan_channel_id $1; ${pass} }
    location = /healthz { return 200; }
  }
}
`;
}

async function startNginx(logDir, redisUrl, n) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-nchan-'));
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), config({ dir, port, redisUrl }));
  mkdirSync(join(dir, 'body'));
  const child = spawnServer('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    log: openSync(join(logDir, `nchan-${n}.log`), 'a'),
  });
  await waitForPort(port, 10000, child);
  return { child, port, dir };
}

function make(name, label, withRedis) {
  const info = { name, label, system: 'nchan' };
  return {
    info,
    async start({ logDir }) {
      const redis = withRedis ? await startRedis(join(logDir, 'redis.log')) : undefined;
      const instances = [];
      for (let n = 0; n < (withRedis ? 3 : 1); n++) instances.push(await startNginx(logDir, redis?.url, n));
      const ports = instances.map((i) => i.port);
      return {
        ...info,
        ctx: {},
        streamPorts: ports,
        publishPorts: ports,
        idlePorts: [ports[0]],
        idlePids: () => processTree(instances[0].child.pid),
        serverPids: () => [...instances.flatMap((i) => processTree(i.child.pid)), ...(redis ? [redis.pid] : [])],
        redisPid: redis?.pid,
        async stop() {
          await Promise.all(instances.map((i) => stopServer(i.child)));
          await redis?.stop();
          for (const i of instances) rmSync(i.dir, { recursive: true, force: true });
        },
      };
    },
  };
}

export const nchan = make('nchan', 'Nchan (memory store, 1 instance)', false);
export const nchanRedis = make('nchan-redis', 'Nchan + Redis (3 instances)', true);
