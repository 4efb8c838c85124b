// The reference: the least a Node process can do to serve SSE fan-out — node:http, a Map of
// channel -> responses, and (with REDIS_URL) one ioredis subscriber + one publisher connection,
// the same topology as Switchboard. No auth, no history, no validation: it is the ceiling for one
// Node process, not a product.
//   GET  /stream/<user>[?topics=bc]  SSE; joins <user> and optionally bc
//   POST /pub/<channel>              body = event data (one line of JSON), 202
import { createServer } from 'node:http';
import { Redis } from 'ioredis';

const port = Number(process.env.PORT ?? 3100);
const redisUrl = process.env.REDIS_URL;
const channels = new Map(); // name -> Set<ServerResponse>
const HEAD = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' };

let sub;
let pub;
if (redisUrl) {
  sub = new Redis(redisUrl);
  pub = new Redis(redisUrl);
  sub.on('message', (channel, message) => deliver(channel, message));
}

function deliver(channel, data) {
  const set = channels.get(channel);
  if (set === undefined) return;
  const chunk = `data: ${data}\n\n`;
  for (const res of set) res.write(chunk);
}

function join(channel, res) {
  let set = channels.get(channel);
  if (set === undefined) {
    set = new Set();
    channels.set(channel, set);
    sub?.subscribe(channel);
  }
  set.add(res);
}

function leave(channel, res) {
  const set = channels.get(channel);
  if (set === undefined) return;
  set.delete(res);
  if (set.size === 0) {
    channels.delete(channel);
    sub?.unsubscribe(channel);
  }
}

createServer((req, res) => {
  const url = req.url;
  if (req.method === 'GET' && url.startsWith('/stream/')) {
    const q = url.indexOf('?');
    const user = url.slice(8, q < 0 ? undefined : q);
    const joined = q >= 0 && url.includes('topics=bc', q) ? [user, 'bc'] : [user];
    res.writeHead(200, HEAD);
    res.write(': connected\n\n');
    for (const c of joined) join(c, res);
    res.on('close', () => {
      for (const c of joined) leave(c, res);
    });
    return;
  }
  if (req.method === 'POST' && url.startsWith('/pub/')) {
    const channel = url.slice(5);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const done = () => {
        res.writeHead(202, { 'content-length': 0 });
        res.end();
      };
      if (pub)
        pub.publish(channel, body).then(done, () => {
          res.writeHead(503);
          res.end();
        });
      else {
        deliver(channel, body);
        done();
      }
    });
    return;
  }
  res.writeHead(url === '/healthz' ? 200 : 404, { 'content-length': 0 });
  res.end();
}).listen(port, '127.0.0.1');

// One heartbeat timer for all streams, like Switchboard's.
setInterval(() => {
  for (const set of channels.values()) for (const res of set) res.write(':\n\n');
}, 15000).unref();
// Exit cleanly on SIGTERM so --cpu-prof can write its profile.
process.on('SIGTERM', () => process.exit(0));
