/**
 * The generation runtime: a compiled language model with its KV cache kept on the device. A model graph takes
 * `input_ids` [batch, seq] (and `position_ids` when it has them) plus `past_*` caches and returns `logits` and
 * `present_*` caches; this runtime adds a sampling head (the last position's logits and their argmax), prefills the
 * prompt in one run, then decodes one token per run, feeding each step's `present_*` back as `past_*` without the cache
 * leaving the device. Greedy decoding reads back one token id per step; sampling reads the last position's logits.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import type { DType } from '../../ir/dtype.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { ModelConfig } from '../models/config.js';
import { isDeviceTensor, type DeviceTensor } from '../runtime/device-tensor.js';
import { compile, type CompileOptions, type Session } from '../session.js';
import { addSamplingHead, uploadSampling } from './extend.js';
import { adaptDecoder, type CachePair, type DecoderLayout } from './onnx-decoder.js';
import { argmax, rng, sample, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  /** Most new tokens (default 128). */
  maxTokens?: number;
  /** Token ids that end generation (the tokenizer's EOS is added by the text API). */
  stop?: readonly number[];
  signal?: AbortSignal;
}

export interface GenerationStats {
  promptTokens: number;
  generatedTokens: number;
  /** Prefill (the whole prompt in one run) until the first new token is known. */
  timeToFirstTokenMs: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
}

type Feeds = Record<string, Tensor | DeviceTensor>;

/** A model graph for the runtime, with what it cannot tell from kiln's own names. */
export interface LanguageModel {
  graph: Graph;
  config?: ModelConfig;
  /** Cache inputs and the outputs fed back as them (default: every `past_X` input with its `present_X` output). */
  cache?: readonly CachePair[];
  /** Most positions (default: the config's maxSeq, else none). */
  maxSeq?: number;
  /**
   * An attention mask input and the output that is it extended by one column of ones (`adaptDecoder`): the first run
   * gets ones over the prompt (zeros over left padding), later runs the previous run's output, kept on the device.
   */
  mask?: CachePair;
}

/** The outputs the sampling head adds (`addSamplingHead`); all stay on the device but the one a step reads. */
export const HEAD_OUTPUTS = [
  'logits',
  'last_logits',
  'next_token',
  'sampled_token',
  'next_ids_greedy',
  'next_ids_sampled',
  'next_positions',
] as const;

/**
 * The outputs a run that reads `read` asks for: every output but the other sampling path's (a greedy step does not
 * launch the sampling kernel, a sampling step not the argmax) and, unless `treeAccept`, a tree model's acceptance.
 */
export function outputsFor(session: Session, read: string, treeAccept = false): string[] {
  const skip = new Set(
    read === 'sampled_token' ? ['next_token', 'next_ids_greedy'] : ['sampled_token', 'next_ids_sampled'],
  );
  if (!treeAccept) skip.add('tree_accepted');
  return session.outputNames.filter((n) => !skip.has(n));
}

/**
 * Text generation over one compiled decoder: prefill of the prompt in one run, then one run per token with the KV
 * cache (`present_*` → `past_*`) kept on the device and only the sampled id read back. Make one with
 * {@link LanguageModelSession.create}, {@link LanguageModelSession.fromSession} or {@link LanguageModelSession.fromOnnx}.
 */
export class LanguageModelSession {
  /** Statistics of the last `generate`. */
  stats: GenerationStats | undefined;
  private readonly cache: readonly CachePair[];
  private readonly hasPositions: boolean;
  /** input_ids' sequence dim when the model fixes it: a longer prompt is prefilled this many tokens per run. */
  private readonly tokensPerRun: number;
  private readonly maxSeq: number;
  private readonly mask: (CachePair & { dtype: DType }) | undefined;
  /** The layout of an imported decoder (`fromOnnx`). */
  layout: DecoderLayout | undefined;
  /** A model without position_ids keys the sampling draw by a fed step. */
  private readonly hasStep: boolean;

