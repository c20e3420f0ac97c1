/**
 * Model-builder properties over random configs, weights and prompts, on the reference interpreter: prefill of
 * prompt[0:k] followed by steps of one token (decode) or a few (chunked prefill), present → past, equals the plain-TS
 * float64 forward of the whole sequence at every position, for LLaMA (GQA ratios, odd sizes, tied head, RoPE
 * scaling) and GPT-2; batch 1 or 2.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import type { Gpt2Config, LlamaConfig } from '../../src/models/config.js';
import { buildGpt2 } from '../../src/models/gpt2.js';
import { buildLlama } from '../../src/models/llama.js';
import {
  gpt2Forward,
  llamaForward,
  prefillThenDecode,
  randomGpt2Weights,
  randomLlamaWeights,
  relL2,
} from '../helpers/lm-reference.js';
import { PROP_RUNS } from '../helpers/paths.js';

const params = { numRuns: PROP_RUNS, verbose: 1 as const };

const arbRopeScaling = fc.oneof(
  fc.constant(undefined),
  fc.record({ kind: fc.constant('linear' as const), factor: fc.double({ min: 1, max: 8, noNaN: true }) }),
  fc.record({
    kind: fc.constant('llama3' as const),
    factor: fc.double({ min: 2, max: 16, noNaN: true }),
    lowFreqFactor: fc.constant(1),
    highFreqFactor: fc.constant(4),
    originalMaxPositions: fc.integer({ min: 8, max: 128 }),
  }),
);

const arbLlama: fc.Arbitrary<LlamaConfig> = fc
  .record({
    kvHeads: fc.integer({ min: 1, max: 2 }),
    ratio: fc.constantFrom(1, 2, 4),
    halfHd: fc.integer({ min: 1, max: 4 }),
    hiddenDim: fc.integer({ min: 3, max: 24 }),
    layers: fc.integer({ min: 1, max: 2 }),
    vocab: fc.integer({ min: 5, max: 29 }),
    ropeTheta: fc.constantFrom(10000, 500, 50),
    tiedHead: fc.boolean(),
    ropeScaling: arbRopeScaling,
  })
  .map(({ kvHeads, ratio, halfHd, ropeScaling, ...r }) => ({
    arch: 'llama' as const,
    dim: kvHeads * ratio * 2 * halfHd,
    heads: kvHeads * ratio,
    kvHeads,
    maxSeq: 12,
    normEps: 1e-5,
    ...(ropeScaling ? { ropeScaling } : {}),
    ...r,
  }));

const arbGpt2: fc.Arbitrary<Gpt2Config> = fc
  .record({
    heads: fc.integer({ min: 1, max: 3 }),
    hd: fc.integer({ min: 1, max: 5 }),
    hiddenDim: fc.integer({ min: 3, max: 24 }),
    layers: fc.integer({ min: 1, max: 2 }),
    vocab: fc.integer({ min: 5, max: 29 }),
  })
  .map(({ heads, hd, ...r }) => ({ arch: 'gpt2' as const, dim: heads * hd, heads, maxSeq: 12, normEps: 1e-5, ...r }))
  // a layer norm over 2 or 3 channels is ill-conditioned (x − mean is a difference of nearly equal numbers): per-op f32
  // rounding then differs from the float64 forward by more than 1e-5 even for a full recompute (dim 2, seed
  // -1616172239: 4e-5), which says nothing about prefill + decode
  .filter((c) => c.dim >= 4);

/** batch 1 or 2, length 1..8, prefill length 1..T, then steps of 1..3 tokens; ids reduced mod vocab. */
const arbRun = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  len: fc.integer({ min: 1, max: 8 }),
  split: fc.double({ min: 0, max: 1, noNaN: true }),
  /** tokens per step after the prefill: 1 is decode, more is chunked prefill onto the cache */
  chunk: fc.integer({ min: 1, max: 3 }),
  tokens: fc.array(fc.nat(1000), { minLength: 16, maxLength: 16 }),
  seed: fc.nat(),
});

function prompts(r: { batch: number; len: number; tokens: readonly number[] }, vocab: number): number[][] {
  return Array.from({ length: r.batch }, (_, b) => r.tokens.slice(b * 8, b * 8 + r.len).map((t) => t % vocab));
}
const prefillLen = (len: number, split: number) => 1 + Math.min(len - 1, Math.floor(split * len));

describe('model builders: prefill + decode = full recompute (reference interpreter)', () => {
  it('LLaMA', async () => {
    await fc.assert(
      fc.asyncProperty(arbLlama, arbRun, async (c, r) => {
        const w = randomLlamaWeights(c, r.seed);
        const g = buildLlama(c, w);
        const tokens = prompts(r, c.vocab);
        const kv = { layers: c.layers, kvHeads: c.kvHeads, headDim: c.dim / c.heads };
        const got = await prefillThenDecode((f) => interpret(g, f), kv, tokens, prefillLen(r.len, r.split), r.chunk);
        expect(
          relL2(
            got,
            tokens.map((t) => llamaForward(c, w, t)),
          ),
        ).toBeLessThan(1e-5);
      }),
      params,
    );
  });

  it('GPT-2', async () => {
    await fc.assert(
      fc.asyncProperty(arbGpt2, arbRun, async (c, r) => {
        const w = randomGpt2Weights(c, r.seed);
        const g = buildGpt2(c, w);
        const tokens = prompts(r, c.vocab);
        const kv = { layers: c.layers, kvHeads: c.heads, headDim: c.dim / c.heads };
        const got = await prefillThenDecode((f) => interpret(g, f), kv, tokens, prefillLen(r.len, r.split), r.chunk);
        expect(
          relL2(
            got,
            tokens.map((t) => gpt2Forward(c, w, t)),
          ),
        ).toBeLessThan(1e-5);
      }),
      params,
    );
  });
});
