/**
 * The model builders on device sessions (webgpu, cuda-emu): prefill of a prompt on an empty cache, then one-token
 * decode steps feeding present → past, on one compiled session. Every step's outputs (logits and every present_*)
 * equal the reference interpreter on the same feeds, and the logits of all positions equal the independent
 * plain-TS float64 forward of the whole sequence. Small configs (GQA, tied head, RoPE scaling, GPT-2), batch 2.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { interpret } from '../../ir/interpret.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import { loadLlama2c } from '../../src/frontends/llama2c.js';
import type { Gpt2Config, LlamaConfig } from '../../src/models/config.js';
import { buildGpt2 } from '../../src/models/gpt2.js';
import { buildLlama } from '../../src/models/llama.js';
import { compile, type Session } from '../../src/session.js';
import { loadLlama2cTokenizer } from '../../src/tokenizers/llama2c.js';
import { compareWithReference, tolerance } from '../helpers/backends.js';
import { deviceBackends } from '../helpers/device-backends.js';
import {
  gpt2Forward,
  llamaForward,
  prefillThenDecode,
  randomGpt2Weights,
  randomLlamaWeights,
  relL2,
  type KvGeometry,
} from '../helpers/lm-reference.js';
import { SHARED } from '../helpers/paths.js';
import { fileProbe, requireTool } from '../helpers/tools.js';

const backends = await deviceBackends();
const sessions: Session[] = [];
afterAll(() => sessions.forEach((s) => s.dispose()));

const llama: LlamaConfig = {
  arch: 'llama',
  dim: 24,
  hiddenDim: 37,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  vocab: 41,
  maxSeq: 16,
  normEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: { kind: 'linear', factor: 2 },
  tiedHead: false,
};
const llamaTied: LlamaConfig = {
  ...llama,
  dim: 16,
  heads: 4,
  kvHeads: 1,
  tiedHead: true,
  ropeScaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 32 },
};
const gpt2: Gpt2Config = {
  arch: 'gpt2',
  dim: 20,
  hiddenDim: 33,
  layers: 2,
  heads: 4,
  vocab: 37,
  maxSeq: 16,
  normEps: 1e-5,
};

const tokens = (vocab: number) => [
  [1, 7, 3, 12, 5, 9, 2].map((t) => t % vocab),
  [4, 4, 11, 0, 8, 6, 13].map((t) => t % vocab),
];

interface Case {
  name: string;
  build: () => { graph: ReturnType<typeof buildLlama>; forward: (t: readonly number[]) => Float64Array[] };
  kv: KvGeometry;
  /** tokens per step after the prefill (2: chunked prefill onto a non-empty cache) */
  chunk?: number;
}

const cases: Case[] = [
  {
    name: 'llama GQA 2, linear RoPE',
    build: () => {
      const w = randomLlamaWeights(llama, 11);
      return { graph: buildLlama(llama, w), forward: (t) => llamaForward(llama, w, t) };
    },
    kv: { layers: llama.layers, kvHeads: llama.kvHeads, headDim: llama.dim / llama.heads },
  },
  {
    name: 'llama GQA 4, tied head, llama3 RoPE',
    build: () => {
      const w = randomLlamaWeights(llamaTied, 12);
      return { graph: buildLlama(llamaTied, w), forward: (t) => llamaForward(llamaTied, w, t) };
    },
    kv: { layers: llamaTied.layers, kvHeads: llamaTied.kvHeads, headDim: llamaTied.dim / llamaTied.heads },
    chunk: 2,
  },
  {
    name: 'llama f16 (weights, activations and cache)',
    build: () => {
      const w = randomLlamaWeights(llama, 14);
      return { graph: buildLlama(llama, w, { dtype: 'f16' }), forward: (t) => llamaForward(llama, w, t) };
    },
    kv: { layers: llama.layers, kvHeads: llama.kvHeads, headDim: llama.dim / llama.heads, dtype: 'f16' },
  },
  {
    name: 'gpt2',
    build: () => {
      const w = randomGpt2Weights(gpt2, 13);
      return { graph: buildGpt2(gpt2, w), forward: (t) => gpt2Forward(gpt2, w, t) };
    },
    kv: { layers: gpt2.layers, kvHeads: gpt2.heads, headDim: gpt2.dim / gpt2.heads },
  },
];

