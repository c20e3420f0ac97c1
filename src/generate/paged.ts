/**
 * Paged generation: the KV cache of every layer is one pool of fixed-size blocks on the device, and each sequence owns
 * a list of blocks (its block table). Sequences of different lengths decode together as one batch (one token each per
 * run), and a sequence can be rolled back to any position (speculative decoding needs this) by giving up its tail.
 * The model graph is built with `paged: { blockSize }` (see `src/models/lm.ts`); its pools stay on the device and are
 * updated in place by `kv_cache_write`.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';
import type { ModelConfig } from '../models/config.js';
import { isDeviceTensor, type DeviceTensor } from '../runtime/device-tensor.js';
import { compile, type CompileOptions, type Session } from '../session.js';
import { addSamplingHead, uploadSampling } from './extend.js';
import { HEAD_OUTPUTS, type GenerateOptions, type GenerationStats } from './lm.js';
import { rng, sample } from './sampling.js';

/** Sampling parameters of a batch, on the device. */
export interface SamplingParams {
  readonly feeds: Readonly<Record<string, DeviceTensor>>;
  /** Some row samples (read `sampled_token`); otherwise the argmax is read. */
  readonly sample: boolean;
  /** Frees the parameters' device tensors. */
  dispose(): void;
}

/** One sequence in the pool: its tokens so far (prompt and generated) and the blocks holding their keys / values. */
export class PagedSequence {
  readonly tokens: number[] = [];
  readonly blocks: number[] = [];
  /** An empty sequence; use {@link PagedLanguageModel.newSequence}, which numbers them. */
  constructor(readonly id: number) {}
  /** Positions whose keys / values are in the cache. */
  get length(): number {
    return this.tokens.length;
  }
}

export interface PagedOptions extends CompileOptions {
  /** Blocks in each layer's pool (the cache holds numBlocks · blockSize positions in all). */
  numBlocks: number;
  /**
   * Also output `hidden`, the final normalized hidden state the LM head reads ([batch, seq, dim]; `exposeHidden`), so
   * `append(…, { hidden: true })` can read it (Medusa heads draft from it). Default false.
   */
  hidden?: boolean;
}

/**
 * Make the hidden state the LM head reads (the input of the contraction producing `logits`, through a cast) a graph
 * output named `hidden`. Returns false when the graph's logits do not come from such a contraction.
 */
export function exposeHidden(graph: Graph): boolean {
  if (graph.outputs.some((o) => o.name === 'hidden')) return true;
  let p = graph.outputs.find((o) => o.name === 'logits')?.producer;
  if (p?.op === 'cast') p = p.inputs[0]?.producer;
  if (!p || !['matmul', 'einsum', 'gemm'].includes(p.op)) return false;
  const h = p.inputs[0];
  if (!h || !h.producer || graph.outputs.includes(h)) return false;
  if ([...graph.values()].some((v) => v.name === 'hidden')) return false;
  h.name = 'hidden';
  graph.outputs.push(h);
  return true;
}

/**
 * A language model whose KV cache is one block pool per layer on the device: many sequences of different lengths
 * decode as one batch, and each can be forked (shared blocks, copy-on-write) or rolled back. Build the graph with
 * `paged: { blockSize }` and make it with {@link PagedLanguageModel.create}.
 */
export class PagedLanguageModel {
  private readonly free: number[];
  /** Owners of each block: forks share their parent's full blocks. */
  private readonly refs: Int32Array;
  private readonly pools: Record<string, Tensor | DeviceTensor> = {};
  private readonly layers: { cache: string; updated: string }[];
  private nextId = 0;
  readonly blockSize: number;

  private constructor(
    readonly session: Session,
    readonly config: ModelConfig | undefined,
    readonly numBlocks: number,
  ) {
    const cacheIn = session.inputs.filter((v) => v.name.startsWith('cache_'));
    if (!cacheIn.length || !session.inputNames.includes('block_table')) {
      throw new KilnError('verify', 'a paged model graph needs block_table and cache_* inputs (build it with paged)');
    }
    this.blockSize = cacheIn[0]!.shape[2] as number;
    this.layers = cacheIn.map((v) => ({ cache: v.name, updated: `updated_${v.name.slice('cache_'.length)}` }));
    for (const v of cacheIn) {
      const shape = v.shape.map((d, i) => (i === 0 ? numBlocks : (d as number)));
      // zeros once, then the pool lives on the device for the whole session
      this.pools[v.name] = session.upload(makeTensor(v.dtype, shape), v.name);
    }
    this.free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
    this.refs = new Int32Array(numBlocks);
  }

