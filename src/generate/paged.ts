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
import { addSamplingHead, GraphExtender, uploadSampling } from './extend.js';
import { HEAD_OUTPUTS, outputsFor, type GenerateOptions, type GenerationStats } from './lm.js';
import { rng, sample } from './sampling.js';
import { TokenTree } from './tree.js';

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
  /**
   * Slot moves (from position, to position) still to do on the device, in order: an accepted tree path compacted to
   * consecutive positions ({@link PagedLanguageModel.commitTree}); the next run of the sequence does them first.
   */
  moves: [number, number][] = [];
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
  /**
   * Token trees: the graph gets `slot_ids`, `tree_mask` and `move_src` / `move_dst` inputs (added by `enableTrees`) so
   * `append(…, { tree })` verifies a whole tree in one run and `commitTree` keeps its accepted path. Default false.
   */
  tree?: boolean;
}

/** Depth of each node of a tree given by parents (node 0 the root); checks the list against T tokens. */
function treeDepths(parents: readonly number[], T: number): number[] {
  if (parents.length !== T) throw new KilnError('runtime', `a tree of ${parents.length} parents for ${T} tokens`);
  return TokenTree.from(
    parents.map(() => 0),
    parents,
  ).depths;
}

/** Inputs {@link enableTrees} adds to a paged model graph. */
export const TREE_INPUTS = ['slot_ids', 'tree_mask', 'move_src', 'move_dst', 'tree_parents'] as const;

/**
 * Let a paged model graph verify token trees: `position_ids` keeps feeding the rotary / position embeddings (a tree
 * node's is prefix + depth), while the cache slots written and attended come from a new `slot_ids` input (prefix +
 * node index), every `paged_attention` reads a `tree_mask` input (ancestor bits per node; −1 is causal) and every
 * `kv_cache_write` first does the slot moves `move_src` / `move_dst` [batch, moves] (the previous tree's accepted
 * path compacted; −1 pads; an empty list launches nothing), in the same in-place update. Greedy acceptance runs on the device too: the argmax of every
 * position's logits and `tree_accept` over the `tree_parents` input give the `tree_accepted` output [batch, seq + 1]
 * (accepted count, path nodes, next token), so a greedy tree pass reads back seq + 1 integers. Returns false when the graph has no paged attention fed by
 * `position_ids`.
 */
