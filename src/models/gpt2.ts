/**
 * GPT-2 as a kiln graph: pre-LayerNorm blocks, learned positions (rows of `wpe` gathered by `position_ids`), causal
 * multi-head attention with a KV cache, GELU (tanh) MLP, head tied to `wte`. Same graph interface as the LLaMA
 * builder (see `lm.ts`), with kvHeads = heads.
 */
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph, Value } from '../../ir/graph.js';
import type { Gpt2Config, WeightSource } from './config.js';
import { checkDims, LayerCaches, WeightTaker, type LmBuildOptions } from './lm.js';

/**
 * Build GPT-2 from canonical weights (see `config.ts`): `input_ids` / `position_ids` / `past_*` in, `logits` /
 * `present_*` out (or a paged cache with `opts.paged`); f32 unless `opts.dtype`.
 *
 * @throws KilnError (code `shape`) for an inconsistent config (non-positive sizes, heads not dividing dim, eps ≤ 0)
 * or a weight whose shape the config contradicts (naming the tensor); (code `runtime`) naming a weight the source
 * lacks.
 */
export function buildGpt2(config: Gpt2Config, weights: WeightSource, opts: LmBuildOptions = {}): Graph {
  const { dim, hiddenDim, layers, heads, vocab, maxSeq, normEps: eps } = config;
  checkDims('gpt2', { dim, hiddenDim, layers, heads, vocab, maxSeq });
  if (dim % heads !== 0) throw new KilnError('shape', `gpt2 config: heads ${heads} must divide dim ${dim}`);
  if (!(eps > 0)) throw new KilnError('shape', 'gpt2 config: normEps must be > 0');
  const dtype = opts.dtype ?? 'f32';
  const hd = dim / heads;
  const b = new GraphBuilder('gpt2');
  const w = new WeightTaker(b, weights, dtype, 'gpt2');
  const linear = (x: Value, p: string, nIn: number, nOut: number) =>
    b.add(b.matmul(x, w.take(`${p}.weight`, [nIn, nOut])), w.take(`${p}.bias`, [nOut]));
  const ln = (x: Value, p: string) => b.layerNorm(x, w.take(`${p}.weight`, [dim]), w.take(`${p}.bias`, [dim]), eps);

  const ids = b.input('input_ids', 'i64', ['batch', 'seq']);
  const pos = b.input('position_ids', 'i64', ['batch', 'seq']);
  const wte = w.take('wte', [vocab, dim]);
  let x = b.add(b.gather(wte, ids, 0), b.gather(w.take('wpe', [maxSeq, dim]), pos, 0)); // [batch, seq, dim]
  const caches = new LayerCaches(b, opts, heads, heads, hd, pos);
  for (let l = 0; l < layers; l++) {
    const p = `h.${l}.`;
    const qkv = linear(ln(x, p + 'ln_1'), p + 'attn.c_attn', dim, 3 * dim);
    const [q, k, v] = b.split(qkv, [dim, dim, dim], -1);
    const y = caches.attend(l, q!, k!, v!);
    x = b.add(x, linear(y, p + 'attn.c_proj', dim, dim));
    const up = b.gelu(linear(ln(x, p + 'ln_2'), p + 'mlp.c_fc', dim, hiddenDim), 'tanh');
    x = b.add(x, linear(up, p + 'mlp.c_proj', hiddenDim, dim));
  }
  // tied head: logits = ln_f(x) · wteᵀ, contracted against the table's rows (no transposed copy)
  let logits = b.op('einsum', [ln(x, 'ln_f'), wte], { equation: 'bsd,vd->bsv' });
  if (dtype !== 'f32') logits = b.cast(logits, 'f32');
  caches.finish(logits);
  return b.build();
}
