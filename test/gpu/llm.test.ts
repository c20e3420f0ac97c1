/**
 * The LLM runtime on a real NVIDIA GPU (`npm run test:gpu`, run by bench/gpu.sh): stories260K greedy generation on
 * `--backend cuda` equals the float64 forward token for token, the KV cache stays on the device, the paged cache
 * decodes four prompts as one batch equal to four single runs, and perplexity windows match the float64 forward.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../ir/ops/index.js';
import { loadLlama2c } from '../../src/frontends/llama2c.js';
import { LanguageModelSession } from '../../src/generate/lm.js';
import { loadLanguageModel } from '../../src/generate/load.js';
import { PagedLanguageModel } from '../../src/generate/paged.js';
import { perplexity } from '../../src/generate/text.js';
import { buildLlama } from '../../src/models/llama.js';
import { CudaDriver } from '../../src/runtime/cuda/driver.js';
import { greedyReference, llamaForward, perplexityReference } from '../helpers/lm-reference.js';
import { REPO_ROOT, SHARED } from '../helpers/paths.js';
import { requireTool } from '../helpers/tools.js';

const noCuda = await requireTool('an NVIDIA driver (libcuda.so.1)', () => {
  try {
    CudaDriver.load();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
});

const MODEL = join(REPO_ROOT, 'models/stories260K.bin');

describe.skipIf(noCuda)('stories260K on CUDA', () => {
  const model = () => loadLanguageModel(MODEL);
  const m0 = model();
  const tok = m0.tokenizer!;
  if (m0.config.arch !== 'llama') throw new Error('llama expected');
  const cfg = m0.config;
  const weights = loadLlama2c(readFileSync(MODEL)).weights;
  const prompt = tok.encode('Once upon a time', { bos: true });

  it('greedy generation equals the float64 forward token for token', async () => {
    const expected = greedyReference((t) => llamaForward(cfg, weights, t), prompt, 60);
    const lm = await LanguageModelSession.create(model(), { backend: 'cuda' });
    try {
      const got: number[] = [];
      for await (const id of lm.generate(prompt, { maxTokens: 60 })) got.push(id);
      expect(got).toEqual(expected);
      console.log(`cuda: ${JSON.stringify(lm.stats)}`);
    } finally {
      lm.dispose();
    }
  }, 120_000);

  it('four prompts in one paged batch equal four single runs', async () => {
    const prompts = ['Once upon a time', 'The dog', 'Lily and her mom went to the park. They', 'One day'].map((p) =>
      tok.encode(p, { bos: true }),
    );
    const single = await LanguageModelSession.create(model(), { backend: 'cuda' });
    const expected: number[][] = [];
    for (const p of prompts) {
      const ids: number[] = [];
      for await (const id of single.generate(p, { maxTokens: 16, stop: [tok.eos!] })) ids.push(id);
      expected.push(ids);
    }
    single.dispose();
    const graph = buildLlama(cfg, weights, { paged: { blockSize: 16 } });
    const lm = await PagedLanguageModel.create({ graph, config: cfg }, { backend: 'cuda', numBlocks: 32 });
    try {
      const got: number[][] = prompts.map(() => []);
      for await (const { index, token } of lm.generateBatch(prompts, { maxTokens: 16, stop: [tok.eos!] })) {
        got[index]!.push(token);
      }
      expect(got).toEqual(expected);
    } finally {
      lm.dispose();
    }
  }, 120_000);

  it('perplexity windows equal the float64 forward', async () => {
    const text = readFileSync(join(SHARED, 'data/tinystories-calib.txt'), 'utf8');
    const ids = tok.encode(text, { bos: false });
    const window = 128;
    const ref = perplexityReference((t) => llamaForward(cfg, weights, t), ids, tok.bos!, window, 2).perplexity;
    const lm = await LanguageModelSession.create(model(), { backend: 'cuda' });
    try {
      const r = await perplexity(lm, tok, text, { window, maxWindows: 2 });
      expect(Math.abs(r.perplexity - ref) / ref).toBeLessThan(1e-4);
    } finally {
      lm.dispose();
    }
  }, 120_000);
});
