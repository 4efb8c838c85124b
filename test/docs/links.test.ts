// Every relative link in README.md and docs/*.md must point at a file that exists, and a link to
// a heading (`#anchor`) at a heading that exists: docs moved between files must not leave links
// behind. Anchors are made the way GitHub makes them from a heading.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCS = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

/** The text outside fenced code blocks, where `](` is markdown and not code. */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');
}

/** GitHub's anchor for each heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const [, heading] of prose(markdown).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const slug = (heading as string)
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** Relative link targets: `[text](target)` and `![alt](target)`, without external URLs. */
function relativeLinks(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)(?: "[^"]*")?\)/g)]
    .map((match) => match[1] as string)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

t.test('the docs are found', async (t) => {
  t.ok(DOCS.length >= 8, `checking ${DOCS.join(', ')}`);
});

for (const doc of DOCS) {
  t.test(`${doc}: every relative link resolves`, async (t) => {
    const text = readFileSync(join(ROOT, doc), 'utf8');
    const links = relativeLinks(text);
    t.ok(links.length > 0, `${links.length} links`);
    for (const link of links) {
      const [path = '', anchor] = link.split('#');
      const target = path === '' ? join(ROOT, doc) : join(ROOT, dirname(doc), decodeURIComponent(path));
      const shown = relative(ROOT, target);
      if (!t.ok(target.startsWith(ROOT) && existsSync(target), `${link}: ${shown} exists`)) continue;
      if (anchor !== undefined && target.endsWith('.md')) {
        t.ok(anchorsOf(readFileSync(target, 'utf8')).has(anchor), `${link}: ${shown} has a heading #${anchor}`);
      }
    }
  });
}
