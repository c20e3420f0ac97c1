/**
 * buildGpt2 against the independent float64 forward (test/helpers/lm-reference.ts), interpreted with the reference
 * interpreter: whole-prompt prefill, prefill + token-by-token decode through the KV cache, batch 2, odd sizes, f16,
 * bad configs and weights.
 */
import { describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import { makeTensor } from '../../ir/tensor.js';
import { weightMap, type Gpt2Config } from '../../src/models/config.js';
import { buildGpt2 } from '../../src/models/gpt2.js';
import { gpt2Forward, prefillThenDecode, randomGpt2Weights, relL2 } from '../helpers/lm-reference.js';

const base: Gpt2Config = {
  arch: 'gpt2',
  dim: 16,
  hiddenDim: 40,
  layers: 2,
  heads: 4,
  vocab: 27,
  maxSeq: 16,
  normEps: 1e-5,
};

const kv = (c: Gpt2Config) => ({ layers: c.layers, kvHeads: c.heads, headDim: c.dim / c.heads });
const prompt = (n: number, vocab: number, seed: number) =>
  Array.from({ length: n }, (_, i) => (seed * 11 + i * 7 + ((i * i) % 3)) % vocab);

async function both(c: Gpt2Config, tokens: number[][], k: number, seed = 1, dtype?: 'f16') {
  const w = randomGpt2Weights(c, seed);
  const g = buildGpt2(c, w, dtype ? { dtype } : {});
  const got = await prefillThenDecode((f) => interpret(g, f), { ...kv(c), dtype }, tokens, k);
  return { got, want: tokens.map((t) => gpt2Forward(c, w, t)) };
}

describe('buildGpt2 vs the float64 forward', () => {
  it('whole-prompt prefill', async () => {
    const { got, want } = await both(base, [prompt(10, base.vocab, 1)], 10);
    expect(relL2(got, want)).toBeLessThan(1e-5);
  });

  it('odd sizes: 3 heads of 5, hidden 21, vocab 31, 3 layers', async () => {
    const c = { ...base, dim: 15, heads: 3, hiddenDim: 21, vocab: 31, layers: 3 };
    const { got, want } = await both(c, [prompt(7, c.vocab, 2)], 7, 3);
    expect(relL2(got, want)).toBeLessThan(1e-5);
  });

  it('prefill 4 then decode 6 one at a time equals the full recompute', async () => {
    const { got, want } = await both(base, [prompt(10, base.vocab, 3)], 4, 2);
    expect(got[0]!.length).toBe(10);
    expect(relL2(got, want)).toBeLessThan(1e-5);
  });

  it('batch of 2, prefill 2 + decode', async () => {
    const tokens = [prompt(6, base.vocab, 4), prompt(6, base.vocab, 5)];
    const { got, want } = await both(base, tokens, 2, 5);
    expect(relL2(got, want)).toBeLessThan(1e-5);
    expect(relL2([got[0]!], [got[1]!])).toBeGreaterThan(0.1);
  });

  it('f16 compute within f16 tolerance', async () => {
    const { got, want } = await both(base, [prompt(6, base.vocab, 6)], 3, 1, 'f16');
    expect(relL2(got, want)).toBeLessThan(1e-2);
  });

  it('learned positions matter: the reference at shifted positions differs (the check is not vacuous)', () => {
    const w = randomGpt2Weights(base, 1);
    const t = prompt(5, base.vocab, 1);
    const a = gpt2Forward(base, w, t);
    const m = new Map(w.names().map((n) => [n, w.get(n)] as const));
    const wpe = w.get('wpe');
    // shift wpe by one row: position p now reads row p+1
    m.set('wpe', makeTensor('f32', wpe.shape, [...wpe.data.slice(base.dim), ...wpe.data.slice(0, base.dim)]));
    expect(relL2([gpt2Forward(base, weightMap(m), t)], [a])).toBeGreaterThan(1e-3);
  });
});

describe('buildGpt2 interface and errors', () => {
  it('inputs and outputs', () => {
    const g = buildGpt2(base, randomGpt2Weights(base, 1));
    expect(g.inputs.map((v) => `${v.name}[${v.type.shape.join(',')}]`)).toEqual([
      'input_ids[batch,seq]',
      'position_ids[batch,seq]',
      'past_key_0[batch,4,past,4]',
      'past_value_0[batch,4,past,4]',
      'past_key_1[batch,4,past,4]',
      'past_value_1[batch,4,past,4]',
    ]);
    expect(g.outputs.map((v) => v.name)).toEqual([
      'logits',
      'present_key_0',
      'present_value_0',
      'present_key_1',
      'present_value_1',
    ]);
    expect(g.outputs[0]!.type.shape).toEqual(['batch', 'seq', 27]);
  });

  it('bad configs and weights', () => {
    const w = randomGpt2Weights(base, 1);
    expect(() => buildGpt2({ ...base, heads: 3 }, w)).toThrow(/heads 3 must divide dim 16/);
    expect(() => buildGpt2({ ...base, maxSeq: 8 }, w)).toThrow(/\[16,16\].*\[8,16\].*wpe/);
    const m = new Map(
      w
        .names()
        .filter((n) => n !== 'h.1.mlp.c_fc.bias')
        .map((n) => [n, w.get(n)] as const),
    );
    expect(() => buildGpt2(base, weightMap(m))).toThrow(/h\.1\.mlp\.c_fc\.bias/);
  });
});
