// The Switchboard demo page: plain browser JavaScript, no build step, served by every replica.
//
// It uses Switchboard the way an app would — an EventSource on /stream/:userId, reconnecting by
// itself with Last-Event-ID — plus two helpers that exist only with DEMO_MODE=true:
// POST /demo/token (the app's login and backend would mint the token) and
// GET /demo/streams/:userId (which replica holds the stream). Jobs go to the demo worker at
// /worker/ (deploy/worker/worker.mjs), which registers them and posts their callbacks.

const $ = (id) => document.getElementById(id);

/** Round robin sends each ask to the next replica; a few rounds find the one holding the stream. */
const LOCATE_ATTEMPTS = 12;
/** The worker records who took a callback once the callback's response is back: ask a few times. */
const CALLBACK_LOOKUP_ATTEMPTS = 10;
const CALLBACK_LOOKUP_INTERVAL_MS = 300;
/** Log lines kept on screen; `state.events` keeps every event. */
const MAX_LOG_LINES = 300;
/** Event types the page listens for (EventSource only dispatches the types it is told about). */
const DATA_EVENT_TYPES = ['message', 'callback'];

/**
 * Everything the page knows, rendered after each change. Also on `window.demo` for devtools
 * and for the browser test.
 */
const state = {
  userId: '',
  token: '',
  source: undefined,
  /** 'closed' | 'connecting' | 'open' | 'reconnecting' | 'refused' */
  streamState: 'closed',
  /** One per time the stream opened: { n, replica, openedAt, resumedAfter, endedAt } */
  connections: [],
  /** Every data event received: { id, type, data, connection } */
  events: [],
  lastEventId: '',
  /** correlationId → { correlationId, registeredBy, status, callbacks: { step, status, takenBy, connection }[] } */
  jobs: new Map(),
  /** Newest first: { time, kind, connection, id, what } */
  log: [],
};
window.demo = state;

// ---------------------------------------------------------------------------------------------
// The stream

async function openStream(userId) {
  const minted = await call('POST', '/demo/token', { userId });
  if (minted.status !== 201) return notice(`Could not get a token: ${minted.body?.detail ?? minted.status}`);
  state.token = minted.body.token;
  // When the page itself re-opens the stream (after `auth-expired`, or Close then Open for the
  // same user) it resumes explicitly; a reconnect by the browser sends Last-Event-ID on its own.
  const resume = state.lastEventId ? `&lastEventId=${encodeURIComponent(state.lastEventId)}` : '';
  const source = new EventSource(`/stream/${encodeURIComponent(userId)}?token=${encodeURIComponent(state.token)}${resume}`);
  state.source = source;
  state.streamState = 'connecting';

  source.addEventListener('open', () => {
    const resumedAfter = state.lastEventId || undefined;
    const connection = { n: state.connections.length + 1, replica: undefined, openedAt: clock(), resumedAfter, endedAt: undefined };
    state.connections.push(connection);
    state.streamState = 'open';
    log('open', connection, resumedAfter ? `resumed: sent Last-Event-ID ${shortId(resumedAfter)}` : 'new stream, no history asked for');
    void locate(connection);
  });
  source.addEventListener('error', () => {
    if (source !== state.source) return;
    const connection = current();
    if (connection && connection.endedAt === undefined) connection.endedAt = clock();
    if (source.readyState === EventSource.CLOSED) {
      // A non-200 answer: EventSource never retries it (an expired token, say).
      state.source = undefined;
      state.streamState = 'refused';
      log('refused', connection, 'the server refused the stream; EventSource gives up');
    } else if (state.streamState !== 'reconnecting') {
      state.streamState = 'reconnecting';
      log('lost', connection, 'connection lost; the browser reconnects by itself');
    }
    render();
  });
  for (const type of DATA_EVENT_TYPES) source.addEventListener(type, onDataEvent);
  source.addEventListener('reset', (event) => {
    state.lastEventId = event.lastEventId;
    const { reason } = JSON.parse(event.data);
    log('reset', current(), `${reason}: history could not fill the gap, so the page refetches job states`, event.lastEventId);
    void refetchJobs();
  });
  source.addEventListener('auth-expired', () => {
    log('expired', current(), 'token expired: fetching a new one and resuming');
    closeStream();
    void openStream(userId);
  });
  render();
}

