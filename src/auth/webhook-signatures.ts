import { createHmac, timingSafeEqual } from 'node:crypto';
import { SwitchboardError } from '../errors.js';

/** How far `webhook-timestamp` may be from now, either way: the Standard Webhooks tolerance. */
const SIGNATURE_TOLERANCE_SECONDS = 5 * 60;
/** Seconds since the epoch, digits only: `1796128337abc` is not a timestamp (parseInt would say it is). */
const TIMESTAMP = /^[0-9]{1,15}$/;
/** Signatures looked at in one `webhook-signature` header (space-separated); the rest are ignored. */
const MAX_SIGNATURES_CHECKED = 8;
/** What a job's secret is derived from, with its correlation id; changing it changes every job's secret. */
const JOB_SECRET_LABEL = 'switchboard-callback:';
const SECRET_PREFIX = 'whsec_';

/**
 * Standard Webhooks signatures for callbacks, bound to one job. Each job has its own secret,
 * HMAC-SHA256(master secret, "switchboard-callback:" + correlationId), handed out as
 * `callbackSecret` by POST /v1/jobs: a signature made for one job is invalid for every other, so a
 * captured callback cannot be replayed into another user's job.
 *
 * The signature is the Standard Webhooks v1 HMAC-SHA256 over `webhook-id.webhook-timestamp.` and
 * the body's exact bytes; the timestamp must be within 5 minutes. Replays inside those 5 minutes
 * are stopped by the callback dedupe on `webhook-id`, whose keys live at least twice as long.
 * Checked here rather than by the `standardwebhooks` package, which turns a Buffer body into a
 * string first (so invalid UTF-8 would be verified as replacement characters) and reads the
 * timestamp with parseInt.
 */
export class WebhookSignatures {
  private readonly masterKeys: readonly Buffer[];

  /** `secrets`: the master secrets as base64 (config.callbackSecrets); the first mints, all verify. */
  constructor(secrets: readonly string[]) {
    if (secrets.length === 0) throw new Error('WebhookSignatures needs at least one secret');
    this.masterKeys = secrets.map((secret) => Buffer.from(secret, 'base64'));
  }

  /** The job's signing secret, `whsec_<base64>`, from the first (current) master secret. */
  secretFor(correlationId: string): string {
    return SECRET_PREFIX + jobKey(this.masterKeys[0] as Buffer, correlationId).toString('base64');
  }

  /** Throws `invalid_signature` unless the headers sign this exact raw body for this job. */
  verify(correlationId: string, rawBody: Buffer, headers: Record<string, string | string[] | undefined>): void {
    const pick = (name: string): string => {
      const value = headers[name];
      return typeof value === 'string' ? value : '';
    };
    const id = pick('webhook-id');
    const timestamp = pick('webhook-timestamp');
    const signatures = pick('webhook-signature');
    if (id === '' || timestamp === '' || signatures === '') {
      throw new SwitchboardError('invalid_signature', 'webhook-id, webhook-timestamp and webhook-signature are required.');
    }
    if (!TIMESTAMP.test(timestamp)) throw new SwitchboardError('invalid_signature', 'webhook-timestamp must be whole seconds since the epoch, digits only.');
    const age = Math.floor(Date.now() / 1000) - Number(timestamp);
    if (age > SIGNATURE_TOLERANCE_SECONDS) throw new SwitchboardError('invalid_signature', 'webhook-timestamp is more than 5 minutes old.');
    if (age < -SIGNATURE_TOLERANCE_SECONDS) throw new SwitchboardError('invalid_signature', 'webhook-timestamp is more than 5 minutes ahead.');

    const signedContent = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), rawBody]);
    const expected = this.masterKeys.map((master) => createHmac('sha256', jobKey(master, correlationId)).update(signedContent).digest());
    const offered = signatures
      .split(' ')
      .slice(0, MAX_SIGNATURES_CHECKED)
      .filter((entry) => entry.startsWith('v1,'))
      .map((entry) => Buffer.from(entry.slice('v1,'.length), 'base64'));
    const matches = offered.some((signature) => expected.some((mac) => signature.length === mac.length && timingSafeEqual(signature, mac)));
    if (!matches) throw new SwitchboardError('invalid_signature', "No signature matches this job's secret.");
  }
}

/** HMAC-SHA256(master, "switchboard-callback:" + correlationId): the key of one job's secret. */
function jobKey(master: Buffer, correlationId: string): Buffer {
  return createHmac('sha256', master)
    .update(JOB_SECRET_LABEL + correlationId)
    .digest();
}
