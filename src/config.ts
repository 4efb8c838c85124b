import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import envSchema from 'env-schema';
import Type, { type Static } from 'typebox';

/** The longest a job may live (JOB_TTL_SECONDS, a job's ttlSeconds): its correlation id is a capability that long. */
export const MAX_JOB_TTL_SECONDS = 30 * 86_400;

/**
 * Longest delay a Node timer takes as given: a longer one fires after 1 ms (with a warning), so
 * every setting that becomes a timer, or a `retry:` a browser turns into one, stays below it.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/**
 * RETRY_MS is sent jittered up to 1.5× (plus up to half of DRAIN_MS while draining): a third of
 * the timer limit keeps every hint a client receives under it.
 */
const MAX_RETRY_MS = Math.floor(MAX_TIMER_MS / 3);

/** `host:port,host:port…`: Redis Cluster seed nodes, or Sentinel addresses. */
const HOST_PORT_LIST = '^[^,\\s:]+:\\d{1,5}(,[^,\\s:]+:\\d{1,5})*$';

/**
 * Every environment variable the service reads, in one schema. This module is
 * the only reader of `process.env`; everything else receives a frozen Config.
 */
const EnvSchema = Type.Object({
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  HOST: Type.String({ default: '0.0.0.0' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: HOST_PORT_LIST })),
  REDIS_SENTINELS: Type.Optional(Type.String({ pattern: HOST_PORT_LIST })),
  REDIS_SENTINEL_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' })),
  REDIS_USERNAME: Type.Optional(Type.String()),
  REDIS_PASSWORD: Type.Optional(Type.String()),
  REDIS_SENTINEL_PASSWORD: Type.Optional(Type.String()),
  REDIS_TLS: Type.Boolean({ default: false }),
  REDIS_TLS_CA_FILE: Type.Optional(Type.String()),
  REDIS_WAIT_REPLICAS: Type.Integer({ default: 0, minimum: 0, maximum: 16 }),
  REPLICA_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$' })),
  STREAM_TOKEN_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  PUBLISH_API_KEY: Type.Optional(Type.String({ minLength: 16 })),
  CALLBACK_SECRET: Type.Optional(Type.String()),
  ALLOW_UNSIGNED_CALLBACKS: Type.Boolean({ default: false }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  CORS_ORIGINS: Type.Optional(Type.String()),
  STREAM_TOKEN_AUDIENCE: Type.String({ default: 'switchboard', minLength: 1 }),
  // An RFC 6265 cookie name (an HTTP token): any other character could never match a sent cookie.
  STREAM_TOKEN_COOKIE: Type.Optional(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$" })),
  TLS_CERT_FILE: Type.Optional(Type.String()),
  TLS_KEY_FILE: Type.Optional(Type.String()),
  TRUST_PROXY: Type.String({ default: 'false', minLength: 1 }),
  HEARTBEAT_MS: Type.Integer({ default: 15_000, minimum: 100, maximum: MAX_TIMER_MS }),
  RETRY_MS: Type.Integer({ default: 2000, minimum: 0, maximum: MAX_RETRY_MS }),
  REQUEST_TIMEOUT_MS: Type.Integer({ default: 10_000, minimum: 100, maximum: MAX_TIMER_MS }),
  MAX_BODY_BYTES: Type.Integer({ default: 65_536, minimum: 256, maximum: 16 * 1024 * 1024 }),
  MAX_BATCH_EVENTS: Type.Integer({ default: 1000, minimum: 1, maximum: 10_000 }),
  MAX_BATCH_BYTES: Type.Integer({ default: 1024 * 1024, minimum: 256, maximum: 64 * 1024 * 1024 }),
  MAX_CONNECTIONS: Type.Integer({ default: 50_000, minimum: 1 }),
  MAX_CONNECTIONS_PER_USER: Type.Integer({ default: 16, minimum: 1 }),
  HISTORY_MAX_LEN: Type.Integer({ default: 1000, minimum: 0, maximum: 1_000_000 }),
  HISTORY_TTL_SECONDS: Type.Integer({ default: 3600, minimum: 1 }),
  JOB_TTL_SECONDS: Type.Integer({ default: 3600, minimum: 1, maximum: MAX_JOB_TTL_SECONDS }),
  DRAIN_MS: Type.Integer({ default: 10_000, minimum: 0, maximum: MAX_TIMER_MS }),
  PRESENCE_TTL_MS: Type.Integer({ default: 30_000, minimum: 300, maximum: MAX_TIMER_MS }),
  REBALANCE: Type.Boolean({ default: false }),
  REBALANCE_TOLERANCE: Type.Number({ default: 0.1, minimum: 0, maximum: 10 }),
  REBALANCE_RATE: Type.Integer({ default: 50, minimum: 1 }),
  REBALANCE_SETTLE_MS: Type.Integer({ default: 10_000, minimum: 0, maximum: MAX_TIMER_MS }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  // Tunables beyond the contract; defaults suit production.
  UNSUBSCRIBE_DEBOUNCE_MS: Type.Integer({ default: 2000, minimum: 0, maximum: MAX_TIMER_MS }),
  STREAM_MAX_BUFFERED_BYTES: Type.Integer({ default: 1024 * 1024, minimum: 1024 }),
  STREAM_DRAIN_TIMEOUT_MS: Type.Integer({ default: 10_000, minimum: 100, maximum: MAX_TIMER_MS }),
  MAX_CONCURRENT_RESUMES: Type.Integer({ default: 256, minimum: 1 }),
  MAX_CONCURRENT_RESUMES_PER_USER: Type.Integer({ default: 4, minimum: 1 }),
  REPLAY_BYTES_PER_SECOND: Type.Integer({ default: 4 * 1024 * 1024, minimum: 64 * 1024 }),
  PROBE_INTERVAL_MS: Type.Integer({ default: 2000, minimum: 100, maximum: MAX_TIMER_MS }),
  SHED_EVENT_LOOP_DELAY_MS: Type.Integer({ default: 50, minimum: 0, maximum: 60_000 }),
  SHED_MAX_IN_FLIGHT_PUBLISHES: Type.Integer({ default: 1024, minimum: 0 }),
  SHED_RETRY_AFTER_SECONDS: Type.Integer({ default: 1, minimum: 1, maximum: 3600 }),
  DEMO_MODE: Type.Boolean({ default: false }),
});

/** The variables and defaults the schema knows: test/docs/configuration.test.ts holds docs/configuration.md to them. */
export const ENV_VARIABLES: readonly string[] = Object.keys(EnvSchema.properties);
export { EnvSchema };

type Env = Static<typeof EnvSchema>;

/** Fastify's `trustProxy`: a flag, or proxy addresses / CIDR ranges / proxy-addr range names. */
export type TrustProxy = boolean | readonly string[];

export interface LoadedConfig {
  config: Config;
  /** Secrets made up at boot because none were set (single-replica mode only). */
  generated: { streamTokenSecret?: string; publishApiKey?: string };
}

export class ConfigError extends Error {
  readonly code = 'invalid_config';
}

/** Validates the environment once, at boot. Throws ConfigError with a sentence naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let parsed: Env;
  try {
    parsed = envSchema<Env>({ schema: EnvSchema, data: pickKnown(env), env: false, dotenv: false });
  } catch (err) {
    const message = (err as Error).message;
    const timerHint = /_MS must be <=/.test(message) ? ' (Node runs a longer timer after 1 ms: timers wait at most 2^31-1 ms, about 24.8 days)' : '';
    throw new ConfigError(`invalid configuration: ${message}${timerHint}`);
  }

  const redis = redisSettings(parsed);
  const shared = redis !== undefined;
  const generated: LoadedConfig['generated'] = {};
  const secretOrGenerate = (name: 'STREAM_TOKEN_SECRET' | 'PUBLISH_API_KEY'): string => {
    const value = parsed[name];
    if (value !== undefined) return value;
    if (shared) {
      // Replicas behind one load balancer must share secrets; a random one per replica would
      // make tokens minted on one replica fail on the others.
      throw new ConfigError(`${name} is required when Redis is configured (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES): all replicas must share it`);
    }
    return randomBytes(24).toString('base64url');
  };
  const streamTokenSecret = secretOrGenerate('STREAM_TOKEN_SECRET');
  if (parsed.STREAM_TOKEN_SECRET === undefined) generated.streamTokenSecret = streamTokenSecret;
  const publishApiKeyRaw = secretOrGenerate('PUBLISH_API_KEY');
  if (parsed.PUBLISH_API_KEY === undefined) generated.publishApiKey = publishApiKeyRaw;

  const publishApiKeys = publishApiKeyRaw
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0);
  if (publishApiKeys.some((k) => k.length < 16)) {
    throw new ConfigError('PUBLISH_API_KEY: every comma-separated key must be at least 16 characters');
  }

  const callbackSecrets = parseCallbackSecrets(parsed.CALLBACK_SECRET);
  if (shared && callbackSecrets.length === 0 && !parsed.ALLOW_UNSIGNED_CALLBACKS) {
    // Every callback event shows its correlation id to the job's user: unsigned, that id lets the
    // user post to their own job, and on a shared fleet that is rarely what anyone meant.
    throw new ConfigError(
      'CALLBACK_SECRET is required when Redis is configured (callbacks must be signed); set ALLOW_UNSIGNED_CALLBACKS=true to accept unsigned callbacks anyway',
    );
  }

  if ((parsed.TLS_CERT_FILE === undefined) !== (parsed.TLS_KEY_FILE === undefined)) {
    throw new ConfigError('TLS_CERT_FILE and TLS_KEY_FILE go together: set both to serve HTTP/2 over TLS, or neither for plain HTTP/1.1');
  }

  const config = toConfig(parsed, { redis, streamTokenSecret, publishApiKeys, callbackSecrets });
  return { config: Object.freeze(config), generated };
}

/**
 * The replica's settings, from the validated environment: the one place each variable becomes a
 * setting (the type `Config` is inferred from it). Units are in the names.
 */
function toConfig(
  parsed: Env,
  derived: { redis: RedisSettings | undefined; streamTokenSecret: string; publishApiKeys: readonly string[]; callbackSecrets: readonly string[] },
) {
  return {
    port: parsed.PORT,
    host: parsed.HOST,
    /** Where Redis is and how to reach it; undefined runs the in-process backplane (one replica). */
    redis: derived.redis,
    replicaId:
      parsed.REPLICA_ID ??
      `${hostname()
        .replace(/[^A-Za-z0-9._:-]/g, '-')
        .slice(0, 48)}-${process.pid}`,
    streamTokenSecret: derived.streamTokenSecret,
    /** Several keys are accepted at once so a key can be rotated without downtime. */
    publishApiKeys: derived.publishApiKeys,
    /**
     * Master secrets for callback signatures, as bytes in base64 (no `whsec_` prefix); empty when
     * callbacks are unsigned. Several are accepted at once for rotation; jobs get secrets derived
     * from the first.
     */
    callbackSecrets: derived.callbackSecrets,
    /** Set to run with Redis but without CALLBACK_SECRET (the correlation id alone lets anyone post). */
    allowUnsignedCallbacks: parsed.ALLOW_UNSIGNED_CALLBACKS,
    publicUrl: parsed.PUBLIC_URL?.replace(/\/+$/, ''),
    /** Browser origins allowed to call cross-origin: unset = none (no CORS headers), `*` = any, without credentials. */
    corsOrigins: parseCorsOrigins(parsed.CORS_ORIGINS),
    /** The `aud` claim minted into subscriber tokens and required of every token presented. */
    streamTokenAudience: parsed.STREAM_TOKEN_AUDIENCE,
    /** A cookie that may carry the stream token (after the header and `?token=`); undefined = none. */
    streamTokenCookie: parsed.STREAM_TOKEN_COOKIE,
    /** PEM files of the certificate (chain) and key: HTTP/2 over TLS, HTTP/1.1 by ALPN. Undefined = plain HTTP/1.1. */
    tls: parsed.TLS_CERT_FILE === undefined || parsed.TLS_KEY_FILE === undefined ? undefined : { certFile: parsed.TLS_CERT_FILE, keyFile: parsed.TLS_KEY_FILE },
    /** Whose `X-Forwarded-*` headers are believed: nobody's, every peer's, or these proxies'. */
    trustProxy: parseTrustProxy(parsed.TRUST_PROXY),
    heartbeatMs: parsed.HEARTBEAT_MS,
    retryMs: parsed.RETRY_MS,
    /** Time a client has to send a whole request (headers and body); streams, once open, are not bound by it. */
    requestTimeoutMs: parsed.REQUEST_TIMEOUT_MS,
    maxBodyBytes: parsed.MAX_BODY_BYTES,
    /** Events in one POST /v1/events; each is still bound by maxBodyBytes on its own. */
    maxBatchEvents: parsed.MAX_BATCH_EVENTS,
    /** Largest accepted POST /v1/events body. */
    maxBatchBytes: parsed.MAX_BATCH_BYTES,
    maxConnections: parsed.MAX_CONNECTIONS,
    maxConnectionsPerUser: parsed.MAX_CONNECTIONS_PER_USER,
    historyMaxLen: parsed.HISTORY_MAX_LEN,
    historyTtlSeconds: parsed.HISTORY_TTL_SECONDS,
    jobTtlSeconds: parsed.JOB_TTL_SECONDS,
    drainMs: parsed.DRAIN_MS,
    /** A replica that stops beating (killed, hung, cut off) drops out of every presence count within this. */
    presenceTtlMs: parsed.PRESENCE_TTL_MS,
    /** Shed streams from a replica far above the fleet mean, so they reconnect elsewhere. */
    rebalance: parsed.REBALANCE,
    /** ε: a replica sheds above (1 + ε) × the fleet mean, down to the mean. */
    rebalanceTolerance: parsed.REBALANCE_TOLERANCE,
    /** Streams a replica sheds per second at most. */
    rebalanceRate: parsed.REBALANCE_RATE,
    /**
     * How long the fleet must stay as it is (no replica joining, leaving or changing state) before
     * any replica sheds: longer than a rolling deploy's pause between one replica ready and the next drain.
     */
    rebalanceSettleMs: parsed.REBALANCE_SETTLE_MS,
    logLevel: parsed.LOG_LEVEL,
    unsubscribeDebounceMs: parsed.UNSUBSCRIBE_DEBOUNCE_MS,
    streamMaxBufferedBytes: parsed.STREAM_MAX_BUFFERED_BYTES,
    /** A replay that waits this long for its client to read is cut as a slow client. */
    streamDrainTimeoutMs: parsed.STREAM_DRAIN_TIMEOUT_MS,
    /** Resumes (streams opened with a cursor, until their replay is written) at once, per replica and per user. */
    maxConcurrentResumes: parsed.MAX_CONCURRENT_RESUMES,
    maxConcurrentResumesPerUser: parsed.MAX_CONCURRENT_RESUMES_PER_USER,
    /** History all of this replica's resumes may replay per second, together. */
    replayBytesPerSecond: parsed.REPLAY_BYTES_PER_SECOND,
    probeIntervalMs: parsed.PROBE_INTERVAL_MS,
    /** Load shedding of publishes (src/http/load-shedding.ts); 0 turns a check off. */
    shedEventLoopDelayMs: parsed.SHED_EVENT_LOOP_DELAY_MS,
    shedMaxInFlightPublishes: parsed.SHED_MAX_IN_FLIGHT_PUBLISHES,
    shedRetryAfterSeconds: parsed.SHED_RETRY_AFTER_SECONDS,
    demoMode: parsed.DEMO_MODE,
  };
}

/** Every setting of a replica, validated once at boot and frozen. */
export type Config = Readonly<ReturnType<typeof toConfig>>;

/** How to reach Redis: one of three modes, with the auth and TLS they share. */
export type RedisSettings = (
  | { mode: 'standalone'; url: string }
  | { mode: 'sentinel'; sentinels: readonly HostPort[]; name: string; sentinelPassword: string | undefined }
  | { mode: 'cluster'; nodes: readonly HostPort[] }
) & {
  username: string | undefined;
  password: string | undefined;
  /** TLS to Redis (`rediss://`, or REDIS_TLS=true), with the CA file's path when one is given. */
  tls: { caFile: string | undefined } | undefined;
  /** A publish is answered 2xx only once this many Redis replicas acknowledged it (group commit). */
  waitReplicas: number;
};

export interface HostPort {
  host: string;
  port: number;
}

/**
 * REDIS_URL, REDIS_SENTINELS (+ REDIS_SENTINEL_NAME) or REDIS_CLUSTER_NODES: exactly one of them,
 * or none (the in-process backplane). Every other combination stops the boot, naming the variables.
 */
function redisSettings(parsed: Env): RedisSettings | undefined {
  const modes = (['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'] as const).filter((name) => parsed[name] !== undefined);
  const authAndTls = (['REDIS_USERNAME', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD', 'REDIS_TLS_CA_FILE'] as const).filter(
    (name) => parsed[name] !== undefined,
  );
  if (modes.length > 1) throw new ConfigError(`set exactly one of REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES (got ${modes.join(' and ')})`);
  if (parsed.REDIS_SENTINEL_NAME !== undefined && parsed.REDIS_SENTINELS === undefined) {
    throw new ConfigError('REDIS_SENTINEL_NAME is set without REDIS_SENTINELS');
  }
  if (parsed.REDIS_SENTINEL_PASSWORD !== undefined && parsed.REDIS_SENTINELS === undefined) {
    throw new ConfigError('REDIS_SENTINEL_PASSWORD is set without REDIS_SENTINELS');
  }
  if (parsed.REDIS_TLS_CA_FILE !== undefined && !parsed.REDIS_TLS && !parsed.REDIS_URL?.startsWith('rediss://')) {
    throw new ConfigError('REDIS_TLS_CA_FILE is set but TLS is off: set REDIS_TLS=true (or use a rediss:// REDIS_URL)');
  }
  if (modes.length === 0) {
    const needRedis = [...(parsed.REDIS_TLS ? ['REDIS_TLS'] : []), ...(parsed.REDIS_WAIT_REPLICAS > 0 ? ['REDIS_WAIT_REPLICAS'] : []), ...authAndTls];
    if (needRedis.length > 0) {
      throw new ConfigError(`${needRedis.join(', ')} set without REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES`);
    }
    return undefined;
  }
  const tlsOn = parsed.REDIS_TLS || parsed.REDIS_URL?.startsWith('rediss://') === true;
  const common = {
    username: parsed.REDIS_USERNAME,
    password: parsed.REDIS_PASSWORD,
    tls: tlsOn ? { caFile: parsed.REDIS_TLS_CA_FILE } : undefined,
    waitReplicas: parsed.REDIS_WAIT_REPLICAS,
  };
  if (parsed.REDIS_URL !== undefined) return { mode: 'standalone', url: parsed.REDIS_URL, ...common };
  if (parsed.REDIS_SENTINELS !== undefined) {
    if (parsed.REDIS_SENTINEL_NAME === undefined) throw new ConfigError('REDIS_SENTINELS needs REDIS_SENTINEL_NAME (the master name the sentinels monitor)');
    return {
      mode: 'sentinel',
      sentinels: hostPorts(parsed.REDIS_SENTINELS),
      name: parsed.REDIS_SENTINEL_NAME,
      sentinelPassword: parsed.REDIS_SENTINEL_PASSWORD,
      ...common,
    };
  }
  return { mode: 'cluster', nodes: hostPorts(parsed.REDIS_CLUSTER_NODES as string), ...common };
}

function hostPorts(list: string): HostPort[] {
  return list.split(',').map((entry) => {
    const at = entry.lastIndexOf(':');
    return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) };
  });
}

/**
 * `*`, or a comma-separated list of exact origins. Each must be written as the browser sends it in
 * `Origin` (`scheme://host[:port]`, lower-case host, no default port, no path): a listed origin is
 * compared byte for byte, so any other spelling would silently never match.
 */
function parseCorsOrigins(raw: string | undefined): '*' | readonly string[] | undefined {
  if (raw === undefined) return undefined;
  const entries = raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  if (entries.length === 1 && entries[0] === '*') return '*';
  if (entries.length === 0 || entries.includes('*')) throw new ConfigError('CORS_ORIGINS: either `*` alone or a comma-separated list of origins');
  for (const entry of entries) {
    let origin: string | undefined;
    try {
      const url = new URL(entry);
      if (url.protocol === 'http:' || url.protocol === 'https:') origin = url.origin;
    } catch {
      // Not a URL at all: reported below like any other malformed entry.
    }
    if (origin !== entry) {
      const hint = origin === undefined ? '' : ` (write it as ${origin})`;
      throw new ConfigError(`CORS_ORIGINS: "${entry}" is not an origin of the form scheme://host[:port]${hint}`);
    }
  }
  return Object.freeze([...new Set(entries)]);
}

/** Shortest base64 text accepted as a callback secret (12 bytes); the rule before rotation existed. */
const MIN_CALLBACK_SECRET_CHARS = 16;

/**
 * CALLBACK_SECRET: comma-separated Standard Webhooks secrets, each `whsec_<base64>` or the bare
 * base64, as the reference libraries accept them. Returns each as canonical base64, no prefix.
 */
function parseCallbackSecrets(value: string | undefined): string[] {
  if (value === undefined) return [];
  const secrets = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => s.replace(/^whsec_/, ''));
  // Round-tripping refuses what Buffer would decode leniently (bad characters, missing padding).
  const valid = (s: string): boolean => s.length >= MIN_CALLBACK_SECRET_CHARS && Buffer.from(s, 'base64').toString('base64') === s;
  if (secrets.length === 0 || !secrets.every(valid)) {
    throw new ConfigError(
      `CALLBACK_SECRET: every comma-separated secret must be standard base64 (padded) of at least ${MIN_CALLBACK_SECRET_CHARS} characters, with or without the whsec_ prefix`,
    );
  }
  return secrets;
}

