/**
 * Token sampling as a graph op, so a decode step can choose the next token on the device and read back one id per
 * sequence instead of a row of logits. `sample_token` follows src/generate/sampling.ts (temperature, top-k, top-p,
 * the first index on ties), with the random draw from a counter-based hash of (seed, step) instead of a stateful
 * generator: every row and step draws independently, and the kernel reproduces the draw bit for bit.
 */
import type { DType } from '../dtype.js';
import { registerOp, type InferContext } from '../registry.js';
import type { Dim } from '../shape.js';
import { scratchTensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { req } from './util.js';

/**
 * The 32 random bits of (seed, step): a murmur3-style finalizer of seed ^ step · golden ratio, in u32 arithmetic
 * only (seed and step taken modulo 2^32), so a kernel computes the same bits.
 */
export function sampleBits(seed: number, step: number): number {
  let x = (seed ^ Math.imul(step, 0x9e3779b9)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b) >>> 0;
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** The uniform draw in [0, 1) of (seed, step): the top 24 bits of `sampleBits`, exact in f32. */
export function sampleUniform(seed: number, step: number): number {
  return (sampleBits(seed, step) >>> 8) / 2 ** 24;
}

/**
 * The token `sample_token` picks from one row of logits (float64 semantics; the op's specification).
 * `u` is the draw in [0, 1).
 */
export function sampleRow(
  logits: ArrayLike<number>,
  temperature: number,
  topK: number,
  topP: number,
  u: number,
): number {
  const V = logits.length;
  if (!(temperature > 0)) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let idx = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (topK > 0 && topK < V) idx = idx.slice(0, topK);
  const m = logits[idx[0]!]!;
  const w = idx.map((i) => Math.exp((logits[i]! - m) / temperature));
  let total = w.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    // the shortest prefix reaching top_p of the mass, at least one candidate
    let acc = 0;
    let keep = 0;
    while (keep < w.length && acc < topP * total) acc += w[keep++]!;
    keep = Math.max(1, keep);
    idx = idx.slice(0, keep);
    w.length = keep;
    total = w.reduce((a, b) => a + b, 0);
  }
  const target = u * total;
  let acc = 0;
  for (let j = 0; j < idx.length; j++) {
    acc += w[j]!;
    if (acc > target) return idx[j]!;
  }
  return idx[idx.length - 1]!;
}

const compatible = (a: Dim, b: Dim): boolean => typeof a !== 'number' || typeof b !== 'number' || a === b;
const INTS: readonly DType[] = ['i32', 'i64'];

registerOp({
  name: 'sample_token',
  doc:
    'one token id (i64) per row of logits [batch, vocab] (f32 / f16) with per-row temperature (f32), top_k ' +
    '(i32 / i64), top_p (f32), seed and step (i32 / i64), all [batch]. temperature <= 0: the argmax (first on ties). ' +
    'Otherwise candidates sorted by logit descending (ties: lower index first), the first top_k kept (<= 0 or >= ' +
    'vocab: all), weights exp((l - l_max) / temperature), the shortest prefix whose weight reaches top_p of the kept ' +
    'weight (at least one; top_p >= 1: all), then the first candidate whose cumulative weight exceeds u times the ' +
    'final weight, u = sampleUniform(seed, step) in [0, 1) (u32 hash, reproduced by kernels).',
  inputs: [
    { name: 'logits' },
    { name: 'temperature' },
    { name: 'top_k' },
    { name: 'top_p' },
    { name: 'seed' },
    { name: 'step' },
  ],
  outputs: [{ name: 'token' }],
  attrs: {},
  fusion: 'opaque',
  infer(ctx: InferContext) {
    const x = req(ctx, 0);
    if (x.dtype !== 'f32' && x.dtype !== 'f16') ctx.fail(`logits must be f32 or f16, got ${x.dtype}`);
    if (x.shape.length !== 2) {
      ctx.fail(`logits must be 2-D [batch, vocab], got rank ${x.shape.length} [${x.shape.join(',')}]`);
    }
    const [batch, vocab] = x.shape as [Dim, Dim];
    if (vocab === 0) ctx.fail('logits have an empty vocab: there is no token to pick');
    const per: [number, string, readonly DType[]][] = [
      [1, 'temperature', ['f32']],
      [2, 'top_k', INTS],
      [3, 'top_p', ['f32']],
      [4, 'seed', INTS],
      [5, 'step', INTS],
    ];
    for (const [i, name, dts] of per) {
      const t = req(ctx, i);
      if (!dts.includes(t.dtype)) ctx.fail(`${name} must be ${dts.join(' or ')}, got ${t.dtype}`);
      if (t.shape.length !== 1 || !compatible(t.shape[0]!, batch)) {
        ctx.fail(`${name} must be [batch] = [${batch}], got [${t.shape.join(',')}]`);
      }
    }
    return [tensorType('i64', [batch])];
  },
  reference([x, temp, topK, topP, seed, step]) {
    const [B, V] = x!.shape as [number, number];
    const y = scratchTensor('i64', [B]);
    for (let b = 0; b < B; b++) {
      const u = sampleUniform(seed!.data[b]!, step!.data[b]!);
      const row = x!.data.subarray(b * V, (b + 1) * V);
      y.data[b] = sampleRow(row, temp!.data[b]!, topK!.data[b]!, topP!.data[b]!, u);
    }
    return [y];
  },
});
