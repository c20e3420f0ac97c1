/**
 * Model files through the whole path (loader → builder → compiled session) against the float64 forward of the same
 * weights: the random tiny GGUF Llama (f16 weights, 32000-token vocabulary) and the tiny GPT-2 safetensors.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { ggufModel } from '../../src/frontends/gguf.js';
import { hfModel } from '../../src/frontends/hf-config.js';
import { parseSafetensors } from '../../src/frontends/safetensors.js';
import { LanguageModelSession } from '../../src/generate/lm.js';
import { loadLanguageModel } from '../../src/generate/load.js';
import type { BackendName } from '../../src/session.js';
import { deviceBackends } from '../helpers/device-backends.js';
import { gpt2Forward, llamaForward } from '../helpers/lm-reference.js';
import { SHARED } from '../helpers/paths.js';

const backends: BackendName[] = ['reference', ...(await deviceBackends())];
const GGUF = join(SHARED, 'models/llama-2-tiny-random.gguf');
const GPT2 = join(SHARED, 'models/tiny_gpt2.safetensors');
const GPT2_CONFIG = {
  model_type: 'gpt2',
  n_embd: 2,
  n_layer: 1,
  n_head: 1,
  vocab_size: 21,
  n_positions: 1024,
  n_inner: 8,
};

/** max |a − b| / max |b| over all positions' logits. */
function relErr(got: ArrayLike<number>, ref: readonly ArrayLike<number>[]): number {
  let num = 0;
  let den = 0;
  const vocab = ref[0]!.length;
  ref.forEach((row, t) => {
    for (let v = 0; v < vocab; v++) {
      num = Math.max(num, Math.abs(got[t * vocab + v]! - row[v]!));
      den = Math.max(den, Math.abs(row[v]!));
    }
  });
  return num / den;
}

describe.each(backends)('%s: loaded model files equal the float64 forward of their weights', (backend) => {
  it('llama-2-tiny-random.gguf (llama, f16 tensors, embedded sentencepiece vocabulary)', async () => {
    const model = loadLanguageModel(GGUF);
    const { config, weights, tokenizer } = ggufModel(new Uint8Array(readFileSync(GGUF)));
    expect(config.arch).toBe('llama');
    const ids = tokenizer!.encode('Once upon a time', { bos: true });
    expect(ids).toEqual([1, 9038, 2501, 263, 931]); // Llama 2's own ids
    const lm = await LanguageModelSession.create(model, { backend });
    try {
      const got = await lm.logits(ids);
      const ref = llamaForward(config as Parameters<typeof llamaForward>[0], weights, ids);
      expect(relErr(got.data, ref)).toBeLessThan(1e-4);
    } finally {
      lm.dispose();
    }
  }, 60_000);

  it('tiny_gpt2.safetensors with its config', async () => {
    const model = loadLanguageModel(GPT2, { config: GPT2_CONFIG });
    const { config, weights } = hfModel(parseSafetensors(new Uint8Array(readFileSync(GPT2))), GPT2_CONFIG);
    const ids = [3, 0, 20, 7, 7, 1];
    const lm = await LanguageModelSession.create(model, { backend });
    try {
      const got = await lm.logits(ids);
      const ref = gpt2Forward(config as Parameters<typeof gpt2Forward>[0], weights, ids);
      expect(relErr(got.data, ref)).toBeLessThan(1e-4);
      // and generation runs on it (random weights: any ids, but in the vocabulary)
      const out: number[] = [];
      for await (const id of lm.generate(ids, { maxTokens: 5 })) out.push(id);
      expect(out).toHaveLength(5);
      expect(out.every((i) => i >= 0 && i < 21)).toBe(true);
    } finally {
      lm.dispose();
    }
  }, 60_000);
});
