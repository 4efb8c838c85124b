import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileErrors, dereference, parse, validate } from '@readme/openapi-parser';
import t from 'tap';
import { ERRORS } from '../../src/errors.js';
import { inProcessApp } from '../helpers/in-process-app.js';

/**
 * openapi.yaml is the published contract: it must be a valid OpenAPI 3.1 document, describe
 * exactly the routes the app registers (no more, no fewer), be what GET /openapi.yaml serves,
 * and list exactly the error codes of the registry with their real statuses and titles.
 */

const SPEC_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));
const SPEC_TEXT = readFileSync(SPEC_PATH, 'utf8');
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

type Json = Record<string, unknown>;

const { app } = await inProcessApp(t);

/** `/v1/jobs/{correlationId}` → `/v1/jobs/:correlationId` (Fastify's notation). */
const toFastifyPath = (path: string): string => path.replace(/\{([^}/]+)\}/g, ':$1');

/** Every "METHOD /path" the document describes, in Fastify notation. */
function documentedRoutes(spec: Json): string[] {
  const routes: string[] = [];
  for (const [path, item] of Object.entries(spec.paths as Record<string, Json>)) {
    for (const method of HTTP_METHODS) {
      if (item[method] !== undefined) routes.push(`${method.toUpperCase()} ${toFastifyPath(path)}`);
    }
  }
  return routes.sort();
}

/**
 * Every "METHOD /path" the app registered, read from Fastify's route tree
 * (`printRoutes({ commonPrefix: false })`), e.g.
 *
 *   ├── /v1/jobs (POST)
 *   │   └── /:correlationId (GET, HEAD)
 *
 * A node's full path is its ancestors' text plus its own. HEAD routes Fastify adds for each GET
 * are dropped unless the document describes them (`documentedHeads`, Fastify paths); an
 * explicitly registered HEAD without a GET would be kept. Any line that is not
 * understood fails the parse, so a format change cannot silently empty the list.
 */
function registeredRoutes(documentedHeads: ReadonlySet<string>, tree: string): string[] {
  const stack: string[] = [];
  const found: { method: string; path: string }[] = [];
  for (const line of tree.split('\n')) {
    if (line.trim() === '') continue;
    const node = /^((?:[│ ] {3})*)[├└]── (.+)$/.exec(line);
    if (node === null) throw new Error(`unexpected printRoutes line: ${JSON.stringify(line)}`);
    const depth = (node[1] as string).length / 4;
    const label = /^(.*?)(?: \(([A-Z]+(?:, [A-Z]+)*)\))?$/.exec(node[2] as string);
    if (label === null) throw new Error(`unexpected printRoutes node: ${JSON.stringify(line)}`);
    if (depth > stack.length) throw new Error(`printRoutes line deeper than its parent: ${JSON.stringify(line)}`);
    const path = (depth === 0 ? '' : (stack[depth - 1] as string)) + (label[1] as string);
    stack.length = depth;
    stack.push(path);
    for (const method of label[2]?.split(', ') ?? []) found.push({ method, path });
  }
  const hasGet = new Set(found.filter((r) => r.method === 'GET').map((r) => r.path));
  return found
    .filter((r) => !(r.method === 'HEAD' && hasGet.has(r.path) && !documentedHeads.has(r.path)))
    .map((r) => `${r.method} ${r.path}`)
    .sort();
}

t.test('openapi.yaml is a valid OpenAPI 3.1 document', async (t) => {
  const result = await validate(SPEC_PATH);
  t.ok(result.valid, result.valid ? 'valid' : compileErrors(result));
  t.same(result.warnings, [], 'no validation warnings');
  const spec = (await parse(SPEC_PATH)) as unknown as Json;
  t.equal(spec.openapi, '3.1.0');
});

t.test('every registered route is documented and every documented route is registered', async (t) => {
  const spec = (await parse(SPEC_PATH)) as unknown as Json;
  const documented = documentedRoutes(spec);
  const documentedHeads = new Set(documented.filter((route) => route.startsWith('HEAD ')).map((route) => route.slice('HEAD '.length)));
  const registered = registeredRoutes(documentedHeads, app.printRoutes({ commonPrefix: false }));

  // The tree parser must agree with Fastify itself, or the comparison below proves nothing.
  t.ok(registered.length >= 10, `read ${registered.length} routes from the route tree`);
  for (const route of registered) {
    const [method, url] = route.split(' ') as [string, string];
    t.ok(app.hasRoute({ method: method as 'GET', url }), `parsed route exists in Fastify: ${route}`);
  }

  for (const route of registered) t.ok(documented.includes(route), `registered route is documented: ${route}`);
  for (const route of documented) {
    const [method, url] = route.split(' ') as [string, string];
    t.ok(app.hasRoute({ method: method as 'GET', url }), `documented route is registered: ${route}`);
  }
  t.same(documented, registered, 'the same set of routes');
});

t.test('GET /openapi.yaml serves exactly the top-level file', async (t) => {
  const response = await app.inject({ method: 'GET', url: '/openapi.yaml' });
  t.equal(response.statusCode, 200);
  t.match(response.headers['content-type'], /^application\/yaml/);
  t.equal(response.body, SPEC_TEXT, 'byte-for-byte the file');
});

t.test('the Problem code enum is exactly the error registry', async (t) => {
  const spec = (await parse(SPEC_PATH)) as unknown as {
    components: { schemas: { Problem: { properties: { code: { enum: string[] } } } } };
  };
  const documented = [...spec.components.schemas.Problem.properties.code.enum].sort();
  const registry = Object.keys(ERRORS).sort();
  for (const code of registry) t.ok(documented.includes(code), `registry code is documented: ${code}`);
  for (const code of documented) t.ok(registry.includes(code), `documented code is in the registry: ${code}`);
  t.same(documented, registry);
});

t.test('problem examples carry the registry status, title and type of their code', async (t) => {
  const spec = (await dereference(SPEC_PATH)) as unknown as Json;
  let checked = 0;
  for (const [path, item] of Object.entries(spec.paths as Record<string, Json>)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method] as { responses?: Record<string, Json> } | undefined;
      for (const [status, response] of Object.entries(operation?.responses ?? {})) {
        const content = response.content as Record<string, { examples?: Record<string, { value: Json }> }> | undefined;
        const problem = content?.['application/problem+json'];
        if (!/^2/.test(status)) t.ok(problem, `${method.toUpperCase()} ${path} ${status} is application/problem+json`);
        for (const [name, { value }] of Object.entries(problem?.examples ?? {})) {
          const where = `${method.toUpperCase()} ${path} ${status} example ${name}`;
          const code = value.code as keyof typeof ERRORS;
          const entry = ERRORS[code];
          if (!t.ok(entry, `${where}: known code ${String(code)}`)) continue;
          t.equal(value.status, Number(status), `${where}: status matches the response`);
          t.equal(value.status, entry.status, `${where}: status matches the registry`);
          t.equal(value.title, entry.title, `${where}: title matches the registry`);
          t.equal(value.type, `urn:switchboard:problem:${code}`, `${where}: type`);
          if (status === '503') t.ok((response.headers as Json | undefined)?.['Retry-After'], `${where}: Retry-After documented`);
          checked++;
        }
      }
    }
  }
  t.ok(checked > 0, `checked ${checked} problem examples`);
});
