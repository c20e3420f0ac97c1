/**
 * What a language-model builder needs: a config and a weight source with canonical tensor names. Loaders
 * (llama2.c, GGUF, safetensors + config.json) produce these; builders (`llama.ts`, `gpt2.ts`) consume them.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import type { Tensor } from '../../ir/tensor.js';

/** The LLaMA family: RMS norm, RoPE, grouped-query attention, SwiGLU, tied or separate head. */
export interface LlamaConfig {
  readonly arch: 'llama';
  readonly dim: number;
  /** SwiGLU hidden size. */
  readonly hiddenDim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly vocab: number;
  /** Longest sequence the position tables cover. */
  readonly maxSeq: number;
  readonly normEps: number;
  readonly ropeTheta: number;
  /** Optional RoPE scaling: linear (positions divided by factor) or llama3-style frequency scaling. */
  readonly ropeScaling?:
    | { readonly kind: 'linear'; readonly factor: number }
    | {
        readonly kind: 'llama3';
        readonly factor: number;
        readonly lowFreqFactor: number;
        readonly highFreqFactor: number;
        readonly originalMaxPositions: number;
      };
  /** Output head shares the token embedding. */
  readonly tiedHead: boolean;
}

/** GPT-2: layer norm, learned positions, GELU (tanh), tied head. */
export interface Gpt2Config {
  readonly arch: 'gpt2';
  readonly dim: number;
  readonly hiddenDim: number;
  readonly layers: number;
  readonly heads: number;
  readonly vocab: number;
  readonly maxSeq: number;
  readonly normEps: number;
}

export type ModelConfig = LlamaConfig | Gpt2Config;

/**
 * Weights by canonical name (row-major, shapes as the builder uses them: a linear layer's weight is [in, out], so
 * `y = x · W`). Canonical names:
 *
 * LLaMA: `tok_embeddings` [vocab, dim]; per layer i: `layers.i.attention_norm` [dim], `layers.i.wq` [dim, heads·hd],
 * `layers.i.wk` / `layers.i.wv` [dim, kvHeads·hd], `layers.i.wo` [heads·hd, dim], `layers.i.ffn_norm` [dim],
 * `layers.i.w1` (gate) / `layers.i.w3` (up) [dim, hidden], `layers.i.w2` (down) [hidden, dim]; `norm` [dim];
 * `output` [dim, vocab] unless tied.
 *
 * GPT-2: `wte` [vocab, dim], `wpe` [maxSeq, dim]; per layer i: `h.i.ln_1.weight` / `h.i.ln_1.bias` [dim],
 * `h.i.attn.c_attn.weight` [dim, 3·dim], `h.i.attn.c_attn.bias` [3·dim], `h.i.attn.c_proj.weight` [dim, dim],
 * `h.i.attn.c_proj.bias` [dim], `h.i.ln_2.weight` / `.bias`, `h.i.mlp.c_fc.weight` [dim, hidden], `h.i.mlp.c_fc.bias`,
 * `h.i.mlp.c_proj.weight` [hidden, dim], `h.i.mlp.c_proj.bias`; `ln_f.weight` / `ln_f.bias`.
 *
 * Q/K weights of LLaMA are in the "rotate halves" RoPE convention (pairs (i, i + hd/2)), as Hugging Face stores them;
 * a loader whose source uses interleaved pairs (llama2.c, GGUF) permutes them on load.
 */
export interface WeightSource {
  /** The tensor, or a typed error naming it when it is missing. */
  get(name: string): Tensor;
  /** Whether a tensor of that name exists (no error when it does not). */
  has(name: string): boolean;
  /** Every tensor name the source holds. */
  names(): readonly string[];
  /**
   * Called by the builders on the finished graph: a source whose tensors stand for packed weights swaps their uses
   * for the packed ops (GGUF block formats: `src/frontends/gguf-ggml.ts`).
   */
  finishGraph?(graph: Graph): void;
}

/** A WeightSource over a map. */
export function weightMap(m: ReadonlyMap<string, Tensor>, what = 'model'): WeightSource {
  return {
    get(name) {
      const t = m.get(name);
      if (!t) throw new KilnError('runtime', `${what} has no weight`, { tensor: name });
      return t;
    },
    has: (name) => m.has(name),
    names: () => [...m.keys()],
  };
}
