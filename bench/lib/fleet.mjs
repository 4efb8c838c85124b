// The runner's side of the load processes: forks the load clients and the publisher, and turns
// their IPC into async calls. Streams are spread over the clients round-robin (stream i goes to
// client i % clients), so ~19k streams need no process near the 20,000 open-files cap.
import { fork } from 'node:child_process';
import { trackIpcChild } from './procs.mjs';

class Worker {
  constructor(file, env = {}) {
    this.child = trackIpcChild(fork(new URL(file, import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } }));
    this.nextId = 0;
    this.waiting = new Map();
    this.child.on('message', ({ id, result, error }) => {
      const w = this.waiting.get(id);
      this.waiting.delete(id);
      if (error) w?.reject(new Error(error));
      else w?.resolve(result);
    });
    this.child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`${file} exited (${code})`));
      this.waiting.clear();
    });
  }

  call(cmd, args) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { resolve, reject });
      this.child.send({ id, cmd, args });
    });
  }

  async exit() {
    if (this.child.exitCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.send({ id: -1, cmd: 'exit' });
    await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
    this.child.kill('SIGKILL');
  }
}

export class Fleet {
  constructor(clients) {
    // Each client connects from its own loopback address (127.0.1.<k>), see load-client.mjs.
    this.clients = Array.from({ length: clients }, (_, k) => new Worker('./load-client.mjs', { BENCH_SOURCE_IP: `127.0.1.${k + 1}` }));
    this.publisher = new Worker('./publisher.mjs');
  }

  /** Opens streams u<from>..u<to-1> (stream i on ports[i % ports.length]); resolves with totals. */
  async open(target, { from, to, ports, topic, concurrency = 64 }) {
    const started = performance.now();
    const parts = await Promise.all(
      this.clients.map((c, k) =>
        c.call('open', {
          system: target.system,
          ctx: target.ctx,
          ports,
          from,
          to,
          stride: this.clients.length,
          offset: k,
          topic,
          concurrency,
        }),
      ),
    );
    return {
      opened: parts.reduce((a, p) => a + p.opened, 0),
      failed: parts.reduce((a, p) => a + p.failed, 0),
      ms: performance.now() - started,
    };
  }

  async counts() {
    const parts = await Promise.all(this.clients.map((c) => c.call('counts')));
    return {
      events: parts.reduce((a, p) => a + p.events, 0),
      alive: parts.reduce((a, p) => a + p.alive, 0),
      closedUnexpected: parts.reduce((a, p) => a + p.closedUnexpected, 0),
    };
  }

  record(on) {
    return Promise.all(this.clients.map((c) => c.call('record', { on })));
  }

  /** Latency samples (ns) and, per event seq, [deliveries, slowest delivery ns] merged over clients. */
  async take() {
    const parts = await Promise.all(this.clients.map((c) => c.call('take')));
    const samples = parts.flatMap((p) => p.samples);
    const perSeq = new Map();
    for (const p of parts) {
      for (const [s, n, max] of p.perSeq) {
        const e = perSeq.get(s);
        if (e === undefined) perSeq.set(s, { n, max });
        else {
          e.n += n;
          e.max = Math.max(e.max, max);
        }
      }
    }
    return { samples, perSeq };
  }

  /** The load processes' pids, to show their CPU next to the servers'. */
  pids() {
    return [...this.clients, this.publisher].map((w) => w.child.pid);
  }

  closeAll() {
    return Promise.all(this.clients.map((c) => c.call('closeAll')));
  }

  async exit() {
    await Promise.all([...this.clients, this.publisher].map((w) => w.exit()));
  }
}
