/**
 * The guides (docs/guides/*.md) cannot rot: every ```ts sample in them is type-checked against kiln's sources under
 * the import names users write (`kiln`, `kiln/ir`, `kiln/runtime`, …), and every guide the index links exists.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/paths.js';

const GUIDES = join(REPO_ROOT, 'docs/guides');
const SUBPATHS: Record<string, string> = {
  kiln: 'src/index.ts',
  'kiln/ir': 'ir/index.ts',
  'kiln/passes': 'passes/index.ts',
  'kiln/codegen': 'codegen/index.ts',
  'kiln/runtime': 'src/runtime-entry.ts',
  'kiln/dsl': 'src/dsl/index.ts',
  'kiln/parallel': 'src/parallel/index.ts',
  'kiln/tune': 'src/tune.ts',
  'kiln/conformance': 'src/conformance.ts',
};

/** The ```ts blocks of a markdown file, with the line each starts on. */
function samples(md: string): { code: string; line: number }[] {
  const out: { code: string; line: number }[] = [];
  const re = /^```ts\n([\s\S]*?)^```/gm;
  for (let m = re.exec(md); m; m = re.exec(md)) {
    out.push({ code: m[1]!, line: md.slice(0, m.index).split('\n').length + 1 });
  }
  return out;
}

describe('guides', () => {
  const files = readdirSync(GUIDES).filter((f) => f.endsWith('.md'));

  it('every guide the getting-started index links exists, and the package exports every subpath', () => {
    const index = readFileSync(join(GUIDES, 'getting-started.md'), 'utf8');
    const links = [...index.matchAll(/\]\(([a-z-]+\.md)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThanOrEqual(8);
    for (const l of links) expect(existsSync(join(GUIDES, l)), l).toBe(true);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    for (const name of Object.keys(SUBPATHS)) {
      expect(pkg.exports[name === 'kiln' ? '.' : `./${name.slice(5)}`], name).toBeDefined();
    }
  });

  it('every TypeScript sample type-checks against kiln', async () => {
    const { Project } = await import('ts-morph');
    const project = new Project({
      compilerOptions: {
        strict: true,
        module: 199 /* NodeNext */,
        moduleResolution: 99 /* NodeNext */,
        target: 9 /* ES2022 */,
        lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
        noEmit: true,
        skipLibCheck: true,
        types: ['node', '@webgpu/types'],
        typeRoots: [join(REPO_ROOT, 'node_modules/@types'), join(REPO_ROOT, 'node_modules')],
        baseUrl: REPO_ROOT,
        paths: Object.fromEntries(Object.entries(SUBPATHS).map(([k, v]) => [k, [join(REPO_ROOT, v)]])),
      },
    });
    const where = new Map<string, string>();
    let n = 0;
    for (const f of files) {
      for (const s of samples(readFileSync(join(GUIDES, f), 'utf8'))) {
        const path = join(REPO_ROOT, `test/tmp/guide-${n++}.ts`);
        project.createSourceFile(path, s.code.includes('import') ? s.code : `${s.code}\nexport {};\n`);
        where.set(path, `docs/guides/${f}:${s.line}`);
      }
    }
    expect(n).toBeGreaterThanOrEqual(10);
    // the browser demo is user code too
    const demo = join(REPO_ROOT, 'examples/web/main.ts');
    project.addSourceFileAtPath(demo);
    where.set(demo, 'examples/web/main.ts:1');
    const problems = project
      .getPreEmitDiagnostics()
      .filter((d) => where.has(d.getSourceFile()?.getFilePath() ?? ''))
      .map((d) => {
        const at = where.get(d.getSourceFile()!.getFilePath())!;
        const msg = d.getMessageText();
        return `${at} (+${(d.getLineNumber() ?? 1) - 1}): ${typeof msg === 'string' ? msg : msg.getMessageText()}`;
      });
    expect(problems).toEqual([]);
  }, 120_000);
});
