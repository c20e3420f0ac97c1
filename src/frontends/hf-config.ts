/**
 * Hugging Face checkpoints: tensors (from safetensors) + `config.json` → a model config and canonical weights.
 *
 * - `gpt2`: GPT-2 uses Conv1D, whose weights are already [in, out]; names lose the `transformer.` prefix and the
 *   `.weight` of the embeddings. The causal-mask buffers (`attn.bias`, `attn.masked_bias`) and the tied `lm_head`
 *   are dropped.
 * - `llama`: `nn.Linear` weights are [out, in] and are transposed; Q/K are already rotate-halves.
 *
 * Every weight's shape is checked against the config, so a mismatched config.json is a ParseError naming the tensor.
 */
import { ParseError } from '../../ir/errors.js';
import type { Tensor } from '../../ir/tensor.js';
import { weightMap, type Gpt2Config, type LlamaConfig, type ModelConfig, type WeightSource } from '../models/config.js';
import type { SafetensorsFile } from './safetensors.js';
import { transposeLinear } from './weight-layout.js';

export interface HfModel<C extends ModelConfig = ModelConfig> {
  readonly config: C;
  readonly weights: WeightSource;
}

const FORMAT = 'Hugging Face checkpoint';

function bad(message: string, tensor?: string): never {
  throw new ParseError(`${FORMAT}: ${message}`, tensor !== undefined ? { tensor } : { limit: 'config.json' });
}

/** A positive integer field of config.json (or `fallback` when absent). */
function int(cfg: Record<string, unknown>, key: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    bad(
      v === undefined
        ? `config.json has no ${key}`
        : `config.json ${key} = ${JSON.stringify(v)} is not a positive integer`,
    );
  }
  return v;
}

function num(cfg: Record<string, unknown>, key: string, fallback: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    bad(`config.json ${key} = ${JSON.stringify(v)} is not a positive number`);
  return v;
}

function checked(t: Tensor | undefined, name: string, shape: readonly number[]): Tensor {
  if (!t) bad(`missing weight (expected shape [${shape}])`, name);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    bad(`shape [${t.shape}] does not match the config (expected [${shape}])`, name);
  }
  if (t.dtype !== 'f32' && t.dtype !== 'f16' && t.dtype !== 'bf16' && t.dtype !== 'f64') {
    bad(`a weight must be a float tensor, got ${t.dtype}`, name);
  }
  return t;
}

/**
 * Config and canonical weights of a Hugging Face checkpoint. `configJson` is the parsed (or raw text of)
 * config.json; `model_type` selects the mapping (`gpt2`, `llama`).
 *
 * @throws ParseError for a model_type other than gpt2 / llama, a missing or malformed config field, or (naming the
 * tensor) a missing weight, one whose shape contradicts the config, or a non-float weight.
 */
export function hfModel(tensors: ReadonlyMap<string, Tensor> | SafetensorsFile, configJson: unknown): HfModel {
  const map = 'get' in tensors ? tensors : tensors.tensors;
  let cfg = configJson;
  if (typeof cfg === 'string') {
    try {
      cfg = JSON.parse(cfg);
    } catch {
      bad('config.json is not valid JSON');
    }
  }
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) bad('config.json is not an object');
  const c = cfg as Record<string, unknown>;
  switch (c['model_type']) {
    case 'gpt2':
      return gpt2(map, c);
    case 'llama':
    case 'mistral':
      return llama(map, c);
    default:
      throw new ParseError(`${FORMAT}: model_type ${JSON.stringify(c['model_type'])} is not supported (gpt2, llama)`, {
        limit: 'model_type',
      });
  }
}

function gpt2(all: ReadonlyMap<string, Tensor>, c: Record<string, unknown>): HfModel<Gpt2Config> {
  // GPT2LMHeadModel prefixes `transformer.`; GPT2Model does not
  const src = new Map<string, Tensor>();
  for (const [k, t] of all) src.set(k.startsWith('transformer.') ? k.slice('transformer.'.length) : k, t);
  const dim = int(c, 'n_embd');
  const heads = int(c, 'n_head');
  if (dim % heads !== 0) bad(`n_embd ${dim} is not a multiple of n_head ${heads}`);
  const config: Gpt2Config = {
    arch: 'gpt2',
    dim,
    hiddenDim: c['n_inner'] == null ? 4 * dim : int(c, 'n_inner'),
    layers: int(c, 'n_layer'),
    heads,
    vocab: int(c, 'vocab_size'),
    maxSeq: int(c, 'n_positions', c['n_ctx'] as number | undefined),
    normEps: num(c, 'layer_norm_epsilon', 1e-5),
  };
  const { hiddenDim: hidden, vocab, maxSeq } = config;
  const m = new Map<string, Tensor>();
  const put = (canonical: string, hfName: string, shape: number[]) =>
    m.set(canonical, checked(src.get(hfName), hfName, shape));
  put('wte', 'wte.weight', [vocab, dim]);
  put('wpe', 'wpe.weight', [maxSeq, dim]);
  const same = (name: string, shape: number[]) => put(name, name, shape);
  for (let i = 0; i < config.layers; i++) {
    const p = `h.${i}.`;
    same(p + 'ln_1.weight', [dim]);
    same(p + 'ln_1.bias', [dim]);
    same(p + 'attn.c_attn.weight', [dim, 3 * dim]);
    same(p + 'attn.c_attn.bias', [3 * dim]);
    same(p + 'attn.c_proj.weight', [dim, dim]);
    same(p + 'attn.c_proj.bias', [dim]);
    same(p + 'ln_2.weight', [dim]);
    same(p + 'ln_2.bias', [dim]);
    same(p + 'mlp.c_fc.weight', [dim, hidden]);
    same(p + 'mlp.c_fc.bias', [hidden]);
    same(p + 'mlp.c_proj.weight', [hidden, dim]);
    same(p + 'mlp.c_proj.bias', [dim]);
  }
  same('ln_f.weight', [dim]);
  same('ln_f.bias', [dim]);
  return { config, weights: weightMap(m, 'GPT-2 checkpoint') };
}

