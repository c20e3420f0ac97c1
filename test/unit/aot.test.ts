/**
 * Ahead-of-time modules (issue 16): `compileModule` writes stories260K as an ES module; loaded by kiln/runtime alone —
 * in process and in a fresh Node process importing the written index.js — it generates the same greedy text as the
 * JIT path. The runtime's bundle holds no passes, no ONNX parser and no model-file loaders; the generated .d.ts types
 * the inputs (a wrong shape is a type error); bad modules are typed errors naming the file.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compileModule } from '../../src/aot.js';
import { LanguageModelSession } from '../../src/generate/lm.js';
import { loadLanguageModel } from '../../src/generate/load.js';
import { generateText } from '../../src/generate/text.js';
import { loadModule } from '../../src/runtime-entry.js';
import { fileProbe, requireTool } from '../helpers/tools.js';
import { REPO_ROOT, SHARED } from '../helpers/paths.js';

const MODEL = join(SHARED, 'models/stories260K.bin');
const PROMPT = 'Once upon a time';
const TOKENS = 24;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function writeModule(runtimeImport = 'kiln/runtime'): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-aot-'));
  dirs.push(dir);
  const m = loadLanguageModel(MODEL);
  compileModule({ graph: m.graph, config: m.config, tokenizerFile: m.tokenizerFile! }, dir, { runtimeImport });
  return dir;
}

async function jitText(backend: 'reference' | 'webgpu'): Promise<string> {
  const m = loadLanguageModel(MODEL);
  const lm = await LanguageModelSession.create(m, { backend });
  let s = '';
  for await (const p of generateText(lm, m.tokenizer!, PROMPT, { maxTokens: TOKENS })) s += p;
  lm.dispose();
  return s;
}

const noCli = await requireTool(
  'the built runtime',
  fileProbe(join(REPO_ROOT, 'dist/src/runtime-entry.js'), 'npm run build'),
);
const noModel = await requireTool('the shared models', fileProbe(MODEL, 'clone the shared data beside the repo'));

describe.skipIf(noModel)('ahead-of-time modules', () => {
  it('a module loaded by kiln/runtime generates the JIT path’s greedy text', async () => {
    const dir = writeModule();
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { plan: { nodes: number } };
    expect(manifest.plan.nodes).toBeGreaterThan(10);
    const mod = await loadModule(dir, undefined, { backend: 'reference' });
    let text = '';
    for await (const p of mod.generateText(PROMPT, { maxTokens: TOKENS })) text += p;
    mod.dispose();
    expect(text.length).toBeGreaterThan(20);
    expect(text).toBe(await jitText('reference'));
  });

  it.skipIf(noCli)('index.js imported in a fresh Node process generates the same text', async () => {
    const dir = writeModule(pathToFileURL(join(REPO_ROOT, 'dist/src/runtime-entry.js')).href);
    const script = join(dir, 'run.mjs');
    writeFileSync(
      script,
      [
        `import { load } from ${JSON.stringify(pathToFileURL(join(dir, 'index.js')).href)};`,
        `const m = await load({ backend: 'webgpu' });`,
        `let s = '';`,
        `for await (const p of m.generateText(${JSON.stringify(PROMPT)}, { maxTokens: ${TOKENS} })) s += p;`,
        `m.dispose();`,
        `process.stdout.write(JSON.stringify(s));`,
      ].join('\n'),
    );
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toBe(await jitText('webgpu'));
  });

  it('the runtime bundle holds no passes, no ONNX parser and no model loaders', async () => {
    const esbuild = await import('esbuild');
    const out = mkdtempSync(join(tmpdir(), 'kiln-rt-'));
    dirs.push(out);
    const r = await esbuild.build({
      entryPoints: { runtime: join(REPO_ROOT, 'src/runtime-entry.ts') },
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      outdir: out,
      metafile: true,
      write: false,
      external: ['webgpu', 'koffi', 'ts-morph'],
      logLevel: 'silent',
    });
    const outputs = r.metafile.outputs;
    const entry = Object.keys(outputs).find((k) => outputs[k]!.entryPoint?.endsWith('runtime-entry.ts'))!;
    // what loading the runtime executes: the entry chunk and the chunks it imports statically
    const loaded = new Set<string>();
    const visit = (o: string) => {
      if (loaded.has(o)) return;
      loaded.add(o);
      for (const i of outputs[o]!.imports) if (i.kind === 'import-statement' && outputs[i.path]) visit(i.path);
    };
    visit(entry);
    const inputs = [...loaded].flatMap((o) => Object.keys(outputs[o]!.inputs)).map((p) => relative(REPO_ROOT, p));
    expect(inputs.some((p) => p.startsWith('codegen/'))).toBe(true); // kernels are generated at load
    // (src/frontends/bytes.ts, the little-endian reader the llama2.c tokenizer uses, is no loader)
    const banned = /^(passes\/|src\/frontends\/(onnx\/|gguf|safetensors|llama2c|hf-config)|src\/models\/|src\/aot)/;
    expect(inputs.filter((p) => banned.test(p))).toEqual([]);
  });

  it('index.d.ts types the feeds: names, dtypes and shapes (a wrong rank is a type error)', async () => {
    const { Project } = await import('ts-morph');
    const dir = writeModule();
    const project = new Project({
      compilerOptions: {
        strict: true,
        module: 199 /* NodeNext */,
        moduleResolution: 99 /* NodeNext */,
        target: 9 /* ES2022 */,
        noEmit: true,
        skipLibCheck: true,
        types: ['node', '@webgpu/types'],
        typeRoots: [join(REPO_ROOT, 'node_modules/@types'), join(REPO_ROOT, 'node_modules')],
        baseUrl: dir,
        paths: { 'kiln/runtime': [join(REPO_ROOT, 'src/runtime-entry.ts')] },
      },
    });
    project.addSourceFileAtPath(join(dir, 'index.d.ts'));
    const good = project.createSourceFile(
      join(dir, 'good.ts'),
      [
        `import { load, type Inputs, type InputName } from './index.js';`,
        `export const ids: Inputs['input_ids'] = { dtype: 'i64', shape: [1, 3], data: [1, 2, 3] };`,
        `export const past: Inputs['past_key_0'] = { dtype: 'f32', shape: [1, 4, 0, 8], data: [] };`,
        `export const name: InputName = 'position_ids';`,
        `export const m = load({ backend: 'reference' });`,
      ].join('\n'),
    );
    const bad = project.createSourceFile(
      join(dir, 'bad.ts'),
      [
        `import type { Inputs } from './index.js';`,
        `export const a: Inputs['input_ids'] = { dtype: 'i64', shape: [1, 2, 3], data: [1] };`,
        `export const b: Inputs['past_key_0'] = { dtype: 'f32', shape: [1, 5, 0, 8], data: [] };`,
        `export const c: Inputs['input_ids'] = { dtype: 'f32', shape: [1, 1], data: [1] };`,
      ].join('\n'),
    );
    const errs = (f: typeof good) =>
      project.getPreEmitDiagnostics().filter((d) => d.getSourceFile()?.getFilePath() === f.getFilePath());
    expect(errs(good).map((d) => d.getMessageText().toString())).toEqual([]);
    expect(errs(bad).map((d) => d.getLineNumber())).toEqual([2, 3, 4]);
  }, 60_000);

  it('bad modules are typed errors naming the file', async () => {
    const dir = writeModule();
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    await expect(loadModule(dir, { ...m, version: 99 } as never)).rejects.toThrow(/module format 99/);
    await expect(loadModule(dir, { ...m, weights: 'nope.bin' } as never)).rejects.toThrow(/nope\.bin/);
    writeFileSync(join(dir, 'short.bin'), new Uint8Array(64));
    await expect(loadModule(dir, { ...m, weights: 'short.bin' } as never)).rejects.toThrow(/outside the 64-byte/);
  });
});
