/**
 * An independent float64 forward of the LLaMA and GPT-2 families in plain TypeScript loops (no kiln graph, no op
 * registry): the textbook equations, one token and one head at a time, over the whole sequence (positions 0..T-1,
 * no cache). The expected values of the model-builder tests come from here. Also: random weights for a config, and a
 * driver that runs prefill + token-by-token decode through any `run(feeds)` (interpreter or device session).
 */
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { Gpt2Config, LlamaConfig, WeightSource } from '../../src/models/config.js';
import { weightMap } from '../../src/models/config.js';
import { randn, rng } from '../../src/util-random.js';

type Vec = Float64Array;

/** y = x · W for W [in, out] row-major (values read as float64), plus an optional bias. */
function linear(x: Vec, w: Tensor, bias?: Tensor): Vec {
  const [nIn, nOut] = w.shape as [number, number];
  const y = new Float64Array(nOut);
  for (let i = 0; i < nIn; i++) {
    const xi = x[i]!;
    for (let j = 0; j < nOut; j++) y[j] += xi * w.data[i * nOut + j]!;
  }
  if (bias) for (let j = 0; j < nOut; j++) y[j] += bias.data[j]!;
  return y;
}

function rmsNorm(x: Vec, g: Tensor, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * g.data[i]!);
}

function layerNorm(x: Vec, g: Tensor, bias: Tensor, eps: number): Vec {
  let mean = 0;
  for (const v of x) mean += v;
  mean /= x.length;
  let variance = 0;
  for (const v of x) variance += (v - mean) * (v - mean);
  variance /= x.length;
  const r = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * r * g.data[i]! + bias.data[i]!);
}

/** Row `i` of a [rows, n] table. */
const row = (t: Tensor, i: number): Vec => Float64Array.from(t.data.subarray(i * t.shape[1]!, (i + 1) * t.shape[1]!));

/**
 * Causal multi-head attention over a sequence. q[t] has `heads` heads of size hd, k[t] / v[t] have `kvHeads`;
 * query head h reads kv head ⌊h / (heads / kvHeads)⌋ and keys 0..t.
 */
function causalAttention(q: Vec[], k: Vec[], v: Vec[], heads: number, kvHeads: number, hd: number): Vec[] {
  const perKv = heads / kvHeads;
  return q.map((qt, t) => {
    const out = new Float64Array(heads * hd);
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / perKv);
      const scores: number[] = [];
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += qt[h * hd + d]! * k[s]![kvh * hd + d]!;
        scores.push(dot / Math.sqrt(hd));
      }
      const m = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - m));
      const z = e.reduce((a, c) => a + c, 0);
      for (let s = 0; s <= t; s++) {
        for (let d = 0; d < hd; d++) out[h * hd + d] += (e[s]! / z) * v[s]![kvh * hd + d]!;
      }
    }
    return out;
  });
}

/**
 * RoPE frequencies written after Meta's llama3 `apply_scaling` (a per-frequency if / else-if / else), a different
 * formulation from the builder's. Linear scaling divides the angle (position) by the factor.
 */
function ropeFrequencies(c: LlamaConfig): number[] {
  const hd = c.dim / c.heads;
  const freqs: number[] = [];
  for (let i = 0; i < hd; i += 2) freqs.push(1 / c.ropeTheta ** (i / hd));
  const s = c.ropeScaling;
  if (!s) return freqs;
  if (s.kind === 'linear') return freqs.map((f) => f / s.factor);
  const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositions / s.highFreqFactor;
  return freqs.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** Rotates each head's pairs (i, i + hd/2) by pos·freq[i], as the complex product (a + ib)·e^{iθ}. */
function rope(x: Vec, pos: number, nHeads: number, hd: number, freqs: readonly number[]): Vec {
  const y = Float64Array.from(x);
  const half = hd / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const re = x[h * hd + i]!;
      const im = x[h * hd + i + half]!;
      const th = pos * freqs[i]!;
      y[h * hd + i] = re * Math.cos(th) - im * Math.sin(th);
      y[h * hd + i + half] = re * Math.sin(th) + im * Math.cos(th);
    }
  }
  return y;
}

