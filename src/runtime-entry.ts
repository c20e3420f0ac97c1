/**
 * kiln/runtime — what an ahead-of-time compiled module (`kiln compile`, src/aot.ts) needs to run: the IR text reader,
 * the code generator and the device runtimes. No passes, no ONNX parser, no model-file loaders: the module's graph was
 * optimized when it was written, so loading it only parses the graph, binds the weights and builds kernels.
 *
 * ```ts
 * import { load } from './stories260K/index.js'; // written by `kiln compile stories260K.bin --out stories260K`
 * const model = await load({ backend: 'auto' });
 * for await (const piece of model.generateText('Once upon a time', { maxTokens: 64 })) process.stdout.write(piece);
 * ```
 *
 * @module kiln/runtime
 */
/// <reference types="@webgpu/types" />
import '../ir/ops/index.js';
import { KilnError } from '../ir/errors.js';
import type { Graph } from '../ir/graph.js';
import type { DType } from '../ir/dtype.js';
import { parseGraph } from '../ir/text.js';
import { LanguageModelSession, type GenerateOptions } from './generate/lm.js';
import { generateText } from './generate/text.js';
import type { ModelConfig } from './models/config.js';
import { createSession, type BackendChoice, type Session } from './session.js';
import { loadLlama2cTokenizer } from './tokenizers/llama2c.js';
import type { Tokenizer } from './tokenizers/types.js';

export { createSession, type Session, type BackendChoice } from './session.js';
export type { DeviceTensor } from './runtime/device-tensor.js';
export { LanguageModelSession, type GenerateOptions } from './generate/lm.js';
export type { Tokenizer } from './tokenizers/types.js';

/** The version of the module format this runtime reads. */
export const MODULE_FORMAT = 1;

/** A graph input or output as a module's manifest records it (symbolic dims as names). */
export interface ModuleValue {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly (number | string)[];
}

/** `manifest.json` of a compiled module. */
export interface ModuleManifest {
  readonly format: 'kiln-module';
  readonly version: number;
  /** The kiln version that wrote it. */
  readonly kiln: string;
  readonly name: string;
  /** The backend family it was compiled for: `webgpu` (WGSL) or `cuda` (CUDA C; cuda-emu off a GPU). */
  readonly target: 'webgpu' | 'cuda';
  /** The optimization level its graph was optimized at. */
  readonly opt: number;
  /** The optimized graph as kiln IR text, constants as `data(offset, bytes)` slices of `weights`. */
  readonly graph: string;
  readonly weights: string;
  readonly weightBytes: number;
  readonly inputs: readonly ModuleValue[];
  readonly outputs: readonly ModuleValue[];
  /** Kernel groups of the optimized graph (one node each), by op: the execution plan in brief. */
  readonly plan: { readonly nodes: number; readonly byOp: Readonly<Record<string, number>> };
  /** A language model (the graph carries the sampling head): its config. */
  readonly lm?: { readonly config: ModelConfig };
  /** A llama2.c tokenizer shipped beside it. */
  readonly tokenizer?: { readonly kind: 'llama2c'; readonly file: string; readonly vocab: number };
}

export interface ModuleLoadOptions {
  /** Default: `auto` for a `webgpu` module (cuda → webgpu → reference), `cuda` → `cuda`, else cuda-emu. */
  backend?: BackendChoice;
  /** WebGPU: run on this device (GPU-resident I/O, see `compile`). */
  device?: GPUDevice;
}

/** A loaded module: its session, and for a language model the generation API and its tokenizer. */
export interface CompiledModule {
  readonly manifest: ModuleManifest;
  readonly session: Session;
  readonly lm: LanguageModelSession | undefined;
  readonly tokenizer: Tokenizer | undefined;
  /**
   * Stream text after a prompt (a language model with a tokenizer); options as `generateText`.
   *
   * @throws KilnError (code `unsupported`) when the module is not a language model with a tokenizer.
   */
  generateText(prompt: string, opts?: GenerateOptions): AsyncGenerator<string>;
  /** Disposes the module's session (device buffers and kernels); see {@link Session.dispose}. */
  dispose(): void;
}

