/**
 * `kiln demo`: the whole thing on a real model. Loads the bundled stories260K (a tiny Llama trained on TinyStories),
 * compiles it for the best device here, streams a story from "Once upon a time", then says where it ran and how fast.
 */
import { LanguageModelSession } from './generate/lm.js';
import { bundledModelsDir, loadLanguageModel } from './generate/load.js';
import { generateText } from './generate/text.js';
import type { BackendChoice } from './session.js';
import { join } from 'node:path';

export interface DemoOptions {
  /** Default `auto`: CUDA, else WebGPU, else the reference interpreter. */
  backend?: BackendChoice;
  prompt?: string;
  maxTokens?: number;
  /** Where the story streams (default: nowhere). */
  write?: (text: string) => void;
}

export interface DemoResult {
  backend: string;
  text: string;
  tokens: number;
}

export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const write = opts.write ?? (() => {});
  const dir = bundledModelsDir();
  const t0 = performance.now();
  const model = loadLanguageModel(join(dir, 'stories260K.bin'), { tokenizer: join(dir, 'tok512.bin') });
  const c = model.config;
  if (c.arch !== 'llama') throw new Error('the bundled model is a Llama');
  write(
    `stories260K — a tiny Llama trained on TinyStories (dim ${c.dim}, ${c.layers} layers, ${c.heads} heads / ` +
      `${c.kvHeads} KV heads, vocab ${c.vocab}), ${model.graph.nodes.length} graph nodes, loaded in ` +
      `${(performance.now() - t0).toFixed(0)} ms\n`,
  );
  const t1 = performance.now();
  const lm = await LanguageModelSession.create(model, { backend: opts.backend ?? 'auto' });
  try {
    write(
      // model.graph now includes the sampling head the runtime appended; the session holds the optimized copy
      `passes (opt 1: canonicalization, pattern recognition, CSE, elementwise fusion): ${model.graph.nodes.length} → ` +
        `${lm.session.graph.nodes.length} nodes (${model.graph.constants.length} → ${lm.session.graph.constants.length} constants);` +
        ` fusion into matmuls and norms is not in the pipeline yet\n`,
    );
    const placed = lm.session.placement();
    const auto = (opts.backend ?? 'auto') === 'auto' ? ' (auto: the best one available here)' : '';
    write(
      `backend: ${lm.session.backend}${auto} — ${placed.device} nodes as device kernels, ${placed.host} on the host ` +
        `(compiled in ${(performance.now() - t1).toFixed(0)} ms)\n\n`,
    );
    const prompt = opts.prompt ?? 'Once upon a time';
    write(prompt);
    let text = '';
    for await (const piece of generateText(lm, model.tokenizer!, prompt, { maxTokens: opts.maxTokens ?? 200 })) {
      text += piece;
      write(piece);
    }
    const s = lm.stats!;
    write(
      `\n\n${s.generatedTokens} tokens on ${lm.session.backend}: time to first token ${s.timeToFirstTokenMs.toFixed(0)} ms ` +
        `(prompt ${s.promptTokens} tokens, ${s.prefillTokPerS.toFixed(1)} tok/s), decode ${s.decodeTokPerS.toFixed(1)} tok/s; ` +
        `the KV cache stayed on the device\n`,
    );
    return { backend: lm.session.backend, text, tokens: s.generatedTokens };
  } finally {
    lm.dispose();
  }
}
