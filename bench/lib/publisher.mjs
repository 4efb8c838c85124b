// The publisher: a child process that POSTs bench events over raw keep-alive sockets (one
// request in flight per socket), so its own cost stays far below the servers'. Each event's
// data is `{"t":<process.hrtime ns at send>,"s":<seq>}`.
//
// A user event for bench user u<i> goes to ports[(i + 1) % ports.length]: with three replicas
// and stream i held by replica i % 3, that is always a replica other than the stream's, so the
// event has to cross Redis.
import { connect } from 'node:net';
import { batchRequest, publishRequest, userName } from './wire.mjs';

const nowNs = () => Number(process.hrtime.bigint());

class Conn {
  constructor(port) {
    this.port = port;
    this.socket = undefined;
    this.buf = '';
    this.pending = undefined;
  }

  send(request) {
    return new Promise((resolve) => {
      this.pending = resolve;
      this.buf = '';
      if (this.socket === undefined || this.socket.destroyed) this.dial();
      this.socket.write(request);
    });
  }

  dial() {
    const socket = connect({ host: '127.0.0.1', port: this.port });
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (d) => this.onData(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.socket === socket) this.socket = undefined;
      this.finish(0);
    });
    this.socket = socket;
  }

  onData(d) {
    this.buf += d;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.slice(0, end);
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length !== null) {
      if (this.buf.length - end - 4 < Number(length[1])) return;
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      if (!this.buf.endsWith('0\r\n\r\n')) return;
    }
    if (/\r\nconnection:\s*close/i.test(head)) {
      this.socket?.destroy();
      this.socket = undefined;
    }
    this.finish(status);
  }

  finish(status) {
    const resolve = this.pending;
    this.pending = undefined;
    this.buf = '';
    resolve?.(status);
  }

  close() {
    this.socket?.destroy();
  }
}

let system;
let ctx;
let ports = [];
const idle = new Map(); // port -> Conn[]
const all = [];
let seq = 0;

function take(port) {
  const free = idle.get(port);
  if (free.length > 0) return free.pop();
  const conn = new Conn(port);
  all.push(conn);
  return conn;
}

/** One event to user u<i> (or, with `topic`, to the broadcast topic via the same replica choice). */
async function publishUser(i, tally, topic, options) {
  const port = ports[(i + 1) % ports.length];
  const conn = take(port);
  const sentAt = nowNs();
  const payload = `{"t":${sentAt},"s":${seq++}}`;
  const status = await conn.send(publishRequest(system, topic ? 'topic' : 'user', topic ?? userName(i), payload, ctx, options));
  // Status 0: the connection closed with no answer; not an answer time.
  if (status !== 0) tally.answers?.push(nowNs() - sentAt);
  idle.get(port).push(conn);
  if (status >= 200 && status < 300) tally.ok++;
  else {
    tally.failed++;
    tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
  }
}

/**
 * `size` events to random users in one request (through a replica chosen in turn), where the
 * system has a batch API; one by one, concurrently, where it has not. A batch counts as accepted
 * only when all of it was (202).
 */
async function publishBatch(size, users, tally) {
  const picks = Array.from({ length: size }, () => Math.floor(Math.random() * users));
  const payloads = picks.map(() => `{"t":${nowNs()},"s":${seq++}}`);
  const request = batchRequest(system, picks.map(userName), payloads, ctx);
  if (request === undefined) {
    await Promise.all(picks.map((i) => publishUser(i, tally)));
    return;
  }
  const port = ports[seq % ports.length];
  const conn = take(port);
  const status = await conn.send(request);
  idle.get(port).push(conn);
  if (status === 202) tally.ok += size;
  else {
    tally.failed += size;
    tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
  }
}

const handlers = {
  setup(args) {
    ({ system, ctx, ports } = args);
    for (const port of ports) idle.set(port, []);
    return {};
  },

  /**
   * Open loop: `rate` events/s to random users for `durationMs`; never waits for answers to send.
   * `boundMs`: also counts the answers (any status) that came within it.
   */
  async rate({ rate, durationMs, users, boundMs }) {
    // answers: how long each publish took to be answered (202), to tell the publish side of the
    // latency from the delivery side.
    const tally = { sent: 0, ok: 0, failed: 0, statuses: {}, answers: [] };
    const inflight = new Set();
    const started = performance.now();
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        const elapsed = performance.now() - started;
        const due = Math.min(rate * (Math.min(elapsed, durationMs) / 1000), rate * (durationMs / 1000));
        while (tally.sent < Math.floor(due)) {
          tally.sent++;
          const p = publishUser(Math.floor(Math.random() * users), tally);
          inflight.add(p);
          p.then(() => inflight.delete(p));
        }
        if (elapsed >= durationMs) {
          clearInterval(timer);
          resolve();
        }
      }, 1);
    });
    await Promise.all(inflight);
    const answers = Float64Array.from(tally.answers).sort();
    const q = (p) => (answers.length ? answers[Math.min(answers.length - 1, Math.ceil(p * answers.length) - 1)] / 1e6 : null);
    const withinBound = boundMs === undefined || answers.length === 0 ? null : answers.filter((ns) => ns <= boundMs * 1e6).length / answers.length;
    return { ...tally, answers: undefined, answerP50Ms: q(0.5), answerP99Ms: q(0.99), answerMaxMs: q(1), withinBound, ms: performance.now() - started };
  },

  /**
   * Closed loop: `concurrency` publishers, each sending its next event when the last is answered;
   * to random users, or with `topic` to that topic (every stream gets every event). With `batch`,
   * each sends `batch` events to random users per request; with `durable: false`, live-only events.
   */
  async closed({ concurrency, durationMs, users, topic, batch, durable = true }) {
    const tally = { sent: 0, ok: 0, failed: 0, statuses: {} };
    const started = performance.now();
    const loop = async () => {
      while (performance.now() - started < durationMs) {
        if (batch !== undefined) {
          tally.sent += batch;
          await publishBatch(batch, users, tally);
          continue;
        }
        tally.sent++;
        await publishUser(Math.floor(Math.random() * users), tally, topic, { durable });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    return { ...tally, ms: performance.now() - started };
  },

  /** One event to a topic (broadcast); answers with its status and stamp. */
  async topic({ name, port }) {
    const at = port ?? ports[0];
    const conn = take(at);
    const s = seq++;
    const status = await conn.send(publishRequest(system, 'topic', name, `{"t":${nowNs()},"s":${s}}`, ctx));
    idle.get(at).push(conn);
    return { status, seq: s };
  },

  close() {
    for (const conn of all) conn.close();
    all.length = 0;
    for (const port of ports) idle.set(port, []);
    return {};
  },

  exit: () => setImmediate(() => process.exit(0)),
};

process.on('message', async ({ id, cmd, args }) => {
  try {
    process.send({ id, result: await handlers[cmd](args ?? {}) });
  } catch (err) {
    process.send({ id, error: String(err?.stack ?? err) });
  }
});
process.on('disconnect', () => process.exit(0));