  /**
   * Compiles a paged model graph (changed in place: a sampling head, and `hidden` when `opts.hidden`) and allocates
   * `opts.numBlocks` zeroed blocks per layer on the device.
   *
   * @throws KilnError (code `limit`) when `numBlocks` is not a positive integer, (code `verify`) when `opts.hidden`
   * is set but the logits do not come from a contraction of a hidden state, or when the graph has no `block_table` /
   * `cache_*` inputs; compile errors as {@link compile}.
   */
  static async create(model: { graph: Graph; config?: ModelConfig }, opts: PagedOptions): Promise<PagedLanguageModel> {
    if (!(Number.isInteger(opts.numBlocks) && opts.numBlocks > 0)) {
      throw new KilnError('limit', `numBlocks must be a positive integer, got ${opts.numBlocks}`, {
        limit: 'numBlocks',
      });
    }
    if (opts.hidden && !exposeHidden(model.graph)) {
      throw new KilnError('verify', "the model's logits do not come from a contraction of a hidden state");
    }
    addSamplingHead(model.graph);
    const { numBlocks, hidden: _hidden, ...compileOpts } = opts;
    const session = await compile(model.graph, compileOpts);
    return new PagedLanguageModel(session, model.config, numBlocks);
  }

  private readonly greedyByBatch = new Map<number, SamplingParams>();

  /** Greedy parameters for a batch of B, uploaded once and reused (nothing crosses per step). */
  private greedyParams(B: number): SamplingParams {
    let p = this.greedyByBatch.get(B);
    if (!p) {
      p = this.samplingParams(Array.from({ length: B }, () => ({})));
      this.greedyByBatch.set(B, p);
    }
    return p;
  }

  /** Per-sequence sampling parameters on the device (dispose with `.dispose()` when the batch changes). */
  samplingParams(rows: readonly GenerateOptions[]): SamplingParams {
    const feeds = uploadSampling(this.session, rows);
    return {
      feeds,
      sample: rows.some((o) => (o.temperature ?? 0) > 0),
      dispose: () => Object.values(feeds).forEach((t) => t.dispose()),
    };
  }

  /** Blocks not owned by any sequence. */
  get freeBlocks(): number {
    return this.free.length;
  }

  /** A new, empty sequence (no blocks yet: they are taken from the pool as it grows). */
  newSequence(): PagedSequence {
    return new PagedSequence(this.nextId++);
  }

  private reserve(seq: PagedSequence, upTo: number): void {
    const need = Math.ceil(upTo / this.blockSize);
    while (seq.blocks.length < need) {
      const b = this.free.pop();
      if (b === undefined) {
        throw new KilnError('limit', `the KV cache is full (${this.numBlocks} blocks of ${this.blockSize})`, {
          limit: 'numBlocks',
        });
      }
      this.refs[b] = 1;
      seq.blocks.push(b);
    }
  }

  private drop(block: number): void {
    if (--this.refs[block]! === 0) this.free.push(block);
  }

  /**
   * Give the sequence's positions from `p` on back to the pool (its tokens after p are forgotten). A block the sequence
   * will write into again but shares with a fork is not written: its kept positions are recomputed into a fresh block.
   *
   * @throws KilnError (code `runtime`) when `p` is not an integer in 0…`seq.length`; (code `limit`) when the pool has
   * no free block for the recomputed one.
   */
  async rollback(seq: PagedSequence, p: number): Promise<void> {
    if (!(Number.isInteger(p) && p >= 0 && p <= seq.length)) {
      throw new KilnError('runtime', `rollback to ${p} outside the sequence's 0…${seq.length}`);
    }
    const tail = seq.tokens.slice(p - (p % this.blockSize), p);
    seq.tokens.length = p;
    const keep = Math.ceil(p / this.blockSize);
    while (seq.blocks.length > keep) this.drop(seq.blocks.pop()!);
    const last = seq.blocks[keep - 1];
    if (tail.length && last !== undefined && this.refs[last]! > 1) {
      this.drop(seq.blocks.pop()!);
      seq.tokens.length = p - tail.length;
      await this.append([seq], [tail]);
    }
  }