  private constructor(
    readonly session: Session,
    readonly config: ModelConfig | undefined,
    /** Empty caches for a batch. */
    private readonly emptyCache: (batch: number) => Record<string, Tensor>,
    model: LanguageModel,
  ) {
    const names = new Set(session.outputNames);
    this.cache = [
      ...(model.cache ??
        session.inputNames
          .filter((n) => n.startsWith('past_'))
          .map((past) => ({ past, present: `present_${past.slice(5)}` }))),
      ...(model.mask ? [model.mask] : []),
    ];
    this.mask = model.mask && {
      ...model.mask,
      dtype: model.graph.inputs.find((v) => v.name === model.mask!.past)!.type.dtype,
    };
    for (const c of this.cache) {
      if (!names.has(c.present)) throw new KilnError('verify', `model has ${c.past} but no ${c.present} output`);
    }
    const seq = model.graph.inputs.find((v) => v.name === 'input_ids')!.type.shape[1];
    this.tokensPerRun = typeof seq === 'number' ? seq : Infinity;
    this.maxSeq = model.maxSeq ?? config?.maxSeq ?? Infinity;
    this.hasPositions = session.inputNames.includes('position_ids');
    this.hasStep = session.inputNames.includes('sample_step');
  }

  /**
   * Compile a model graph for generation. The graph gets a sampling head (`addSamplingHead`): `last_logits`,
   * `next_token` (argmax) and `sampled_token` (temperature / top-k / top-p on the device), so a step reads back one id.
   *
   * @throws KilnError (code `verify`) when the graph has no `input_ids` input or no `logits` output; compile errors
   * as {@link compile}.
   */
  static async create(model: LanguageModel, opts: CompileOptions = {}): Promise<LanguageModelSession> {
    const g = model.graph;
    if (!g.inputs.some((v) => v.name === 'input_ids') || !g.outputs.some((v) => v.name === 'logits')) {
      throw new KilnError('verify', 'a language model graph needs an input_ids input and a logits output');
    }
    addSamplingHead(g);
    return LanguageModelSession.fromSession(model, await compile(g, opts));
  }

  /**
   * A language model over a session already made from its graph — the graph with its sampling head, optimized
   * (an ahead-of-time compiled module, kiln/runtime): no passes run.
   *
   * @throws KilnError (code `verify`) when the session lacks the sampling head's outputs (`last_logits`,
   * `next_token`, `sampled_token`).
   */
  static fromSession(model: LanguageModel, session: Session): LanguageModelSession {
    const g = model.graph;
    const needed = ['last_logits', 'next_token', 'sampled_token'];
    if (!needed.every((n) => session.outputNames.includes(n))) {
      throw new KilnError(
        'verify',
        `a session for generation needs the sampling head's outputs (${needed.join(', ')})`,
      );
    }
    // an empty cache: the batch dim of input_ids binds to 1, every other symbolic dim (the past length) to 0
    const batchDim = g.inputs.find((v) => v.name === 'input_ids')!.type.shape[0];
    const pasts = new Set(model.cache?.map((c) => c.past));
    const cacheInputs = g.inputs
      .filter((v) => (model.cache ? pasts.has(v.name) : v.name.startsWith('past_')))
      .map((v) => ({ name: v.name, dtype: v.type.dtype, shape: [...v.type.shape] }));
    const emptyCache = (batch: number) => {
      const empty: Record<string, Tensor> = {};
      for (const v of cacheInputs) {
        const shape = v.shape.map((d) => (typeof d === 'number' ? d : d === batchDim ? batch : 0));
        empty[v.name] = makeTensor(v.dtype, shape);
      }
      return empty;
    };
    return new LanguageModelSession(session, model.config, emptyCache, model);
  }

  /**
   * An imported ONNX decoder (`importOnnx(...).graph`; changed in place): the cache layout read from its names
   * (Optimum `past_key_values.N.key|value` ↔ `present.N.*`, GPT-2 packed `past_N` ↔ `present_N`, kiln's), its
   * attention_mask made on the device, its position_ids fed, and `logits` — or, failing that, its first non-cache
   * output — sampled from (`adaptDecoder`). `layout` says what was found.
   */
  static async fromOnnx(
    graph: Graph,
    opts: CompileOptions & { logits?: string; maxSeq?: number } = {},
  ): Promise<LanguageModelSession> {
    const { logits, maxSeq, ...compileOpts } = opts;
    const layout = adaptDecoder(graph, logits === undefined ? {} : { logits });
    const lm = await LanguageModelSession.create(
      {
        graph,
        cache: layout.cache,
        ...(layout.mask ? { mask: layout.mask } : {}),
        ...(maxSeq === undefined ? {} : { maxSeq }),
      },
      compileOpts,
    );
    lm.layout = layout;
    return lm;
  }

