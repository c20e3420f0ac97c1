/**
 * A tiny LLaMA written as GGUF with every ggml block format (one per weight; dims 256 so the K-quants' 256-element
 * super-blocks fit): the f32 builder model, the GGUF bytes, and the loaded packed graph. Tied head optional (the
 * embedding table then also serves the head through matmul_ggml).
 */
import '../../ir/index.js';
import type { Graph } from '../../ir/graph.js';
import type { GgmlFormat } from '../../ir/ops/ggml.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { ggufModel, parseGguf, type GgufModel } from '../../src/frontends/gguf.js';
import { llamaGguf, type LlamaGgufReport } from '../../src/frontends/gguf-write.js';
import { weightMap, type LlamaConfig } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';

export const GGML_MODEL_FORMATS: Record<string, GgmlFormat> = {
  'token_embd.weight': 'Q6_K',
  'blk.0.attn_q.weight': 'Q4_K',
  'blk.0.attn_k.weight': 'Q5_K',
  'blk.0.attn_v.weight': 'Q8_0',
  'blk.0.attn_output.weight': 'Q4_0',
  'blk.0.ffn_gate.weight': 'Q4_1',
  'blk.0.ffn_up.weight': 'Q5_0',
  'blk.0.ffn_down.weight': 'Q5_1',
  'output.weight': 'Q6_K',
};

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface GgmlModel {
  config: LlamaConfig;
  bytes: Uint8Array;
  report: LlamaGgufReport;
  loaded: GgufModel;
  /** Built from the GGUF: the quantized weights as matmul_ggml / get_rows_ggml. */
  packed: Graph;
  /** Built from the GGUF with the dequantized f32 weights (no packed ops). */
  plain: Graph;
}

export function ggmlModel(
  tiedHead = false,
  seed = 7,
  formats: Record<string, GgmlFormat> = GGML_MODEL_FORMATS,
): GgmlModel {
  const config: LlamaConfig = {
    arch: 'llama',
    dim: 256,
    hiddenDim: 256,
    layers: 1,
    heads: 4,
    kvHeads: 2,
    vocab: 40,
    maxSeq: 16,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedHead,
  };
  const r = rng(seed);
  const hd = config.dim / config.heads;
  const m = new Map<string, Tensor>();
  const rand = (shape: number[], s = 0.1) =>
    makeTensor(
      'f32',
      shape,
      Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => (r() - 0.5) * s),
    );
  m.set('tok_embeddings', rand([config.vocab, config.dim], 1));
  m.set('layers.0.attention_norm', rand([config.dim], 2));
  m.set('layers.0.ffn_norm', rand([config.dim], 2));
  m.set('norm', rand([config.dim], 2));
  m.set('layers.0.wq', rand([256, 256]));
  m.set('layers.0.wk', rand([256, 2 * hd]));
  m.set('layers.0.wv', rand([256, 2 * hd]));
  m.set('layers.0.wo', rand([256, 256]));
  for (const k of ['w1', 'w3', 'w2']) m.set(`layers.0.${k}`, rand([256, 256]));
  if (!tiedHead) m.set('output', rand([256, config.vocab]));
  const f32 = buildLlama(config, weightMap(m));
  const { bytes, report } = llamaGguf(f32, config, undefined, { requantize: (t) => formats[t] });
  const loaded = ggufModel(parseGguf(bytes));
  const cfg = loaded.config as LlamaConfig;
  return {
    config,
    bytes,
    report,
    loaded,
    packed: buildLlama(cfg, loaded.weights),
    plain: buildLlama(cfg, { ...loaded.weights, finishGraph: undefined }),
  };
}

/** Feeds for a prefill of `ids` (batch 1, empty caches). */
export function ggmlModelFeeds(graph: Graph, ids: number[]): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {
    input_ids: makeTensor('i64', [1, ids.length], ids),
    position_ids: makeTensor(
      'i64',
      [1, ids.length],
      ids.map((_, i) => i),
    ),
  };
  for (const inp of graph.inputs) {
    if (inp.name in feeds) continue;
    const shape = inp.type.shape.map((d) => (typeof d === 'number' ? d : d === 'batch' ? 1 : 0));
    feeds[inp.name] = makeTensor(inp.type.dtype, shape, []);
  }
  return feeds;
}
