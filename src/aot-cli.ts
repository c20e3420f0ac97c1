/**
 * `kiln compile MODEL --out DIR [--target webgpu|cuda] [--opt N] [--tokenizer F] [--runtime SPEC] [--dims n=v,...]`:
 * ahead-of-time export of a model as an ES module run by kiln/runtime (src/aot.ts). A language model (llama2.c / GGUF
 * / safetensors) gets its sampling head and its tokenizer; `kiln generate DIR` then runs it like a model file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { KilnError } from '../ir/errors.js';
import type { ExportIo } from './export-cli.js';

const usage = (m: string) => new KilnError('parse', m);

export const COMPILE_HELP = `  compile MODEL --out DIR [options]   ahead-of-time export: the model optimized now, written as an ES module (index.js +
                                      index.d.ts, graph.kir, weights.bin, manifest.json) that runs with kiln/runtime
                                      alone (no passes, no ONNX parser); kiln generate DIR runs a language model module
      --target webgpu|cuda            the backend it loads on by default (default webgpu)
      --opt N                         optimization level (default 1)
      --tokenizer F                   a llama2.c tokenizer to ship (default: the one beside a llama2.c model)
      --runtime SPEC                  what index.js imports the runtime as (default kiln/runtime)
      --dims n=v,...                  bind symbolic input dims of an ONNX input`;

/** A module folder written by `kiln compile` (its manifest.json names the format). */
export function isModuleDir(path: string): boolean {
  const f = join(path, 'manifest.json');
  if (!existsSync(f)) return false;
  try {
    return (JSON.parse(readFileSync(f, 'utf8')) as { format?: unknown }).format === 'kiln-module';
  } catch {
    return false;
  }
}

export async function compileCommand(rest: string[], io: ExportIo, kilnVersion: string): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        out: { type: 'string' },
        target: { type: 'string' },
        opt: { type: 'string' },
        tokenizer: { type: 'string' },
        runtime: { type: 'string' },
        dims: { type: 'string' },
        help: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw usage(`compile: ${(e as Error).message.split('\n')[0]}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(`Usage: kiln compile MODEL --out DIR [options]\n${COMPILE_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw usage(`compile needs one model file, got ${positionals.length}`);
  if (!values.out) throw usage('compile needs --out DIR');
  const target = values.target ?? 'webgpu';
  if (target !== 'webgpu' && target !== 'cuda') throw usage(`--target wants webgpu or cuda, got '${target}'`);
  const { intArg, loadAny } = await import('./export-cli.js');
  const opt = intArg('--opt', values.opt, 0, 3) ?? 1;
  const file = positionals[0]!;
  const { parseDims } = await import('./inspect.js');
  const dims = parseDims(values.dims);
  const lmFile = !/\.(onnx|kir)$/i.test(file) && !/^graph\s/.test(readHead(file));
  let input;
  if (lmFile) {
    const { loadLanguageModel } = await import('./generate/load.js');
    const m = loadLanguageModel(file, values.tokenizer === undefined ? {} : { tokenizer: values.tokenizer });
    input = { graph: m.graph, config: m.config, ...(m.tokenizerFile ? { tokenizerFile: m.tokenizerFile } : {}) };
  } else input = { graph: await loadAny(file, dims) };
  const { compileModule } = await import('./aot.js');
  const t0 = performance.now();
  const r = compileModule(input, resolve(values.out), {
    target,
    opt,
    name: basename(resolve(values.out)),
    ...(values.runtime ? { runtimeImport: values.runtime } : {}),
    kilnVersion,
  });
  const m = r.manifest;
  io.out(
    `wrote module '${m.name}' to ${values.out} in ${(performance.now() - t0).toFixed(0)} ms: ` +
      `${m.plan.nodes} kernel groups (opt ${m.opt}), ${m.inputs.length} inputs, ${m.outputs.length} outputs` +
      `${m.lm ? ', language model' : ''}${m.tokenizer ? ' with tokenizer' : ''}\n`,
  );
  for (const [f, bytes] of Object.entries(r.files)) io.out(`  ${f.padEnd(14)} ${bytes} bytes\n`);
  return 0;
}

function readHead(file: string): string {
  try {
    return new TextDecoder().decode(readFileSync(file).subarray(0, 64)).trimStart();
  } catch (e) {
    throw new KilnError('runtime', `cannot read '${file}': ${(e as Error).message}`);
  }
}
