// The token rules, without a browser: when a token counts as expiring, and that concurrent
// callers share one fetch from the app.
import t from 'tap';
import { grantOf, jwtExpiryMs, MAX_RENEW_MARGIN_MS, MIN_RENEW_DELAY_MS, TokenKeeper, type TokenAnswer } from '../../src/token-keeper.js';

/** A JWT-shaped token with these claims (unsigned: the client never verifies, only reads `exp`). */
const jwt = (claims: Record<string, unknown>): string =>
  `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

t.test('jwtExpiryMs reads `exp` from a JWT, and nothing from anything else', async (t) => {
  t.equal(jwtExpiryMs(jwt({ sub: 'alice', exp: 1_900_000_000 })), 1_900_000_000_000);
  // base64url without padding, with - and _ in it: a claim of ~ and ? characters makes both.
  t.equal(jwtExpiryMs(jwt({ sub: '~~~???>>>', exp: 1_900_000_001 })), 1_900_000_001_000, 'base64url alphabet and no padding');
  t.equal(jwtExpiryMs(jwt({ sub: 'alice' })), undefined, 'no exp');
  t.equal(jwtExpiryMs(jwt({ exp: '1900000000' })), undefined, 'exp not a number');
  t.equal(jwtExpiryMs('opaque-token'), undefined, 'not a JWT');
  t.equal(jwtExpiryMs('a.%%%.c'), undefined, 'not base64');
});

t.test('grantOf renews a fifth of the lifetime early, at most 60 s early, never within 1 s of fetching', async (t) => {
  const now = 1_000_000;
  t.same(grantOf({ token: 'x', expiresAt: new Date(now + 10_000).toISOString() }, now), { token: 'x', expiresAtMs: now + 10_000, renewAtMs: now + 8_000 });
  t.equal(grantOf({ token: 'x', expiresAt: now + 3_600_000 }, now).renewAtMs, now + 3_600_000 - MAX_RENEW_MARGIN_MS, 'an hour: 60 s early');
  t.equal(grantOf({ token: 'x', expiresAt: now + 500 }, now).renewAtMs, now + MIN_RENEW_DELAY_MS, 'nearly expired: not before 1 s');
  t.equal(grantOf({ token: 'x', expiresAt: now + 10_000 }, now, 2_000).renewAtMs, now + 8_000, 'renewBeforeMs given');
  t.equal(grantOf(jwt({ exp: (now + 20_000) / 1000 }), now).expiresAtMs, now + 20_000, 'a bare token: its exp');
  t.equal(grantOf({ token: jwt({ exp: 1 }), expiresAt: now + 20_000 }, now).expiresAtMs, now + 20_000, 'expiresAt, when given, wins');
  t.same(grantOf('opaque', now), { token: 'opaque', expiresAtMs: undefined, renewAtMs: undefined }, 'unknown expiry: renewed on auth-expired only');
});

t.test('TokenKeeper fetches once for concurrent callers, keeps the token until it is due, and fetches anew on demand', async (t) => {
  let clock = 0;
  const answers: ((answer: TokenAnswer) => void)[] = [];
  const keeper = new TokenKeeper(
    () => new Promise((resolve) => answers.push(resolve)),
    undefined,
    () => clock,
  );
  const first = keeper.current();
  const second = keeper.current();
  t.equal(answers.length, 1, 'two callers, one fetch');
  answers[0]!({ token: 'one', expiresAt: 10_000 });
  t.equal((await first).token, 'one');
  t.equal((await second).token, 'one');
  clock = 7_999;
  t.equal((await keeper.current()).token, 'one', 'before renewAt: the same token, no fetch');
  t.equal(answers.length, 1);
  clock = 8_000;
  const renewed = keeper.current();
  t.equal(answers.length, 2, 'at renewAt: a new fetch');
  answers[1]!({ token: 'two', expiresAt: 20_000 });
  t.equal((await renewed).token, 'two');
  const forced = keeper.fresh();
  t.equal(answers.length, 3, 'fresh() always fetches');
  answers[2]!('three');
  t.equal((await forced).token, 'three');
});

t.test('a failed fetch is not kept: the next call asks the app again', async (t) => {
  let calls = 0;
  const keeper = new TokenKeeper(async () => {
    calls++;
    if (calls === 1) throw new Error('backend down');
    return 'ok';
  }, undefined);
  await t.rejects(keeper.current(), /backend down/);
  t.equal((await keeper.current()).token, 'ok');
  t.equal(calls, 2);
});
