// Real EventSource clients behind a round-robin proxy over three replicas; the busiest replica is
// killed mid-flow. Every client must end with every accepted event exactly once, in order.
import t from 'tap';
import { EventSource } from 'eventsource';
import { PUBLISH_API_KEY, percentile, startFleet } from '../helpers/fleet.js';
import { postJson } from '../helpers/http.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

const CLIENTS = 60;
const EVENTS = 600;
const RATE_PER_SECOND = 100;
const KILL_AT_MS = 2000;

interface Client {
  user: string;
  source: EventSource;
  received: number[];
  opens: number[];
  replicas: string[];
}

t.test('kill -9 the busiest replica mid-flow: every client resumes elsewhere with no gap and no duplicate', async (t) => {
  const fleet = await startFleet(t, 3, { RETRY_MS: '300' });
  const proxy = await startTcpProxy(t, () => fleet.replicas.map((r) => ({ host: '127.0.0.1', port: r.port })));

  const clients: Client[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const user = `es-${i}`;
    const token = await fleet.token(user);
    const client: Client = { user, received: [], opens: [], replicas: [], source: undefined as unknown as EventSource };
    client.source = new EventSource(`${proxy.url}/stream/${user}?token=${token}`, {
      // Wraps fetch only to see which replica answered each (re)connect.
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        client.replicas.push(response.headers.get('x-replica-id') ?? '?');
        return response;
      },
    });
    client.source.addEventListener('open', () => client.opens.push(performance.now()));
    client.source.addEventListener('message', (event) => client.received.push(JSON.parse(event.data).seq));
    client.source.addEventListener('reset', () => client.received.push(-1));
    clients.push(client);
  }
  t.teardown(() => clients.forEach((c) => c.source.close()));
  await waitFor(() => clients.every((c) => c.opens.length > 0), { timeoutMs: 10_000, label: 'all clients open' });

  const perReplica = new Map<string, number>();
  for (const c of clients) perReplica.set(c.replicas[0]!, (perReplica.get(c.replicas[0]!) ?? 0) + 1);
  const [busiestId, busiestCount] = [...perReplica].sort((a, b) => b[1] - a[1])[0]!;
  const busiest = fleet.replicas.find((r) => r.replicaId === busiestId)!;
  t.comment(`streams per replica: ${JSON.stringify(Object.fromEntries(perReplica))}; killing ${busiestId}`);

  const accepted = new Map<string, number[]>(clients.map((c) => [c.user, []]));
  let failedAttempts = 0;
  let killedAt = 0;
  const started = performance.now();
  for (let seq = 0; seq < EVENTS; seq++) {
    if (killedAt === 0 && performance.now() - started >= KILL_AT_MS) {
      killedAt = performance.now();
      await busiest.kill('SIGKILL');
    }
    const user = `es-${seq % CLIENTS}`;
    // Publish through the proxy; a publish that fails (the replica died under it) is retried with
    // the same idempotency id, so it is accepted once whichever replica takes the retry.
    for (let attempt = 0; ; attempt++) {
      const answer = await postJson(`${proxy.url}/v1/users/${user}/events`, { id: `seq-${seq}`, data: { seq } }, { bearer: PUBLISH_API_KEY }).catch(
        () => undefined,
      );
      if (answer?.status === 202) break;
      failedAttempts++;
      if (attempt > 20) throw new Error(`publish ${seq} kept failing: ${answer?.status} ${answer?.text}`);
    }
    accepted.get(user)!.push(seq);
    // Pace the publisher at about RATE_PER_SECOND.
    const due = started + ((seq + 1) * 1000) / RATE_PER_SECOND;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  t.ok(killedAt > 0, 'the replica was killed while events flowed');

  await waitFor(() => clients.every((c) => c.received.length >= accepted.get(c.user)!.length), {
    timeoutMs: 20_000,
    label: 'every client has as many events as were accepted for it',
  });
  let exact = 0;
  for (const c of clients) {
    if (JSON.stringify(c.received) === JSON.stringify(accepted.get(c.user))) exact++;
    else t.fail(`${c.user}: expected ${JSON.stringify(accepted.get(c.user))}, got ${JSON.stringify(c.received)}`);
  }
  t.equal(exact, CLIENTS, 'every client has every accepted event exactly once, in order (no resets, no duplicates)');

  const moved = clients.filter((c) => c.replicas[0] === busiestId);
  t.equal(moved.length, busiestCount);
  t.ok(
    moved.every((c) => c.opens.length >= 2 && c.replicas.at(-1) !== busiestId),
    "the killed replica's clients reconnected to another replica",
  );
  const reconnectMs = moved.map((c) => c.opens[1]! - killedAt);
  t.comment(
    `${moved.length} clients moved off ${busiestId}: reconnected after median ${percentile(reconnectMs, 50).toFixed(0)} ms, ` +
      `max ${Math.max(...reconnectMs).toFixed(0)} ms (RETRY_MS=300); ${failedAttempts} publish attempts failed and were retried`,
  );
});
