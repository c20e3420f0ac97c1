/**
 * Ahead-of-time modules vs the JIT path on stories260K, in one run:
 * - bundle: what a page or a server imports, minified by esbuild — the JIT path's library (the `kiln` entry: passes,
 *   ONNX / GGUF / safetensors frontends, codegen, runtimes) against kiln/runtime plus the module's index.js (chunks
 *   loaded at import only: the passes `compile` would import lazily are left out), weights apart;
 * - cold start: fresh processes, median of 3 each, interleaved: library import through a ready session, then the
 *   first token (kernel builds included); and the two generate the same greedy text.
 *
 *   npm run bench -- aot
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compileModule } from '../src/aot.js';
import { bundledModelsDir, loadLanguageModel } from '../src/generate/load.js';
import { median, printTable } from './common.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../../..'); // the repo (bench runs from its build)

async function bundleBytes(entry: string, extra: string[] = []): Promise<number> {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    entryPoints: [entry, ...extra],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    minify: true,
    write: false,
    metafile: true,
    outdir: join(tmpdir(), 'kiln-bundle'),
    external: ['webgpu', 'koffi', 'ts-morph', '@viz-js/viz', 'protobufjs', 'esbuild'],
    logLevel: 'silent',
  });
  const outs = r.metafile.outputs;
  const loaded = new Set<string>();
  const visit = (o: string) => {
    if (loaded.has(o)) return;
    loaded.add(o);
    for (const i of outs[o]!.imports) if (i.kind === 'import-statement' && outs[i.path]) visit(i.path);
  };
  for (const [k, o] of Object.entries(outs)) if (o.entryPoint && !k.endsWith('.map')) visit(k);
  return [...loaded].reduce((s, o) => s + outs[o]!.bytes, 0);
}

export async function benchAot(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-aot-bench-'));
  try {
    const m = loadLanguageModel(join(bundledModelsDir(), 'stories260K.bin'));
    const runtimeJs = fileURLToPath(new URL('../src/runtime-entry.js', import.meta.url));
    compileModule({ graph: m.graph, config: m.config, tokenizerFile: m.tokenizerFile! }, dir, {
      runtimeImport: pathToFileURL(runtimeJs).href,
    });
    const jitBytes = await bundleBytes(join(root, 'src/index.ts'));
    const aotBytes = await bundleBytes(join(root, 'src/runtime-entry.ts'));
    const moduleBytes = statSync(join(dir, 'index.js')).size;
    const graphBytes = statSync(join(dir, 'graph.kir')).size;
    const weightBytes = statSync(join(dir, 'weights.bin')).size;
    const cold = join(dirname(fileURLToPath(import.meta.url)), 'aot-cold.js');
    const runs: Record<'jit' | 'aot', { loadMs: number; firstTokenMs: number; text: string }[]> = { jit: [], aot: [] };
    for (let i = 0; i < 3; i++) {
      for (const e of ['jit', 'aot'] as const) {
        const r = spawnSync(process.execPath, [cold, e, dir], { encoding: 'utf8', timeout: 120_000 });
        if (r.status !== 0) throw new Error(`aot-cold ${e} failed: ${r.stderr}`);
        runs[e].push(JSON.parse(r.stdout.trim().split('\n').pop()!));
      }
    }
    const med = (e: 'jit' | 'aot', k: 'loadMs' | 'firstTokenMs') => median(runs[e].map((r) => r[k]));
    const kb = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
    console.log('\nAOT module vs JIT, stories260K on webgpu (fresh processes, median of 3)');
    printTable([
      ['path', 'code bundle (min)', 'load (import → session)', 'first token', 'load + first', 'same text'],
      [
        'JIT (kiln: passes, frontends)',
        kb(jitBytes),
        `${med('jit', 'loadMs').toFixed(0)} ms`,
        `${med('jit', 'firstTokenMs').toFixed(0)} ms`,
        `${(med('jit', 'loadMs') + med('jit', 'firstTokenMs')).toFixed(0)} ms`,
        '',
      ],
      [
        'AOT (kiln/runtime + index.js)',
        `${kb(aotBytes + moduleBytes)} (${(((aotBytes + moduleBytes) / jitBytes) * 100).toFixed(0)}%)`,
        `${med('aot', 'loadMs').toFixed(0)} ms`,
        `${med('aot', 'firstTokenMs').toFixed(0)} ms`,
        `${(med('aot', 'loadMs') + med('aot', 'firstTokenMs')).toFixed(0)} ms`,
        String(runs.aot.every((r) => r.text === runs.jit[0]!.text)),
      ],
    ]);
    console.log(
      `module data: graph.kir ${kb(graphBytes)}, weights.bin ${kb(weightBytes)} (both paths load the weights)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
