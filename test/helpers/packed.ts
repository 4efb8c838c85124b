// What `npm pack` ships from a package folder, for the tests that a package is ready to publish
// (the server's, and each workspace package's).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';

export interface Packed {
  /** The package.json, parsed. */
  manifest: Record<string, unknown> & { exports: Record<string, string | Record<string, string>>; types: string; main?: string; bin?: Record<string, string> };
  /** Paths inside the tarball. */
  files: Set<string>;
  /** The tarball's file name (in `destination`; none is written without one). */
  filename: string;
}

/** Packs `dir` (a dry run unless `destination` is given) without running its scripts. */
export function pack(dir: string, destination?: string): Packed {
  const args = ['pack', '--json', '--ignore-scripts', ...(destination === undefined ? ['--dry-run'] : ['--pack-destination', destination])];
  const [packed] = JSON.parse(execFileSync('npm', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  return {
    manifest: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')),
    files: new Set<string>(packed.files.map((file: { path: string }) => file.path)),
    filename: packed.filename,
  };
}

/** Every file the manifest's `exports` and `types` (and `main`, `bin`) name, as tarball paths. */
export function namedFiles({ manifest }: Packed): string[] {
  const exported = Object.values(manifest.exports).flatMap((target) => (typeof target === 'string' ? [target] : Object.values(target)));
  const named = [...exported, manifest.types, ...(manifest.main === undefined ? [] : [manifest.main]), ...Object.values(manifest.bin ?? {})];
  return [...new Set(named.map((path) => path.replace(/^\.\//, '')))];
}

/**
 * A workspace package's tarball: every file its manifest names, the README, and nothing under
 * `notUnder` (`what` says what those are, for the assertion's message).
 */
export function checkShipped(t: Test, packed: Packed, notUnder: readonly string[], what: string): void {
  for (const file of namedFiles(packed)) t.ok(packed.files.has(file), `${file} is in the tarball`);
  t.ok(packed.files.has('README.md'), 'README.md is in the tarball');
  t.notOk(
    [...packed.files].some((file) => notUnder.some((prefix) => file.startsWith(prefix))),
    what,
  );
}
