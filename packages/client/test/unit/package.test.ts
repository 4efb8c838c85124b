// The package as npm would publish it: every `exports` target and `types` file is in the tarball
// `npm pack` makes, both entry points import by their package names, and nothing is a runtime
// dependency. Needs the build (`npm test` builds first).
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { checkShipped, pack } from '../../../../test/helpers/packed.js';

const packed = pack(fileURLToPath(new URL('../../', import.meta.url)));
const { manifest } = packed;

t.test('npm pack ships every file the exports and types name, the README, and no tests', async (t) => {
  checkShipped(t, packed, ['test/', 'src/'], 'no tests or sources');
});

t.test('no runtime dependencies; react is an optional peer', async (t) => {
  t.equal(manifest.dependencies, undefined, 'no dependencies');
  t.same(manifest.peerDependenciesMeta, { react: { optional: true } });
});

t.test('both entry points import by their package names', async (t) => {
  const client = await import('@switchboard/client');
  t.type(client.Switchboard, 'function');
  t.type(client.connectSwitchboard, 'function');
  const react = await import('@switchboard/client/react');
  t.same(
    ['SwitchboardProvider', 'useJob', 'useSwitchboard', 'useSwitchboardEvent'].map((name) => name in react),
    [true, true, true, true],
  );
});