/** Reads a file of the module: from disk in Node (a file: URL or a path), with fetch elsewhere. */
async function readPart(base: URL, file: string): Promise<Uint8Array> {
  const url = new URL(file, base);
  if (url.protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    const { fileURLToPath } = await import('node:url');
    try {
      return new Uint8Array(await readFile(fileURLToPath(url)));
    } catch (e) {
      throw new KilnError('runtime', `module file missing: ${(e as Error).message}`, { tensor: file });
    }
  }
  const res = await fetch(url);
  if (!res.ok) throw new KilnError('runtime', `fetching ${url.href} failed: HTTP ${res.status}`, { tensor: file });
  return new Uint8Array(await res.arrayBuffer());
}

function baseUrl(base: URL | string): URL {
  if (base instanceof URL) return base.href.endsWith('/') ? base : new URL(base.href + '/');
  if (/^[a-z][a-z0-9+.-]*:/i.test(base) && !/^[a-z]:[\\/]/i.test(base)) return baseUrl(new URL(base));
  // a file-system path (Node)
  const abs = base.startsWith('/') ? base : `${process.cwd()}/${base}`;
  return new URL(`file://${abs.replace(/\/?$/, '/')}`);
}

function checkManifest(m: unknown): ModuleManifest {
  const x = m as Partial<ModuleManifest> | undefined;
  if (!x || x.format !== 'kiln-module') throw new KilnError('parse', 'not a kiln module manifest (format field)');
  if (x.version !== MODULE_FORMAT) {
    throw new KilnError('unsupported', `module format ${String(x.version)}; this runtime reads ${MODULE_FORMAT}`, {
      limit: 'module format',
    });
  }
  return x as ModuleManifest;
}

/**
 * Load a compiled module from its folder (a path or URL; `manifest` when the module's index.js has it inline).
 * The graph is parsed and its weights bound; kernels are built by the first runs (or `session.warmup`). The backend
 * defaults to `webgpu` when `opts.device` is given, else `cuda` for a module compiled for CUDA, else `auto`.
 *
 * @throws KilnError (code `runtime`) when a module file is missing or cannot be fetched (naming the file), (code
 * `parse`) when the manifest is not a kiln module's or the graph text is malformed, (code `unsupported`) for a module
 * format this runtime does not read.
 */
export async function loadModule(
  base: URL | string,
  manifest?: ModuleManifest,
  opts: ModuleLoadOptions = {},
): Promise<CompiledModule> {
  const root = baseUrl(base);
  const m = checkManifest(
    manifest ?? (JSON.parse(new TextDecoder().decode(await readPart(root, 'manifest.json'))) as unknown),
  );
  const [text, weights] = await Promise.all([readPart(root, m.graph), readPart(root, m.weights)]);
  const graph: Graph = parseGraph(new TextDecoder().decode(text), { data: weights });
  const backend: BackendChoice = opts.backend ?? (opts.device ? 'webgpu' : m.target === 'cuda' ? 'cuda' : 'auto');
  const session = await createSession(graph, { backend, ...(opts.device ? { device: opts.device } : {}) });
  const lm = m.lm ? LanguageModelSession.fromSession({ graph, config: m.lm.config }, session) : undefined;
  const tokenizer = m.tokenizer
    ? loadLlama2cTokenizer(await readPart(root, m.tokenizer.file), m.tokenizer.vocab)
    : undefined;
  return {
    manifest: m,
    session,
    lm,
    tokenizer,
    generateText(prompt: string, o: GenerateOptions = {}) {
      if (!lm || !tokenizer) {
        throw new KilnError('unsupported', `module '${m.name}' is not a language model with a tokenizer`);
      }
      return generateText(lm, tokenizer, prompt, o);
    },
    dispose() {
      session.dispose();
    },
  };
}
