/**
 * A built-in tiny GPT-style decoder (pre-LayerNorm blocks, causal multi-head attention, GELU MLP, tied-free LM head)
 * written with the builder from primitive ops — the default workload of `kiln demo` and a fusion target for passes.
 */
import '../../ir/ops/index.js';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph, Value } from '../../ir/graph.js';
import { makeTensor } from '../../ir/tensor.js';
import { randn, rng } from '../util-random.js';

export interface TinyGptConfig {
  vocab: number;
  hidden: number;
  heads: number;
  layers: number;
  ffn: number;
  seed: number;
}

export const TINY_GPT: TinyGptConfig = { vocab: 256, hidden: 64, heads: 4, layers: 2, ffn: 256, seed: 7 };

/** Graph inputs: `input_ids` i64[batch, seq]; output: `logits` f32[batch, seq, vocab]. */
export function buildTinyGpt(cfg: TinyGptConfig = TINY_GPT): Graph {
  const { vocab, hidden: d, heads, layers, ffn } = cfg;
  const hd = d / heads;
  const next = rng(cfg.seed);
  const b = new GraphBuilder('tiny_gpt');
  const w = (name: string, shape: number[], std = 0.02) =>
    b.weight(
      name,
      makeTensor(
        'f32',
        shape,
        randn(
          next,
          shape.reduce((a, c) => a * c, 1),
          std,
        ),
      ),
    );
  const ones = (name: string, n: number) => b.weight(name, makeTensor('f32', [n], new Float64Array(n).fill(1)));
  const zeros = (name: string, n: number) => b.weight(name, makeTensor('f32', [n], new Float64Array(n)));

  const ids = b.input('input_ids', 'i64', ['batch', 'seq']);
  let x = b.gather(w('wte', [vocab, d], 0.5), ids, 0); // [batch, seq, d]
  const heads4 = (t: Value) => b.transpose(b.reshape(t, [0, 0, heads, hd]), [0, 2, 1, 3]); // [b, h, s, hd]
  for (let l = 0; l < layers; l++) {
    const p = `h${l}.`;
    const h = b.layerNorm(x, ones(p + 'ln1.g', d), zeros(p + 'ln1.b', d));
    const qkv = b.add(b.matmul(h, w(p + 'attn.wqkv', [d, 3 * d])), zeros(p + 'attn.bqkv', 3 * d));
    const [q, k, v] = b.split(qkv, [d, d, d], -1);
    const scores = b.mul(
      b.matmul(heads4(q!), b.transpose(heads4(k!), [0, 1, 3, 2])),
      b.const('f32', [1 / Math.sqrt(hd)], [], 'scale'),
    );
    // causal mask: key j is visible to query i when j <= i
    const seqLen = b.op('shape', [ids], { start: 1, end: 2 });
    const pos = b.op('range', [
      b.const('i64', [0], []),
      b.op('squeeze', [seqLen], { axes: [0] }),
      b.const('i64', [1], []),
    ]);
    const visible = b.op('less_equal', [
      b.op('unsqueeze', [pos], { axes: [0] }),
      b.op('unsqueeze', [pos], { axes: [1] }),
    ]);
    const masked = b.op('where', [visible, scores, b.const('f32', [-1e9], [], 'neg')]);
    const attn = b.matmul(b.softmax(masked, -1), heads4(v!)); // [b, h, s, hd]
    const merged = b.reshape(b.transpose(attn, [0, 2, 1, 3]), [0, 0, d]);
    x = b.add(x, b.add(b.matmul(merged, w(p + 'attn.wo', [d, d])), zeros(p + 'attn.bo', d)));
    const h2 = b.layerNorm(x, ones(p + 'ln2.g', d), zeros(p + 'ln2.b', d));
    const up = b.gelu(b.add(b.matmul(h2, w(p + 'mlp.wup', [d, ffn])), zeros(p + 'mlp.bup', ffn)));
    x = b.add(x, b.add(b.matmul(up, w(p + 'mlp.wdown', [ffn, d])), zeros(p + 'mlp.bdown', d)));
  }
  const hf = b.layerNorm(x, ones('lnf.g', d), zeros('lnf.b', d));
  b.output(b.matmul(hf, w('lm_head', [d, vocab])), 'logits');
  return b.build();
}