/** Logits [T][vocab] of one token sequence (positions 0..T-1). */
export function llamaForward(c: LlamaConfig, w: WeightSource, tokens: readonly number[]): Vec[] {
  const hd = c.dim / c.heads;
  const freqs = ropeFrequencies(c);
  const emb = w.get('tok_embeddings');
  let x = tokens.map((t) => row(emb, t));
  for (let l = 0; l < c.layers; l++) {
    const W = (n: string) => w.get(`layers.${l}.${n}`);
    const h = x.map((xt) => rmsNorm(xt, W('attention_norm'), c.normEps));
    const q = h.map((ht, t) => rope(linear(ht, W('wq')), t, c.heads, hd, freqs));
    const k = h.map((ht, t) => rope(linear(ht, W('wk')), t, c.kvHeads, hd, freqs));
    const v = h.map((ht) => linear(ht, W('wv')));
    const att = causalAttention(q, k, v, c.heads, c.kvHeads, hd);
    x = x.map((xt, t) => xt.map((e, i) => e + linear(att[t]!, W('wo'))[i]!));
    x = x.map((xt) => {
      const hn = rmsNorm(xt, W('ffn_norm'), c.normEps);
      const g = linear(hn, W('w1'));
      const u = linear(hn, W('w3'));
      const act = g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * u[i]!);
      const down = linear(act, W('w2'));
      return xt.map((e, i) => e + down[i]!);
    });
  }
  return x.map((xt) => {
    const hn = rmsNorm(xt, w.get('norm'), c.normEps);
    if (!c.tiedHead) return linear(hn, w.get('output'));
    const logits = new Float64Array(c.vocab);
    for (let t = 0; t < c.vocab; t++) {
      for (let d = 0; d < c.dim; d++) logits[t] += hn[d]! * emb.data[t * c.dim + d]!;
    }
    return logits;
  });
}

const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** GPT-2 logits [T][vocab] of one token sequence (positions 0..T-1). */
export function gpt2Forward(c: Gpt2Config, w: WeightSource, tokens: readonly number[]): Vec[] {
  const hd = c.dim / c.heads;
  const wte = w.get('wte');
  const wpe = w.get('wpe');
  let x = tokens.map((tok, t) => row(wte, tok).map((e, i) => e + wpe.data[t * c.dim + i]!));
  for (let l = 0; l < c.layers; l++) {
    const W = (n: string) => w.get(`h.${l}.${n}`);
    const qkv = x.map((xt) =>
      linear(
        layerNorm(xt, W('ln_1.weight'), W('ln_1.bias'), c.normEps),
        W('attn.c_attn.weight'),
        W('attn.c_attn.bias'),
      ),
    );
    const q = qkv.map((r) => r.slice(0, c.dim));
    const k = qkv.map((r) => r.slice(c.dim, 2 * c.dim));
    const v = qkv.map((r) => r.slice(2 * c.dim));
    const att = causalAttention(q, k, v, c.heads, c.heads, hd);
    x = x.map((xt, t) => {
      const a = linear(att[t]!, W('attn.c_proj.weight'), W('attn.c_proj.bias'));
      return xt.map((e, i) => e + a[i]!);
    });
    x = x.map((xt) => {
      const hn = layerNorm(xt, W('ln_2.weight'), W('ln_2.bias'), c.normEps);
      const up = linear(hn, W('mlp.c_fc.weight'), W('mlp.c_fc.bias')).map(geluTanh);
      const down = linear(up, W('mlp.c_proj.weight'), W('mlp.c_proj.bias'));
      return xt.map((e, i) => e + down[i]!);
    });
  }
  return x.map((xt) => {
    const hn = layerNorm(xt, w.get('ln_f.weight'), w.get('ln_f.bias'), c.normEps);
    const logits = new Float64Array(c.vocab);
    for (let t = 0; t < c.vocab; t++) {
      for (let d = 0; d < c.dim; d++) logits[t] += hn[d]! * wte.data[t * c.dim + d]!;
    }
    return logits;
  });
}

// ---- random weights ----

