// The origin behind Pushpin: answers each stream request once with GRIP headers telling Pushpin to
// hold the response open on the user's channel (and `bc` with ?topics=bc). Pushpin then keeps the
// client connection itself; publishes go to Pushpin's own publish endpoint, not here.
import { createServer } from 'node:http';

const port = Number(process.env.PORT);
createServer((req, res) => {
  const url = req.url;
  if (!url.startsWith('/stream/')) {
    res.writeHead(url === '/healthz' ? 200 : 404, { 'content-length': 0 });
    res.end();
    return;
  }
  const q = url.indexOf('?');
  const user = url.slice(8, q < 0 ? undefined : q);
  const channels = q >= 0 && url.includes('topics=bc', q) ? `${user}, bc` : user;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'grip-hold': 'stream', 'grip-channel': channels });
  res.end(': connected\n\n');
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
