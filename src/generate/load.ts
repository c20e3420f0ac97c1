/**
 * Loading a language model from a file (Node): a llama2.c checkpoint (`.bin`, with a llama2.c tokenizer), later GGUF
 * and safetensors + config.json. The bundled model (stories260K, a tiny Llama trained on TinyStories) ships in the
 * package's `models/` folder so `kiln demo` works on a fresh install.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../ir/ops/index.js';
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import { loadLlama2c } from '../frontends/llama2c.js';
import type { ModelConfig } from '../models/config.js';
import { buildLlama } from '../models/llama.js';
import { loadLlama2cTokenizer } from '../tokenizers/llama2c.js';
import type { Tokenizer } from '../tokenizers/types.js';

export interface LoadedModel {
  graph: Graph;
  config: ModelConfig;
  tokenizer: Tokenizer | undefined;
  /** What was loaded, for messages. */
  source: string;
}

/** The package's `models/` folder (holds stories260K.bin and tok512.bin). */
export function bundledModelsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'models', 'stories260K.bin'))) return join(dir, 'models');
    const up = dirname(dir);
    if (up === dir)
      throw new KilnError('runtime', "the bundled model (models/stories260K.bin) is not in kiln's package");
    dir = up;
  }
}

function read(path: string, what: string): Uint8Array {
  if (!existsSync(path)) throw new KilnError('runtime', `${what}: no such file: ${path}`);
  return readFileSync(path);
}

/**
 * Load a model file and its tokenizer. llama2.c checkpoints take `tokenizer` (a llama2.c tokenizer.bin; default: a
 * `tok<vocab>.bin` or `tokenizer.bin` beside the model).
 */
export function loadLanguageModel(path: string, opts: { tokenizer?: string; dtype?: 'f32' | 'f16' } = {}): LoadedModel {
  const bytes = read(path, 'model');
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  if (magic === 'GGUF') throw new UnsupportedError(`GGUF models are not wired into generation yet: ${path}`);
  if (/\.safetensors$/i.test(path)) throw new UnsupportedError(`safetensors models are not wired into generation yet`);
  const m = loadLlama2c(bytes);
  let tokenizer: Tokenizer | undefined;
  const candidates = opts.tokenizer
    ? [opts.tokenizer]
    : [join(dirname(path), `tok${m.config.vocab}.bin`), join(dirname(path), 'tokenizer.bin')];
  const tokPath = candidates.find((p) => existsSync(p));
  if (opts.tokenizer && !tokPath) throw new KilnError('runtime', `tokenizer: no such file: ${opts.tokenizer}`);
  if (tokPath) tokenizer = loadLlama2cTokenizer(read(tokPath, 'tokenizer'), m.config.vocab);
  const graph = buildLlama(m.config, m.weights, { dtype: opts.dtype });
  return { graph, config: m.config, tokenizer, source: resolve(path) };
}