function closeStream() {
  state.source?.close();
  state.source = undefined;
  const connection = current();
  if (connection && connection.endedAt === undefined) connection.endedAt = clock();
  state.streamState = 'closed';
  render();
}

function onDataEvent(event) {
  const connection = current();
  const data = JSON.parse(event.data);
  state.lastEventId = event.lastEventId;
  state.events.push({ id: event.lastEventId, type: event.type, data, connection: connection?.n });
  if (event.type === 'callback') onCallback(data, connection);
  log(event.type, connection, JSON.stringify(data), event.lastEventId);
}

const current = () => state.connections.at(-1);

/** Asks through the balancer until the replica holding this user's stream answers. */
async function locate(connection) {
  for (let attempt = 0; attempt < LOCATE_ATTEMPTS && connection === current(); attempt++) {
    const answer = await call('GET', `/demo/streams/${encodeURIComponent(state.userId)}`);
    if (answer.status === 200 && answer.body.streams > 0) {
      connection.replica = answer.body.replicaId;
      render();
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs and their callbacks

async function startJob() {
  const answer = await call('POST', '/worker/jobs', { userId: state.userId });
  if (answer.status !== 201) return notice(`The worker could not start a job: ${answer.body?.detail ?? answer.body?.error ?? answer.status}`);
  const { correlationId, registeredBy } = answer.body;
  if (!state.jobs.has(correlationId)) state.jobs.set(correlationId, { correlationId, registeredBy, status: 'pending', callbacks: [] });
  render();
}

function onCallback({ correlationId, payload }, connection) {
  let job = state.jobs.get(correlationId);
  if (job === undefined) {
    // Started in another tab of the same user: its callbacks reach every stream of the user.
    job = { correlationId, registeredBy: undefined, status: 'pending', callbacks: [] };
    state.jobs.set(correlationId, job);
  }
  job.status = payload?.status ?? 'callback_received';
  const callback = { step: payload?.step, status: job.status, takenBy: undefined, connection: connection?.n };
  job.callbacks.push(callback);
  void lookUpWhoTook(job, callback);
}

/** Only the worker saw which replica answered the callback (its X-Replica-Id): ask it. */
async function lookUpWhoTook(job, callback) {
  for (let attempt = 0; attempt < CALLBACK_LOOKUP_ATTEMPTS; attempt++) {
    const answer = await call('GET', `/worker/jobs/${job.correlationId}`);
    const record = answer.body?.callbacks?.find((c) => c.step === callback.step);
    if (answer.status === 200) job.registeredBy ??= answer.body.registeredBy;
    if (record?.takenBy) {
      callback.takenBy = record.takenBy;
      render();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, CALLBACK_LOOKUP_INTERVAL_MS));
  }
}

/** After a `reset` the stream may have missed callbacks: the job's state is the ground truth. */
async function refetchJobs() {
  for (const job of state.jobs.values()) {
    const answer = await call('GET', `/v1/jobs/${job.correlationId}`, undefined, state.token);
    if (answer.status === 200) job.status = answer.body.status;
    // The same loss that emptied the history (Redis restarted empty) can take the job with it.
    if (answer.status === 404) job.status = 'gone';
  }
  render();
}

// ---------------------------------------------------------------------------------------------
// Rendering (textContent only: nothing received is ever parsed as HTML)

function render() {
  const connection = current();
  const stateCell = $('stream-state');
  stateCell.textContent = state.streamState;
  stateCell.className = `state-${state.streamState === 'connecting' ? 'reconnecting' : state.streamState}`;
  $('stream-replica').textContent = state.streamState === 'open' ? (connection?.replica ?? 'asking…') : '–';
  $('connection-count').textContent = String(state.connections.length);
  $('event-count').textContent = String(state.events.length);
  $('last-event-id').textContent = shortId(state.lastEventId);
  $('last-event-id').title = state.lastEventId;
  $('connect').disabled = state.source !== undefined;
  $('disconnect').disabled = state.source === undefined;
  $('start-job').disabled = state.source === undefined;
  $('user').disabled = state.source !== undefined;
  renderRows(
    'connections',
    5,
    [...state.connections]
      .reverse()
      .map((c) => [`#${c.n}`, c.replica ?? '…', c.openedAt, c.resumedAfter ? shortId(c.resumedAfter) : 'new stream', c.endedAt ?? 'open']),
  );
  renderRows(
    'jobs',
    6,
    [...state.jobs.values()]
      .reverse()
      .flatMap((job) =>
        job.callbacks.length === 0
          ? [[jobName(job), job.registeredBy ?? '…', '–', '–', '–', '–']]
          : [...job.callbacks]
              .reverse()
              .map((callback) => [
                jobName(job),
                job.registeredBy ?? '…',
                `${callback.step ?? '?'}`,
                callback.status,
                callback.takenBy ?? '…',
                streamName(callback.connection),
              ]),
      ),
  );
  $('log').replaceChildren(
    ...state.log.map(({ time, kind, connection, id, what }) =>
      el('li', '', [
        el('span', 'muted', time),
        el('span', `kind kind-${kind}`, kind),
        el('span', 'muted', streamName(connection)),
        el('code', 'muted', id ? shortId(id) : ''),
        el('span', 'what', what),
      ]),
    ),
  );
}

/** Fills a table body with one row per array of cell texts, or a placeholder row. */
function renderRows(tbodyId, columns, rows) {
  const body = $(tbodyId);
  if (rows.length === 0) {
    const placeholder = el('td', '', body.dataset.empty);
    placeholder.colSpan = columns;
    body.replaceChildren(el('tr', 'empty', [placeholder]));
    return;
  }
  body.replaceChildren(
    ...rows.map((cells) =>
      el(
        'tr',
        '',
        cells.map((text) => el('td', '', text)),
      ),
    ),
  );
}

/** Stream connections are numbered; the replica holding each is shown once located. */
function streamName(n) {
  const connection = state.connections.find((c) => c.n === n);
  return connection ? `#${n} ${connection.replica ?? ''}`.trim() : '';
}

function log(kind, connection, what, id) {
  state.log.unshift({ time: clock(), kind, connection: connection?.n, id, what });
  state.log.length = Math.min(state.log.length, MAX_LOG_LINES);
  render();
}

function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = false;
}

function el(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (typeof content === 'string') node.textContent = content;
  else node.append(...content);
  return node;
}

/** Ids are long resumable cursors; their last part (the position) is enough to follow along. */
const shortId = (id) => (id ? `…${id.split('.').at(-1)}` : '–');
/** The job's short id and its latest status, from its callbacks or from a refetch. */
const jobName = (job) => `${job.correlationId.slice(0, 8)}… ${job.status}`;
const clock = () => new Date().toLocaleTimeString();

async function call(method, path, body, bearer) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  try {
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: response.status, body: await response.json().catch(() => undefined) };
  } catch {
    return { status: 0, body: undefined };
  }
}

// ---------------------------------------------------------------------------------------------

$('user').value = `user-${Math.random().toString(36).slice(2, 7)}`;
$('controls').addEventListener('submit', (event) => {
  event.preventDefault();
  const userId = $('user').value.trim();
  // Re-opening for the same user resumes after the last event; another user starts afresh.
  if (userId !== state.userId) state.lastEventId = '';
  state.userId = userId;
  void openStream(userId);
});
$('disconnect').addEventListener('click', closeStream);
$('start-job').addEventListener('click', () => void startJob());

// Replicas serve this page only with DEMO_MODE=true, but one behind the same balancer may run
// without it, and then lacks the helper endpoints: say so instead of failing on click.
call('GET', '/demo/streams/probe').then(({ status }) => {
  if (status === 404) {
    notice(
      'Demo mode is off on a replica behind this balancer (DEMO_MODE=true turns it on): it does not hand out tokens without a key. Run `npm run demo` or `docker compose up` to try the demo.',
    );
    $('connect').disabled = true;
  }
});
render();
