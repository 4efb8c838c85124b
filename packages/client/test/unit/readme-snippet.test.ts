// The READMEs' browser snippets type-check as written against the built package: strict (checkJs
// for the root README's js), the DOM's types, `@switchboard/client` resolved to this package's
// declarations. The root one reads a callback event's data as the service shapes it, so the
// package must type that event without the app declaring it. Needs the build (`npm test` builds
// first).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const ROOT_README = fileURLToPath(new URL('../../../../README.md', import.meta.url));
const PACKAGE_README = fileURLToPath(new URL('../../README.md', import.meta.url));
const DECLARATIONS = fileURLToPath(new URL('../../dist/index.d.ts', import.meta.url));

/** The first block of a README in `language` that imports the browser client. */
async function snippet(readmePath: string, language: 'js' | 'ts'): Promise<string> {
  const readme = await readFile(readmePath, 'utf8');
  const blocks = [...readme.matchAll(new RegExp(`\`\`\`${language}\n([\\s\\S]*?)\`\`\``, 'g'))].map((match) => match[1] as string);
  const code = blocks.find((block) => block.includes("from '@switchboard/client'"));
  if (code === undefined) throw new Error(`no ${language} block in ${readmePath} imports '@switchboard/client'`);
  return code;
}

/** Type errors in `code`, saved as `fileName` with `appCode` (what the app itself would define) before it. */
async function typeErrors(fileName: string, appCode: string, code: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'switchboard-client-readme-'));
  try {
    const file = join(dir, fileName);
    await writeFile(file, `${appCode}\n${code}`);
    const program = ts.createProgram([file], {
      allowJs: true,
      checkJs: true,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      paths: { '@switchboard/client': [DECLARATIONS] },
    });
    return ts.getPreEmitDiagnostics(program).map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

t.test("the root README's browser snippet (js) type-checks against the package", async (t) => {
  const code = await snippet(ROOT_README, 'js');
  t.same(await typeErrors('snippet.mjs', '/** @type {() => void} */\nconst refetchEverything = () => {};', code), [], 'no type errors');
});

t.test("the package README's usage (ts) type-checks against the package", async (t) => {
  const code = await snippet(PACKAGE_README, 'ts');
  t.same(await typeErrors('snippet.mts', 'const refetchEverythingThePageShows = (): void => {};', code), [], 'no type errors');
});
