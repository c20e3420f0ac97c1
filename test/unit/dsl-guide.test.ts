/**
 * docs/guides/custom-ops.md: every ```ts sample is type-checked against kiln's sources (`kiln` → src/index.ts,
 * `kiln/dsl` → src/dsl/index.ts, the repo's compiler options) and then run; what it prints must equal its `// →`
 * comments, in order. A sample that compiles for WebGPU needs an adapter (skipped locally without one, failing in CI).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Project, ts } from 'ts-morph';
import { describe, expect, it } from 'vitest';
import * as kiln from '../../src/index.js';
import * as kilnDsl from '../../src/dsl/index.js';
import { skipWebgpu } from '../helpers/backends.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const GUIDE = join(ROOT, 'docs', 'guides', 'custom-ops.md');
const samples = [...readFileSync(GUIDE, 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const noGpu = await skipWebgpu();

/** The `// → …` comments of a sample, in order. */
const expectedLines = (src: string) => [...src.matchAll(/\/\/ → (.*)$/gm)].map((m) => m[1]!.trim());

/** Run a sample as an async function: its imports bound to the already-loaded modules, console.log captured. */
async function runSample(src: string): Promise<string[]> {
  let js = ts.transpileModule(src, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
  }).outputText;
  js = js.replace(/^import\s*\{([^}]*)\}\s*from\s*'([^']+)';?$/gm, (_, names: string, from: string) => {
    if (from !== 'kiln' && from !== 'kiln/dsl') throw new Error(`sample imports ${from}`);
    const binding = names.replace(/\bas\b/g, ':');
    return `const {${binding}} = __mods[${JSON.stringify(from)}];`;
  });
  expect(js).not.toMatch(/^\s*(import|export)\b/m);
  const logs: string[] = [];
  const fakeConsole = { log: (...xs: unknown[]) => logs.push(xs.map(String).join(' ')) };
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (
    ...args: string[]
  ) => (...xs: unknown[]) => Promise<void>;
  await new AsyncFunction('__mods', 'console', js)({ kiln, 'kiln/dsl': kilnDsl }, fakeConsole);
  return logs;
}

describe('the custom-ops guide', () => {
  it('has samples, each with printed lines to check', () => {
    expect(samples.length).toBeGreaterThanOrEqual(5);
    for (const s of samples) expect(expectedLines(s).length, s).toBeGreaterThan(0);
  });

  it('every sample type-checks against kiln', () => {
    const project = new Project({
      skipAddingFilesFromTsConfig: true,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        lib: ['lib.es2023.d.ts'],
        types: ['node'],
        strict: true,
        skipLibCheck: true,
        noEmit: true,
        paths: { kiln: [join(ROOT, 'src/index.ts')], 'kiln/dsl': [join(ROOT, 'src/dsl/index.ts')] },
      },
    } as ConstructorParameters<typeof Project>[0]);
    const files = samples.map((s, i) => project.createSourceFile(join(ROOT, 'test', 'unit', `__guide_${i}.ts`), s));
    const diags = files.flatMap((f, i) =>
      f.getPreEmitDiagnostics().map((d) => {
        const msg = ts.flattenDiagnosticMessageText(d.compilerObject.messageText, ' ');
        return `sample ${i + 1}, line ${d.getLineNumber() ?? '?'}: ${msg}`;
      }),
    );
    expect(diags).toEqual([]);
  }, 120_000);

  samples.forEach((s, i) => {
    const gpu = /backend: 'webgpu'/.test(s);
    it.skipIf(gpu && noGpu)(
      `sample ${i + 1} prints what its comments say`,
      async () => {
        expect(await runSample(s)).toEqual(expectedLines(s));
      },
      60_000,
    );
  });
});
