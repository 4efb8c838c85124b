// The root README's backend snippet runs as written, against a real replica: alice's stream
// receives the published event and the job's signed callback.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { PUBLISH_API_KEY, STREAM_TOKEN_SECRET, waitOpen } from '../../../test/helpers/fleet.js';
import { inProcessFleet } from '../../../test/helpers/in-process-replica.js';
import { trackChild } from '../../../test/helpers/reaper.js';
import { openSse } from '../../../test/helpers/sse-client.js';
import { withTimeout } from '../../../test/helpers/wait-for.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const SDK = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;

/** The first js block after the "From your backend" heading. */
async function backendSnippet(): Promise<string> {
  const readme = await readFile(README, 'utf8');
  const section = readme.slice(readme.indexOf('### From your backend'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  if (code === undefined) throw new Error('no js block under "From your backend"');
  return code;
}

t.test("the README's backend snippet publishes and runs a job's signed callback", async (t) => {
  const CALLBACK_SECRET = Buffer.from('readme-callback-secret-0123456789').toString('base64');
  const fleet = await inProcessFleet(t, { CALLBACK_SECRET, ALLOW_UNSIGNED_CALLBACKS: undefined });
  const replica = fleet.replicas[0]!;
  const stream = await waitOpen(await openSse(`${replica.url}/stream/alice`, { headers: { authorization: `Bearer ${await fleet.token('alice')}` } }), 'alice');
  t.teardown(() => stream.close());

  const snippet = await backendSnippet();
  t.match(snippet, "from '@switchboard/publisher'", 'it imports the SDK by its package name');
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-readme-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'snippet.mjs');
  // Run from a temporary folder, the package name pointed at the built package.
  await writeFile(file, snippet.replace("'@switchboard/publisher'", `'${SDK}'`));
  const child = spawn(process.execPath, [file], {
    env: { PATH: process.env.PATH ?? '', SWITCHBOARD_URL: replica.url, PUBLISH_API_KEY, STREAM_TOKEN_SECRET },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  trackChild(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await withTimeout(new Promise((resolve) => child.once('close', resolve)), 20_000, 'the snippet');
  t.equal(code, 0, stderr);

  const events = await stream.waitForEvents(2);
  t.same(
    events.map((event) => event.type),
    ['order', 'callback'],
  );
  t.same(JSON.parse(events[0]!.data), { order: 42, state: 'shipped' });
  t.match(JSON.parse(events[1]!.data), { payload: { status: 'done' } });
});