export function enableTrees(graph: Graph): boolean {
  if (graph.inputs.some((v) => v.name === 'slot_ids')) return true;
  const pos = graph.inputs.find((v) => v.name === 'position_ids');
  const attn = graph.nodes.filter((n) => n.op === 'paged_attention');
  const writes = graph.nodes.filter((n) => n.op === 'kv_cache_write');
  if (!pos || !attn.length || [...attn, ...writes].some((n) => n.inputs[n.op === 'paged_attention' ? 4 : 3] !== pos)) {
    return false;
  }
  const x = new GraphExtender(graph);
  const [batch, seq] = pos.type.shape;
  const slots = x.input('slot_ids', 'i64', [batch!, seq!]);
  const mask = x.input('tree_mask', 'i64', [batch!, seq!]);
  const src = x.input('move_src', 'i64', [batch!, 'moves']);
  const dst = x.input('move_dst', 'i64', [batch!, 'moves']);
  const parents = x.input('tree_parents', 'i64', [batch!, seq!]);
  for (const n of attn) n.inputs = [...n.inputs.slice(0, 4), slots, mask];
  const ids = graph.inputs.find((v) => v.name === 'input_ids');
  const logits = graph.outputs.find((v) => v.name === 'logits');
  if (ids && logits) {
    const argmax = x.op('argmax', [logits], { axis: -1, keepdims: false });
    x.addOutput(x.op('tree_accept', [argmax, ids, parents]), 'tree_accepted');
  }
  // the moves run inside each pool's in-place write, before it
  for (const n of writes) n.inputs = [n.inputs[0]!, n.inputs[1]!, n.inputs[2]!, slots, src, dst];
  graph.toposort();
  return true;
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
   * is set but the logits do not come from a contraction of a hidden state, when `opts.tree` is set but the graph's
   * cache positions are not its `position_ids`, or when the graph has no `block_table` / `cache_*` inputs; compile errors as {@link compile}.
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
    if (opts.tree && !enableTrees(model.graph)) {
      throw new KilnError('verify', 'token trees need a paged graph whose cache positions are its position_ids');
    }
    addSamplingHead(model.graph);
    const { numBlocks, hidden: _hidden, tree: _tree, ...compileOpts } = opts;
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
    seq.moves = seq.moves.filter(([, to]) => to < p);
    const keep = this.blocksKept(seq);
    while (seq.blocks.length > keep) this.drop(seq.blocks.pop()!);
    const last = seq.blocks[keep - 1];
    if (tail.length && last !== undefined && this.refs[last]! > 1) {
      this.drop(seq.blocks.pop()!);
      seq.tokens.length = p - tail.length;
      await this.append([seq], [tail]);
    }
  }

  /** Blocks a sequence needs: its positions, and the sources of its pending moves. */
  private blocksKept(seq: PagedSequence): number {
    return Math.ceil(Math.max(seq.length, ...seq.moves.map(([from]) => from + 1)) / this.blockSize);
  }

  /**
   * Keep the accepted path of a tree run: the sequence held `base` positions before `append(…, { tree })` ran the
   * tree's nodes at positions base…; afterwards it holds base + the root + the `path` nodes (indices in the tree,
   * below the root, in order). Their keys / values move to consecutive positions on the device at the sequence's
   * next run (`moves`), the other nodes' slots are given back.
   *
   * @throws KilnError (code `runtime`) when the sequence does not hold a tree run of more than every path node after
   * `base`, or the path is not increasing.
   */
  commitTree(seq: PagedSequence, base: number, path: readonly number[]): void {
    const last = path.at(-1) ?? 0;
    if (
      !(Number.isInteger(base) && base >= 0 && base + last < seq.length) ||
      path.some((u, i) => u <= (path[i - 1] ?? 0))
    ) {
      throw new KilnError(
        'runtime',
        `tree path [${path.join(',')}] after position ${base} of a ${seq.length}-long sequence`,
      );
    }
    const kept = [seq.tokens[base]!, ...path.map((u) => seq.tokens[base + u]!)];
    seq.tokens.length = base;
    seq.tokens.push(...kept);
    path.forEach((u, i) => {
      if (u !== i + 1) seq.moves.push([base + u, base + i + 1]);
    });
    const keep = this.blocksKept(seq);
    while (seq.blocks.length > keep) this.drop(seq.blocks.pop()!);
  }

  /**
   * The keys and values the cache holds for the sequence's positions 0…length−1, per layer in pool order
   * (`cache_key_0`, `cache_value_0`, …), each [kvHeads, length, headDim] row-major: for tests of rollback. Pending
   * moves (a committed tree path) are read at their sources, as the next run will have moved them.
   */
  async cacheOf(seq: PagedSequence): Promise<Float64Array[]> {
    const out: Float64Array[] = [];
    const at = new Map<number, number>();
    for (const [from, to] of seq.moves) at.set(to, at.get(from) ?? from);
    for (const l of this.layers) {
      const pool = this.pools[l.cache]!;
      const t = isDeviceTensor(pool) ? await pool.read() : pool;
      const [, heads, bs, hd] = t.shape as [number, number, number, number];
      const n = seq.length;
      const r = new Float64Array(heads * n * hd);
      for (let h = 0; h < heads; h++) {
        for (let p = 0; p < n; p++) {
          const s = at.get(p) ?? p;
          const o = ((seq.blocks[Math.floor(s / bs)]! * heads + h) * bs + (s % bs)) * hd;
          for (let d = 0; d < hd; d++) r[(h * n + p) * hd + d] = Number(t.data[o + d]!);
        }
      }
      out.push(r);
    }
    return out;
  }

  /** Free every block of the sequence (blocks shared with a fork stay with it). */
  release(seq: PagedSequence): void {
    seq.tokens.length = 0;
    seq.moves = [];
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
    // blocks a pending move still writes are not shared: their tokens are recomputed
    const firstMoved = Math.min(seq.length, ...seq.moves.map(([, to]) => to));
    const full = Math.floor(firstMoved / this.blockSize);
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
   * (default false); `opts.sampling` draws instead of the argmax (default greedy). `opts.tree` (a model made with
   * `tree`): the tokens of sequence i are a token tree with parents `opts.tree[i]` (node 0 the root, parents before
   * children, at most 32 nodes): node t sits at position length + t, is rotated as position length + depth and sees
   * the sequence's earlier positions and its ancestors; keep a path with {@link commitTree}. Pending moves of the
   * sequences run first.
   *
   * @throws KilnError (code `runtime`) for no sequences, token lists of different or zero length, a sequence listed
   * twice, `hidden` on a model made without it, or a tree on a model made without `tree` or with a bad parent list;
   * (code `limit`, limit `tree nodes`) for a tree of more than 32 nodes; (code `limit`, limit `numBlocks`) when the KV cache is full; run
   * errors as {@link Session.run}.
   */
  async append(
    seqs: readonly PagedSequence[],
    tokens: readonly (readonly number[])[],
    opts: {
      logits?: boolean;
      hidden?: boolean;
      sampling?: SamplingParams;
      tree?: readonly (readonly number[])[];
      accept?: boolean;
    } = {},
  ): Promise<{ next: number[]; logits?: Tensor; hidden?: Tensor; accepted?: Tensor }> {
    const B = seqs.length;
    const T = tokens[0]?.length ?? 0;
    if (B === 0 || T === 0 || tokens.length !== B || tokens.some((t) => t.length !== T)) {
      throw new KilnError('runtime', 'append wants one equally long, non-empty token list per sequence');
    }
    const trees = this.session.inputNames.includes('slot_ids');
    if ((opts.tree || opts.accept) && !trees) {
      throw new KilnError('runtime', 'the model takes no token trees (create with tree)');
    }
    const depths = opts.tree?.map((parents) => treeDepths(parents, T));
    for (const [i, s] of seqs.entries()) {
      if (seqs.indexOf(s) !== i) throw new KilnError('runtime', `sequence ${s.id} appears twice in one batch`);
      this.reserve(s, Math.max(s.length + T, ...s.moves.map(([from]) => from + 1)));
    }
    const moves = seqs.some((s) => s.moves.length);
    const width = Math.max(...seqs.map((s) => s.blocks.length));
    const sampling = opts.sampling ?? this.greedyParams(B);
    // one id per sequence comes back: the argmax, or the device's draw when sampling
    const read = sampling.sample ? 'sampled_token' : 'next_token';
    // A decode step that appends exactly what the previous run chose, to the same sequences, takes that run's
    // device-made input_ids and position_ids: nothing goes up for them.
    const prev = this.lastStep;
    const chained =
      prev !== undefined &&
      !moves &&
      !opts.tree &&
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
            seqs.flatMap((s, i) => Array.from({ length: T }, (_, t) => s.length + (depths ? depths[i]![t]! : t))),
          ),
      block_table: this.table.tensor, // uploaded again only when a sequence gains a block or the batch changes
    };
    if (trees) {
      feeds['slot_ids'] =
        chained || !depths
          ? feeds['position_ids']!
          : makeTensor(
              'i64',
              [B, T],
              seqs.flatMap((s) => Array.from({ length: T }, (_, t) => s.length + t)),
            );
      feeds['tree_mask'] = opts.tree
        ? makeTensor(
            'i64',
            [B, T],
            opts.tree.flatMap((parents) =>
              TokenTree.from(
                parents.map(() => 0),
                parents,
              ).masks(),
            ),
          )
        : this.constant('tree_mask', B, T, -1);
      feeds['tree_parents'] = opts.tree
        ? makeTensor('i64', [B, T], opts.tree.flat())
        : this.constant('chain_parents', B, T, 0, (t) => t - 1);
      if (moves) {
        const n = Math.max(...seqs.map((s) => s.moves.length));
        const col = (k: 0 | 1) => seqs.flatMap((s) => Array.from({ length: n }, (_, j) => s.moves[j]?.[k] ?? -1));
        feeds['move_src'] = makeTensor('i64', [B, n], col(0));
        feeds['move_dst'] = makeTensor('i64', [B, n], col(1));
      } else {
        // no moves: an empty list, so the move kernels have no work and are not launched
        feeds['move_src'] = feeds['move_dst'] = this.constant('no_moves', B, 0, -1);
      }
    }
    const hasHidden = this.session.outputNames.includes('hidden');
    if (opts.hidden && !hasHidden)
      throw new KilnError('runtime', 'the model has no hidden output (create with hidden)');
    const keep = this.layers
      .map((l) => l.updated)
      .concat(HEAD_OUTPUTS.filter((n) => n !== read && !(n === 'logits' && opts.logits)))
      .concat(hasHidden && !opts.hidden ? ['hidden'] : [])
      .concat(trees && !opts.accept ? ['tree_accepted'] : []);
    // only what this step reads: greedy skips the sampling kernel (sampling the argmax), a step that is not a greedy
    // tree pass the tree's argmax and acceptance kernels
    const out = await this.session.runKeep(feeds, keep, outputsFor(this.session, read, opts.accept));
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
    for (const n of ['logits', 'hidden', 'tree_accepted']) {
      const dropped = out[n];
      if (dropped && isDeviceTensor(dropped)) dropped.dispose();
    }
    seqs.forEach((s, i) => {
      s.tokens.push(...tokens[i]!);
      if (s.moves.length) {
        s.moves = [];
        const keep = this.blocksKept(s);
        while (s.blocks.length > keep) this.drop(s.blocks.pop()!);
      }
    });
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
      ...(opts.accept ? { accepted: out['tree_accepted'] as Tensor } : {}),
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
  /** Filled [B, T] i64 tensors kept on the device (the causal tree mask, no moves). */
  private readonly constants = new Map<string, DeviceTensor>();
  private constant(name: string, B: number, T: number, value: number, f?: (t: number) => number): DeviceTensor {
    const key = `${name}:${B}x${T}`;
    let t = this.constants.get(key);
    if (!t) {
      const data = Array.from({ length: B * T }, (_, i) => (f ? f(i % T) : value));
      t = this.session.upload(makeTensor('i64', [B, T], data), name);
      this.constants.set(key, t);
    }
    return t;
  }

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
    for (const t of this.constants.values()) t.dispose();
    for (const p of Object.values(this.pools)) if (isDeviceTensor(p)) p.dispose();
    this.session.dispose();
  }
}
