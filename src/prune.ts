/**
 * `kiln prune MODEL [--method magnitude|wanda|sparsegpt] --sparsity S | --pattern N:M | --heads N | --channels F |
 * --layers N [--calib FILE] [--eval FILE] [--out OUT]`: pruning of a language model (passes/sparsity), with what it
 * cost. Calibration (Wanda, SparseGPT, the structured scores, and the output errors) runs the reference interpreter
 * on the first --calib-windows windows of the first half of --calib; perplexity is measured on the second half of
 * --eval (the halves of one file are disjoint). Structured pruning runs first (layers, heads, channels — each scored
 * on the model as pruned so far), then the unstructured / N:M method on what is left.
 * - per pruned weight: K × N, nonzeros, sparsity, dense bytes, the output error ‖(W − Ŵ)ᵀX‖ / ‖WᵀX‖;
 * - per structural change: what was removed, the weight bytes before / after;
 * - overall: weight bytes and nonzeros before / after, FLOPs of one prefill (cost account, src/cost.ts);
 * - `--eval`: perplexity before and after; `--out OUT`: the pruned graph as kiln IR text.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import { printGraph } from '../ir/text.js';
import { calibrate } from '../passes/quant/calibrate.js';
import {
  layerInfluence,
  pruneChannels,
  pruneHeads,
  pruneLayers,
  pruneWeights,
  type PruneMethod,
  type PruneReport,
  type PruneScope,
  type SparsityPattern,
  type StructuredRow,
} from '../passes/sparsity/index.js';
import { prefillFlops } from './prune-flops.js';
import { halves, table, type QuantizeIo } from './quantize.js';
import { BACKEND_CHOICES, type BackendChoice } from './session.js';

const usage = (m: string) => new KilnError('parse', m);

export const PRUNE_HELP = `  prune MODEL [options]               prune a language model: per layer sparsity, bytes and output error, FLOPs of
                                      one prefill before / after, perplexity before / after (docs/pruning.md)
      --method magnitude|wanda|sparsegpt
                                      how weights are chosen (default magnitude): |w|; Wanda |w|·‖x‖; SparseGPT
                                      (OBS reconstruction with the damped Hessian, the kept weights updated)
      --sparsity S                    unstructured: this fraction of every output column's weights (0 <= S < 1)
      --pattern N:M                   semi-structured: N of every M consecutive weights along K kept (e.g. 2:4)
      --scope output|layer|global     magnitude: compare per output column (default), per weight, or model-wide
      --sequential                    SparseGPT: recalibrate before each layer on the model pruned so far
      --damp X                        SparseGPT damping, a fraction of the mean Hessian diagonal (default 0.01)
      --heads N                       remove N query heads per attention (whole KV groups when N is a multiple of
      --head-mode kv|query            the group size, else N / kv_heads per group; --head-mode forces one)
      --channels F                    remove F hidden channels per MLP (gate / up columns and down rows)
      --layers N                      remove the N decoder layers of least block influence
      --calib FILE                    calibration text: its first half (needed by wanda, sparsegpt and the
                                      structured options; gives magnitude its output errors)
      --calib-windows N, --window N   calibration windows (default 8) of N tokens (default 256)
      --eval FILE                     perplexity before / after on the second half of FILE
      --max-windows N                 evaluation windows (default all)
      --lm-head                       prune the LM head too (kept dense by default)
      --out OUT                       write the pruned graph as kiln IR text
      --tokenizer F, --backend B      as for perplexity (default backend auto)`;

function int(flag: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) throw usage(`${flag} wants an integer from ${min} to ${max}, got '${v}'`);
  return n;
}

function parse(rest: string[]) {
  try {
    return parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: {
        method: { type: 'string' },
        sparsity: { type: 'string' },
        pattern: { type: 'string' },
        scope: { type: 'string' },
        sequential: { type: 'boolean' },
        damp: { type: 'string' },
        heads: { type: 'string' },
        'head-mode': { type: 'string' },
        channels: { type: 'string' },
        layers: { type: 'string' },
        calib: { type: 'string' },
        'calib-windows': { type: 'string' },
        window: { type: 'string' },
        eval: { type: 'string' },
        'max-windows': { type: 'string' },
        'lm-head': { type: 'boolean' },
        out: { type: 'string' },
        tokenizer: { type: 'string' },
        backend: { type: 'string' },
        help: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw usage(`prune: ${(e as Error).message.split('\n')[0]}`);
  }
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function readText(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    throw usage(`${flag}: cannot read ${file}`);
  }
}

function weightTable(r: PruneReport): string {
  const rows = [['layer', 'weight', 'K x N', 'nonzeros', 'sparsity', 'dense bytes', 'output error']];
  for (const l of r.layers)
    rows.push([
      l.node,
      l.weight,
      `${l.K} x ${l.N}`,
      `${l.nonzeros} / ${l.K * l.N}`,
      pct(l.sparsity),
      kb(l.bytes),
      l.outputRelErr === undefined ? '-' : l.outputRelErr.toExponential(3),
    ]);
  for (const k of r.kept) rows.push([k.node, k.weight, `kept dense (${k.reason})`, '', '', kb(k.bytes), '']);
  return table(rows);
}

function structuredTable(rows: readonly StructuredRow[]): string {
  const t = [['node', 'removed', 'count', 'weight bytes']];
  for (const r of rows)
    t.push([
      r.node,
      `${r.what} ${r.removed.join(',')}`,
      `${r.before} -> ${r.after}`,
      `${kb(r.bytesBefore)} -> ${kb(r.bytesAfter)}`,
    ]);
  return table(t);
}

/** Bytes and nonzeros of every float weight (constant of rank ≥ 1). */
function weightStats(g: Graph): { bytes: number; elements: number; nonzeros: number } {
  let bytes = 0;
  let elements = 0;
  let nonzeros = 0;
  for (const c of g.constants) {
    const d = c.data!.data;
    bytes += (d as ArrayBufferView).byteLength;
    elements += d.length;
    for (let i = 0; i < d.length; i++) if (d[i] !== 0) nonzeros++;
  }
  return { bytes, elements, nonzeros };
}