function randomWeights(specs: [string, number[], 'linear' | 'norm' | 'bias' | 'embed'][], seed: number): WeightSource {
  const next = rng(seed);
  const m = new Map<string, Tensor>();
  for (const [name, shape, kind] of specs) {
    const n = shape.reduce((a, c) => a * c, 1);
    let data: Float64Array;
    if (kind === 'norm') data = randn(next, n, 0.2).map((x) => 1 + x);
    else if (kind === 'bias') data = randn(next, n, 0.1);
    else if (kind === 'embed') data = randn(next, n, 1);
    // scaled so activations stay O(1) and the attention weights are far from uniform
    else data = randn(next, n, 1.2 / Math.sqrt(shape[0]!));
    m.set(name, makeTensor('f32', shape, data));
  }
  return weightMap(m, 'random');
}

/** Random f32 LLaMA weights under the canonical names. */
export function randomLlamaWeights(c: LlamaConfig, seed: number): WeightSource {
  const hd = c.dim / c.heads;
  const specs: [string, number[], 'linear' | 'norm' | 'bias' | 'embed'][] = [
    ['tok_embeddings', [c.vocab, c.dim], 'embed'],
  ];
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}.`;
    specs.push(
      [p + 'attention_norm', [c.dim], 'norm'],
      [p + 'wq', [c.dim, c.heads * hd], 'linear'],
      [p + 'wk', [c.dim, c.kvHeads * hd], 'linear'],
      [p + 'wv', [c.dim, c.kvHeads * hd], 'linear'],
      [p + 'wo', [c.heads * hd, c.dim], 'linear'],
      [p + 'ffn_norm', [c.dim], 'norm'],
      [p + 'w1', [c.dim, c.hiddenDim], 'linear'],
      [p + 'w3', [c.dim, c.hiddenDim], 'linear'],
      [p + 'w2', [c.hiddenDim, c.dim], 'linear'],
    );
  }
  specs.push(['norm', [c.dim], 'norm']);
  if (!c.tiedHead) specs.push(['output', [c.dim, c.vocab], 'linear']);
  return randomWeights(specs, seed);
}

/** Random f32 GPT-2 weights under the canonical names. */
export function randomGpt2Weights(c: Gpt2Config, seed: number): WeightSource {
  const specs: [string, number[], 'linear' | 'norm' | 'bias' | 'embed'][] = [
    ['wte', [c.vocab, c.dim], 'embed'],
    ['wpe', [c.maxSeq, c.dim], 'embed'],
  ];
  for (let l = 0; l < c.layers; l++) {
    const p = `h.${l}.`;
    specs.push(
      [p + 'ln_1.weight', [c.dim], 'norm'],
      [p + 'ln_1.bias', [c.dim], 'bias'],
      [p + 'attn.c_attn.weight', [c.dim, 3 * c.dim], 'linear'],
      [p + 'attn.c_attn.bias', [3 * c.dim], 'bias'],
      [p + 'attn.c_proj.weight', [c.dim, c.dim], 'linear'],
      [p + 'attn.c_proj.bias', [c.dim], 'bias'],
      [p + 'ln_2.weight', [c.dim], 'norm'],
      [p + 'ln_2.bias', [c.dim], 'bias'],
      [p + 'mlp.c_fc.weight', [c.dim, c.hiddenDim], 'linear'],
      [p + 'mlp.c_fc.bias', [c.hiddenDim], 'bias'],
      [p + 'mlp.c_proj.weight', [c.hiddenDim, c.dim], 'linear'],
      [p + 'mlp.c_proj.bias', [c.dim], 'bias'],
    );
  }
  specs.push(['ln_f.weight', [c.dim], 'norm'], ['ln_f.bias', [c.dim], 'bias']);
  return randomWeights(specs, seed);
}

// ---- driving a built graph ----

export interface KvGeometry {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** dtype of the cache inputs (the compute dtype). */
  dtype?: 'f32' | 'f16';
}

export type RunFn = (feeds: Record<string, Tensor>) => Promise<Record<string, Tensor>> | Record<string, Tensor>;

const ids = (rows: readonly (readonly number[])[], from: number, to: number): Tensor =>
  makeTensor(
    'i64',
    [rows.length, to - from],
    rows.flatMap((r) => r.slice(from, to)),
  );
const positions = (batch: number, from: number, to: number): Tensor =>
  makeTensor(
    'i64',
    [batch, to - from],
    Array.from({ length: batch }, () => Array.from({ length: to - from }, (_, i) => from + i)).flat(),
  );

/**
 * Prefill tokens[:, 0:k] on an empty cache, then feed the rest `chunk` tokens per step (1: decode; more: chunked
 * prefill onto a non-empty cache), each step's present_* as the next step's past_*. Returns every position's logits
 * as [batch][T][vocab]. Throws if a present has the wrong shape.
 */
export async function prefillThenDecode(
  run: RunFn,
  g: KvGeometry,
  tokens: readonly (readonly number[])[],
  k: number,
  chunk = 1,
): Promise<Float64Array[][]> {
  const B = tokens.length;
  const T = tokens[0]!.length;
  const dt = g.dtype ?? 'f32';
  let past: Record<string, Tensor> = {};
  for (let l = 0; l < g.layers; l++) {
    past[`past_key_${l}`] = makeTensor(dt, [B, g.kvHeads, 0, g.headDim]);
    past[`past_value_${l}`] = makeTensor(dt, [B, g.kvHeads, 0, g.headDim]);
  }
  const out: Float64Array[][] = tokens.map(() => []);
  let at = 0;
  while (at < T) {
    const end = at === 0 ? k : Math.min(T, at + chunk);
    const res = await run({ input_ids: ids(tokens, at, end), position_ids: positions(B, at, end), ...past });
    const logits = res['logits']!;
    const V = logits.shape[2]!;
    if (logits.shape.join() !== [B, end - at, V].join()) throw new Error(`logits shape [${logits.shape}]`);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < end - at; t++) {
        out[b]!.push(Float64Array.from(logits.data.subarray((b * (end - at) + t) * V, (b * (end - at) + t + 1) * V)));
      }
    }
    past = {};
    for (let l = 0; l < g.layers; l++) {
      for (const kind of ['key', 'value']) {
        const p = res[`present_${kind}_${l}`]!;
        const want = [B, g.kvHeads, end, g.headDim];
        if (p.shape.join() !== want.join())
          throw new Error(`present_${kind}_${l} has shape [${p.shape}], want [${want}]`);
        past[`past_${kind}_${l}`] = p;
      }
    }
    at = end;
  }
  return out;
}

/** ‖got − ref‖ / ‖ref‖ over all positions (NaN anywhere gives Infinity). */
export function relL2(got: readonly (readonly Vec[])[], ref: readonly (readonly Vec[])[]): number {
  let num = 0;
  let den = 0;
  got.forEach((seq, b) =>
    seq.forEach((g, t) => {
      const r = ref[b]![t]!;
      if (g.length !== r.length) throw new Error(`length ${g.length} vs ${r.length}`);
      g.forEach((x, i) => {
        num += (x - r[i]!) ** 2;
        den += r[i]! ** 2;
      });
    }),
  );
  return Number.isNaN(num) ? Infinity : Math.sqrt(num / den);
}

/** Greedy continuation by a float64 forward (full recompute per token: simple and independent of kiln's graph). */
export function greedyReference(
  forward: (tokens: readonly number[]) => Vec[],
  prompt: readonly number[],
  n: number,
  eos?: number,
): number[] {
  const seq = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = forward(seq).at(-1)!;
    let best = 0;
    for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
    if (best === eos) break;
    out.push(best);
    seq.push(best);
  }
  return out;
}

/**
 * Perplexity by a float64 forward over `windows` non-overlapping windows of `window` tokens (BOS, then window − 1 of
 * `ids`), every token after a window's first scored — what `kiln perplexity` computes.
 */
export function perplexityReference(
  forward: (tokens: readonly number[]) => Vec[],
  ids: readonly number[],
  bos: number,
  window: number,
  windows: number,
): { perplexity: number; tokens: number } {
  let nll = 0;
  let count = 0;
  for (let w = 0; w < windows; w++) {
    const chunk = [bos, ...ids.slice(w * (window - 1), (w + 1) * (window - 1))];
    const logits = forward(chunk);
    for (let t = 0; t + 1 < chunk.length; t++) {
      const row = logits[t]!;
      let m = -Infinity;
      for (const x of row) m = Math.max(m, x);
      let z = 0;
      for (const x of row) z += Math.exp(x - m);
      nll -= row[chunk[t + 1]!]! - m - Math.log(z);
      count++;
    }
  }
  return { perplexity: Math.exp(nll / count), tokens: count };
}
