// The demo's stand-in for "your backend plus an async job system" (plain Node, no dependencies).
//
// How jobs reach it: the demo page POSTs `{"userId"}` to /worker/jobs (nginx routes /worker/ here).
// The worker then does what a real backend does with its publisher key — registers the job with
// Switchboard (POST /v1/jobs, through the load balancer) — and answers the page with the
// correlation id at once. Like a real job system, it later POSTs the job's progress to the
// callbackUrl after random delays; each callback lands on whichever replica nginx picks. The
// browser never holds the publisher key, and Switchboard needs no demo-only endpoint for jobs.
//
// When Switchboard signs callbacks (CALLBACK_SECRET set, as in deploy/demo.env), POST /v1/jobs also
// answers the job's own `callbackSecret`: the worker signs each callback with it, the Standard
// Webhooks way, and keeps it to itself (the page never sees it). That secret is valid for this one
// job, so a callback captured on its way cannot be replayed into anybody else's job.
//
// Which replica took each callback is only visible in that callback's response (X-Replica-Id):
// the worker keeps it, and the page reads it back from GET /worker/jobs/:correlationId.
//
// Environment: PORT (3100), SWITCHBOARD_URL (where the load balancer is), PUBLISH_API_KEY,
// JOB_STEPS (3), STEP_DELAY_MIN_MS (700), STEP_DELAY_MAX_MS (2500).
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';

const settings = readSettings(process.env);
/** Jobs the page may still ask about; the oldest is forgotten past this many. */
const MAX_JOBS = 500;
/** Bodies this small are all the page ever sends. */
const MAX_BODY_BYTES = 4096;
/** A callback that keeps failing (replica gone, Redis down) is retried this many times in all. */
const CALLBACK_ATTEMPTS = 5;
const REQUEST_TIMEOUT_MS = 5000;

/** correlationId → what the page may read about the job. */
const jobs = new Map();

const server = createServer((request, response) => {
  route(request).then(
    ({ status, body }) => send(response, status, body),
    (err) => {
      log(`request failed: ${err.message}`);
      send(response, 502, { error: 'switchboard_unreachable', detail: err.message });
    },
  );
});

async function route(request) {
  const url = new URL(request.url ?? '/', 'http://worker');
  if (request.method === 'GET' && url.pathname === '/healthz') return { status: 200, body: { status: 'ok' } };
  if (request.method === 'POST' && url.pathname === '/jobs') return startJob(await readJson(request));
  const match = /^\/jobs\/([A-Za-z0-9_-]{1,64})$/.exec(url.pathname);
  if (request.method === 'GET' && match) {
    const job = jobs.get(match[1]);
    return job ? { status: 200, body: job } : { status: 404, body: { error: 'unknown_job' } };
  }
  return { status: 404, body: { error: 'not_found' } };
}

/** Registers the job the way a backend would, answers at once, and runs it in the background. */
async function startJob(body) {
  const userId = typeof body?.userId === 'string' ? body.userId : '';
  const registration = await fetch(`${settings.switchboardUrl}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${settings.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ userId, metadata: { source: 'demo-worker' } }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const answer = await registration.json();
  // Switchboard's problem+json (a bad user id, say) goes back to the page as it came.
  if (registration.status !== 201) return { status: registration.status, body: answer };

  const job = {
    correlationId: answer.correlationId,
    userId,
    registeredBy: registration.headers.get('x-replica-id'),
    steps: settings.steps,
    callbacks: [],
  };
  remember(job);
  log(`job ${short(job.correlationId)} for ${userId}: registered by ${job.registeredBy}`);
  void run(job, answer.callbackUrl, answer.callbackSecret);
  return { status: 201, body: job };
}

async function run(job, callbackUrl, callbackSecret) {
  for (let step = 1; step <= job.steps; step++) {
    await delay(settings.minDelayMs + Math.random() * (settings.maxDelayMs - settings.minDelayMs));
    const done = step === job.steps;
    const payload = { status: done ? 'done' : 'running', step, of: job.steps, progress: Math.round((step / job.steps) * 100) };
    const result = await postCallback(callbackUrl, payload, `${job.correlationId}:${step}`, callbackSecret);
    job.callbacks.push({ step, ...result });
    log(`job ${short(job.correlationId)} step ${step}/${job.steps}: ${result.status} from ${result.takenBy ?? '-'}`);
    if (result.status !== 202) return;
  }
}

/**
 * At-least-once, as real job systems deliver: a failed attempt is retried with the same
 * Idempotency-Key (or, signed, the same webhook-id), so Switchboard delivers the callback once
 * however often it arrives.
 */
async function postCallback(callbackUrl, payload, idempotencyKey, callbackSecret) {
  const body = JSON.stringify(payload);
  let last = { status: 0, takenBy: null, eventId: null, attempts: 0 };
  for (let attempt = 1; attempt <= CALLBACK_ATTEMPTS; attempt++) {
    try {
      const response = await fetch(callbackUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          // Signed afresh on each attempt: the timestamp must be within 5 minutes of arrival.
          ...(callbackSecret ? signatureHeaders(callbackSecret, idempotencyKey, body) : { 'idempotency-key': idempotencyKey }),
        },
        body,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const answer = await response.json().catch(() => ({}));
      last = { status: response.status, takenBy: response.headers.get('x-replica-id'), eventId: answer.eventId ?? null, attempts: attempt };
      // Only a 5xx is worth repeating; a 4xx (expired job) will not change.
      if (response.status < 500) return last;
    } catch (err) {
      last = { ...last, attempts: attempt, error: err.message };
    }
    if (attempt < CALLBACK_ATTEMPTS) await delay(250 * 2 ** attempt);
  }
  return last;
}

/** Standard Webhooks v1: HMAC-SHA256, keyed with the job's secret, over `id.timestamp.body`. */
function signatureHeaders(secret, msgId, body) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signature = createHmac('sha256', key).update(`${msgId}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': msgId, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
}

function remember(job) {
  jobs.set(job.correlationId, job);
  if (jobs.size > MAX_JOBS) jobs.delete(jobs.keys().next().value);
}

async function readJson(request) {
  let text = '';
  for await (const chunk of request) {
    text += chunk;
    if (text.length > MAX_BODY_BYTES) return undefined;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function send(response, status, body) {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  response.end(JSON.stringify(body));
}

function readSettings(env) {
  if (!env.SWITCHBOARD_URL || !env.PUBLISH_API_KEY) {
    process.stderr.write('worker: SWITCHBOARD_URL and PUBLISH_API_KEY are required\n');
    process.exit(1);
  }
  const minDelayMs = Number(env.STEP_DELAY_MIN_MS ?? 700);
  return {
    port: Number(env.PORT ?? 3100),
    host: env.HOST ?? '0.0.0.0',
    switchboardUrl: env.SWITCHBOARD_URL.replace(/\/+$/, ''),
    apiKey: env.PUBLISH_API_KEY.split(',')[0].trim(),
    steps: Number(env.JOB_STEPS ?? 3),
    minDelayMs,
    maxDelayMs: Math.max(minDelayMs, Number(env.STEP_DELAY_MAX_MS ?? 2500)),
  };
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref());
const short = (correlationId) => correlationId.slice(0, 8);
const log = (line) => process.stdout.write(`${line}\n`);

server.listen(settings.port, settings.host, () => log(`worker listening on ${settings.host}:${server.address().port}`));
// Jobs in flight are abandoned: this is a demo, and its callbacks' jobs expire by themselves.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
