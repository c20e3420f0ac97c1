/**
 * Speculative decoding on stories260K (webgpu), greedy, in one run: for each draft source — n-gram lookup, the
 * model's first layers (self), Medusa heads fitted here on the first half of tinystories-calib.txt, and mixes — the
 * mean accepted tokens per target pass, target passes per generated token and decode tok/s, beside plain decoding on
 * the same paged target, with a check that every configuration's text equals plain decoding's. `tree:` rows verify
 * token trees (SpecInfer): each source's proposal (Medusa: its top-k candidate tree) merged into one tree per target
 * pass, the tree size chosen per step from measured tokens per ms (dynamic). Chain rows are adaptive (dynamic):
 * drafting pauses while it measures slower than plain passes. `self:int4` is the target RTN-quantized to 4 bits.
 *
 *   npm run bench -- speculative [TOKENS]     (default 128 new tokens for each of 3 prompts; KILN_BENCH_TURNS=2)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundledModelsDir, loadLanguageModel } from '../src/generate/load.js';
import { fitMedusa, lmHeadOf, MedusaDraft, MedusaHeads } from '../src/generate/medusa.js';
import { PagedLanguageModel } from '../src/generate/paged.js';
import {
  ModelDraft,
  NgramDraft,
  SpeculativeDecoder,
  type DraftSource,
  type SpeculativeStats,
} from '../src/generate/speculative.js';
import { halves } from '../src/quantize.js';
import { loadLlama2c } from '../src/frontends/llama2c.js';
import type { LlamaConfig } from '../src/models/config.js';
import { printTable } from './common.js';

const PROMPTS = ['Once upon a time', 'The little dog', 'One day, Lily went to the park'];

export async function benchSpeculative(): Promise<void> {
  const tokens = Number(process.argv[2] ?? 128);
  // timed turns per configuration (each: every prompt, plain then speculative); lavapipe's pass times jitter by ±15%
  const turns = Number(process.env['KILN_BENCH_TURNS'] ?? 2);
  const file = join(bundledModelsDir(), 'stories260K.bin');
  // the shared data beside the repository (npm run bench runs from its root)
  const text = readFileSync(join(process.cwd(), '../shared/data/tinystories-calib.txt'), 'utf8');
  const base = loadLanguageModel(file);
  const t0 = performance.now();
  const fit = await fitMedusa(base.graph, base.tokenizer!, halves(text)[0], {
    heads: 3,
    epochs: 2,
    lr: 1e-2,
    backend: 'webgpu',
  });
  console.log(
    `Medusa: 3 sequential heads fitted in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${fit.trainTokens} ` +
      `positions; held-out top-1 ${fit.accuracy.map((a) => `${(100 * a.after).toFixed(1)}%`).join(' / ')}`,
  );
  const heads = JSON.stringify(fit.heads.toJSON());
  const medusa = (m: ReturnType<typeof loadLanguageModel>) =>
    new MedusaDraft(MedusaHeads.fromJSON(JSON.parse(heads), lmHeadOf(m.graph)));
  const self3 = (m: ReturnType<typeof loadLanguageModel>) =>
    ModelDraft.layerSkip(m.config as LlamaConfig, loadLlama2c(readFileSync(file)).weights, 3, {
      backend: 'webgpu',
      blockSize: 16,
      numBlocks: 40,
    });
  const selfInt4 = (m: ReturnType<typeof loadLanguageModel>) =>
    ModelDraft.self(
      m.config as LlamaConfig,
      loadLlama2c(readFileSync(file)).weights,
      { bits: 4 },
      {
        backend: 'webgpu',
        blockSize: 16,
        numBlocks: 40,
      },
    );
  const configs: [string, (m: ReturnType<typeof loadLanguageModel>) => Promise<DraftSource[]>][] = [
    ['plain', async () => []],
    ['ngram', async () => [new NgramDraft()]],
    ['self:3', async (m) => [await self3(m)]],
    ['self:int4', async (m) => [await selfInt4(m)]],
    ['self:int4 (fixed length)', async (m) => [await selfInt4(m)]],
    ['medusa', async (m) => [medusa(m)]],
    ['medusa+ngram', async (m) => [medusa(m), new NgramDraft()]],
    ['tree:ngram', async () => [new NgramDraft()]],
    ['tree:self:3', async (m) => [await self3(m)]],
    ['tree:self:int4', async (m) => [await selfInt4(m)]],
    ['tree:medusa', async (m) => [medusa(m)]],
    ['tree:ngram+medusa', async (m) => [new NgramDraft(), medusa(m)]],
    ['tree:ngram+medusa+self:3', async (m) => [new NgramDraft(), medusa(m), await self3(m)]],
    ['tree:medusa (static 8)', async (m) => [medusa(m)]],
  ];
  const only = process.env['KILN_BENCH_ONLY']?.split(',');
  const rows = [
    [
      'drafts',
      'dynamic',
      'decode tok/s',
      'plain tok/s (same block)',
      'vs plain',
      'target passes / token',
      'accepted / pass',
      'nodes / pass',
      'same text',
    ],
  ];
  // Plain decoding runs interleaved with each configuration (prompt by prompt, turn by turn), so a load change on the
  // machine hits both sides of a ratio alike.
  const pm = loadLanguageModel(file, { paged: { blockSize: 16 } });
  const plainTarget = await PagedLanguageModel.create(pm, { backend: 'webgpu', numBlocks: 40 });
  const plainDec = new SpeculativeDecoder(plainTarget, { draft: [] });
  const ids = PROMPTS.map((p) => pm.tokenizer!.encode(p, { bos: true }));
  const run = async (dec: SpeculativeDecoder, prompt: number[]) => {
    const out: number[] = [];
    for await (const t of dec.generate(prompt, { maxTokens: tokens })) out.push(t);
    return { out, s: dec.stats! };
  };
  const plainText: number[][] = [];
  for (const [i, p] of ids.entries()) plainText[i] = (await run(plainDec, p)).out; // also the warm-up
  for (const [name, make] of configs) {
    if (name === 'plain' || (only && !only.includes(name))) continue;
    const m = loadLanguageModel(file, { paged: { blockSize: 16 } });
    const tree = name.startsWith('tree:');
    const target = await PagedLanguageModel.create(m, {
      backend: 'webgpu',
      numBlocks: 40,
      hidden: name.includes('medusa'),
      tree,
    });
    const sources = await make(m);
    const dec = new SpeculativeDecoder(target, {
      draft: sources,
      draftLen: 4,
      ...(name.includes('fixed') ? { adaptive: false } : {}),
      ...(tree ? { tree: name.includes('static') ? { nodes: 8, dynamic: false } : {} } : {}),
    });
    let nodes = 0;
    let made = 0;
    let ms = 0;
    let plainMade = 0;
    let plainMs = 0;
    let passes = 0;
    let accepted = 0;
    let same = true;
    const decodeMs = (s: SpeculativeStats) => ((s.generatedTokens - 1) / s.decodeTokPerS) * 1000;
    for (const p of ids) await run(dec, p); // warm-up: kernels built, dynamic measurements started
    for (let turn = 0; turn < turns; turn++) {
      for (const [i, p] of ids.entries()) {
        const a = await run(plainDec, p);
        plainMade += a.s.generatedTokens - 1;
        plainMs += decodeMs(a.s);
        const { out, s } = await run(dec, p);
        same &&= out.join(',') === plainText[i]!.join(',');
        made += s.generatedTokens - 1;
        ms += decodeMs(s);
        passes += s.targetPasses;
        accepted += s.acceptedTokens;
        nodes += (s.meanTreeNodes ?? 0) * s.targetPasses;
      }
    }
    for (const s of sources) s.dispose?.();
    target.dispose();
    const rate = (made / ms) * 1000;
    const plainRate = (plainMade / plainMs) * 1000;
    rows.push([
      name,
      name.includes('static') || name.includes('fixed') ? 'no' : 'yes',
      rate.toFixed(1),
      plainRate.toFixed(1),
      `${(rate / plainRate).toFixed(2)}×`,
      (passes / (made + 2 * ids.length)).toFixed(3),
      (accepted / Math.max(passes, 1)).toFixed(2),
      tree ? (nodes / Math.max(passes, 1)).toFixed(1) : '',
      String(same),
    ]);
  }
  plainTarget.dispose();
  console.log(`\nspeculative decoding, stories260K on webgpu, greedy, ${PROMPTS.length} prompts × ${tokens} tokens`);
  printTable(rows);
}
