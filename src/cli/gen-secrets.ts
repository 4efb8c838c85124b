import { randomBytes } from 'node:crypto';

/** 32 random bytes each: far beyond guessing, and long past every minimum config.ts sets. */
const SECRET_BYTES = 32;

/**
 * `switchboard gen-secrets`: the three secrets every replica of a fleet must share, as env lines
 * to paste into a .env file or a secret store. Nothing is written anywhere else.
 */
export async function run(_args: string[]): Promise<number> {
  process.stdout.write(
    [
      '# Switchboard secrets: give every replica the same values; keep them out of the browser and of git.',
      `STREAM_TOKEN_SECRET=${randomBytes(SECRET_BYTES).toString('base64url')}`,
      `PUBLISH_API_KEY=${randomBytes(SECRET_BYTES).toString('base64url')}`,
      // Standard Webhooks form: job runners' libraries accept it as is.
      `CALLBACK_SECRET=whsec_${randomBytes(SECRET_BYTES).toString('base64')}`,
      '',
    ].join('\n'),
  );
  return 0;
}