  /**
   * The keys and values the cache holds for the sequence's positions 0…length−1, per layer in pool order
   * (`cache_key_0`, `cache_value_0`, …), each [kvHeads, length, headDim] row-major: for tests of rollback.
   */
  async cacheOf(seq: PagedSequence): Promise<Float64Array[]> {
    const out: Float64Array[] = [];
    for (const l of this.layers) {
      const pool = this.pools[l.cache]!;
      const t = isDeviceTensor(pool) ? await pool.read() : pool;
      const [, heads, bs, hd] = t.shape as [number, number, number, number];
      const n = seq.length;
      const r = new Float64Array(heads * n * hd);
      for (let h = 0; h < heads; h++) {
        for (let p = 0; p < n; p++) {
          const at = ((seq.blocks[Math.floor(p / bs)]! * heads + h) * bs + (p % bs)) * hd;
          for (let d = 0; d < hd; d++) r[(h * n + p) * hd + d] = Number(t.data[at + d]!);
        }
      }
      out.push(r);
    }
    return out;
  }

  /** Free every block of the sequence (blocks shared with a fork stay with it). */
  release(seq: PagedSequence): void {
    seq.tokens.length = 0;
    while (seq.blocks.length) this.drop(seq.blocks.pop()!);
  }

  /**
   * A new sequence that continues from `seq`'s tokens: it shares `seq`'s full blocks (no copy, no recompute) and
   * recomputes only the tokens of the partial last block into a block of its own.
   *
   * @throws KilnError (code `limit`, limit `numBlocks`) when the pool has no free block for that partial block.
   */
  async fork(seq: PagedSequence): Promise<PagedSequence> {
    const child = this.newSequence();
    const full = Math.floor(seq.length / this.blockSize);
    for (let j = 0; j < full; j++) {
      const b = seq.blocks[j]!;
      this.refs[b]!++;
      child.blocks.push(b);
    }
    child.tokens.push(...seq.tokens.slice(0, full * this.blockSize));
    const tail = seq.tokens.slice(full * this.blockSize);
    if (tail.length) await this.append([child], [tail]);
    return child;
  }

