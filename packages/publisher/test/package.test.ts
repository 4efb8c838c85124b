// The package as npm would publish it: every `exports` target and `types` file is in the tarball
// `npm pack` makes, with the README, and no tests; nothing is a runtime dependency (fetch and Web
// Crypto only); it imports by its package name. Needs the build (`npm test` builds first).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const PACKAGE_DIR = fileURLToPath(new URL('../', import.meta.url));
const manifest = JSON.parse(readFileSync(`${PACKAGE_DIR}package.json`, 'utf8'));

t.test('npm pack ships every file the exports and types name, the README, and no tests', async (t) => {
  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PACKAGE_DIR, encoding: 'utf8' }));
  const files = new Set<string>(packed.files.map((file: { path: string }) => file.path));
  const targets = Object.values(manifest.exports as Record<string, string | Record<string, string>>).flatMap((target) =>
    typeof target === 'string' ? [target] : Object.values(target),
  );
  for (const target of [...targets, manifest.types]) t.ok(files.has(target.replace(/^\.\//, '')), `${target} is in the tarball`);
  t.ok(files.has('README.md'), 'README.md is in the tarball');
  t.notOk(
    [...files].some((file) => file.startsWith('test/')),
    'no tests',
  );
});

t.test('no runtime dependencies', async (t) => {
  t.equal(manifest.dependencies, undefined);
});

t.test('the entry imports by its package name', async (t) => {
  const sdk = await import('@switchboard/publisher');
  t.same(
    ['Publisher', 'CallbackSender', 'isSwitchboardError', 'jobCallbackSecret', 'ERROR_CODES'].map((name) => name in sdk),
    [true, true, true, true, true],
  );
});
