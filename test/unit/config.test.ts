import t from 'tap';
import { loadConfig } from '../../src/config.js';

const CALLBACK_KEY = Buffer.alloc(32, 7).toString('base64');
const shared = {
  REDIS_URL: 'redis://127.0.0.1:6390',
  STREAM_TOKEN_SECRET: 's'.repeat(32),
  PUBLISH_API_KEY: 'k'.repeat(32),
  CALLBACK_SECRET: `whsec_${CALLBACK_KEY}`,
};

t.test('defaults follow the contract', async (t) => {
  const { config, generated } = loadConfig({});
  t.match(config, {
    port: 3000,
    host: '0.0.0.0',
    heartbeatMs: 15_000,
    retryMs: 2000,
    maxBodyBytes: 65_536,
    maxConnections: 50_000,
    maxConnectionsPerUser: 16,
    historyMaxLen: 1000,
    historyTtlSeconds: 3600,
    jobTtlSeconds: 3600,
    drainMs: 10_000,
    logLevel: 'info',
    redis: undefined,
    allowUnsignedCallbacks: false,
  });
  t.same(config.callbackSecrets, [], 'callbacks unsigned without Redis unless CALLBACK_SECRET is set');
  t.ok(generated.publishApiKey && generated.streamTokenSecret, 'without Redis, missing secrets are generated');
  t.ok(Object.isFrozen(config));
});

t.test('with Redis, the shared secrets are required and named', async (t) => {
  t.throws(() => loadConfig({ ...shared, STREAM_TOKEN_SECRET: undefined }), { message: /STREAM_TOKEN_SECRET is required/ });
  t.throws(() => loadConfig({ ...shared, PUBLISH_API_KEY: undefined }), { message: /PUBLISH_API_KEY is required/ });
  t.throws(
    () => loadConfig({ ...shared, PUBLISH_API_KEY: '' }),
    { code: 'invalid_config', message: /PUBLISH_API_KEY is required/ },
    'an empty value counts as unset',
  );
  const { generated } = loadConfig(shared);
  t.same(generated, {}, 'nothing generated when both are set');
});