/** Names proxy-addr (Fastify's trustProxy) knows for address ranges. */
const PROXY_RANGE_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * TRUST_PROXY: `false` (the default: X-Forwarded-* from anyone is ignored), `true` (believed from
 * any peer — only when nothing but the proxy can reach the replica), or a comma list of proxy
 * addresses, CIDR ranges and the names loopback / linklocal / uniquelocal. A hop count is
 * refused, not ignored: it cannot check who the nearest peer is (Fastify 5.12 treats one as
 * "trust nobody" for that reason), and silently trusting nobody would surprise the operator.
 */
function parseTrustProxy(value: string): TrustProxy {
  const text = value.trim();
  if (text === 'false') return false;
  if (text === 'true') return true;
  if (/^\d+$/.test(text)) {
    throw new ConfigError(
      "TRUST_PROXY: a hop count cannot tell a proxy from a client that reaches the replica directly; list the proxies' addresses or CIDR ranges (or loopback, linklocal, uniquelocal), or use true or false",
    );
  }
  const entries = text.split(',').map((entry) => entry.trim());
  const bad = entries.find((entry) => !isProxyAddress(entry));
  if (bad !== undefined) {
    throw new ConfigError(`TRUST_PROXY: "${bad}" is not an IP address, a CIDR range or one of loopback, linklocal, uniquelocal (or use true or false)`);
  }
  return entries;
}

