/**
 * The generation runtime: a compiled language model with its KV cache kept on the device. A model graph takes
 * `input_ids` [batch, seq] (and `position_ids` when it has them) plus `past_*` caches and returns `logits` and
 * `present_*` caches; this runtime adds a sampling head (the last position's logits and their argmax), prefills the
 * prompt in one run, then decodes one token per run, feeding each step's `present_*` back as `past_*` without the cache
 * leaving the device. Greedy decoding reads back one token id per step; sampling reads the last position's logits.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { ModelConfig } from '../models/config.js';
import { isDeviceTensor, type DeviceTensor } from '../runtime/device-tensor.js';
import { compile, type CompileOptions, type Session } from '../session.js';
import { GraphExtender } from './extend.js';
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

export class LanguageModelSession {
  /** Statistics of the last `generate`. */
  stats: GenerationStats | undefined;
  private readonly cache: { past: string; present: string }[];
  private readonly hasPositions: boolean;

  private constructor(
    readonly session: Session,
    readonly config: ModelConfig | undefined,
    private readonly emptyPast: Record<string, Tensor>,
  ) {
    const names = new Set(session.outputNames);
    this.cache = session.inputNames
      .filter((n) => n.startsWith('past_'))
      .map((past) => ({ past, present: `present_${past.slice(5)}` }));
    for (const c of this.cache) {
      if (!names.has(c.present)) throw new KilnError('verify', `model has ${c.past} but no ${c.present} output`);
    }
    this.hasPositions = session.inputNames.includes('position_ids');
  }

  /**
   * Compile a model graph for generation. The graph gets two more outputs: `last_logits` [batch, vocab] and
   * `next_token` [batch] (their argmax), so a greedy step reads back one id.
   */
  static async create(
    model: { graph: Graph; config?: ModelConfig },
    opts: CompileOptions = {},
  ): Promise<LanguageModelSession> {
    const g = model.graph;
    if (!g.inputs.some((v) => v.name === 'input_ids') || !g.outputs.some((v) => v.name === 'logits')) {
      throw new KilnError('verify', 'a language model graph needs an input_ids input and a logits output');
    }
    const x = new GraphExtender(g);
    const logits = x.output('logits');
    const rank = logits.type.shape.length;
    const last = x.op('slice', [logits, x.constI64([-1]), x.constI64([2 ** 31 - 1]), x.constI64([rank - 2])]);
    const row = x.op('squeeze', [last], { axes: [rank - 2] });
    x.addOutput(row, 'last_logits');
    x.addOutput(x.op('argmax', [row], { axis: -1, keepdims: false }), 'next_token');
    const session = await compile(g, opts);
    // an empty cache: the batch dim of input_ids binds to 1, every other symbolic dim (the past length) to 0
    const batchDim = g.inputs.find((v) => v.name === 'input_ids')!.type.shape[0];
    const emptyPast: Record<string, Tensor> = {};
    for (const v of g.inputs) {
      if (!v.name.startsWith('past_')) continue;
      const shape = v.type.shape.map((d) => (typeof d === 'number' ? d : d === batchDim ? 1 : 0));
      emptyPast[v.name] = makeTensor(v.type.dtype, shape);
    }
    return new LanguageModelSession(session, model.config, emptyPast);
  }

  private feeds(ids: readonly number[], pos0: number, past: Feeds): Feeds {
    const f: Feeds = { input_ids: makeTensor('i64', [1, ids.length], ids), ...past };
    if (this.hasPositions) {
      f['position_ids'] = makeTensor(
        'i64',
        [1, ids.length],
        ids.map((_, i) => pos0 + i),
      );
    }
    return f;
  }

  private async step(feeds: Feeds, greedy: boolean): Promise<{ out: Record<string, Tensor | DeviceTensor> }> {
    // greedy reads back only next_token; sampling reads the last position's logits
    const keep = [...this.cache.map((c) => c.present), 'logits', greedy ? 'last_logits' : 'next_token'];
    const out = await this.session.runKeep(feeds, keep);
    const l = out['logits'];
    if (isDeviceTensor(l)) l.dispose(); // the full logits are not needed while generating
    return { out };
  }

  /**
   * Generate token ids after `prompt` (BOS included if the model wants it). Yields each new id as it is known.
   * The cache lives on the device for the whole call and is freed at the end.
   */
  async *generate(prompt: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<number> {
    if (prompt.length === 0) throw new KilnError('runtime', 'generate needs at least one prompt token');
    const maxTokens = opts.maxTokens ?? 128;
    const maxSeq = this.config?.maxSeq ?? Infinity;
    const stop = new Set(opts.stop ?? []);
    const greedy = !((opts.temperature ?? 0) > 0) && (opts.repetitionPenalty ?? 1) === 1;
    const rand = rng(opts.seed ?? 0);
    const history = [...prompt];
    let past: Feeds = { ...this.emptyPast };
    const t0 = performance.now();
    let tFirst = t0;
    let generated = 0;
    const release = () => {
      for (const t of Object.values(past)) if (isDeviceTensor(t)) t.dispose();
    };
    try {
      let ids: readonly number[] = prompt;
      let pos = 0;
      while (generated < maxTokens && pos + ids.length <= maxSeq) {
        if (opts.signal?.aborted) break;
        const { out } = await this.step(this.feeds(ids, pos, past), greedy);
        release();
        past = {};
        for (const c of this.cache) past[c.past] = out[c.present]!;
        let next: number;
        if (greedy) next = (out['next_token'] as Tensor).data[0]!;
        else {
          const row = out['last_logits'] as Tensor;
          next = sample(row.data, opts, rand, history);
        }
        const n = out['next_token'];
        if (isDeviceTensor(n)) n.dispose();
        const l = out['last_logits'];
        if (isDeviceTensor(l)) l.dispose();
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

  /** Logits [tokens, vocab] of a whole sequence in one run (evaluation; no cache kept). */
  async logits(tokens: readonly number[]): Promise<Tensor> {
    const out = await this.session.runKeep(
      this.feeds(tokens, 0, { ...this.emptyPast }),
      this.cache.map((c) => c.present).concat(['last_logits', 'next_token']),
    );
    for (const v of Object.values(out)) if (isDeviceTensor(v)) v.dispose();
    const l = out['logits'] as Tensor;
    const vocab = l.shape[l.shape.length - 1]!;
    return makeTensor('f32', [tokens.length, vocab], l.data as Float32Array);
  }

  dispose(): void {
    this.session.dispose();
  }
}

/** Greedy next token of a logits row (re-exported for tests and tools). */
export { argmax };
