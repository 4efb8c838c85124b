// The package as npm would publish it: every `exports` target and `types` file is in the tarball
// `npm pack` makes, with the README, and no tests; nothing is a runtime dependency (fetch and Web
// Crypto only); it imports by its package name. Needs the build (`npm test` builds first).
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { checkShipped, pack } from '../../../test/helpers/packed.js';

const packed = pack(fileURLToPath(new URL('../', import.meta.url)));
const { manifest } = packed;

t.test('npm pack ships every file the exports and types name, the README, and no tests', async (t) => {
  checkShipped(t, packed, ['test/'], 'no tests');
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
