/**
 * buildLlama against the independent float64 forward (test/helpers/lm-reference.ts), interpreted with the reference
 * interpreter: whole-prompt prefill, prefill + token-by-token decode through the KV cache, batch 2, GQA ratios, odd
 * sizes, tied / separate head, RoPE scaling, f16, bad configs and weights.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KilnError } from '../../ir/errors.js';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { loadLlama2c } from '../../src/frontends/llama2c.js';
import { weightMap, type LlamaConfig } from '../../src/models/config.js';
import { buildLlama } from '../../src/models/llama.js';
import { ropeCaches } from '../../src/models/lm.js';
import { loadLlama2cTokenizer } from '../../src/tokenizers/llama2c.js';
import { llamaForward, prefillThenDecode, randomLlamaWeights, relL2 } from '../helpers/lm-reference.js';
import { SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const base: LlamaConfig = {
  arch: 'llama',
  dim: 16,
  hiddenDim: 24,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 23,
  maxSeq: 32,
  normEps: 1e-5,
  ropeTheta: 10000,
  tiedHead: false,
};

const kv = (c: LlamaConfig) => ({ layers: c.layers, kvHeads: c.kvHeads, headDim: c.dim / c.heads });

function prompt(n: number, vocab: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (seed * 7 + i * 13 + ((i * i) % 5)) % vocab);
}

/** Logits of the graph (prefill k, then decode) and of the plain-TS forward for each row of `tokens`. */
async function both(c: LlamaConfig, tokens: number[][], k: number, seed = 1, dtype?: 'f16') {
  const w = randomLlamaWeights(c, seed);
  const g = buildLlama(c, w, dtype ? { dtype } : {});
  const got = await prefillThenDecode((f) => interpret(g, f), { ...kv(c), dtype }, tokens, k);
  const want = tokens.map((t) => llamaForward(c, w, t));
  return { got, want };
}

describe('buildLlama vs the float64 forward', () => {
  const cases: [string, Partial<LlamaConfig>][] = [
    ['MHA (kv = heads)', { kvHeads: 4 }],
    ['GQA 2', { kvHeads: 2 }],
    ['GQA 4', { kvHeads: 1 }],
    ['odd sizes: 3 heads of 6, hidden 37, vocab 29', { dim: 18, heads: 3, kvHeads: 3, hiddenDim: 37, vocab: 29 }],
    ['tied head', { tiedHead: true }],
    ['linear RoPE scaling', { ropeScaling: { kind: 'linear', factor: 4 }, ropeTheta: 500 }],
    [
      'llama3 RoPE scaling',
      {
        // small θ and original context so the three bands (kept, interpolated, slowed) all occur for hd = 16
        dim: 32,
        heads: 2,
        kvHeads: 1,
        ropeTheta: 10000,
        ropeScaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 },
      },
    ],
  ];
  for (const [name, over] of cases) {
    it(`${name}: whole-prompt prefill`, async () => {
      const c = { ...base, ...over };
      const T = 9;
      const { got, want } = await both(c, [prompt(T, c.vocab, 3)], T);
      expect(relL2(got, want)).toBeLessThan(1e-5);
    });
  }

  it('prefill 3 then decode 6 one at a time equals the full recompute', async () => {
    const c = { ...base, kvHeads: 2 };
    const { got, want } = await both(c, [prompt(9, c.vocab, 5)], 3, 2);
    expect(got[0]!.length).toBe(9);
    expect(relL2(got, want)).toBeLessThan(1e-5);
  });

  it('chunked prefill: 2 tokens, then chunks of 3 onto a non-empty cache (causal within a chunk, full to the past)', async () => {
    const c = { ...base, kvHeads: 1 };
    const w = randomLlamaWeights(c, 8);
    const g = buildLlama(c, w);
    const t = [prompt(8, c.vocab, 2)];
    const got = await prefillThenDecode((f) => interpret(g, f), kv(c), t, 2, 3);
    expect(relL2(got, [llamaForward(c, w, t[0]!)])).toBeLessThan(1e-5);
  });

  it('decode from the first token (prefill of 1)', async () => {
    const c = { ...base, tiedHead: true, kvHeads: 1 };
    const { got, want } = await both(c, [prompt(6, c.vocab, 9)], 1, 4);
    expect(relL2(got, want)).toBeLessThan(1e-5);
  });

  it('batch of 2 (different prompts, equal lengths), prefill + decode', async () => {
    const c = { ...base, ropeScaling: { kind: 'linear', factor: 2 } as const };
    const tokens = [prompt(7, c.vocab, 1), prompt(7, c.vocab, 2)];
    expect(tokens[0]).not.toEqual(tokens[1]);
    const { got, want } = await both(c, tokens, 4, 6);
    expect(relL2(got, want)).toBeLessThan(1e-5);
    // the two rows really differ (a batch that mixed rows up could not pass both)
    expect(relL2([got[0]!], [got[1]!])).toBeGreaterThan(0.1);
  });

  it('f16 compute stays within f16 tolerance of the float64 forward; cache inputs are f16', async () => {
    const c = { ...base };
    const g = buildLlama(c, randomLlamaWeights(c, 1), { dtype: 'f16' });
    expect(g.inputs.find((v) => v.name === 'past_key_0')!.type.dtype).toBe('f16');
    expect(g.outputs[0]!.type.dtype).toBe('f32');
    const { got, want } = await both(c, [prompt(6, c.vocab, 4)], 3, 1, 'f16');
    expect(relL2(got, want)).toBeLessThan(1e-2);
  });

  it('the reference forward is sensitive to what it checks (a wrong RoPE or mask is caught)', async () => {
    // guards against a vacuous comparison: a different θ or shuffled prompt changes the logits by far more than 2e-5
    const c = { ...base };
    const w = randomLlamaWeights(c, 1);
    const t = prompt(8, c.vocab, 3);
    const a = llamaForward(c, w, t);
    const b = llamaForward({ ...c, ropeTheta: 9000 }, w, t);
    expect(relL2([b], [a])).toBeGreaterThan(1e-3);
    // causal: the logits of the first 4 positions do not depend on the later tokens
    const t2 = [...t.slice(0, 4), ...t.slice(4).map((x) => (x + 1) % c.vocab)];
    const a2 = llamaForward(c, w, t2);
    expect(relL2([a2.slice(0, 4)], [a.slice(0, 4)])).toBe(0);
    expect(relL2([a2.slice(4)], [a.slice(4)])).toBeGreaterThan(1e-3);
  });
});