  /**
   * Append `tokens[i]` to `seqs[i]` (every entry the same length: a prefill of one sequence, or one token each for a
   * batch decode) and return each sequence's logits for its new positions, [batch, new, vocab], plus the greedy next
   * token of each. The cache writes happen on the device, in place. `opts.logits` / `opts.hidden` also read those back
   * (default false); `opts.sampling` draws instead of the argmax (default greedy).
   *
   * @throws KilnError (code `runtime`) for no sequences, token lists of different or zero length, a sequence listed
   * twice, or `hidden` on a model made without it; (code `limit`, limit `numBlocks`) when the KV cache is full; run
   * errors as {@link Session.run}.
   */
  async append(
    seqs: readonly PagedSequence[],
    tokens: readonly (readonly number[])[],
    opts: { logits?: boolean; hidden?: boolean; sampling?: SamplingParams } = {},
  ): Promise<{ next: number[]; logits?: Tensor; hidden?: Tensor }> {
    const B = seqs.length;
    const T = tokens[0]?.length ?? 0;
    if (B === 0 || T === 0 || tokens.length !== B || tokens.some((t) => t.length !== T)) {
      throw new KilnError('runtime', 'append wants one equally long, non-empty token list per sequence');
    }
    for (const [i, s] of seqs.entries()) {
      if (seqs.indexOf(s) !== i) throw new KilnError('runtime', `sequence ${s.id} appears twice in one batch`);
      this.reserve(s, s.length + T);
    }
    const width = Math.max(...seqs.map((s) => s.blocks.length));
    const sampling = opts.sampling ?? this.greedyParams(B);
    // one id per sequence comes back: the argmax, or the device's draw when sampling
    const read = sampling.sample ? 'sampled_token' : 'next_token';
    // A decode step that appends exactly what the previous run chose, to the same sequences, takes that run's
    // device-made input_ids and position_ids: nothing goes up for them.
    const prev = this.lastStep;
    const chained =
      prev !== undefined &&
      T === 1 &&
      prev.read === read &&
      prev.seqs.length === B &&
      seqs.every((s, i) => prev.seqs[i] === s && prev.lengths[i] === s.length && prev.next[i] === tokens[i]![0]);
    // unused entries point at block 0: never read, since attention stops at each query's position
    const table = seqs.flatMap((s) => Array.from({ length: width }, (_, j) => s.blocks[j] ?? 0));
    const tableKey = `${B}x${width}:${table.join(',')}`;
    if (this.table?.key !== tableKey) {
      this.table?.tensor.dispose();
      this.table = { key: tableKey, tensor: this.session.upload(makeTensor('i64', [B, width], table), 'block_table') };
    }
    const feeds: Record<string, Tensor | DeviceTensor> = {
      ...this.pools,
      ...sampling.feeds,
      input_ids: chained ? prev.ids : makeTensor('i64', [B, T], tokens.flat()),
      position_ids: chained
        ? prev.positions
        : makeTensor(
            'i64',
            [B, T],
            seqs.flatMap((s) => Array.from({ length: T }, (_, t) => s.length + t)),
          ),
      block_table: this.table.tensor, // uploaded again only when a sequence gains a block or the batch changes
    };
    const hasHidden = this.session.outputNames.includes('hidden');
    if (opts.hidden && !hasHidden)
      throw new KilnError('runtime', 'the model has no hidden output (create with hidden)');
    const keep = this.layers
      .map((l) => l.updated)
      .concat(HEAD_OUTPUTS.filter((n) => n !== read && !(n === 'logits' && opts.logits)))
      .concat(hasHidden && !opts.hidden ? ['hidden'] : []);
    const out = await this.session.runKeep(feeds, keep);
    this.dropLastStep();
    const nextIds = out[read === 'sampled_token' ? 'next_ids_sampled' : 'next_ids_greedy'];
    const nextPositions = out['next_positions'];
    for (const n of HEAD_OUTPUTS) {
      const t = out[n];
      if (n !== 'logits' && n !== read && t && isDeviceTensor(t) && t !== nextIds && t !== nextPositions) t.dispose();
    }
    for (const l of this.layers) {
      const old = this.pools[l.cache];
      this.pools[l.cache] = out[l.updated]!; // the same device buffer, updated in place
      if (old && isDeviceTensor(old)) old.dispose();
    }
    for (const n of ['logits', 'hidden']) {
      const dropped = out[n];
      if (dropped && isDeviceTensor(dropped)) dropped.dispose();
    }
    seqs.forEach((s, i) => s.tokens.push(...tokens[i]!));
    const next = Array.from((out[read] as Tensor).data);
    if (nextIds && isDeviceTensor(nextIds) && nextPositions && isDeviceTensor(nextPositions)) {
      this.lastStep = {
        seqs: [...seqs],
        lengths: seqs.map((s) => s.length),
        next,
        read,
        ids: nextIds,
        positions: nextPositions,
      };
    }
    return {
      next,
      ...(opts.logits ? { logits: out['logits'] as Tensor } : {}),
      ...(opts.hidden ? { hidden: out['hidden'] as Tensor } : {}),
    };
  }

  /** The last run's device-made inputs for a chained next step (see `append`). */
  private lastStep:
    | {
        seqs: PagedSequence[];
        lengths: number[];
        next: number[];
        read: string;
        ids: DeviceTensor;
        positions: DeviceTensor;
      }
    | undefined;
  /** The block table on the device, with what it holds. */
  private table: { key: string; tensor: DeviceTensor } | undefined;

  private dropLastStep(): void {
    this.lastStep?.ids.dispose();
    this.lastStep?.positions.dispose();
    this.lastStep = undefined;
  }

