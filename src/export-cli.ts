/**
 * `kiln export IN --out OUT.onnx [--opt N] [--opset N] [--external-data-threshold BYTES] [--dims n=v,...]`: any
 * model kiln reads — an ONNX file, kiln IR text, a llama2.c checkpoint / GGUF / safetensors language model (built by
 * the LLaMA / GPT-2 builders) — optimized at level N (default 0: as loaded; fused nodes are written as their bodies)
 * and written as ONNX (src/frontends/onnx/export.ts). With --external-data-threshold, initializers of at least that
 * many bytes go to `OUT.onnx.data` beside the model.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';

export interface ExportIo {
  out(text: string): void;
  err(text: string): void;
}

const usage = (m: string) => new KilnError('parse', m);

export function intArg(flag: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw usage(`${flag} wants an integer from ${min} to ${max}, got '${v}'`);
  return n;
}

export async function loadAny(file: string, dims: Record<string, number>): Promise<Graph> {
  let head: Uint8Array;
  try {
    head = readFileSync(file).subarray(0, 64);
  } catch (e) {
    throw new KilnError('runtime', `cannot read '${file}': ${(e as Error).message}`);
  }
  const text = new TextDecoder().decode(head).trimStart();
  const onnx = /\.onnx$/i.test(file);
  if (!onnx && Object.keys(dims).length) throw usage('--dims binds the symbolic input dims of an ONNX model');
  if (/^graph\s/.test(text) || /\.kir$/i.test(file)) {
    const { parseGraph } = await import('../ir/text.js');
    return parseGraph(readFileSync(file, 'utf8'));
  }
  if (onnx) {
    const { loadModelFile } = await import('./inspect.js');
    return loadModelFile(file, dims);
  }
  const { loadLanguageModel } = await import('./generate/load.js');
  return loadLanguageModel(file).graph;
}

export async function exportCommand(rest: string[], io: ExportIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        out: { type: 'string' },
        opt: { type: 'string' },
        opset: { type: 'string' },
        'external-data-threshold': { type: 'string' },
        dims: { type: 'string' },
      },
    });
  } catch (e) {
    throw usage(`export: ${(e as Error).message.split('\n')[0]}`);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw usage(`export needs one model file, got ${positionals.length}`);
  const out = values.out;
  if (!out) throw usage('export needs --out OUT.onnx');
  const opt = intArg('--opt', values.opt, 0, 3) ?? 0;
  const opset = intArg('--opset', values.opset, 18, 100);
  const threshold = intArg('--external-data-threshold', values['external-data-threshold'], 0, Number.MAX_SAFE_INTEGER);
  const { parseDims } = await import('./inspect.js');
  let graph = await loadAny(positionals[0]!, parseDims(values.dims));
  if (opt > 0) {
    const { optimize } = await import('../passes/manager.js');
    graph = optimize(graph, { level: opt });
  }
  const { exportOnnxFile } = await import('./frontends/onnx/export.js');
  const r = await exportOnnxFile(graph, out, {
    ...(opset !== undefined ? { opset } : {}),
    ...(threshold !== undefined ? { externalData: { threshold } } : {}),
  });
  const ext = r.externalPath ? ` + ${r.externalPath} (${r.externalBytes} bytes)` : '';
  io.out(`wrote ${out} (${r.modelBytes} bytes)${ext}: ${graph.nodes.length} kiln nodes\n`);
  return 0;
}