function llama(all: ReadonlyMap<string, Tensor>, c: Record<string, unknown>): HfModel<LlamaConfig> {
  const dim = int(c, 'hidden_size');
  const heads = int(c, 'num_attention_heads');
  const kvHeads = int(c, 'num_key_value_heads', heads);
  if (dim % heads !== 0 || heads % kvHeads !== 0) bad(`hidden_size ${dim}, ${heads} heads, ${kvHeads} kv heads`);
  const hd = c['head_dim'] == null ? dim / heads : int(c, 'head_dim');
  if (hd % 2 !== 0) bad(`head size ${hd} is odd (RoPE needs pairs)`);
  const hidden = int(c, 'intermediate_size');
  const vocab = int(c, 'vocab_size');
  const layers = int(c, 'num_hidden_layers');
  const hasHead = all.has('lm_head.weight');
  const config: LlamaConfig = {
    arch: 'llama',
    dim,
    hiddenDim: hidden,
    layers,
    heads,
    kvHeads,
    vocab,
    maxSeq: int(c, 'max_position_embeddings', 2048),
    normEps: num(c, 'rms_norm_eps', 1e-6),
    ropeTheta: num(c, 'rope_theta', 10000),
    ...ropeScaling(c['rope_scaling']),
    tiedHead: c['tie_word_embeddings'] === true || !hasHead,
  };
  const m = new Map<string, Tensor>();
  const get = (name: string, shape: number[]) => checked(all.get(name), name, shape);
  const linear = (canonical: string, hfName: string, out: number, inn: number) =>
    m.set(canonical, transposeLinear(get(hfName, [out, inn]), hfName));
  m.set('tok_embeddings', get('model.embed_tokens.weight', [vocab, dim]));
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    const q = `layers.${i}.`;
    m.set(q + 'attention_norm', get(p + 'input_layernorm.weight', [dim]));
    linear(q + 'wq', p + 'self_attn.q_proj.weight', heads * hd, dim);
    linear(q + 'wk', p + 'self_attn.k_proj.weight', kvHeads * hd, dim);
    linear(q + 'wv', p + 'self_attn.v_proj.weight', kvHeads * hd, dim);
    linear(q + 'wo', p + 'self_attn.o_proj.weight', dim, heads * hd);
    m.set(q + 'ffn_norm', get(p + 'post_attention_layernorm.weight', [dim]));
    linear(q + 'w1', p + 'mlp.gate_proj.weight', hidden, dim);
    linear(q + 'w3', p + 'mlp.up_proj.weight', hidden, dim);
    linear(q + 'w2', p + 'mlp.down_proj.weight', dim, hidden);
  }
  m.set('norm', get('model.norm.weight', [dim]));
  if (!config.tiedHead) linear('output', 'lm_head.weight', vocab, dim);
  return { config, weights: weightMap(m, 'LLaMA checkpoint') };
}

function ropeScaling(rs: unknown): Pick<LlamaConfig, 'ropeScaling'> {
  if (rs == null) return {};
  if (typeof rs !== 'object' || Array.isArray(rs)) bad('rope_scaling is not an object');
  const r = rs as Record<string, unknown>;
  const kind = r['rope_type'] ?? r['type'];
  const factor = num(r, 'factor', NaN);
  if (kind === 'linear') return { ropeScaling: { kind: 'linear', factor } };
  if (kind === 'llama3') {
    return {
      ropeScaling: {
        kind: 'llama3',
        factor,
        lowFreqFactor: num(r, 'low_freq_factor', 1),
        highFreqFactor: num(r, 'high_freq_factor', 4),
        originalMaxPositions: int(r, 'original_max_position_embeddings', 8192),
      },
    };
  }
  if (kind === 'default') return {};
  return bad(`rope_scaling type ${JSON.stringify(kind)} is not supported (linear, llama3)`);
}