  private feeds(ids: readonly number[], pos0: number, past: Feeds): Feeds {
    const f: Feeds = { input_ids: makeTensor('i64', [1, ids.length], ids), ...past };
    // the first run's mask: ones over the prompt so far (later runs feed back the previous run's, on the device)
    if (this.mask && !past[this.mask.past]) {
      f[this.mask.past] = makeTensor(this.mask.dtype, [1, pos0 + ids.length], new Array(pos0 + ids.length).fill(1));
    }
    if (this.hasPositions) {
      f['position_ids'] = makeTensor(
        'i64',
        [1, ids.length],
        ids.map((_, i) => pos0 + i),
      );
    }
    return f;
  }

  /** Sampling parameters on the device for one sequence (uploaded once per generate call). */
  private samplingFeeds(opts: GenerateOptions): Feeds {
    return uploadSampling(this.session, [opts]);
  }

  /**
   * One run; `read` is the output that comes back to the host: `next_token` (greedy), `sampled_token` (sampling on
   * the device) or `last_logits` (host sampling, for the repetition penalty). Everything else stays on the device.
   */
  private async step(feeds: Feeds, read: string, pos: number): Promise<Record<string, Tensor | DeviceTensor>> {
    if (this.hasStep) feeds['sample_step'] = makeTensor('i64', [1], [pos]);
    const keep = [...this.cache.map((c) => c.present), ...HEAD_OUTPUTS.filter((n) => n !== read)];
    return this.session.runKeep(feeds, keep, outputsFor(this.session, read));
  }

