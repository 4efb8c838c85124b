import { base64ToBytes, bytesToBase64 } from './base64.js';
import { invalidArgument } from './errors.js';
import { type Bytes, hmacSha256, utf8 } from './hmac.js';

const SECRET_PREFIX = 'whsec_';
/** What the server derives a job's secret from, with its correlation id (src/auth/webhook-signatures.ts). */
const JOB_SECRET_LABEL = 'switchboard-callback:';

/** A Standard Webhooks secret, `whsec_<base64>` or the bare base64, as its key bytes. */
export function secretBytes(secret: string): Bytes {
  try {
    return base64ToBytes(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret) as Bytes;
  } catch {
    throw invalidArgument('the callback secret must be whsec_<base64> or base64');
  }
}

/**
 * A job's own signing secret, `whsec_<base64>`, from the master CALLBACK_SECRET: what POST /v1/jobs
 * answers as `callbackSecret`. For a job runner that holds the master secret instead of each job's.
 */
export async function jobCallbackSecret(masterSecret: string, correlationId: string): Promise<string> {
  const key = await hmacSha256(secretBytes(masterSecret), utf8(JOB_SECRET_LABEL + correlationId));
  return SECRET_PREFIX + bytesToBase64(key);
}

/** The Standard Webhooks v1 headers signing `body` (its exact bytes) with `secret`. */
export async function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): Promise<Record<string, string>> {
  const mac = await hmacSha256(secretBytes(secret), utf8(`${id}.${timestampSeconds}.${body}`));
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSeconds), 'webhook-signature': `v1,${bytesToBase64(mac)}` };
}
