/**
 * Pieces shared by the language-model builders (`llama.ts`, `gpt2.ts`): weights taken from a `WeightSource` with
 * their shapes checked, the KV-cache interface every builder exposes, and the RoPE tables.
 *
 * The graph interface of a built LM (one compiled session serves prefill, seq > 1, and decode, seq = 1):
 * - inputs `input_ids` i64 [batch, seq], `position_ids` i64 [batch, seq] (absolute positions of the new tokens),
 *   per layer i `past_key_i` / `past_value_i` [batch, kvHeads, past, headDim] (past may be 0);
 * - outputs `logits` f32 [batch, seq, vocab], per layer `present_key_i` / `present_value_i`
 *   [batch, kvHeads, past + seq, headDim] — feed them back as the next step's `past_*`.
 * The cache has the compute dtype (f32, or f16 when built with `dtype: 'f16'`).
 */
import '../../ir/ops/index.js';
import type { GraphBuilder } from '../../ir/builder.js';
import { KilnError } from '../../ir/errors.js';
import type { Value } from '../../ir/graph.js';
import { fromValues, type Tensor } from '../../ir/tensor.js';
import type { LlamaConfig, WeightSource } from './config.js';

/** Element type the builders compute (and keep the KV cache) in. */
export type LmDtype = 'f32' | 'f16';

export interface LmBuildOptions {
  /** Compute dtype: weights are converted to it; logits stay f32. Default f32. */
  readonly dtype?: LmDtype;
  /**
   * A paged KV cache instead of past / present tensors: per layer `cache_key_i` / `cache_value_i`
   * [blocks, kvHeads, blockSize, headDim] pools and a `block_table` i64 [batch, max_blocks] input; each run writes
   * the new tokens' keys and values into their slots (in place on a device) and returns the pools as
   * `updated_key_i` / `updated_value_i`. Sequences of different lengths then decode as one batch.
   */
  readonly paged?: { readonly blockSize: number };
}

export const cacheKeyName = (layer: number): string => `cache_key_${layer}`;
export const cacheValueName = (layer: number): string => `cache_value_${layer}`;
export const updatedKeyName = (layer: number): string => `updated_key_${layer}`;
export const updatedValueName = (layer: number): string => `updated_value_${layer}`;

/**
 * Paged causal attention: q [batch, seq, heads·hd], k / v [batch, seq, kvHeads·hd]; the new keys / values are written
 * into the layer's pools at their positions (`kv_cache_write`), then each query attends to its sequence's keys at
 * positions ≤ its own through the block table (`paged_attention`). Returns y [batch, seq, heads·hd] and the pools.
 */
export function pagedAttention(
  b: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  cache: KvPair,
  blockTable: Value,
  positions: Value,
  heads: number,
  kvHeads: number,
  hd: number,
): { y: Value; updated: KvPair } {
  // [batch, seq, n·hd] → [batch, n, seq, hd]
  const split = (x: Value, n: number) =>
    b.op('transpose', [b.op('reshape', [x, b.const('i64', [0, 0, n, hd])])], { perm: [0, 2, 1, 3] });
  const key = b.op('kv_cache_write', [cache.key, split(k, kvHeads), blockTable, positions]);
  const value = b.op('kv_cache_write', [cache.value, split(v, kvHeads), blockTable, positions]);
  const o = b.op('paged_attention', [split(q, heads), key, value, blockTable, positions]);
  const y = b.op('reshape', [b.op('transpose', [o], { perm: [0, 2, 1, 3] }), b.const('i64', [0, 0, heads * hd])]);
  return { y, updated: { key, value } };
}

export const pastKeyName = (layer: number): string => `past_key_${layer}`;
export const pastValueName = (layer: number): string => `past_value_${layer}`;
export const presentKeyName = (layer: number): string => `present_key_${layer}`;
export const presentValueName = (layer: number): string => `present_value_${layer}`;

/** Positive-integer config fields, checked up front so a bad config is one typed error, not a NaN graph. */
export function checkDims(what: string, fields: Readonly<Record<string, number>>): void {
  for (const [k, n] of Object.entries(fields)) {
    if (!Number.isInteger(n) || n <= 0)
      throw new KilnError('shape', `${what} config: ${k} must be a positive integer, got ${n}`);
  }
}

/** The weights of one model, converted to the compute dtype and added to the graph under their canonical names. */
export class WeightTaker {
  constructor(
    private readonly b: GraphBuilder,
    private readonly src: WeightSource,
    private readonly dtype: LmDtype,
    private readonly what: string,
  ) {}

  /** `name` as a graph constant; its shape must be `shape` (a typed error naming the tensor otherwise). */
  take(name: string, shape: readonly number[]): Value {
    const t = this.src.get(name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new KilnError('shape', `${this.what} weight has shape [${t.shape}], the config needs [${shape}]`, {
        tensor: name,
      });
    }
    return this.b.weight(name, this.convert(t));
  }

  private convert(t: Tensor): Tensor {
    // Same dtype: the caller's tensor is shared, not copied (weights can be large).
    return t.dtype === this.dtype ? t : fromValues(this.dtype, t.shape, t.data);
  }
}

/** A layer's key and value caches. */
export interface KvPair {
  readonly key: Value;
  readonly value: Value;
}

