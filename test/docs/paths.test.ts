// The docs name source files, and files move: every repository path they cite must exist, and
// the module map in docs/ARCHITECTURE.md must list exactly the files in src/.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

/** Paths such as `src/sse/sse-stream.ts` or `deploy/demo.env`, written in code spans. */
function citedPaths(markdown: string): string[] {
  const paths = new Set<string>();
  for (const [, span] of markdown.matchAll(/`([^`\n]+)`/g)) {
    for (const [path] of (span as string).matchAll(/\b(?:src|test|deploy|bench|scripts|public|docs)\/[\w./-]*[\w]/g)) {
      // bench/results/ is what `npm run bench` writes, ignored by git: named, never shipped.
      if (!path.includes('*') && !path.startsWith('bench/results')) paths.add(path);
    }
  }
  return [...paths];
}

/** Every file under `dir`, relative to the repository root. */
function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(`${dir}/${entry.name}`) : [`${dir}/${entry.name}`],
  );
}

/**
 * The files the module map lists: the `src/` tree of its text block, two spaces of indent per
 * level, a folder ending in `/`, a line's first column naming one file or several (`a.ts, b.ts`).
 */
function moduleMap(architecture: string): string[] {
  const section = architecture.slice(architecture.indexOf('## Module map'));
  const block = /```text\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const folders: string[] = [];
  const files: string[] = [];
  for (const line of block.split('\n')) {
    const match = /^( *)([^\s,]+(?:, [^\s,]+)*)/.exec(line);
    if (match === null) continue;
    const depth = (match[1] as string).length / 2;
    const names = (match[2] as string).split(', ');
    if (depth === 0) {
      folders.length = 0;
      if (names[0] === 'src/') folders.push('src');
      continue;
    }
    if (folders.length === 0) continue;
    folders.length = depth;
    const parent = folders.slice(0, depth).join('/');
    if (names.length === 1 && (names[0] as string).endsWith('/')) folders[depth] = (names[0] as string).slice(0, -1);
    else files.push(...names.map((name) => `${parent}/${name}`));
  }
  return files;
}

for (const doc of DOCS) {
  t.test(`${doc}: every repository path it cites exists`, async (t) => {
    for (const path of citedPaths(readFileSync(join(ROOT, doc), 'utf8'))) {
      t.ok(existsSync(join(ROOT, path)), `${path} exists`);
    }
  });
}

t.test('the module map in docs/ARCHITECTURE.md lists exactly the files in src/', async (t) => {
  const listed = moduleMap(readFileSync(join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8')).sort();
  const actual = filesUnder('src').sort();
  t.ok(listed.length >= 40, `${listed.length} files listed`);
  for (const file of actual) t.ok(listed.includes(file), `${file} is in the map`);
  for (const file of listed) t.ok(actual.includes(file), `${relative(ROOT, join(ROOT, file))} exists`);
});
