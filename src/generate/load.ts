/**
 * Loading a language model from a file (Node): a llama2.c checkpoint (`.bin`, with a llama2.c tokenizer), GGUF, or
 * safetensors + config.json. The bundled model (stories260K, a tiny Llama trained on TinyStories) ships in the
 * package's `models/` folder so `kiln demo` works on a fresh install.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../ir/ops/index.js';
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import { ggufModel } from '../frontends/gguf.js';
import { hfModel } from '../frontends/hf-config.js';
import { loadLlama2c } from '../frontends/llama2c.js';
import { parseSafetensors } from '../frontends/safetensors.js';
import type { ModelConfig, WeightSource } from '../models/config.js';
import { buildGpt2 } from '../models/gpt2.js';
import { buildLlama } from '../models/llama.js';
import { loadLlama2cTokenizer } from '../tokenizers/llama2c.js';
import type { Tokenizer } from '../tokenizers/types.js';

export interface LoadedModel {
  graph: Graph;
  config: ModelConfig;
  tokenizer: Tokenizer | undefined;
  /** What was loaded, for messages. */
  source: string;
  /** The llama2.c tokenizer file used, when one was (ahead-of-time modules ship a copy). */
  tokenizerFile?: string;
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
 * Load a model file and its tokenizer:
 * - a llama2.c checkpoint (`.bin`), with `tokenizer` a llama2.c tokenizer.bin (default: `tok<vocab>.bin` or
 *   `tokenizer.bin` beside the model);
 * - a GGUF file (`llama` or `gpt2` architecture), with its embedded tokenizer: f32 / f16 / bf16 tensors, and for
 *   LLaMA the ggml block formats Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K kept packed on the device
 *   (`matmul_ggml` / `get_rows_ggml`; a GPT-2 file's quantized tensors are dequantized to f32);
 * - a safetensors file with a Hugging Face `config.json` (`config`, default: `config.json` beside it); no tokenizer.
 */
export function loadLanguageModel(
  path: string,
  opts: { tokenizer?: string; config?: string | object; dtype?: 'f32' | 'f16'; paged?: { blockSize: number } } = {},
): LoadedModel {
  const bytes = read(path, 'model');
  const magic = new TextDecoder().decode(bytes.subarray(0, 4));
  let config: ModelConfig;
  let weights: WeightSource;
  let tokenizer: Tokenizer | undefined;
  let tokenizerFile: string | undefined;
  if (magic === 'GGUF') {
    ({ config, weights, tokenizer } = ggufModel(bytes));
  } else if (/\.safetensors$/i.test(path)) {
    let cfg = opts.config ?? join(dirname(path), 'config.json');
    if (typeof cfg === 'string') cfg = new TextDecoder().decode(read(cfg, 'config.json'));
    ({ config, weights } = hfModel(parseSafetensors(bytes), cfg));
  } else {
    ({ config, weights } = loadLlama2c(bytes));
    const candidates = opts.tokenizer
      ? [opts.tokenizer]
      : [join(dirname(path), `tok${config.vocab}.bin`), join(dirname(path), 'tokenizer.bin')];
    const tokPath = candidates.find((p) => existsSync(p));
    if (opts.tokenizer && !tokPath) throw new KilnError('runtime', `tokenizer: no such file: ${opts.tokenizer}`);
    if (tokPath) {
      tokenizer = loadLlama2cTokenizer(read(tokPath, 'tokenizer'), config.vocab);
      tokenizerFile = resolve(tokPath);
    }
  }
  const graph =
    config.arch === 'llama'
      ? buildLlama(config, weights, { dtype: opts.dtype, paged: opts.paged })
      : buildGpt2(config, weights, { dtype: opts.dtype, paged: opts.paged });
  return { graph, config, tokenizer, source: resolve(path), ...(tokenizerFile ? { tokenizerFile } : {}) };
}