function isProxyAddress(entry: string): boolean {
  if (PROXY_RANGE_NAMES.has(entry)) return true;
  const [address = '', prefix, ...rest] = entry.split('/');
  const version = isIP(address);
  if (version === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128);
}

/** Only the variables in the schema reach the validator; empty strings count as unset. */
function pickKnown(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

export interface TelemetrySettings {
  /** True when an OpenTelemetry trace exporter is configured through the standard OTEL_* variables. */
  tracing: boolean;
  serviceName: string;
  replicaId: string;
}

/**
 * Read by telemetry/start.ts before the app loads. Tracing starts only when an exporter is named
 * (OTEL_TRACES_EXPORTER other than "none", or an OTLP endpoint): otherwise the SDK is never
 * loaded and every span call is the API's no-op. The SDK itself reads the other OTEL_* variables.
 */
export function telemetrySettings(env: NodeJS.ProcessEnv = process.env): TelemetrySettings {
  const exporter = env.OTEL_TRACES_EXPORTER;
  const tracing =
    env.OTEL_SDK_DISABLED !== 'true' &&
    exporter !== 'none' &&
    (exporter !== undefined || env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined);
  let replicaId: string;
  try {
    replicaId = loadConfig(env).config.replicaId;
  } catch {
    // main.ts reports the configuration error; tracing does not start for a replica that won't.
    return { tracing: false, serviceName: '', replicaId: '' };
  }
  return { tracing, serviceName: env.OTEL_SERVICE_NAME ?? 'switchboard', replicaId };
}
