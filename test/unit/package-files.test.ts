// The server package as npm would publish it (`npm pack`): the files its `main`, `types`,
// `exports` and `bin` name, and the two a replica reads at run time outside dist/ (openapi.yaml,
// read when the entry is imported; public/, the demo page), and nothing else of the repository:
// no tests, benchmarks, sources, CI scripts or the workspaces' packages. Then the tarball itself,
// unpacked next to the repository's node_modules: its entry imports and its bin runs. Needs the
// build (`npm test` builds first).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { namedFiles, pack } from '../helpers/packed.js';
import { REPO_ROOT } from '../helpers/replica.js';

const dir = await mkdtemp(join(tmpdir(), 'switchboard-pack-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const packed = pack(REPO_ROOT, dir);
const { manifest, files } = packed;

t.test('the tarball holds every file the manifest names, and what a replica reads at run time', async (t) => {
  for (const file of namedFiles(packed)) t.ok(files.has(file), `${file} is in the tarball`);
  t.ok(files.has('openapi.yaml'), 'openapi.yaml (GET /openapi.yaml, read at import)');
  for (const file of await readdir(join(REPO_ROOT, 'public'))) t.ok(files.has(`public/${file}`), `public/${file} (the demo page)`);
  t.ok(files.has('dist/telemetry/start.js'), 'dist/telemetry/start.js (`npm start` preloads it)');
  t.ok(files.has('README.md'), 'README.md');
});

t.test('and nothing else of the repository', async (t) => {
  const outside = [...files].filter((file) => !/^(dist\/|public\/|openapi\.yaml$|README\.md$|package\.json$|LICENSE)/.test(file));
  t.same(outside, [], 'no tests, benchmarks, sources, CI scripts, docs or workspace packages');
  t.same(
    [...files].filter((file) => file.endsWith('.map')),
    [],
    'no source maps (they point at src/, which is not shipped)',
  );
});

t.test('unpacked, the entry imports and the bin runs', async (t) => {
  execFileSync('tar', ['-xzf', join(dir, packed.filename), '-C', dir]);
  const unpacked = join(dir, 'package');
  await symlink(join(REPO_ROOT, 'node_modules'), join(unpacked, 'node_modules'), 'dir');
  const env = { PATH: process.env.PATH ?? '' };
  const entry = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', "const entry = await import('./dist/index.js'); process.stdout.write(typeof entry.buildApp);"],
    { cwd: unpacked, env, encoding: 'utf8' },
  );
  t.equal(entry.status, 0, entry.stderr);
  t.equal(entry.stdout, 'function', 'the entry exports buildApp');
  const bin = spawnSync(process.execPath, [join(unpacked, String(manifest.bin?.switchboard)), 'gen-secrets'], { cwd: unpacked, env, encoding: 'utf8' });
  t.equal(bin.status, 0, bin.stderr);
  t.match(bin.stdout, /^STREAM_TOKEN_SECRET=/m, 'the bin prints env lines');
});
