// docs/configuration.md documents every environment variable. It is written by hand, so this test
// holds it to the schema in src/config.ts: the same variables, and the same defaults where the
// schema has one. A variable added to the schema without a line in the doc fails here.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ENV_VARIABLES, EnvSchema } from '../../src/config.js';

const DOC = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

/** The rows of the doc's variable table: `| \`NAME\` | default | meaning |`. */
function documentedRows(markdown: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of markdown.split('\n')) {
    const row = /^\| `([A-Z][A-Z0-9_]*)` \| ([^|]*) \|/.exec(line);
    if (row === null) continue;
    const [, name, defaultCell] = row as unknown as [string, string, string];
    if (rows.has(name)) throw new Error(`${name} is documented twice`);
    rows.set(name, defaultCell.trim());
  }
  return rows;
}

const rows = documentedRows(DOC);
const schemaDefault = (name: string): unknown => (EnvSchema.properties as Record<string, { default?: unknown }>)[name]?.default;

t.test('the table documents exactly the variables the schema knows', async (t) => {
  t.ok(ENV_VARIABLES.length >= 30, `the schema knows ${ENV_VARIABLES.length} variables`);
  for (const name of ENV_VARIABLES) t.ok(rows.has(name), `${name} is documented`);
  for (const name of rows.keys()) t.ok(ENV_VARIABLES.includes(name), `${name} is in the schema`);
  t.same([...rows.keys()].sort(), [...ENV_VARIABLES].sort());
});

t.test('each documented default is the schema default', async (t) => {
  let compared = 0;
  for (const [name, cell] of rows) {
    const expected = schemaDefault(name);
    if (expected === undefined) {
      // Worked out at boot (a generated secret, the host name) or unset: said in words, not as a value.
      t.notMatch(cell, /^`/, `${name}: no schema default, so the doc gives none as a value (${cell})`);
      continue;
    }
    t.equal(cell, `\`${String(expected)}\``, `${name}: default ${String(expected)}`);
    compared++;
  }
  t.ok(compared >= 20, `${compared} defaults compared`);
});

t.test("OTEL_* is documented apart from the schema's table", async (t) => {
  t.notOk(
    [...rows.keys()].some((name) => name.startsWith('OTEL_')),
    'no OTEL_ variable in the table',
  );
  t.match(DOC, /^## OpenTelemetry \(`OTEL_\*`\)$/m, 'a section of its own');
});
