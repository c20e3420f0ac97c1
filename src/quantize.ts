/**
 * `kiln quantize MODEL --bits 4 --group 32 --method rtn|gptq|awq [--out OUT] [--text FILE [--eval]]`: weight-only
 * post-training quantization of a language model (passes/quant), with what it cost (GPTQ and AWQ calibrate on the
 * first --calib-windows windows of the first half of --text, on the reference interpreter):
 * - per quantized layer and overall: weight bytes before / after and the weight's rel-L2 error;
 * - the output error against the unquantized model on the calibration half of `--text` (its first half): rel-L2 of
 *   the logits and KL(f32 ‖ quantized) of the next-token distribution, averaged over the scored positions;
 * - with `--eval`: perplexity before and after on the evaluation half (the second half of `--text`);
 * - `--out OUT`: the quantized graph as kiln IR text, as GGUF (`.gguf`, LLaMA) or as ONNX (`.onnx`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KilnError } from '../ir/errors.js';
import { printGraph } from '../ir/text.js';
import type { Graph } from '../ir/graph.js';
import {
  calibrate,
  quantizeAwq,
  quantizeGptq,
  quantizeRtn,
  quantizeW8A8,
  type CalibrationStats,
  type W8A8Report,
  type RtnOptions,
  type RtnReport,
} from '../passes/quant/index.js';
import { BACKEND_CHOICES, type BackendChoice } from './session.js';

export interface QuantizeIo {
  out(text: string): void;
  err(text: string): void;
}

const usage = (m: string) => new KilnError('parse', m);

export const QUANTIZE_HELP = `  quantize MODEL [options]            weight-only post-training quantization of a language model: per layer and
                                      overall weight bytes before / after, logits error vs the float model
      --bits 4|8                      default 4
      --group N|channel               elements per scale along K: a power of two >= 16 (default 32), or per channel
      --method rtn|gptq|awq           round-to-nearest (default), GPTQ (Hessian error feedback), AWQ (activation-aware
                                      per-channel scales folded into the RMS norms); GPTQ / AWQ calibrate on the
                                      first --calib-windows windows of --text's first half
      --method w8a8|smoothquant       W8A8: int8 weights and per-token int8 activations into int32 products; naive,
                                      or smoothed first (SmoothQuant: max|x|^a / max|w|^(1-a) folded into the norms,
                                      --alpha a, default 0.5, calibrated like AWQ)
      --act-order                     GPTQ: quantize columns by decreasing Hessian diagonal (g_idx)
      --sequential                    GPTQ: recalibrate before each layer on the model quantized so far
      --asym                          asymmetric (zero point per group); default symmetric
      --embeddings, --head            also quantize the embedding table / the LM head (kept in float by default)
      --text FILE                     text for the error report: its first half calibrates (logits rel-L2, KL),
      --eval                          its second half evaluates (perplexity before / after, with --eval)
      --window N, --max-windows N     evaluation windows (default 256 tokens, all); --calib-windows N (default 4, 8 for gptq / awq)
      --layer-error                   per layer: the logits error with only that layer quantized (first window)
      --out OUT                       write the quantized graph as kiln IR text; OUT.gguf: as a GGUF llama file;
                                      OUT.onnx: as ONNX (MatMulNBits / MatMulInteger)
                                      (int8 -> Q8_0, int4 -> Q4_0 / Q4_1; weights no ggml format holds as F32)
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
        bits: { type: 'string' },
        group: { type: 'string' },
        method: { type: 'string' },
        asym: { type: 'boolean' },
        embeddings: { type: 'boolean' },
        head: { type: 'boolean' },
        text: { type: 'string' },
        eval: { type: 'boolean' },
        window: { type: 'string' },
        'max-windows': { type: 'string' },
        'calib-windows': { type: 'string' },
        out: { type: 'string' },
        tokenizer: { type: 'string' },
        backend: { type: 'string' },
        help: { type: 'boolean' },
        'layer-error': { type: 'boolean' },
        'act-order': { type: 'boolean' },
        alpha: { type: 'string' },
        sequential: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw usage(`quantize: ${(e as Error).message.split('\n')[0]}`);
  }
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

function layerTable(r: RtnReport): string {
  const rows = [['layer', 'weight', 'op', 'K x N', 'block', 'before', 'after', 'ratio', 'weight rel-L2']];
  for (const l of r.layers) {
    rows.push([
      l.node,
      l.weight,
      l.op,
      `${l.K} x ${l.N}`,
      String(l.block),
      kb(l.bytesBefore),
      kb(l.bytesAfter),
      `${(l.bytesBefore / l.bytesAfter).toFixed(2)}x`,
      l.weightRelL2.toExponential(3),
    ]);
  }
  for (const k of r.kept) rows.push([k.node, k.weight, `kept (${k.reason})`, '', '', kb(k.bytes), kb(k.bytes), '', '']);
  return table(rows);
}

function w8a8Table(r: W8A8Report): string {
  const rows = [['layer', 'weight', 'K x N', 'smoothed into', 'before', 'after', 'ratio']];
  for (const l of r.layers) {
    rows.push([
      l.node,
      l.weight,
      `${l.K} x ${l.N}`,
      l.smoothedInto ?? '-',
      kb(l.bytesBefore),
      kb(l.bytesAfter),
      `${(l.bytesBefore / l.bytesAfter).toFixed(2)}x`,
    ]);
  }
  const notes = r.unsmoothed.map((u) => `  ${u.activation}: not smoothed (${u.reason})\n`).join('');
  return table(rows) + notes;
}

/** Rows of cells, columns padded to their widest cell. */
export function table(rows: readonly string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
  return (
    rows
      .map((x) =>
        x
          .map((c, i) => c.padEnd(w[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** Tokens of the text's halves: the first calibrates, the second evaluates. */
export function halves(text: string): [string, string] {
  const mid = Math.floor(text.length / 2);
  // cut at a line break near the middle so no word is split
  const cut = text.indexOf('\n', mid);
  const at = cut < 0 ? mid : cut + 1;
  return [text.slice(0, at), text.slice(at)];
}

/** rel-L2 of logits and mean KL(p_f32 ‖ p_q) over every position of every window. */
export function logitsError(
  ref: readonly Float32Array[],
  got: readonly Float32Array[],
  vocab: number,
): { relL2: number; kl: number; positions: number } {
  let num = 0;
  let den = 0;
  let kl = 0;
  let positions = 0;
  ref.forEach((r, w) => {
    const g = got[w]!;
    for (let i = 0; i < r.length; i++) {
      num += (g[i]! - r[i]!) ** 2;
      den += r[i]! ** 2;
    }
    for (let p = 0; p + vocab <= r.length; p += vocab) {
      const lp = logSoftmax(r.subarray(p, p + vocab));
      const lq = logSoftmax(g.subarray(p, p + vocab));
      let s = 0;
      for (let v = 0; v < vocab; v++) s += Math.exp(lp[v]!) * (lp[v]! - lq[v]!);
      kl += s;
      positions++;
    }
  });
  return { relL2: Math.sqrt(num / Math.max(den, Number.MIN_VALUE)), kl: kl / Math.max(positions, 1), positions };
}

function logSoftmax(row: Float32Array): Float64Array {
  let m = -Infinity;
  for (const x of row) m = Math.max(m, x);
  let z = 0;
  for (const x of row) z += Math.exp(x - m);
  const lz = m + Math.log(z);
  return Float64Array.from(row, (x) => x - lz);
}

export async function quantizeCommand(rest: string[], io: QuantizeIo): Promise<number> {
  const { values, positionals } = parse(rest);
  if (values.help) {
    io.out(`Usage: kiln quantize MODEL [options]\n${QUANTIZE_HELP}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw usage('quantize needs one model file');
  const modelFile = positionals[0]!;
  const method = values.method ?? 'rtn';
  if (!['rtn', 'gptq', 'awq', 'w8a8', 'smoothquant'].includes(method))
    throw usage(`unknown quantization method '${method}' (expected rtn, gptq, awq, w8a8 or smoothquant)`);
  const w8a8 = method === 'w8a8' || method === 'smoothquant';
  if (values.alpha !== undefined && method !== 'smoothquant') throw usage('--alpha is a SmoothQuant option');
  const alpha = values.alpha === undefined ? 0.5 : Number(values.alpha);
  if (!(alpha >= 0 && alpha <= 1)) throw usage(`--alpha wants a number from 0 to 1, got '${values.alpha}'`);
  if (w8a8 && (values.bits !== undefined || values.group !== undefined || values.asym))
    throw usage(
      'W8A8 is int8 per output channel (weights) and per token (activations): drop --bits / --group / --asym',
    );
  if (values['act-order'] && method !== 'gptq') throw usage('--act-order is a GPTQ option (--method gptq)');
  if (values.sequential && method !== 'gptq') throw usage('--sequential is a GPTQ option (--method gptq)');
  const bits = int('--bits', values.bits, 4, 1, 64);
  if (bits !== 4 && bits !== 8) throw usage(`--bits must be 4 or 8, got ${bits}`);
  const group = values.group === 'channel' ? 'channel' : int('--group', values.group, 32, 16, 1 << 20);
  if (group !== 'channel' && (group & (group - 1)) !== 0)
    throw usage(`--group must be a power of two >= 16 or 'channel', got ${group}`);
  if (values.eval && values.text === undefined) throw usage('--eval needs --text FILE (its second half is evaluated)');
  const backend = (values.backend ?? 'auto') as BackendChoice;
  if (!(BACKEND_CHOICES as readonly string[]).includes(backend))
    throw usage(`unknown backend '${backend}' (expected one of ${BACKEND_CHOICES.join(', ')})`);
  const window = int('--window', values.window, 256, 2, 1 << 20);
  const maxWindows =
    values['max-windows'] === undefined ? Infinity : int('--max-windows', values['max-windows'], 0, 1, 1 << 30);
  const calibWindows = int('--calib-windows', values['calib-windows'], method === 'rtn' ? 4 : 8, 1, 1 << 20);
  let text: string | undefined;
  if (values.text !== undefined) {
    try {
      text = readFileSync(values.text, 'utf8');
    } catch {
      throw usage(`--text: cannot read ${values.text}`);
    }
  }

  const { loadLanguageModel } = await import('./generate/load.js');
  const opts: RtnOptions = {
    bits,
    group,
    symmetric: !values.asym,
    embeddings: !!values.embeddings,
    head: !!values.head,
  };
  const base = loadLanguageModel(modelFile, { tokenizer: values.tokenizer });
  const quant = loadLanguageModel(modelFile, { tokenizer: values.tokenizer });
  const tok = base.tokenizer;
  if (!tok) throw usage('no tokenizer found beside the model: give --tokenizer FILE');
  const [calib, evalText] = text !== undefined ? halves(text) : ['Once upon a time, there was a little girl.', ''];
  const ids = tok.encode(calib, { bos: false });
  const per = Math.min(window, base.config.maxSeq) - 1;
  const windows: number[][] = [];
  for (let s = 0; s < ids.length && windows.length < calibWindows; s += per)
    windows.push([...(tok.bos !== undefined ? [tok.bos] : []), ...ids.slice(s, s + per)]);
  let stats: CalibrationStats | undefined;
  const t0 = performance.now();
  if (method !== 'rtn' && method !== 'w8a8') stats = calibrate(base.graph, windows);
  const calibMs = performance.now() - t0;
  const quantizeWith = (g: Graph, only?: string[]): RtnReport | W8A8Report => {
    const o = only ? { ...opts, only } : opts;
    if (w8a8) {
      return quantizeW8A8(g, stats, {
        smooth: method === 'smoothquant',
        alpha,
        head: !!values.head,
        ...(only ? { only } : {}),
      });
    }
    if (method === 'gptq')
      return quantizeGptq(g, stats!, {
        ...o,
        actOrder: !!values['act-order'],
        recalibrate: values.sequential ? (cur) => calibrate(cur, windows) : undefined,
      });
    if (method === 'awq') return quantizeAwq(g, stats!, o);
    return quantizeRtn(g, o);
  };
  const report = quantizeWith(quant.graph);
  const kept = [!opts.embeddings && 'embeddings', !opts.head && 'LM head'].filter(Boolean).join(' and ');
  const label =
    method === 'w8a8' || method === 'smoothquant'
      ? `W8A8${method === 'smoothquant' ? ` SmoothQuant (alpha ${alpha})` : ' (naive)'}`
      : method === 'rtn'
        ? 'RTN'
        : method === 'gptq'
          ? `GPTQ${values['act-order'] ? ' (act-order)' : ''}${values.sequential ? ' (sequential)' : ''}`
          : 'AWQ';
  io.out(
    w8a8
      ? `${base.source}: ${label}: int8 weights per output channel, int8 activations per token (dynamic, on the ` +
          `device), int32 products${opts.head ? '' : ' (LM head kept in float)'}\n`
      : `${base.source}: ${label} int${bits}, group ${group}, ${opts.symmetric ? 'symmetric' : 'asymmetric'}` +
          `${kept ? ` (${kept} kept in float)` : ''}\n`,
  );
  if (stats) {
    const rows = windows.reduce((t, w) => t + w.length, 0);
    io.out(
      `calibration: ${windows.length} windows, ${rows} positions of the ` +
        `${text !== undefined ? `first half of ${values.text}` : 'built-in sentence'}, ${stats.size} activations, ` +
        `${(calibMs / 1000).toFixed(1)} s (reference interpreter)\n`,
    );
  }
  if ('scales' in report) {
    const r = report as import('../passes/quant/index.js').AwqReport;
    const rows = [['activation', 'folded into', 'matmuls', 'alpha', 'calib error (AWQ / RTN)']];
    for (const s of r.scales)
      rows.push([
        s.activation,
        s.foldedInto,
        s.matmuls.join(' '),
        s.alpha.toFixed(2),
        (s.error / Math.max(s.rtnError, Number.MIN_VALUE)).toFixed(3),
      ]);
    for (const u of r.unscaled) rows.push([u.activation, `unscaled (${u.reason})`, u.matmuls.join(' '), '', '']);
    io.out(table(rows));
  }
  io.out('unsmoothed' in report ? w8a8Table(report) : layerTable(report));
  const qBefore = report.layers.reduce((s, l) => s + l.bytesBefore, 0);
  const qAfter = report.layers.reduce((s, l) => s + l.bytesAfter, 0);
  io.out(
    `quantized layers: ${kb(qBefore)} -> ${kb(qAfter)} (${(qBefore / Math.max(qAfter, 1)).toFixed(2)}x); ` +
      `all weights: ${kb(report.bytesBefore)} -> ${kb(report.bytesAfter)} ` +
      `(${(report.bytesBefore / Math.max(report.bytesAfter, 1)).toFixed(2)}x)\n`,
  );
  const gguf = values.out !== undefined && /\.gguf$/i.test(values.out);
  const onnx = values.out !== undefined && /\.onnx$/i.test(values.out);
  if (values.out !== undefined && gguf) {
    if (quant.config.arch !== 'llama') throw usage('--out X.gguf writes LLaMA models only');
    const { llamaGguf } = await import('./frontends/gguf-write.js');
    const { bytes, report: g } = llamaGguf(quant.graph, quant.config, tok, { unsupported: 'f32' });
    writeFileSync(values.out, bytes);
    const types = new Map<string, number>();
    for (const t of g.tensors) types.set(t.type, (types.get(t.type) ?? 0) + 1);
    io.out(
      `GGUF tensors: ${[...types].map(([t, n]) => `${n} ${t}`).join(', ')}` +
        `${g.roundedScales ? `; ${g.roundedScales} block scales rounded to f16` : '; scales exact in f16'}\n`,
    );
    for (const t of g.tensors) if (/dequantized/.test(t.source)) io.out(`  ${t.name}: F32 (${t.source})\n`);
  } else if (values.out !== undefined && onnx) {
    // quantized ops as com.microsoft MatMulNBits / GatherBlockQuantized, W8A8 as DynamicQuantizeLinear + MatMulInteger
    const { exportOnnxFile } = await import('./frontends/onnx/export.js');
    const r = await exportOnnxFile(quant.graph, values.out);
    io.out(`ONNX: ${r.modelBytes} bytes\n`);
  } else if (values.out !== undefined) {
    writeFileSync(values.out, printGraph(quant.graph));
  }

  const { LanguageModelSession } = await import('./generate/lm.js');
  const lmF = await LanguageModelSession.create(base, { backend });
  const lmQ = await LanguageModelSession.create(quant, { backend });
  try {
    const refs: Float32Array[] = [];
    const gots: Float32Array[] = [];
    let vocab = 0;
    for (let s = 0, w = 0; s < ids.length && w < calibWindows; s += per, w++) {
      const chunk = [...(tok.bos !== undefined ? [tok.bos] : []), ...ids.slice(s, s + per)];
      const a = await lmF.logits(chunk);
      const b = await lmQ.logits(chunk);
      vocab = a.shape[1]!;
      refs.push(a.data as Float32Array);
      gots.push(b.data as Float32Array);
    }
    if (values['layer-error'] && refs.length > 0) {
      // each layer alone: its share of the output error (one calibration window)
      const chunk = [...(tok.bos !== undefined ? [tok.bos] : []), ...ids.slice(0, per)];
      const rows = [['layer', 'weight', 'logits rel-L2', 'KL (nats / token)']];
      for (const l of report.layers) {
        const one = loadLanguageModel(modelFile, { tokenizer: values.tokenizer });
        quantizeWith(one.graph, [l.node]);
        const lm = await LanguageModelSession.create(one, { backend });
        try {
          const g = (await lm.logits(chunk)).data as Float32Array;
          const e1 = logitsError([refs[0]!], [g], vocab);
          rows.push([l.node, l.weight, e1.relL2.toExponential(3), e1.kl.toExponential(3)]);
        } finally {
          lm.dispose();
        }
      }
      io.out(
        `output error per layer (only that layer quantized; first calibration window, ${chunk.length - 1} positions):\n`,
      );
      io.out(table(rows));
    }
    const e = logitsError(refs, gots, vocab);
    const where = text !== undefined ? `first half of ${values.text}` : 'a built-in sentence';
    io.out(
      `logits vs f32 (calibration: ${where}, ${refs.length} windows, ${e.positions} positions, on ` +
        `${lmQ.session.backend}): rel-L2 ${e.relL2.toExponential(3)}, KL(f32 || quantized) ` +
        `${e.kl.toExponential(3)} nats / token\n`,
    );
    if (values.eval) {
      const { perplexity } = await import('./generate/text.js');
      const o = { window: Math.min(window, base.config.maxSeq), maxWindows };
      const pf = await perplexity(lmF, tok, evalText, o);
      const pq = await perplexity(lmQ, tok, evalText, o);
      const d = (pq.perplexity / pf.perplexity - 1) * 100;
      io.out(
        `perplexity (evaluation: second half of ${values.text}, ${pf.tokens} tokens in ${pf.windows} windows of ` +
          `${o.window}): f32 ${pf.perplexity.toFixed(4)} -> quantized ${pq.perplexity.toFixed(4)} ` +
          `(${d >= 0 ? '+' : ''}${d.toFixed(2)}%)\n`,
      );
    }
  } finally {
    lmF.dispose();
    lmQ.dispose();
  }
  if (values.out !== undefined) io.out(`wrote ${values.out} (${gguf ? 'GGUF' : onnx ? 'ONNX' : 'kiln IR text'})\n`);
  return 0;
}
