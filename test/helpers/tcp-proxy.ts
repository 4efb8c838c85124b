// A TCP proxy on 127.0.0.1 for fault tests:
// - round-robin over several upstreams, passing over one that refuses (a dead replica), like a
//   load balancer with passive health checks and no stickiness;
// - `deafen(match)`: for connections whose client bytes matched, stop forwarding what the server
//   sends while the TCP connection stays up — a peer that looks connected but hears nothing.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { TeardownHost } from './redis-server.js';

export interface Upstream {
  host: string;
  port: number;
}

export interface TcpProxy {
  readonly port: number;
  readonly url: string;
  /** How many client connections went to each upstream port. */
  readonly counts: Map<number, number>;
  /** Connections whose client→server bytes so far contain `marker` stop receiving server bytes. */
  deafen(marker: string): number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
  seen: string;
  deaf: boolean;
}

/** How much of the client's first bytes are kept to match `deafen` markers against. */
const SNIFF_BYTES = 4096;

export async function startTcpProxy(t: TeardownHost, upstreams: () => Upstream[]): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  const counts = new Map<number, number>();
  let next = 0;

  const server: Server = createServer((client) => {
    client.pause();
    const candidates = upstreams();
    const tryUpstream = (attempt: number): void => {
      if (attempt >= candidates.length) {
        client.destroy();
        return;
      }
      const target = candidates[(next + attempt) % candidates.length]!;
      const upstream = connect(target.port, target.host);
      const refused = (): void => tryUpstream(attempt + 1);
      upstream.once('error', refused);
      upstream.once('connect', () => {
        upstream.off('error', refused);
        next = (next + attempt + 1) % candidates.length;
        counts.set(target.port, (counts.get(target.port) ?? 0) + 1);
        const pair: Pair = { client, server: upstream, seen: '', deaf: false };
        pairs.add(pair);
        client.on('data', (chunk: Buffer) => {
          if (pair.seen.length < SNIFF_BYTES) pair.seen += chunk.toString('latin1');
          upstream.write(chunk);
        });
        upstream.on('data', (chunk: Buffer) => {
          if (!pair.deaf) client.write(chunk);
        });
        const end = (): void => {
          pairs.delete(pair);
          client.destroy();
          upstream.destroy();
        };
        client.on('close', end);
        upstream.on('close', end);
        client.on('error', end);
        upstream.on('error', end);
        client.resume();
      });
    };
    tryUpstream(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  const proxy: TcpProxy = {
    port,
    url: `http://127.0.0.1:${port}`,
    counts,
    deafen(marker) {
      let n = 0;
      for (const pair of pairs) {
        if (pair.seen.includes(marker)) {
          pair.deaf = true;
          n++;
        }
      }
      return n;
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.server.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  t.teardown(() => proxy.close());
  return proxy;
}
