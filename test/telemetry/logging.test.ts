// The log options on their own: secret query values redacted however they are spelled, trace ids
// added only when tracing installed a reader, and which requests get no span.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { loggerOptions, redactUrl } from '../../src/logging.js';
import { handOver } from '../../src/telemetry/handoff.js';
import { isUntraced, pathOf } from '../../src/telemetry/sdk.js';

const { config } = loadConfig({ REPLICA_ID: 'r-log' });

function capture(): { lines: () => Record<string, unknown>[]; stream: Writable } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return {
    stream,
    lines: () =>
      text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

t.test('secret query values are redacted, whatever the spelling of their name', async (t) => {
  t.equal(redactUrl('/stream/u?token=abc.def.ghi&topics=a'), '/stream/u?token=[redacted]&topics=a');
  t.equal(redactUrl('/stream/u?topics=a&TOKEN=abc'), '/stream/u?topics=a&TOKEN=[redacted]');
  t.equal(redactUrl('/stream/u?%74oken=abc'), '/stream/u?%74oken=[redacted]', 'a percent-encoded name is read as the query parser reads it');
  t.equal(redactUrl('/stream/u?access_token=abc&token=x&token=y'), '/stream/u?access_token=[redacted]&token=[redacted]&token=[redacted]');
  t.equal(redactUrl('/stream/u?token'), '/stream/u?token=[redacted]');
  t.equal(redactUrl('/stream/u?%E0%A4%A=1&tokens=keep'), '/stream/u?%E0%A4%A=1&tokens=keep', 'a malformed name is left as it is; other names are kept');
  t.equal(redactUrl('/v1/users/u/events'), '/v1/users/u/events');
});

t.test('a logged request shows its URL redacted and none of its headers', async (t) => {
  const { stream, lines } = capture();
  const logger = pino(loggerOptions(config), stream);
  logger.info(
    { req: { method: 'GET', url: '/stream/u?token=secret-jwt', ip: '127.0.0.1', headers: { authorization: 'Bearer secret-key' } } },
    'incoming request',
  );
  const [line] = lines();
  t.same(line?.req, { method: 'GET', url: '/stream/u?token=[redacted]', remoteAddress: '127.0.0.1' });
  t.equal(line?.replicaId, 'r-log');
});

t.test('trace ids appear on log lines only once tracing installed a reader', async (t) => {
  t.notOk('mixin' in loggerOptions(config), 'tracing off: no mixin at all');
  let active = true;
  handOver({ flush: async () => {}, traceFields: () => (active ? { trace_id: 'a'.repeat(32), span_id: 'b'.repeat(16) } : {}) });
  const { stream, lines } = capture();
  const logger = pino(loggerOptions(config), stream);
  logger.info({ correlationId: 'c1' }, 'inside a span');
  active = false;
  logger.info('outside any span');
  const [inside, outside] = lines();
  t.match(inside, { trace_id: 'a'.repeat(32), span_id: 'b'.repeat(16), correlationId: 'c1', replicaId: 'r-log' });
  t.notOk(outside && 'trace_id' in outside, 'no trace fields outside a span');
  t.notOk(outside && 'correlationId' in outside, "one line's fields never stick to the next");
});

t.test('streams, probes and scrapes get no request span, however they are asked about', async (t) => {
  for (const url of ['/stream/:userId', '/stream/alice?token=x', '/healthz', '/readyz?x=1', '/metrics']) t.ok(isUntraced(url), url);
  for (const url of ['/v1/callbacks/:correlationId', '/v1/users/u/events?token=x', '/streams', '/']) t.notOk(isUntraced(url), url);
  t.equal(pathOf('/v1/callbacks/c?token=x'), '/v1/callbacks/c');
});

t.test('a logged error never carries the command a Redis error reply came with', async (t) => {
  const { stream, lines } = capture();
  const logger = pino(loggerOptions(config), stream);
  // The shapes ioredis makes: a reply error with its command, and EXECABORT with each queued one.
  const queued = Object.assign(new Error('OOM command not allowed'), {
    command: { name: 'hset', args: ['sb:job:{x}', 'metadata', '{"secret":"meta-canary"}'] },
  });
  const aborted = Object.assign(new Error('EXECABORT Transaction discarded'), { command: { name: 'exec', args: [] }, previousErrors: [queued] });
  const script = Object.assign(new Error('OOM in script'), {
    command: { name: 'evalsha', args: ['sha', 3, '{"t":"x"}', '{"secret":"event-canary"}', 'pub:key-canary'] },
  });
  logger.warn({ err: new Error('backplane unavailable', { cause: aborted }) }, 'wrapped');
  logger.warn({ err: aborted }, 'direct');
  logger.warn({ err: script }, 'script');
  logger.warn({ err: new AggregateError([script, queued], 'several') }, 'aggregate');
  logger.warn({ err: { message: 'not an Error', command: { args: ['plain-canary'] } } }, 'plain object');
  const text = lines()
    .map((line) => JSON.stringify(line))
    .join('\n');
  for (const canary of ['meta-canary', 'event-canary', 'key-canary', 'plain-canary']) t.notOk(text.includes(canary), `${canary} is in no line`);
  t.notMatch(text, /"(?:command|args|previousErrors)"/, 'no command field at any depth');
  const [wrapped, direct] = lines();
  t.match(wrapped?.err, { type: 'Error', message: /backplane unavailable: EXECABORT/ }, 'the message chain is kept');
  t.match(direct?.err, { message: 'EXECABORT Transaction discarded', stack: /EXECABORT/ }, 'so are the message and stack');
  t.ok(script.command.args.length > 0, 'the logged error itself is left as it was');
});