  /**
   * Generate token ids after `prompt` (BOS included if the model wants it). Yields each new id as it is known.
   * The cache lives on the device for the whole call and is freed at the end. Stops after `opts.maxTokens` (default
   * 128) ids, at a stop id, or at the model's `maxSeq`; greedy unless `opts.temperature` > 0 (seed default 0).
   *
   * @throws KilnError (code `runtime`) for an empty prompt; run errors as {@link Session.run} (e.g. an id past the
   * vocabulary, naming the embedding's gather node).
   */
  async *generate(prompt: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<number> {
    if (prompt.length === 0) throw new KilnError('runtime', 'generate needs at least one prompt token');
    const maxTokens = opts.maxTokens ?? 128;
    const maxSeq = this.maxSeq;
    const stop = new Set(opts.stop ?? []);
    const hostSampling = (opts.repetitionPenalty ?? 1) !== 1;
    const read = hostSampling ? 'last_logits' : (opts.temperature ?? 0) > 0 ? 'sampled_token' : 'next_token';
    const rand = rng(opts.seed ?? 0);
    const history = [...prompt];
    let past: Feeds = this.emptyCache(1);
    const params = this.samplingFeeds(opts);
    const t0 = performance.now();
    let tFirst = t0;
    let generated = 0;
    const release = () => {
      for (const t of Object.values(past)) if (isDeviceTensor(t)) t.dispose();
    };
    // after the prompt, the next run's input_ids and position_ids were made on the device by the previous run
    let onDevice: Feeds | undefined;
    try {
      let ids: readonly number[] = prompt;
      let pos = 0;
      // a model that takes a fixed number of tokens per run prefills all but the prompt's last chunk first
      while (ids.length > this.tokensPerRun && pos + ids.length <= maxSeq) {
        const chunk = ids.slice(0, this.tokensPerRun);
        const out = await this.step(
          { ...this.feeds(chunk, pos, past), ...params },
          'next_token',
          pos + chunk.length - 1,
        );
        release();
        past = {};
        for (const c of this.cache) past[c.past] = out[c.present]!;
        for (const n of HEAD_OUTPUTS) {
          const t = out[n];
          if (t && isDeviceTensor(t)) t.dispose();
        }
        pos += chunk.length;
        ids = ids.slice(chunk.length);
      }
      while (generated < maxTokens && pos + ids.length <= maxSeq) {
        if (opts.signal?.aborted) break;
        const feeds = { ...this.feeds(ids, pos, past), ...onDevice, ...params };
        const out = await this.step(feeds, read, pos + ids.length - 1);
        release();
        for (const t of Object.values(onDevice ?? {})) if (isDeviceTensor(t)) t.dispose();
        past = {};
        for (const c of this.cache) past[c.past] = out[c.present]!;
        const got = out[read] as Tensor;
        const next = hostSampling ? sample(got.data, opts, rand, history) : got.data[0]!;
        // keep the device-made inputs the next run needs; free the rest of the head
        onDevice = {};
        const nextIds = read === 'sampled_token' ? 'next_ids_sampled' : 'next_ids_greedy';
        if (!hostSampling) onDevice['input_ids'] = out[nextIds]!;
        if (this.hasPositions && out['next_positions']) onDevice['position_ids'] = out['next_positions'];
        for (const n of HEAD_OUTPUTS) {
          const t = out[n];
          if (t && isDeviceTensor(t) && !Object.values(onDevice).includes(t)) t.dispose();
        }
        pos += ids.length;
        if (generated === 0) tFirst = performance.now();
        generated++;
        history.push(next);
        if (stop.has(next)) break;
        yield next;
        ids = [next];
      }
    } finally {
      release();
      for (const t of Object.values(onDevice ?? {})) if (isDeviceTensor(t)) t.dispose();
      for (const t of Object.values(params)) if (isDeviceTensor(t)) t.dispose();
      const t1 = performance.now();
      const decodeMs = t1 - tFirst;
      this.stats = {
        promptTokens: prompt.length,
        generatedTokens: generated,
        timeToFirstTokenMs: tFirst - t0,
        prefillTokPerS: (prompt.length / Math.max(tFirst - t0, 1e-3)) * 1000,
        decodeTokPerS: generated > 1 ? ((generated - 1) / Math.max(decodeMs, 1e-3)) * 1000 : 0,
      };
    }
  }

  /**
   * Greedy (or on-device sampled) ids for several prompts decoded as one batch: prompts left-padded to the longest
   * with `padId` (default 0), the mask 0 over the padding, each row's positions counted from its first real token.
   * Prompts of different lengths need a model with attention_mask and position_ids inputs. Every step reads back one
   * id per row; the cache, mask, positions and next ids stay on the device. Returns each row's ids, cut at a stop id.
   *
   * @throws KilnError (code `runtime`) for no prompt or an empty one; (code `unsupported`) for a repetition penalty, or
   * prompts of different lengths on a model without attention_mask and position_ids; (code `limit`) for a prompt
   * longer than the model takes per run.
   */
  async generateBatch(
    prompts: readonly (readonly number[])[],
    opts: GenerateOptions & { padId?: number } = {},
  ): Promise<number[][]> {
    const B = prompts.length;
    if (B === 0 || prompts.some((p) => p.length === 0)) {
      throw new KilnError('runtime', 'generateBatch needs at least one prompt and no empty prompt');
    }
    if ((opts.repetitionPenalty ?? 1) !== 1) {
      throw new KilnError('unsupported', 'generateBatch samples on the device: no repetition penalty');
    }
    const L = Math.max(...prompts.map((p) => p.length));
    const pads = prompts.map((p) => L - p.length);
    if (pads.some((p) => p > 0) && (!this.mask || !this.hasPositions)) {
      throw new KilnError(
        'unsupported',
        'prompts of different lengths need a model with attention_mask and position_ids',
      );
    }
    if (L > this.tokensPerRun) {
      throw new KilnError('limit', `this model takes ${this.tokensPerRun} tokens per run, a prompt has ${L}`, {
        limit: 'tokens per run',
      });
    }
    const maxTokens = opts.maxTokens ?? 128;
    const stop = new Set(opts.stop ?? []);
    const read = (opts.temperature ?? 0) > 0 ? 'sampled_token' : 'next_token';
    const nextIds = read === 'sampled_token' ? 'next_ids_sampled' : 'next_ids_greedy';
    const cell = (f: (row: number, t: number) => number) =>
      prompts.flatMap((_, r) => Array.from({ length: L }, (_, t) => f(r, t)));
    let feeds: Feeds = {
      ...this.emptyCache(B),
      input_ids: makeTensor(
        'i64',
        [B, L],
        cell((r, t) => (t < pads[r]! ? (opts.padId ?? 0) : prompts[r]![t - pads[r]!]!)),
      ),
    };
    if (this.hasPositions)
      feeds['position_ids'] = makeTensor(
        'i64',
        [B, L],
        cell((r, t) => Math.max(0, t - pads[r]!)),
      );
    if (this.mask)
      feeds[this.mask.past] = makeTensor(
        this.mask.dtype,
        [B, L],
        cell((r, t) => (t < pads[r]! ? 0 : 1)),
      );
    const params = uploadSampling(
      this.session,
      prompts.map(() => opts),
    );
    const keep = [...this.cache.map((c) => c.present), ...HEAD_OUTPUTS.filter((n) => n !== read)];
    const wanted = outputsFor(this.session, read);
    const outIds: number[][] = prompts.map(() => []);
    const done = prompts.map(() => false);
    const free = (f: Feeds) => {
      for (const t of Object.values(f)) if (isDeviceTensor(t)) t.dispose();
    };
    try {
      for (let step = 0; step < maxTokens && L + step <= this.maxSeq; step++) {
        if (opts.signal?.aborted) break;
        if (this.hasStep) feeds['sample_step'] = makeTensor('i64', [B], new Array(B).fill(L + step - 1));
        const out = await this.session.runKeep({ ...feeds, ...params }, keep, wanted);
        free(feeds);
        feeds = {};
        for (const c of this.cache) feeds[c.past] = out[c.present]!;
        feeds['input_ids'] = out[nextIds]!;
        if (this.hasPositions) feeds['position_ids'] = out['next_positions']!;
        for (const n of HEAD_OUTPUTS) {
          const t = out[n];
          if (t && isDeviceTensor(t) && !Object.values(feeds).includes(t)) t.dispose();
        }
        const got = (out[read] as Tensor).data;
        for (let r = 0; r < B; r++) {
          if (done[r]) continue;
          const id = Number(got[r]);
          if (stop.has(id)) done[r] = true;
          else outIds[r]!.push(id);
        }
        if (done.every(Boolean)) break;
      }
    } finally {
      free(feeds);
      free(params);
    }
    return outIds;
  }

  /**
   * Logits [tokens, vocab] of a whole sequence in one run (evaluation; no cache kept).
   *
   * @throws KilnError (code `limit`) when the model takes fewer tokens per run than `tokens` has.
   */
  async logits(tokens: readonly number[]): Promise<Tensor> {
    if (tokens.length > this.tokensPerRun) {
      throw new KilnError('limit', `this model takes ${this.tokensPerRun} tokens per run, got ${tokens.length}`, {
        limit: 'tokens per run',
      });
    }
    const params = this.samplingFeeds({});
    const feeds: Feeds = { ...this.feeds(tokens, 0, this.emptyCache(1)), ...params };
    if (this.hasStep) feeds['sample_step'] = makeTensor('i64', [1], [tokens.length - 1]);
    const out = await this.session.runKeep(
      feeds,
      this.cache.map((c) => c.present).concat(HEAD_OUTPUTS.filter((n) => n !== 'logits')),
      outputsFor(this.session, 'logits'),
    );
    for (const v of [...Object.values(out), ...Object.values(params)]) if (isDeviceTensor(v)) v.dispose();
    const l = out['logits'] as Tensor;
    const vocab = l.shape[l.shape.length - 1]!;
    return makeTensor('f32', [tokens.length, vocab], l.data as Float32Array);
  }

  /** Disposes the underlying session (see {@link Session.dispose}); the object is unusable afterwards. */
  dispose(): void {
    this.session.dispose();
  }
}

/** Greedy next token of a logits row (re-exported for tests and tools). */
export { argmax };