  /**
   * Generate for several prompts at once: each prompt is prefilled on its own, then every unfinished sequence decodes
   * one token per run in one batch, reading back one id per sequence: the argmax, or the device's draw (temperature /
   * top-k / top-p keyed by (seed + index, position)); with a repetition penalty the last logits are read and sampled on
   * the host. Yields (sequence index, token) as they come. Each sequence stops after `opts.maxTokens` (default 128),
   * at a stop id or at the model's `maxSeq`; its blocks are released at the end.
   *
   * @throws KilnError (code `runtime`) for an empty prompt; (code `limit`) when the KV cache is full.
   */
  async *generateBatch(
    prompts: readonly (readonly number[])[],
    opts: GenerateOptions = {},
  ): AsyncGenerator<{ index: number; token: number }> {
    const maxTokens = opts.maxTokens ?? 128;
    const stop = new Set(opts.stop ?? []);
    // the repetition penalty needs the logits on the host; everything else samples on the device
    const hostSampling = (opts.repetitionPenalty ?? 1) !== 1;
    const rands = prompts.map((_, i) => rng((opts.seed ?? 0) + i));
    const seqs = prompts.map(() => this.newSequence());
    const made = prompts.map(() => 0);
    const t0 = performance.now();
    let tFirst = 0;
    let decodeTokens = 0;
    const rowOpts = (i: number): GenerateOptions => ({ ...opts, seed: (opts.seed ?? 0) + i });
    // parameters per live set, re-uploaded only when a sequence finishes
    let params: SamplingParams | undefined;
    let paramsKey = '';
    const paramsFor = (idx: readonly number[]): SamplingParams | undefined => {
      if (hostSampling) return undefined;
      const key = idx.join(',');
      if (key !== paramsKey) {
        params?.dispose();
        params = this.samplingParams(idx.map(rowOpts));
        paramsKey = key;
      }
      return params;
    };
    const pick = (i: number, logits: Tensor | undefined, row: number, id: number) => {
      if (!hostSampling || !logits) return id;
      const V = logits.shape[logits.shape.length - 1]!;
      const T = logits.shape[1]!;
      const at = (row * T + T - 1) * V;
      return sample(logits.data.subarray(at, at + V), opts, rands[i]!, seqs[i]!.tokens);
    };
    try {
      let live: number[] = [];
      const pending = new Map<number, number>();
      for (const [i, p] of prompts.entries()) {
        if (p.length === 0) throw new KilnError('runtime', `prompt ${i} is empty`);
        const r = await this.append([seqs[i]!], [p], { logits: hostSampling, sampling: paramsFor([i]) });
        pending.set(i, pick(i, r.logits, 0, r.next[0]!));
        live.push(i);
      }
      tFirst = performance.now();
      while (live.length) {
        if (opts.signal?.aborted) break;
        const now: number[] = [];
        for (const i of live) {
          const tok = pending.get(i)!;
          if (stop.has(tok)) continue;
          yield { index: i, token: tok };
          if (++made[i]! < maxTokens && seqs[i]!.length < (this.config?.maxSeq ?? Infinity)) now.push(i);
        }
        live = now;
        if (!live.length) break;
        const r = await this.append(
          live.map((i) => seqs[i]!),
          live.map((i) => [pending.get(i)!]),
          { logits: hostSampling, sampling: paramsFor(live) },
        );
        decodeTokens += live.length;
        live.forEach((i, row) => pending.set(i, pick(i, r.logits, row, r.next[row]!)));
      }
    } finally {
      params?.dispose();
      for (const s of seqs) this.release(s);
      const t1 = performance.now();
      this.stats = {
        promptTokens: prompts.reduce((a, p) => a + p.length, 0),
        generatedTokens: made.reduce((a, b) => a + b, 0),
        timeToFirstTokenMs: tFirst - t0,
        prefillTokPerS: (prompts.reduce((a, p) => a + p.length, 0) / Math.max(tFirst - t0, 1e-3)) * 1000,
        decodeTokPerS: (decodeTokens / Math.max(t1 - tFirst, 1e-3)) * 1000,
      };
    }
  }

  /** Statistics of the last `generateBatch` (tokens/s summed over the batch). */
  stats: GenerationStats | undefined;

  /** Frees the block pools, the block table, cached sampling parameters and the session. */
  dispose(): void {
    this.dropLastStep();
    this.table?.tensor.dispose();
    for (const p of this.greedyByBatch.values()) p.dispose();
    for (const p of Object.values(this.pools)) if (isDeviceTensor(p)) p.dispose();
    this.session.dispose();
  }
}
