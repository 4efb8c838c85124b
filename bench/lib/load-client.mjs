// A load client: a child process holding thousands of SSE streams on raw sockets (no HTTP client
// library, no EventSource: both cost more per stream than the servers we measure). The runner
// forks several and talks to them over IPC; each stays well under the 20,000 open files a process
// may hold.
//
// Per stream it keeps a few fields: header parsing, a chunked-encoding decoder (Node, nginx and
// Pushpin all answer HTTP/1.1 SSE chunked) and the unfinished tail of a line. It recognises only
// `data: {"t":<ns>,"s":<seq>}` lines — the bench payload — and, while recording, keeps
// receive-time minus publish-stamp for each, from process.hrtime (CLOCK_MONOTONIC, shared by all
// processes on the machine). The time is read once per socket read, so a client busy with other
// sockets adds its own delay: that is part of "time until the last stream has it".
import { connect } from 'node:net';
import { streamPath } from './wire.mjs';

const streams = new Set();
let events = 0;
let recording = false;
let samples = [];
let perSeq = new Map();
let closedUnexpected = 0;
let closing = false;

const nowNs = () => Number(process.hrtime.bigint());

class Stream {
  constructor(socket, onOpen) {
    this.socket = socket;
    this.onOpen = onOpen;
    this.head = '';
    this.inBody = false;
    this.chunked = false;
    this.chunkState = 0; // 0: size line, 1: chunk data, 2: CRLF after data
    this.chunkLeft = 0;
    this.sizeLine = '';
    this.tail = '';
  }

  onData(str) {
    const t = nowNs();
    if (!this.inBody) {
      this.head += str;
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headers = this.head.slice(0, end);
      str = this.head.slice(end + 4);
      this.head = '';
      this.inBody = true;
      this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(headers);
      const ok = headers.startsWith('HTTP/1.1 200') || headers.startsWith('HTTP/1.0 200');
      this.onOpen?.(ok);
      this.onOpen = undefined;
      if (str.length === 0) return;
    }
    this.parse(this.chunked ? this.dechunk(str) : str, t);
  }

  dechunk(str) {
    let out = '';
    let i = 0;
    const n = str.length;
    while (i < n) {
      if (this.chunkState === 0) {
        const j = str.indexOf('\n', i);
        if (j < 0) {
          this.sizeLine += str.slice(i);
          break;
        }
        this.chunkLeft = parseInt(this.sizeLine + str.slice(i, j), 16);
        this.sizeLine = '';
        i = j + 1;
        this.chunkState = this.chunkLeft > 0 ? 1 : 3;
      } else if (this.chunkState === 1) {
        const take = Math.min(this.chunkLeft, n - i);
        out += str.substr(i, take);
        i += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.chunkState = 2;
      } else if (this.chunkState === 2) {
        const j = str.indexOf('\n', i);
        if (j < 0) break;
        i = j + 1;
        this.chunkState = 0;
      } else {
        break; // last chunk: the server ended the stream
      }
    }
    return out;
  }

  parse(text, t) {
    if (this.tail.length > 0) {
      text = this.tail + text;
      this.tail = '';
    }
    const last = text.lastIndexOf('\n');
    if (last < text.length - 1) this.tail = text.slice(last + 1);
    let p = 0;
    while ((p = text.indexOf('data: {"t":', p)) !== -1 && p < last) {
      const end = text.indexOf('\n', p);
      if (p === 0 || text.charCodeAt(p - 1) === 10) {
        events++;
        if (recording) record(text, p + 11, end, t);
      }
      p = end;
    }
  }
}

function record(text, from, end, t) {
  const comma = text.indexOf(',', from);
  if (comma < 0 || comma > end) return;
  const stamp = Number(text.slice(from, comma));
  const sAt = text.indexOf('"s":', comma);
  const seq = sAt < 0 || sAt > end ? -1 : parseInt(text.slice(sAt + 4, end), 10);
  const lat = t - stamp;
  samples.push(lat);
  const entry = perSeq.get(seq);
  if (entry === undefined) perSeq.set(seq, { n: 1, max: lat });
  else {
    entry.n++;
    if (lat > entry.max) entry.max = lat;
  }
}

// Source addresses: each client process connects from its own loopback address and picks its
// own source ports. Left to the kernel, connect() searches the ephemeral range for a free port
// towards the one destination, and that search grows with the ports already in use: past ~15k
// streams to one server port it cost milliseconds of kernel time per connect, making the CLIENT
// the bottleneck of "time to open". Binding (address, port) ourselves avoids the search; libuv
// sets SO_REUSEADDR, so a port still in TIME_WAIT from an earlier stack can be bound again.
const SOURCE_IP = process.env.BENCH_SOURCE_IP;
const FIRST_PORT = 20000;
const LAST_PORT = 60999;
let nextPort = FIRST_PORT;
function sourcePort() {
  const p = nextPort;
  nextPort = nextPort >= LAST_PORT ? FIRST_PORT : nextPort + 1;
  return p;
}

function openOne(port, path) {
  return new Promise((resolve) => {
    const socket = connect(SOURCE_IP ? { host: '127.0.0.1', port, localAddress: SOURCE_IP, localPort: sourcePort() } : { host: '127.0.0.1', port });
    socket.setEncoding('latin1');
    let settled = false;
    const stream = new Stream(socket, (ok) => {
      settled = true;
      if (ok) streams.add(stream);
      else socket.destroy();
      resolve(ok);
    });
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`));
    socket.on('data', (d) => stream.onData(d));
    let busy = false;
    socket.on('error', (err) => {
      busy = err.code === 'EADDRINUSE';
    });
    socket.on('close', () => {
      if (streams.delete(stream) && !closing) closedUnexpected++;
      if (!settled) {
        settled = true;
        // That source port is taken (another program's listener): try the next one, at once.
        resolve(busy ? openOne(port, path) : false);
      }
    });
  });
}

/** Opens streams for indices from..to-1 that are ≡ offset (mod stride), `concurrency` at a time. */
async function open({ system, ctx, ports, from, to, stride, offset, topic, concurrency }) {
  const indices = [];
  for (let i = from; i < to; i++) if (i % stride === offset) indices.push(i);
  let next = 0;
  let opened = 0;
  let failed = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < indices.length) {
      const i = indices[next++];
      const port = ports[i % ports.length];
      let ok = false;
      // A refused or reset connect (accept backlog overflow) is retried, and counted if it stays.
      for (let attempt = 0; attempt < 3 && !ok; attempt++) {
        ok = await openOne(port, streamPath(system, i, topic, ctx));
        if (!ok) await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
      if (ok) opened++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { opened, failed, ms: performance.now() - started };
}

const handlers = {
  open,
  record: ({ on }) => {
    recording = on;
    samples = [];
    perSeq = new Map();
    return {};
  },
  counts: () => ({ events, alive: streams.size, closedUnexpected }),
  take: () => ({ events, samples, perSeq: [...perSeq].map(([s, v]) => [s, v.n, v.max]) }),
  closeAll: async () => {
    closing = true;
    for (const stream of streams) stream.socket.destroy();
    streams.clear();
    await new Promise((r) => setTimeout(r, 50));
    closing = false;
    events = 0;
    closedUnexpected = 0;
    return {};
  },
  exit: () => setImmediate(() => process.exit(0)),
};

process.on('message', async ({ id, cmd, args }) => {
  try {
    const result = await handlers[cmd](args ?? {});
    process.send({ id, result });
  } catch (err) {
    process.send({ id, error: String(err?.stack ?? err) });
  }
});
process.on('disconnect', () => process.exit(0));
