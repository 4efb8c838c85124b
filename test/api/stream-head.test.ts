// HEAD /stream/:userId answers the stream's checks and head at once, and opens no stream.
import t from 'tap';
import { inProcessApp } from '../helpers/in-process-app.js';

t.test('HEAD /stream answers at once with the stream head, no body, and never counts as a stream', async (t) => {
  const { app, config } = await inProcessApp(t);
  const minted = await app.inject({
    method: 'POST',
    url: '/v1/tokens',
    headers: { authorization: `Bearer ${config.publishApiKeys[0]}` },
    payload: { userId: 'header' },
  });
  const { token } = minted.json() as { token: string };

  const head = await app.inject({ method: 'HEAD', url: `/stream/header?token=${token}` });
  t.equal(head.statusCode, 200);
  t.match(head.headers['content-type'], /^text\/event-stream/);
  t.equal(head.headers['cache-control'], 'no-cache');
  t.equal(head.body, '', 'no body');

  const refused = await app.inject({ method: 'HEAD', url: '/stream/header?token=not-a-token' });
  t.equal(refused.statusCode, 401, 'the same auth as GET');
  const mismatch = await app.inject({ method: 'HEAD', url: `/stream/someone-else?token=${token}` });
  t.equal(mismatch.statusCode, 403);

  const metrics = await app.inject({ method: 'GET', url: '/metrics' });
  t.match(metrics.body, /^switchboard_open_streams 0$/m, 'no stream was opened');
});