t.test('Redis: exactly one of three modes, with shared auth and TLS; a bad combination names the variables', async (t) => {
  const secrets = { STREAM_TOKEN_SECRET: 's'.repeat(32), PUBLISH_API_KEY: 'k'.repeat(32), CALLBACK_SECRET: `whsec_${CALLBACK_KEY}` };
  t.match(loadConfig({ ...secrets, REDIS_URL: 'redis://10.0.0.1:6379' }).config.redis, { mode: 'standalone', url: 'redis://10.0.0.1:6379', tls: undefined });
  t.match(
    loadConfig({ ...secrets, REDIS_URL: 'rediss://r.example:6380' }).config.redis,
    { mode: 'standalone', tls: { caFile: undefined } },
    'rediss:// is TLS',
  );
  const sentinel = loadConfig({
    ...secrets,
    REDIS_SENTINELS: 's1:26379,10.0.0.2:26380',
    REDIS_SENTINEL_NAME: 'mymaster',
    REDIS_USERNAME: 'sb',
    REDIS_PASSWORD: 'pw',
    REDIS_SENTINEL_PASSWORD: 'spw',
    REDIS_TLS: 'true',
    REDIS_TLS_CA_FILE: '/etc/ca.pem',
  }).config.redis;
  t.same(sentinel, {
    mode: 'sentinel',
    sentinels: [
      { host: 's1', port: 26379 },
      { host: '10.0.0.2', port: 26380 },
    ],
    name: 'mymaster',
    sentinelPassword: 'spw',
    username: 'sb',
    password: 'pw',
    tls: { caFile: '/etc/ca.pem' },
    waitReplicas: 0,
  });
  t.same(
    loadConfig({ ...secrets, REDIS_CLUSTER_NODES: 'c1:7000,10.0.0.3:7001', REDIS_PASSWORD: 'pw' }).config.redis,
    {
      mode: 'cluster',
      nodes: [
        { host: 'c1', port: 7000 },
        { host: '10.0.0.3', port: 7001 },
      ],
      username: undefined,
      password: 'pw',
      tls: undefined,
      waitReplicas: 0,
    },
    'REDIS_CLUSTER_NODES: the seed nodes of a Redis Cluster',
  );
  t.equal(
    loadConfig({ ...secrets, REDIS_CLUSTER_NODES: 'c1:7000', REDIS_WAIT_REPLICAS: '1' }).config.redis?.waitReplicas,
    1,
    'REDIS_WAIT_REPLICAS on a Cluster: a WAIT per master',
  );
  for (const [env, message, why] of [
    [
      { REDIS_URL: 'redis://a:1', REDIS_SENTINELS: 's:1', REDIS_SENTINEL_NAME: 'm' },
      /exactly one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES \(got REDIS_URL and REDIS_SENTINELS\)/,
      'two modes',
    ],
    [{ REDIS_SENTINELS: 's:1' }, /REDIS_SENTINELS needs REDIS_SENTINEL_NAME/, 'sentinels without a name'],
    [{ REDIS_URL: 'redis://a:1', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINEL_NAME is set without REDIS_SENTINELS/, 'a name without sentinels'],
    [
      { REDIS_URL: 'redis://a:1', REDIS_SENTINEL_PASSWORD: 'x' },
      /REDIS_SENTINEL_PASSWORD is set without REDIS_SENTINELS/,
      'a sentinel password without sentinels',
    ],
    [{ REDIS_URL: 'redis://a:1', REDIS_TLS_CA_FILE: '/ca' }, /REDIS_TLS_CA_FILE is set but TLS is off/, 'a CA file with TLS off'],
    [{ REDIS_WAIT_REPLICAS: '1' }, /REDIS_WAIT_REPLICAS set without/, 'durability without Redis'],
    [{ REDIS_PASSWORD: 'pw' }, /REDIS_PASSWORD set without REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES/, 'auth without Redis'],
    [{ REDIS_SENTINELS: 'no-port', REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINELS/, 'an address without a port'],
    [
      { REDIS_CLUSTER_NODES: 'c:1', PUBLISH_API_KEY: undefined },
      /PUBLISH_API_KEY is required when Redis is configured/,
      'secrets are required on a Cluster too',
    ],
    [
      { REDIS_SENTINELS: 's:1', REDIS_SENTINEL_NAME: 'm', STREAM_TOKEN_SECRET: undefined },
      /STREAM_TOKEN_SECRET is required when Redis is configured/,
      'secrets are required behind Sentinel too',
    ],
  ] as const) {
    t.throws(() => loadConfig({ ...secrets, ...env }), { code: 'invalid_config', message }, why);
  }
});

t.test('with Redis, callbacks must be signed unless ALLOW_UNSIGNED_CALLBACKS=true', async (t) => {
  t.throws(
    () => loadConfig({ ...shared, CALLBACK_SECRET: undefined }),
    { code: 'invalid_config', message: /CALLBACK_SECRET is required when Redis is configured.*ALLOW_UNSIGNED_CALLBACKS=true/ },
    'the message names both variables',
  );
  t.throws(() => loadConfig({ ...shared, CALLBACK_SECRET: '' }), { message: /CALLBACK_SECRET is required/ }, 'an empty value counts as unset');
  t.throws(() => loadConfig({ ...shared, CALLBACK_SECRET: undefined, ALLOW_UNSIGNED_CALLBACKS: 'false' }), { message: /CALLBACK_SECRET is required/ });
  const { config } = loadConfig({ ...shared, CALLBACK_SECRET: undefined, ALLOW_UNSIGNED_CALLBACKS: 'true' });
  t.same([config.callbackSecrets, config.allowUnsignedCallbacks], [[], true], 'unsigned on purpose');
  t.same(loadConfig(shared).config.callbackSecrets, [CALLBACK_KEY], 'signed');
});

t.test('several callback secrets for rotation, each with or without whsec_', async (t) => {
  const other = Buffer.alloc(24, 9).toString('base64');
  const { config } = loadConfig({ CALLBACK_SECRET: `whsec_${CALLBACK_KEY}, ${other}` });
  t.same(config.callbackSecrets, [CALLBACK_KEY, other], 'the prefix is dropped, the order kept (the first mints)');
  for (const bad of ['plain', 'whsec_', `${CALLBACK_KEY},short`, `whsec_${CALLBACK_KEY.slice(0, -1)}`, `${CALLBACK_KEY.slice(0, -4)}!!!!`, ',']) {
    t.throws(
      () => loadConfig({ CALLBACK_SECRET: bad }),
      { code: 'invalid_config', message: /CALLBACK_SECRET/ },
      `refused: ${JSON.stringify(bad.slice(0, 20))}`,
    );
  }
});

t.test('several publisher keys for rotation', async (t) => {
  const { config } = loadConfig({ PUBLISH_API_KEY: `${'a'.repeat(20)}, ${'b'.repeat(20)}` });
  t.same(config.publishApiKeys, ['a'.repeat(20), 'b'.repeat(20)]);
  t.throws(() => loadConfig({ PUBLISH_API_KEY: `${'a'.repeat(20)},short` }), { message: /at least 16/ });
});

t.test('bad values stop the boot with the variable named', async (t) => {
  t.throws(() => loadConfig({ HEARTBEAT_MS: 'soon' }), { message: /HEARTBEAT_MS/ });
  t.throws(() => loadConfig({ REDIS_URL: 'http://x' }), { message: /REDIS_URL/ });
  t.throws(() => loadConfig({ CALLBACK_SECRET: 'plain' }), { message: /CALLBACK_SECRET/ });
  t.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), { message: /LOG_LEVEL/ });
});