describe.each(backends)('%s: model builders, prefill 3 + 4 more tokens on one session', (backend) => {
  it.each(cases)('$name', async ({ build, kv, chunk = 1 }) => {
    const { graph, forward } = build();
    const s = await compile(graph, { backend, poison: true });
    sessions.push(s);
    let step = 0;
    // each step: the device against the interpreter on the same feeds (all outputs, caches included)
    const run = async (feeds: Record<string, Tensor>) => {
      const got = await s.run(feeds);
      const ref = interpret(graph, feeds);
      for (const [k, r] of Object.entries(ref)) {
        // f16 graphs: f16 tolerance for the f32 logits too (they come from f16 activations)
        const m = compareWithReference(k, got[k]!, r, tolerance(kv.dtype ?? r.dtype, true));
        expect(m, `step ${step}: ${m?.reason}`).toBeUndefined();
      }
      step++;
      return got;
    };
    const toks = tokens(graph.outputs[0]!.type.shape[2] as number);
    const got = await prefillThenDecode(run, kv, toks, 3, chunk);
    expect(step).toBe(1 + Math.ceil(4 / chunk));
    expect(relL2(got, toks.map(forward))).toBeLessThan(kv.dtype === 'f16' ? 1e-2 : 1e-4);
  });
});

const STORIES = resolve(SHARED, 'models/stories260K.bin');
const noStories = await requireTool('../shared/models', fileProbe(STORIES, 'clone the shared data beside the repo'));

describe.skipIf(noStories || backends.length === 0)('stories260K greedy decoding on device sessions', () => {
  const argmax = (x: ArrayLike<number>, from: number, n: number) => {
    let best = 0;
    for (let v = 1; v < n; v++) if (x[from + v]! > x[from + best]!) best = v;
    return best;
  };
  it.each(backends)(
    '%s: 12 tokens after BOS + "Once upon a time" = the float64 forward\'s greedy choices',
    async (backend) => {
      const { config, weights } = loadLlama2c(new Uint8Array(readFileSync(STORIES)));
      const tok = loadLlama2cTokenizer(
        new Uint8Array(readFileSync(resolve(SHARED, 'models/tok512.bin'))),
        config.vocab,
      );
      const s = await compile(buildLlama(config, weights), { backend, poison: true });
      sessions.push(s);
      const hd = config.dim / config.heads;
      const ids = tok.encode('Once upon a time', { bos: true });
      const seq = [...ids];
      let past: Record<string, Tensor> = {};
      for (let l = 0; l < config.layers; l++) {
        for (const k of ['key', 'value']) past[`past_${k}_${l}`] = makeTensor('f32', [1, config.kvHeads, 0, hd]);
      }
      for (let fed = 0; seq.length < ids.length + 12;) {
        const now = seq.slice(fed);
        const out = await s.run({
          input_ids: makeTensor('i64', [1, now.length], now),
          position_ids: makeTensor(
            'i64',
            [1, now.length],
            now.map((_, i) => fed + i),
          ),
          ...past,
        });
        fed = seq.length;
        seq.push(argmax(out['logits']!.data, (now.length - 1) * config.vocab, config.vocab));
        past = {};
        for (let l = 0; l < config.layers; l++) {
          for (const k of ['key', 'value']) past[`past_${k}_${l}`] = out[`present_${k}_${l}`]!;
        }
      }
      expect(tok.decode(seq)).toMatch(/^Once upon a time, there was a little girl named Lily/);
      const ref = llamaForward(config, weights, seq.slice(0, -1));
      for (let t = ids.length - 1; t < seq.length - 1; t++) {
        expect(argmax(ref[t]!, 0, config.vocab), `position ${t}`).toBe(seq[t + 1]);
      }
    },
  );
});