describe('buildLlama interface', () => {
  it('inputs, outputs and symbolic dims', () => {
    const g = buildLlama(base, randomLlamaWeights(base, 1));
    const sig = (vs: readonly { name: string; type: { dtype: string; shape: readonly (string | number)[] } }[]) =>
      vs.map((v) => `${v.name}:${v.type.dtype}[${v.type.shape.join(',')}]`);
    expect(sig(g.inputs)).toEqual([
      'input_ids:i64[batch,seq]',
      'position_ids:i64[batch,seq]',
      'past_key_0:f32[batch,2,past,4]',
      'past_value_0:f32[batch,2,past,4]',
      'past_key_1:f32[batch,2,past,4]',
      'past_value_1:f32[batch,2,past,4]',
    ]);
    expect(sig(g.outputs)).toEqual([
      'logits:f32[batch,seq,23]',
      'present_key_0:f32[batch,2,past+seq,4]',
      'present_value_0:f32[batch,2,past+seq,4]',
      'present_key_1:f32[batch,2,past+seq,4]',
      'present_value_1:f32[batch,2,past+seq,4]',
    ]);
  });

  it('RoPE tables: angle p·θ^(-2i/hd) at hand-worked entries, linear scaling divides positions', () => {
    const c = { ...base, dim: 8, heads: 2, ropeTheta: 100, maxSeq: 4 }; // hd 4: freqs 1, 1/10
    const { cos, sin, half } = ropeCaches(c);
    expect(half).toBe(2);
    expect(cos[3 * 2 + 0]).toBeCloseTo(Math.cos(3), 15);
    expect(sin[3 * 2 + 1]).toBeCloseTo(Math.sin(0.3), 15);
    const lin = ropeCaches({ ...c, ropeScaling: { kind: 'linear', factor: 2 } });
    expect(lin.sin[3 * 2 + 0]).toBeCloseTo(Math.sin(1.5), 15);
  });

  it('a position past maxSeq is a typed error', () => {
    const c = { ...base, maxSeq: 4 };
    const g = buildLlama(c, randomLlamaWeights(c, 1));
    const feeds: Record<string, Tensor> = {
      input_ids: makeTensor('i64', [1, 1], [1]),
      position_ids: makeTensor('i64', [1, 1], [4]),
    };
    for (let l = 0; l < c.layers; l++) {
      feeds[`past_key_${l}`] = makeTensor('f32', [1, 2, 0, 4]);
      feeds[`past_value_${l}`] = makeTensor('f32', [1, 2, 0, 4]);
    }
    expect(() => interpret(g, feeds)).toThrow(/position id 4 outside the cache of 4/);
  });

  it('bad configs and weights are typed errors naming what is wrong', () => {
    const w = randomLlamaWeights(base, 1);
    expect(() => buildLlama({ ...base, kvHeads: 3 }, w)).toThrow(/kvHeads 3 must divide heads 4/);
    expect(() => buildLlama({ ...base, heads: 5, kvHeads: 1 }, w)).toThrow(/even head size/);
    expect(() => buildLlama({ ...base, dim: 12, kvHeads: 1 }, w)).toThrow(/even head size/); // hd 3
    expect(() => buildLlama({ ...base, layers: 0 }, w)).toThrow(KilnError);
    expect(() => buildLlama({ ...base, ropeScaling: { kind: 'linear', factor: 0 } }, w)).toThrow(/factor/);
  });
});

