// How each system under test is spoken to: the stream URL of bench user `u<i>` and the publish
// request for a user or a topic. Shared by the load clients and the publisher processes, so a
// scenario never knows which system it drives.
//
// Every stream joins its user's channel and, when `topic` is set, the broadcast channel `bc`
// (Switchboard always has the user channel, so the peers get the same pair). The event data is
// the JSON payload `{"t":<ns>,"s":<seq>}` the publisher stamps with process.hrtime — the
// monotonic clock every process on this machine shares.
import { signToken } from './jwt.mjs';

export const TOPIC = 'bc';

export function streamPath(system, i, topic, ctx) {
  const user = `u${i}`;
  switch (system) {
    case 'switchboard': {
      const claims = { sub: user, aud: 'switchboard', exp: Math.floor(Date.now() / 1000) + 7200 };
      if (topic) claims.topics = [TOPIC];
      return `/stream/${user}?token=${signToken(ctx.secret, claims)}${topic ? `&topics=${TOPIC}` : ''}`;
    }
    case 'nchan':
      // /sub/ multiplexes the user's channel and `bc`; /subu/ is the user's channel alone.
      return topic ? `/sub/${user}` : `/subu/${user}`;
    case 'pushpin':
    case 'raw':
      return `/stream/${user}${topic ? `?topics=${TOPIC}` : ''}`;
    default:
      throw new Error(`unknown system ${system}`);
  }
}

/** A complete HTTP/1.1 keep-alive request (string) publishing `payload` (JSON text). */
export function publishRequest(system, kind, name, payload, ctx, { durable = true } = {}) {
  let path;
  let body;
  let auth = '';
  switch (system) {
    case 'switchboard':
      path = kind === 'user' ? `/v1/users/${name}/events` : `/v1/topics/${name}/events`;
      // Live-only where the system has it; a peer without it publishes as usual (the bench compares
      // the cheapest publish each offers for an update worth nothing a second later).
      body = durable ? `{"data":${payload}}` : `{"data":${payload},"durable":false}`;
      auth = `Authorization: Bearer ${ctx.apiKey}\r\n`;
      break;
    case 'nchan':
    case 'raw':
      path = `/pub/${name}`;
      body = payload;
      break;
    case 'pushpin':
      path = '/publish/';
      body = `{"items":[{"channel":"${name}","formats":{"http-stream":{"content":${JSON.stringify(`data: ${payload}\n\n`)}}}}]}`;
      break;
    default:
      throw new Error(`unknown system ${system}`);
  }
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${auth}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * One request carrying several events to users (`names[i]` gets `payloads[i]`), for a system with
 * a batch API; undefined for one without (the publisher then sends them one by one).
 */
export function batchRequest(system, names, payloads, ctx) {
  if (system !== 'switchboard') return undefined;
  const body = `{"events":[${names.map((name, i) => `{"user":"${name}","data":${payloads[i]}}`).join(',')}]}`;
  return (
    `POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `Authorization: Bearer ${ctx.apiKey}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

export const userName = (i) => `u${i}`;