t.test('numbers are read as numbers', async (t) => {
  const { config } = loadConfig({ PORT: '8080', HISTORY_MAX_LEN: '0', DEMO_MODE: 'true' });
  t.equal(config.port, 8080);
  t.equal(config.historyMaxLen, 0);
  t.equal(config.demoMode, true);
});

t.test('CORS_ORIGINS: unset, `*`, or exact origins checked at boot', async (t) => {
  t.equal(loadConfig({}).config.corsOrigins, undefined, 'unset: no CORS');
  t.equal(loadConfig({ CORS_ORIGINS: '*' }).config.corsOrigins, '*');
  t.same(loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173,' }).config.corsOrigins, [
    'https://app.example.com',
    'http://localhost:5173',
  ]);
  for (const [value, why] of [
    ['https://app.example.com/', 'a trailing slash'],
    ['https://app.example.com/app', 'a path'],
    ['https://App.example.com', 'an upper-case host (browsers send it lower-case)'],
    ['https://app.example.com:443', 'the default port (browsers leave it out)'],
    ['app.example.com', 'no scheme'],
    ['ftp://app.example.com', 'not http(s)'],
    ['null', 'the opaque origin'],
    ['*, https://app.example.com', '* in a list'],
    [' , ', 'nothing but separators'],
  ]) {
    t.throws(() => loadConfig({ CORS_ORIGINS: value }), { code: 'invalid_config', message: /CORS_ORIGINS/ }, `refused: ${why}`);
  }
  t.throws(
    () => loadConfig({ CORS_ORIGINS: 'https://App.example.com' }),
    { message: /write it as https:\/\/app\.example\.com/ },
    'and the message says how to write it',
  );
});

t.test('timer settings beyond what a Node timer can wait stop the boot, named', async (t) => {
  const MAX_TIMER_MS = 2 ** 31 - 1;
  for (const name of ['HEARTBEAT_MS', 'DRAIN_MS', 'PROBE_INTERVAL_MS', 'UNSUBSCRIBE_DEBOUNCE_MS', 'REQUEST_TIMEOUT_MS', 'STREAM_DRAIN_TIMEOUT_MS']) {
    t.throws(
      () => loadConfig({ [name]: String(MAX_TIMER_MS + 1) }),
      { code: 'invalid_config', message: new RegExp(`${name} must be <= ${MAX_TIMER_MS}.*2\\^31-1 ms`) },
      `${name} = 2^31`,
    );
    t.throws(() => loadConfig({ [name]: '1e12' }), { message: new RegExp(name) }, `${name} = 1e12`);
    t.doesNotThrow(() => loadConfig({ [name]: String(MAX_TIMER_MS) }), `${name} = 2^31-1 is accepted`);
  }
  // A retry hint is sent jittered up to 1.5× plus half the drain window: a third of the limit.
  t.throws(() => loadConfig({ RETRY_MS: String(MAX_TIMER_MS) }), { message: /RETRY_MS must be <= 715827882/ });
  t.equal(loadConfig({ RETRY_MS: '715827882' }).config.retryMs, 715_827_882);
});

t.test('the edge settings: request timeout, token audience, trusted proxies', async (t) => {
  const { config } = loadConfig({});
  t.equal(config.requestTimeoutMs, 10_000, 'REQUEST_TIMEOUT_MS defaults to 10 s');
  t.equal(config.streamTokenAudience, 'switchboard', 'STREAM_TOKEN_AUDIENCE defaults to switchboard');
  t.equal(config.trustProxy, false, 'TRUST_PROXY defaults to trusting nobody');
  t.equal(loadConfig({ REQUEST_TIMEOUT_MS: '2500', STREAM_TOKEN_AUDIENCE: 'push' }).config.requestTimeoutMs, 2500);
  t.throws(() => loadConfig({ REQUEST_TIMEOUT_MS: '0' }), { message: /REQUEST_TIMEOUT_MS/ }, 'a request timeout cannot be turned off');

  t.equal(loadConfig({ TRUST_PROXY: 'true' }).config.trustProxy, true);
  t.equal(loadConfig({ TRUST_PROXY: 'false' }).config.trustProxy, false);
  t.same(loadConfig({ TRUST_PROXY: '10.0.0.1, 172.16.0.0/12,fd00::/8 ,::1,loopback' }).config.trustProxy, [
    '10.0.0.1',
    '172.16.0.0/12',
    'fd00::/8',
    '::1',
    'loopback',
  ]);
  t.throws(() => loadConfig({ TRUST_PROXY: '1' }), { message: /TRUST_PROXY: a hop count/ }, 'a hop count is refused, not silently ignored');
  for (const bad of ['10.0.0.0/33', 'proxy.example.com', '10.0.0.1,', '10.0.0.1/8/8', 'yes', '::1/129']) {
    t.throws(() => loadConfig({ TRUST_PROXY: bad }), { code: 'invalid_config', message: /TRUST_PROXY/ }, `TRUST_PROXY=${bad}`);
  }
});