describe('buildLlama weight checks', () => {
  it('a missing weight names the tensor', () => {
    const w = randomLlamaWeights(base, 1);
    const m = new Map(
      w
        .names()
        .filter((n) => n !== 'layers.1.w3')
        .map((n) => [n, w.get(n)] as const),
    );
    expect(() => buildLlama(base, weightMap(m))).toThrow(/layers\.1\.w3/);
  });
  it('a weight of the wrong shape names the tensor and both shapes', () => {
    const w = randomLlamaWeights(base, 1);
    const m = new Map(w.names().map((n) => [n, w.get(n)] as const));
    m.set('layers.0.wk', makeTensor('f32', [16, 16]));
    expect(() => buildLlama(base, weightMap(m))).toThrow(/\[16,16\].*\[16,8\].*layers\.0\.wk/);
  });
  it('a tied model needs no output weight; an untied one does', () => {
    const w = randomLlamaWeights({ ...base, tiedHead: true }, 1);
    expect(w.has('output')).toBe(false);
    expect(() => buildLlama({ ...base, tiedHead: true }, w)).not.toThrow();
    expect(() => buildLlama({ ...base, tiedHead: false }, w)).toThrow(/output/);
  });
});

const STORIES = resolve(SHARED, 'models/stories260K.bin');
const TOKENIZER = resolve(SHARED, 'models/tok512.bin');
const noStories = await requireTool('../shared/models', fileProbe(STORIES, 'clone the shared data beside the repo'));

describe.skipIf(noStories)('stories260K (a real trained tiny Llama) through loadLlama2c + buildLlama', () => {
  it('greedy decoding of 20 tokens after BOS + "Once upon a time" writes the story llama2.c writes', async () => {
    const { config, weights } = loadLlama2c(new Uint8Array(readFileSync(STORIES)));
    const tok = loadLlama2cTokenizer(new Uint8Array(readFileSync(TOKENIZER)), config.vocab);
    const g = buildLlama(config, weights);
    const hd = config.dim / config.heads;
    const ids = tok.encode('Once upon a time', { bos: true });
    const seq = [...ids];
    let past: Record<string, Tensor> = {};
    for (let l = 0; l < config.layers; l++) {
      past[`past_key_${l}`] = makeTensor('f32', [1, config.kvHeads, 0, hd]);
      past[`past_value_${l}`] = makeTensor('f32', [1, config.kvHeads, 0, hd]);
    }
    let fed = 0;
    while (seq.length < ids.length + 20) {
      const now = seq.slice(fed);
      const out = interpret(g, {
        input_ids: makeTensor('i64', [1, now.length], now),
        position_ids: makeTensor(
          'i64',
          [1, now.length],
          now.map((_, i) => fed + i),
        ),
        ...past,
      });
      const last = out['logits']!.data.subarray((now.length - 1) * config.vocab);
      let best = 0;
      for (let v = 1; v < config.vocab; v++) if (last[v]! > last[best]!) best = v;
      fed = seq.length;
      seq.push(best);
      past = {};
      for (let l = 0; l < config.layers; l++) {
        past[`past_key_${l}`] = out[`present_key_${l}`]!;
        past[`past_value_${l}`] = out[`present_value_${l}`]!;
      }
    }
    const text = tok.decode(seq);
    // the story greedy llama2.c writes from this prompt (../shared/models/README.md)
    expect(text).toMatch(/^Once upon a time, there was a little girl named Lily\. She loved to play/);
    // and the independent float64 forward agrees on every greedy choice
    const ref = llamaForward(config, weights, seq.slice(0, -1));
    for (let t = ids.length - 1; t < seq.length - 1; t++) {
      const r = ref[t]!;
      let best = 0;
      for (let v = 1; v < config.vocab; v++) if (r[v]! > r[best]!) best = v;
      expect(best, `position ${t}`).toBe(seq[t + 1]);
    }
  });
});
