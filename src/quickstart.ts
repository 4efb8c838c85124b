import type { LoadedConfig } from './config.js';

/**
 * With no secrets configured the replica made its own; print them once with a paste-ready
 * example, so `npm start` on a fresh clone is one copy-paste away from a first event.
 */
export function printQuickstart({ config, generated }: LoadedConfig, port: number): void {
  if (generated.publishApiKey === undefined && generated.streamTokenSecret === undefined) return;
  const base = `${config.tls === undefined ? 'http' : 'https'}://localhost:${port}`;
  const key = config.publishApiKeys[0] ?? '';
  // Only what was made up here: a secret the operator set is never echoed to stdout.
  const made = [
    ...(generated.publishApiKey === undefined ? [] : [`PUBLISH_API_KEY=${generated.publishApiKey}`]),
    ...(generated.streamTokenSecret === undefined ? [] : [`STREAM_TOKEN_SECRET=${generated.streamTokenSecret}`]),
  ];
  const keyInExample = generated.publishApiKey === undefined ? '$PUBLISH_API_KEY' : key;
  process.stdout.write(`
  Switchboard is running on ${base} (single replica, in-process backplane).
  These secrets were not configured, so they were generated for this run:

    ${made.join('\n    ')}

  Try it:

    # 1. mint a subscriber token for user "alice"
    TOKEN=$(curl -s -X POST ${base}/v1/tokens -H "authorization: Bearer ${keyInExample}" \\
      -H 'content-type: application/json' -d '{"userId":"alice"}' | sed -E 's/.*"token":"([^"]+)".*/\\1/')

    # 2. in a browser console on ${base} (it asks for the token step 1 printed with: echo $TOKEN),
    #    or in this shell: curl -N "${base}/stream/alice?token=$TOKEN"
    const es = new EventSource('${base}/stream/alice?token=' + encodeURIComponent(prompt('token from step 1')));
    es.addEventListener('message', (e) => console.log(e.lastEventId, JSON.parse(e.data)));

    # 3. publish to alice
    curl -s -X POST ${base}/v1/users/alice/events -H "authorization: Bearer ${keyInExample}" \\
      -H 'content-type: application/json' -d '{"data":{"hello":"world"}}'

`);
}
