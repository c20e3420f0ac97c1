/**
 * The LLaMA family as a kiln graph: RMS norm, RoPE (rotate-halves pairs, host-computed cos / sin tables),
 * grouped-query attention with a KV cache, SwiGLU FFN, tied or separate output head. The graph interface (inputs
 * `input_ids`, `position_ids`, `past_key_i`, `past_value_i`; outputs `logits`, `present_key_i`, `present_value_i`)
 * is described in `lm.ts`.
 */
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph.js';
import { fromValues } from '../../ir/tensor.js';
import type { LlamaConfig, WeightSource } from './config.js';
import { checkDims, LayerCaches, ropeCaches, WeightTaker, type LmBuildOptions } from './lm.js';

/** Head size of a LLaMA config (dim / heads). */
export const llamaHeadDim = (c: LlamaConfig): number => c.dim / c.heads;

function checkLlamaConfig(c: LlamaConfig): void {
  const { dim, hiddenDim, layers, heads, kvHeads, vocab, maxSeq } = c;
  checkDims('llama', { dim, hiddenDim, layers, heads, kvHeads, vocab, maxSeq });
  const hd = dim / heads;
  if (!Number.isInteger(hd) || hd % 2 !== 0) {
    throw new KilnError('shape', `llama config: dim ${dim} / heads ${heads} must be an even head size for RoPE`);
  }
  if (heads % kvHeads !== 0)
    throw new KilnError('shape', `llama config: kvHeads ${kvHeads} must divide heads ${heads}`);
  if (!(c.normEps > 0) || !(c.ropeTheta > 0))
    throw new KilnError('shape', 'llama config: normEps and ropeTheta must be > 0');
  const s = c.ropeScaling;
  if (s && !(s.factor > 0)) throw new KilnError('shape', 'llama config: ropeScaling.factor must be > 0');
  if (s?.kind === 'llama3' && !(s.highFreqFactor > s.lowFreqFactor && s.lowFreqFactor > 0)) {
    throw new KilnError('shape', 'llama config: llama3 RoPE scaling needs highFreqFactor > lowFreqFactor > 0');
  }
}

/**
 * Build a LLaMA-family decoder from canonical weights (see `config.ts`): `input_ids` / `position_ids` / `past_*` in,
 * `logits` / `present_*` out (or a paged cache with `opts.paged`); f32 unless `opts.dtype`.
 *
 * @throws KilnError (code `shape`) for an inconsistent config (non-positive sizes, an odd head size, kvHeads not
 * dividing heads, non-positive eps / theta / RoPE scaling factors) or a weight whose shape the config contradicts
 * (naming the tensor); (code `runtime`) naming a weight the source lacks.
 */
export function buildLlama(config: LlamaConfig, weights: WeightSource, opts: LmBuildOptions = {}): Graph {
  checkLlamaConfig(config);
  const dtype = opts.dtype ?? 'f32';
  const { dim, hiddenDim, heads, kvHeads, vocab, normEps: eps } = config;
  const hd = llamaHeadDim(config);
  const b = new GraphBuilder('llama');
  const w = new WeightTaker(b, weights, dtype, 'llama');

  const ids = b.input('input_ids', 'i64', ['batch', 'seq']);
  const pos = b.input('position_ids', 'i64', ['batch', 'seq']);
  const caches = new LayerCaches(b, opts, heads, kvHeads, hd, pos);
  const { cos, sin, half } = ropeCaches(config);
  const cosV = b.weight('rope_cos', fromValues(dtype, [config.maxSeq, half], cos));
  const sinV = b.weight('rope_sin', fromValues(dtype, [config.maxSeq, half], sin));
  // rotate-halves pairs (i, i + hd/2): the canonical weight convention
  const rope = (x: Value, n: number) =>
    b.op('rotary_embedding', [x, cosV, sinV, pos], { interleaved: false, num_heads: n });

  const emb = w.take('tok_embeddings', [vocab, dim]);
  let x = b.gather(emb, ids, 0); // [batch, seq, dim]
  for (let l = 0; l < config.layers; l++) {
    const p = `layers.${l}.`;
    const h = b.rmsNorm(x, w.take(p + 'attention_norm', [dim]), eps);
    const q = rope(b.matmul(h, w.take(p + 'wq', [dim, heads * hd])), heads);
    const k = rope(b.matmul(h, w.take(p + 'wk', [dim, kvHeads * hd])), kvHeads);
    const v = b.matmul(h, w.take(p + 'wv', [dim, kvHeads * hd]));
    const y = caches.attend(l, q, k, v);
    x = b.add(x, b.matmul(y, w.take(p + 'wo', [heads * hd, dim])));
    const h2 = b.rmsNorm(x, w.take(p + 'ffn_norm', [dim]), eps);
    const gate = b.silu(b.matmul(h2, w.take(p + 'w1', [dim, hiddenDim])));
    const up = b.matmul(h2, w.take(p + 'w3', [dim, hiddenDim]));
    x = b.add(x, b.matmul(b.mul(gate, up), w.take(p + 'w2', [hiddenDim, dim])));
  }
  const xf = b.rmsNorm(x, w.take('norm', [dim]), eps);
  // tied head: contract with the embedding's rows directly (einsum), no transposed copy of the table
  let logits = config.tiedHead
    ? b.op('einsum', [xf, emb], { equation: 'bsd,vd->bsv' })
    : b.matmul(xf, w.take('output', [dim, vocab]));
  if (dtype !== 'f32') logits = b.cast(logits, 'f32');
  caches.finish(logits);
  const graph = b.build();
  weights.finishGraph?.(graph);
  return graph;
}
