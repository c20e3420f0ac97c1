/**
 * LLM generation on stories260K (the bundled tiny Llama): prefill and decode tokens/s on each backend, the float64
 * reference interpreter beside them in the same run, and each decode step split into where its time goes — host-side
 * planning (shapes, lowering lookups, uniform encoding), the device run (submit + wait; on WebGPU also the GPU time of
 * its kernels from timestamp queries — the rest is dispatch overhead) and the readback of the token. Timing makes each
 * kernel its own compute pass, so the profiled webgpu rate is a little below the plain one.
 *
 *   npm run bench -- generate [TOKENS]     (default 64 new tokens after "Once upon a time")
 *
 * Batch 4 runs on the paged KV cache (`PagedLanguageModel.generateBatch`: four prompts prefilled alone, then decoded
 * together, one token each per run); its decode tok/s is summed over the batch.
 */
import { join } from 'node:path';
import { LanguageModelSession } from '../src/generate/lm.js';
import { PagedLanguageModel } from '../src/generate/paged.js';
import { bundledModelsDir, loadLanguageModel } from '../src/generate/load.js';
import type { BackendName } from '../src/session.js';
import { median, printTable } from './common.js';

interface Split {
  plan: number[];
  device: number[];
  read: number[];
  /** WebGPU only: the GPU time of the step's kernels (timestamp queries), the rest of `device` is dispatch overhead. */
  kernels: number[];
}

async function measure(backend: BackendName, tokens: number) {
  const dir = bundledModelsDir();
  const model = loadLanguageModel(join(dir, 'stories260K.bin'), { tokenizer: join(dir, 'tok512.bin') });
  const lm = await LanguageModelSession.create(model, { backend });
  const tok = model.tokenizer!;
  const prompt = tok.encode('Once upon a time', { bos: true });
  const split: Split = { plan: [], device: [], read: [], kernels: [] };
  // wrap the device backend (not the reference) to see where a step's time goes
  type Be = {
    run(...a: unknown[]): Promise<void>;
    read(...a: unknown[]): Promise<Uint8Array>;
    profile?: boolean;
    lastTimings?: number[];
  };
  const be = (lm.session as unknown as { executor?: { backend: Be } }).executor?.backend;
  let stepStart = 0;
  let runEnd = 0;
  if (be) {
    const run = be.run.bind(be);
    const read = be.read.bind(be);
    be.run = async (...a: unknown[]) => {
      const t = performance.now();
      split.plan.push(t - stepStart);
      await run(...a);
      runEnd = performance.now();
      split.device.push(runEnd - t);
      if (be.lastTimings?.length) split.kernels.push(be.lastTimings.reduce((x, y) => x + y, 0) / 1e6);
    };
    be.read = async (...a: unknown[]) => {
      const r = await read(...a);
      split.read.push(performance.now() - runEnd);
      return r;
    };
  }
  if (be && 'profile' in be) be.profile = true; // WebGPU: per-kernel GPU timestamps
  // warm-up: compile every kernel for prefill and decode shapes
  for await (const _ of lm.generate(prompt, { maxTokens: 3 })) void _;
  split.plan.length = split.device.length = split.read.length = split.kernels.length = 0;
  const runs: { prefill: number; decode: number; ttft: number }[] = [];
  for (let r = 0; r < 3; r++) {
    stepStart = performance.now();
    for await (const _ of lm.generate(prompt, { maxTokens: tokens })) {
      void _;
      stepStart = performance.now();
    }
    const s = lm.stats!;
    runs.push({ prefill: s.prefillTokPerS, decode: s.decodeTokPerS, ttft: s.timeToFirstTokenMs });
  }
  lm.dispose();
  return { runs, split };
}

async function measureBatch(backend: BackendName, tokens: number, batch: number) {
  const dir = bundledModelsDir();
  const model = loadLanguageModel(join(dir, 'stories260K.bin'), {
    tokenizer: join(dir, 'tok512.bin'),
    paged: { blockSize: 16 },
  });
  const lm = await PagedLanguageModel.create(model, { backend, numBlocks: batch * 8 });
  const tok = model.tokenizer!;
  const prompts = ['Once upon a time', 'The dog', 'One day, Tom', 'Lily saw a bird'].slice(0, batch);
  const ids = prompts.map((p) => tok.encode(p, { bos: true }));
  for await (const _ of lm.generateBatch(ids, { maxTokens: 3 })) void _; // warm-up
  const decode: number[] = [];
  for (let r = 0; r < 3; r++) {
    for await (const _ of lm.generateBatch(ids, { maxTokens: tokens })) void _;
    decode.push(lm.stats!.decodeTokPerS);
  }
  lm.dispose();
  return median(decode);
}

export async function benchGenerate(): Promise<void> {
  const tokens = Number(process.argv[2] ?? 64);
  console.log(`stories260K, prompt "Once upon a time" (5 tokens), ${tokens} new tokens, greedy; medians of 3 runs`);
  const rows: string[][] = [
    [
      'backend',
      'prefill tok/s',
      'decode tok/s',
      'decode vs reference',
      'time to 1st token',
      'step: plan / device (GPU kernels) / read',
    ],
  ];
  let refDecode = 0;
  for (const backend of ['reference', 'webgpu', 'cuda-emu', 'cuda'] as const) {
    let m: Awaited<ReturnType<typeof measure>>;
    try {
      m = await measure(backend, tokens);
    } catch (e) {
      rows.push([backend, `unavailable: ${(e as Error).message.split('\n')[0]}`]);
      continue;
    }
    const dec = median(m.runs.map((r) => r.decode));
    if (backend === 'reference') refDecode = dec;
    const ms = (xs: number[]) => (xs.length ? median(xs).toFixed(2) : '–');
    rows.push([
      backend,
      median(m.runs.map((r) => r.prefill)).toFixed(1),
      dec.toFixed(1),
      refDecode ? `${(dec / refDecode).toFixed(2)}×` : '–',
      `${median(m.runs.map((r) => r.ttft)).toFixed(1)} ms`,
      m.split.device.length
        ? `${ms(m.split.plan)} / ${ms(m.split.device)}${m.split.kernels.length ? ` (${ms(m.split.kernels)})` : ''} / ${ms(m.split.read)} ms`
        : 'host only',
    ]);
  }
  printTable(rows);
  console.log(`\nbatch 4 on the paged KV cache (block size 16), decode tok/s summed over the 4 sequences:`);
  const brows: string[][] = [['backend', 'batch 4 decode tok/s', 'vs reference batch 4']];
  let ref4 = 0;
  for (const backend of ['reference', 'webgpu', 'cuda-emu', 'cuda'] as const) {
    try {
      const d = await measureBatch(backend, tokens, 4);
      if (backend === 'reference') ref4 = d;
      brows.push([backend, d.toFixed(1), ref4 ? `${(d / ref4).toFixed(2)}×` : '–']);
    } catch (e) {
      brows.push([backend, `unavailable: ${(e as Error).message.split('\n')[0]}`, '']);
    }
  }
  printTable(brows);
}
