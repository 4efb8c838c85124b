import { readFileSync } from 'node:fs';
import Type from 'typebox';
import type { App, RouteContext } from '../context.js';
import { SwitchboardError } from '../errors.js';
import { isValidUserId } from '../identifiers.js';

/** The demo page's files in the top-level public/, read once at boot (dist/routes → repo root). */
const DEMO_FILES = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/demo.js': { file: 'demo.js', type: 'text/javascript; charset=utf-8' },
  '/demo.css': { file: 'demo.css', type: 'text/css; charset=utf-8' },
} as const;

/**
 * Without demo mode: `/` is a small status page (a demo page would only break on its first click),
 * and the demo's own files are absent.
 */
const PRODUCTION_FILES: Record<keyof typeof DEMO_FILES, { file: string; type: string } | undefined> = {
  '/': { file: 'status.html', type: 'text/html; charset=utf-8' },
  '/demo.js': undefined,
  '/demo.css': undefined,
};

/** The page loads only its own files and talks only to its own origin. */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Demo tokens outlive a demo session; the page mints a new one after `auth-expired` anyway. */
const DEMO_TOKEN_TTL_SECONDS = 3600;

const WithUserId = Type.Object({ userId: Type.String() });

/**
 * GET / — the demo page with DEMO_MODE=true, else a status page. Demo mode also adds the page's
 * helper endpoints, because each gives away something production must not: a token for any user
 * without a key, and which replica holds a user's streams. `/`, `/demo.js` and `/demo.css` exist
 * in both modes (404 where there is nothing to serve), so openapi.yaml describes them once.
 */
export function demoRoutes(app: App, { config, tokens, registry }: RouteContext): void {
  for (const [path, served] of Object.entries(config.demoMode ? DEMO_FILES : PRODUCTION_FILES)) {
    if (served === undefined) {
      app.get(path, async () => {
        throw new SwitchboardError('not_found', 'The demo is served only with DEMO_MODE=true.');
      });
      continue;
    }
    const content = readFileSync(new URL(`../../public/${served.file}`, import.meta.url), 'utf8');
    app.get(path, async (_request, reply) => reply.type(served.type).header('content-security-policy', PAGE_CSP).send(content));
  }
  if (!config.demoMode) return;

  /** Stands in for your app's login plus its backend's POST /v1/tokens: the demo has neither. */
  app.post('/demo/token', { schema: { body: WithUserId } }, async (request, reply) => {
    const { userId } = request.body;
    if (!isValidUserId(userId)) throw new SwitchboardError('invalid_user_id');
    const { token, expiresAtMs } = tokens.mint(userId, [], DEMO_TOKEN_TTL_SECONDS);
    return reply.code(201).send({ token, expiresAt: new Date(expiresAtMs).toISOString() });
  });

  /**
   * How many streams of the user THIS replica holds. An EventSource cannot read its response's
   * X-Replica-Id, and a replica knows only its own streams, so the page asks through the load
   * balancer until the replica holding its stream answers.
   */
  app.get('/demo/streams/:userId', { schema: { params: WithUserId } }, async (request) => {
    const { userId } = request.params;
    if (!isValidUserId(userId)) throw new SwitchboardError('invalid_user_id');
    return { replicaId: config.replicaId, streams: registry.streamsOfUser(userId) };
  });
}
