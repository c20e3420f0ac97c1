/**
 * Cold start of stories260K in this (fresh) process, started by bench/aot.ts: `jit` loads the llama2.c file and
 * compiles it (passes, then kernels); `aot` imports a module written by `kiln compile` (kiln/runtime: parse, bind,
 * kernels). Prints one JSON line `{"loadMs", "firstTokenMs", "text"}`: load = import of the library through a ready
 * session, first token = the first generated token (kernel builds included).
 *
 *   node node_modules/.cache/kiln-bench/bench/aot-cold.js jit|aot MODULE_DIR
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [engine, dir] = process.argv.slice(2) as ['jit' | 'aot', string];
const here = new URL('.', import.meta.url);
const t0 = performance.now();
let gen: (prompt: string, n: number) => AsyncGenerator<string>;
if (engine === 'jit') {
  const { loadLanguageModel, bundledModelsDir } = await import(new URL('../src/generate/load.js', here).href);
  const { LanguageModelSession } = await import(new URL('../src/generate/lm.js', here).href);
  const { generateText } = await import(new URL('../src/generate/text.js', here).href);
  const m = loadLanguageModel(join(bundledModelsDir(), 'stories260K.bin'));
  const lm = await LanguageModelSession.create(m, { backend: 'webgpu' });
  gen = (p, n) => generateText(lm, m.tokenizer, p, { maxTokens: n });
} else {
  const { load } = await import(pathToFileURL(join(dir, 'index.js')).href);
  const mod = await load({ backend: 'webgpu' });
  gen = (p, n) => mod.generateText(p, { maxTokens: n });
}
const t1 = performance.now();
let text = '';
let first = 0;
for await (const piece of gen('Once upon a time', 32)) {
  if (!first) first = performance.now();
  text += piece;
}
console.log(JSON.stringify({ loadMs: t1 - t0, firstTokenMs: first - t1, text }));
process.exit(0); // do not wait on Dawn's handles
