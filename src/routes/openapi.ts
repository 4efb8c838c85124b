import { readFileSync } from 'node:fs';
import type { App } from '../context.js';

/** The top-level openapi.yaml, read once at boot (dist/routes → repo root). */
const OPENAPI_YAML = readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8');

export function openapiRoutes(app: App): void {
  app.get('/openapi.yaml', async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(OPENAPI_YAML));
}
