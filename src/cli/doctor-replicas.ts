import { StreamTokens } from '../auth/stream-tokens.js';
import { WebhookSignatures } from '../auth/webhook-signatures.js';
import type { Config } from '../config.js';
import { clockFinding, fail, type Finding, pass, skewMs } from './findings.js';

/** A replica that has not answered by then is reported unreachable. */
const REQUEST_TIMEOUT_MS = 5000;
/** The user the doctor's probe token and job are for; the job expires a second later. */
const DOCTOR_USER = 'switchboard-doctor';
/** The `Date` header counts whole seconds. */
const DATE_RESOLUTION_MS = 1000;

/**
 * One replica, by URL: ready (GET /readyz), its clock (the Date header), and whether it shares
 * this machine's secrets. Secrets are compared by what each one makes, never sent or printed:
 * - PUBLISH_API_KEY: the replica accepts it (POST /v1/tokens answers 201);
 * - STREAM_TOKEN_SECRET and STREAM_TOKEN_AUDIENCE: the token it minted verifies here;
 * - CALLBACK_SECRET: the `callbackSecret` it derives for a new job (an HMAC of the secret and the
 *   job's id; the job lives 1 s) equals the one derived here.
 * `secrets` is false when this machine has none of its own to compare with.
 */
export async function checkReplica(url: string, config: Config, secrets: boolean): Promise<Finding[]> {
  const check = `replica ${url}`;
  const base = url.replace(/\/+$/, '');
  const findings: Finding[] = [];
  const sentMs = Date.now();
  let ready: Response;
  try {
    ready = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    return [fail(check, `unreachable: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}`)];
  }
  const receivedMs = Date.now();
  const readiness = (await ready.json().catch(() => ({}))) as { replicaId?: string; code?: string; detail?: string };
  const name = ready.headers.get('x-replica-id') ?? readiness.replicaId ?? '?';
  findings.push(
    ready.status === 200
      ? pass(check, `ready (replica ${name})`)
      : fail(check, `not ready (replica ${name}): ${ready.status} ${readiness.code ?? ''} ${readiness.detail ?? ''}`.trim()),
  );
  const date = Date.parse(ready.headers.get('date') ?? '');
  if (!Number.isNaN(date)) findings.push(clockFinding(check, skewMs(date, sentMs, receivedMs, DATE_RESOLUTION_MS), 'its Date header'));
  if (secrets) findings.push(...(await secretFindings(check, base, config)));
  return findings;
}

async function secretFindings(check: string, base: string, config: Config): Promise<Finding[]> {
  const key = config.publishApiKeys[0] as string;
  const post = (path: string, body: unknown) =>
    fetch(base + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  const minted = await post('/v1/tokens', { userId: DOCTOR_USER, ttlSeconds: 60 });
  if (minted.status === 401) return [fail(check, 'does not accept this PUBLISH_API_KEY: its PUBLISH_API_KEY differs')];
  if (minted.status !== 201) return [fail(check, `POST /v1/tokens answered ${minted.status}`)];
  const findings: Finding[] = [];
  const { token } = (await minted.json()) as { token: string };
  try {
    new StreamTokens(config.streamTokenSecret, config.streamTokenAudience).check(token);
    findings.push(pass(check, 'PUBLISH_API_KEY accepted; STREAM_TOKEN_SECRET and STREAM_TOKEN_AUDIENCE match'));
  } catch {
    findings.push(fail(check, 'PUBLISH_API_KEY accepted, but its tokens do not verify here: its STREAM_TOKEN_SECRET or STREAM_TOKEN_AUDIENCE differs'));
  }

  const created = await post('/v1/jobs', { userId: DOCTOR_USER, ttlSeconds: 1 });
  if (created.status !== 201) return [...findings, fail(check, `POST /v1/jobs answered ${created.status}`)];
  const job = (await created.json()) as { correlationId: string; callbackSecret?: string };
  const expected = config.callbackSecrets.length === 0 ? undefined : new WebhookSignatures(config.callbackSecrets).secretFor(job.correlationId);
  if (expected === undefined && job.callbackSecret === undefined) findings.push(pass(check, 'callbacks unsigned, here and there'));
  else if (expected === undefined) findings.push(fail(check, 'signs callbacks (CALLBACK_SECRET), but none is set here'));
  else if (job.callbackSecret === undefined) findings.push(fail(check, 'does not sign callbacks, but CALLBACK_SECRET is set here'));
  else if (job.callbackSecret !== expected) findings.push(fail(check, "its CALLBACK_SECRET differs (or lists another first): jobs' callback secrets differ"));
  else findings.push(pass(check, 'CALLBACK_SECRET matches'));
  return findings;
}