/** Declares layer i's `past_key_i` / `past_value_i` inputs. */
export function pastInputs(b: GraphBuilder, layer: number, kvHeads: number, headDim: number, dtype: LmDtype): KvPair {
  const shape = ['batch', kvHeads, 'past', headDim];
  return { key: b.input(pastKeyName(layer), dtype, shape), value: b.input(pastValueName(layer), dtype, shape) };
}

/**
 * Causal self-attention with the cache: q [batch, seq, heads·hd], k / v [batch, seq, kvHeads·hd] (3-D, heads given as
 * attributes, so no transposes). ONNX `is_causal` aligns the queries after the past (query t sees every past key and
 * the new keys up to t), exactly the prefill / decode mask. Returns y [batch, seq, heads·hd] and the present caches.
 */
export function cachedAttention(
  b: GraphBuilder,
  q: Value,
  k: Value,
  v: Value,
  past: KvPair,
  heads: number,
  kvHeads: number,
): { y: Value; present: KvPair } {
  const [y, presentK, presentV] = b.opN(
    'attention',
    [q, k, v, null, past.key, past.value],
    { is_causal: true, q_num_heads: heads, kv_num_heads: kvHeads },
    3,
  );
  return { y: y!, present: { key: presentK!, value: presentV! } };
}

/** Declares the outputs: `logits` first, then every layer's present_key_i / present_value_i. */
export function lmOutputs(b: GraphBuilder, logits: Value, presents: readonly KvPair[]): void {
  b.output(logits, 'logits');
  presents.forEach((p, i) => {
    b.output(p.key, presentKeyName(i));
    b.output(p.value, presentValueName(i));
  });
}

/** Inverse frequencies θ^(−2i/hd), i < hd/2, with llama3-style scaling when the config asks for it (float64). */
export function ropeInvFreq(config: LlamaConfig): Float64Array {
  const hd = config.dim / config.heads;
  const half = hd / 2;
  const inv = new Float64Array(half);
  const s = config.ropeScaling;
  for (let i = 0; i < half; i++) {
    const f = Math.pow(config.ropeTheta, (-2 * i) / hd);
    if (s?.kind !== 'llama3') {
      inv[i] = f;
      continue;
    }
    // Hugging Face's _compute_llama3_parameters: long wavelengths slowed by `factor`, short ones kept, the band in
    // between interpolated linearly in (original context / wavelength).
    const wavelen = (2 * Math.PI) / f;
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    const scaled = wavelen > lowWavelen ? f / s.factor : f;
    if (wavelen < highWavelen || wavelen > lowWavelen) {
      inv[i] = scaled;
    } else {
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = ((1 - smooth) * scaled) / s.factor + smooth * scaled;
    }
  }
  return inv;
}

/** cos / sin caches [maxSeq, hd/2] of the angles pos·invFreq (pos / factor under linear scaling), in float64. */
export function ropeCaches(config: LlamaConfig): { cos: Float64Array; sin: Float64Array; half: number } {
  const inv = ropeInvFreq(config);
  const half = inv.length;
  const posScale = config.ropeScaling?.kind === 'linear' ? 1 / config.ropeScaling.factor : 1;
  const cos = new Float64Array(config.maxSeq * half);
  const sin = new Float64Array(config.maxSeq * half);
  for (let p = 0; p < config.maxSeq; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * posScale * inv[i]!;
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin, half };
}

/**
 * Per-layer attention with whichever cache the build asked for: past / present tensors, or (with `paged`) the
 * layer's block pools. Collects the caches to output; `finish` declares `logits` and them.
 */
export class LayerCaches {
  private readonly caches: KvPair[] = [];
  private readonly blockTable: Value | undefined;
  constructor(
    private readonly b: GraphBuilder,
    private readonly opts: LmBuildOptions,
    private readonly heads: number,
    private readonly kvHeads: number,
    private readonly hd: number,
    private readonly positions: Value,
  ) {
    if (opts.paged) checkDims('paged cache', { blockSize: opts.paged.blockSize });
    this.blockTable = opts.paged ? b.input('block_table', 'i64', ['batch', 'max_blocks']) : undefined;
  }

  attend(layer: number, q: Value, k: Value, v: Value): Value {
    const { b, heads, kvHeads, hd } = this;
    const dtype = this.opts.dtype ?? 'f32';
    if (this.opts.paged) {
      const shape = ['blocks', kvHeads, this.opts.paged.blockSize, hd];
      const pool = {
        key: b.input(cacheKeyName(layer), dtype, shape),
        value: b.input(cacheValueName(layer), dtype, shape),
      };
      const r = pagedAttention(b, q, k, v, pool, this.blockTable!, this.positions, heads, kvHeads, hd);
      this.caches.push(r.updated);
      return r.y;
    }
    const r = cachedAttention(b, q, k, v, pastInputs(b, layer, kvHeads, hd, dtype), heads, kvHeads);
    this.caches.push(r.present);
    return r.y;
  }

  finish(logits: Value): void {
    if (!this.opts.paged) return lmOutputs(this.b, logits, this.caches);
    this.b.output(logits, 'logits');
    this.caches.forEach((p, i) => {
      this.b.output(p.key, updatedKeyName(i));
      this.b.output(p.value, updatedValueName(i));
    });
  }
}
