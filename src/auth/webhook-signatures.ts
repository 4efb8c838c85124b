import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { SwitchboardError } from '../errors.js';

/**
 * Standard Webhooks verification (webhook-id, webhook-timestamp, webhook-signature over the raw
 * body), done by the reference library: it checks the timestamp is within 5 minutes and compares
 * signatures in constant time. Replays inside those 5 minutes are stopped by the callback dedupe,
 * whose keys live at least twice as long.
 */
export class WebhookSignatures {
  private readonly webhook: Webhook;

  constructor(secret: string) {
    this.webhook = new Webhook(secret);
  }

  /** Throws `invalid_signature` unless the headers sign this exact raw body. */
  verify(rawBody: string, headers: Record<string, string | string[] | undefined>): void {
    const pick = (name: string): string => {
      const value = headers[name];
      return typeof value === 'string' ? value : '';
    };
    try {
      this.webhook.verify(rawBody, {
        'webhook-id': pick('webhook-id'),
        'webhook-timestamp': pick('webhook-timestamp'),
        'webhook-signature': pick('webhook-signature'),
      }, { jsonParse: false });
    } catch (err) {
      if (err instanceof WebhookVerificationError) throw new SwitchboardError('invalid_signature', err.message);
      throw new SwitchboardError('invalid_signature');
    }
  }
}