function parsePattern(values: { sparsity?: string; pattern?: string }): SparsityPattern | undefined {
  if (values.sparsity !== undefined && values.pattern !== undefined)
    throw usage('give either --sparsity (unstructured) or --pattern (N:M), not both');
  if (values.sparsity !== undefined) {
    const s = /^(0|0?\.\d+|1(\.0*)?)$/.test(values.sparsity) ? Number(values.sparsity) : NaN;
    if (!(s >= 0 && s < 1)) throw usage(`--sparsity wants a fraction from 0 to below 1, got '${values.sparsity}'`);
    return { kind: 'unstructured', sparsity: s };
  }
  if (values.pattern !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(values.pattern);
    const p = m && { kind: 'nm' as const, n: Number(m[1]), m: Number(m[2]) };
    if (!p || !(p.n >= 1 && p.n < p.m && p.m <= 64))
      throw usage(`--pattern wants N:M with 1 <= N < M <= 64, got '${values.pattern}'`);
    return p;
  }
  return undefined;
}

export async function pruneCommand(rest: string[], io: QuantizeIo): Promise<number> {
  const { values, positionals } = parse(rest);
  if (values.help) {
    io.out(`Usage: kiln prune MODEL [options]\n${PRUNE_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw usage('prune needs one model file');
  const modelFile = positionals[0]!;
  const pattern = parsePattern(values);
  const method = (values.method ?? 'magnitude') as PruneMethod;
  if (!['magnitude', 'wanda', 'sparsegpt'].includes(method))
    throw usage(`unknown pruning method '${method}' (expected magnitude, wanda or sparsegpt)`);
  if (values.method !== undefined && !pattern) throw usage('--method needs --sparsity S or --pattern N:M');
  const scope = (values.scope ?? 'output') as PruneScope;
  if (!['output', 'layer', 'global'].includes(scope))
    throw usage(`unknown --scope '${scope}' (expected output, layer or global)`);
  if (values.scope !== undefined && method !== 'magnitude') throw usage('--scope is a magnitude option');
  if (values.sequential && method !== 'sparsegpt') throw usage('--sequential is a SparseGPT option');
  if (values.damp !== undefined && method !== 'sparsegpt') throw usage('--damp is a SparseGPT option');
  const damp = values.damp === undefined ? undefined : Number(values.damp);
  if (damp !== undefined && !(damp >= 0 && damp < 100)) throw usage(`--damp wants a number >= 0, got '${values.damp}'`);
  const heads = values.heads === undefined ? 0 : int('--heads', values.heads, 0, 1, 1 << 16);
  const headMode = values['head-mode'];
  if (headMode !== undefined && headMode !== 'kv' && headMode !== 'query')
    throw usage(`unknown --head-mode '${headMode}' (expected kv or query)`);
  if (headMode !== undefined && !heads) throw usage('--head-mode needs --heads N');
  const channels = values.channels === undefined ? 0 : int('--channels', values.channels, 0, 1, 1 << 24);
  const layers = values.layers === undefined ? 0 : int('--layers', values.layers, 0, 1, 1 << 16);
  if (!pattern && !heads && !channels && !layers)
    throw usage('nothing to prune: give --sparsity, --pattern, --heads, --channels or --layers');
  const needsCalib = (pattern && method !== 'magnitude') || heads || channels || layers;
  if (needsCalib && values.calib === undefined)
    throw usage(
      `${pattern && method !== 'magnitude' ? `--method ${method}` : 'structured pruning'} needs --calib FILE (its first half calibrates)`,
    );
  const backend = (values.backend ?? 'auto') as BackendChoice;
  if (!(BACKEND_CHOICES as readonly string[]).includes(backend))
    throw usage(`unknown backend '${backend}' (expected one of ${BACKEND_CHOICES.join(', ')})`);
  const window = int('--window', values.window, 256, 2, 1 << 20);
  const calibWindows = int('--calib-windows', values['calib-windows'], 8, 1, 1 << 20);
  const maxWindows =
    values['max-windows'] === undefined ? Infinity : int('--max-windows', values['max-windows'], 0, 1, 1 << 30);
  const calibText = values.calib === undefined ? undefined : halves(readText('--calib', values.calib))[0];
  const evalText = values.eval === undefined ? undefined : halves(readText('--eval', values.eval))[1];

  const { loadLanguageModel } = await import('./generate/load.js');
  const base = loadLanguageModel(modelFile, { tokenizer: values.tokenizer });
  const pruned = loadLanguageModel(modelFile, { tokenizer: values.tokenizer });
  const tok = base.tokenizer;
  if (!tok && (calibText !== undefined || evalText !== undefined))
    throw usage('no tokenizer found beside the model: give --tokenizer FILE');
  const seq = Math.min(window, base.config.maxSeq);
  const windows: number[][] = [];
  if (calibText !== undefined && tok) {
    const ids = tok.encode(calibText, { bos: false });
    const per = seq - 1;
    for (let s = 0; s < ids.length && windows.length < calibWindows; s += per)
      windows.push([...(tok.bos !== undefined ? [tok.bos] : []), ...ids.slice(s, s + per)]);
  }
  const g = pruned.graph;
  const wBefore = weightStats(g);
  const fBefore = prefillFlops(g, seq);
  let calibMs = 0;
  const stats = () => {
    const t0 = performance.now();
    const s = calibrate(g, windows);
    calibMs += performance.now() - t0;
    return s;
  };

  io.out(`${base.source}: pruning\n`);
  if (windows.length)
    io.out(
      `calibration: ${windows.length} windows, ${windows.reduce((t, w) => t + w.length, 0)} positions of the first ` +
        `half of ${values.calib} (reference interpreter)\n`,
    );
  const structural: StructuredRow[] = [];
  if (layers) {
    const t0 = performance.now();
    const scores = layerInfluence(g, windows);
    calibMs += performance.now() - t0;
    io.out(`block influence per layer: ${scores.map((s) => s.toExponential(2)).join(' ')}\n`);
    structural.push(...pruneLayers(g, { layers, scores }).rows);
  }
  if (heads) structural.push(...pruneHeads(g, stats(), { heads, mode: headMode as 'kv' | 'query' | undefined }).rows);
  if (channels) structural.push(...pruneChannels(g, stats(), { channels }).rows);
  if (structural.length) io.out(structuredTable(structural));

  let report: PruneReport | undefined;
  if (pattern) {
    const st = windows.length ? stats() : undefined;
    report = pruneWeights(
      g,
      {
        method,
        pattern,
        scope,
        damp,
        head: !!values['lm-head'],
        recalibrate: values.sequential ? () => stats() : undefined,
      },
      st,
    );
    io.out(`${report.method}, ${report.pattern}:\n`);
    io.out(weightTable(report));
    const el = report.layers.reduce((s, l) => s + l.K * l.N, 0);
    const nz = report.layers.reduce((s, l) => s + l.nonzeros, 0);
    io.out(`pruned layers: ${nz} / ${el} nonzero (${pct(1 - nz / Math.max(el, 1))} sparse)\n`);
  }
  const wAfter = weightStats(g);
  const fAfter = prefillFlops(g, seq);
  io.out(
    `all weights: ${kb(wBefore.bytes)} -> ${kb(wAfter.bytes)} dense, nonzeros ${wBefore.nonzeros} -> ` +
      `${wAfter.nonzeros} (${pct(1 - wAfter.nonzeros / Math.max(wAfter.elements, 1))} of the remaining weights zero)\n`,
  );
  io.out(
    `FLOPs of one ${seq}-token prefill (src/cost.ts, dense kernels): ${fBefore.toExponential(4)} -> ` +
      `${fAfter.toExponential(4)} (${pct(fAfter / fBefore)})\n`,
  );
  if (calibMs > 0) io.out(`calibration time: ${(calibMs / 1000).toFixed(1)} s\n`);
  if (values.out !== undefined) {
    writeFileSync(values.out, printGraph(g));
    io.out(`wrote ${values.out} (kiln IR text)\n`);
  }

  if (evalText !== undefined && tok) {
    const { LanguageModelSession } = await import('./generate/lm.js');
    const { perplexity } = await import('./generate/text.js');
    const lmD = await LanguageModelSession.create(base, { backend });
    const lmP = await LanguageModelSession.create(pruned, { backend });
    try {
      const o = { window: seq, maxWindows };
      const pd = await perplexity(lmD, tok, evalText, o);
      const pp = await perplexity(lmP, tok, evalText, o);
      const d = (pp.perplexity / pd.perplexity - 1) * 100;
      io.out(
        `perplexity (second half of ${values.eval}, ${pd.tokens} tokens in ${pd.windows} windows of ${seq}, on ` +
          `${lmP.session.backend}): dense ${pd.perplexity.toFixed(4)} -> pruned ${pp.perplexity.toFixed(4)} ` +
          `(${d >= 0 ? '+' : ''}${d.toFixed(2)}%)\n`,
      );
    } finally {
      lmD.dispose();
      lmP.dispose();
    }
  }
  return 0;
}
