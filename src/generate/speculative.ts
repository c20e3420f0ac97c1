/**
 * Speculative decoding (chains): a cheap draft source proposes k tokens, the target model checks all of them in one
 * run over k + 1 positions of its paged KV cache, and the cache is rolled back to the accepted path. The output is
 * exactly the target's: greedy keeps the longest draft prefix equal to the target's argmax and then the target's own
 * token; sampling accepts draft token d with probability min(1, p(d) / q(d)) and on rejection draws from
 * normalize(max(0, p − q)), with a bonus token from the target when every draft token is accepted (Leviathan et al.,
 * Chen et al. 2023). p and q are the target's and the draft's distributions after the same temperature / top-k /
 * top-p processing as plain sampling (`sample`), so the accepted tokens are distributed as the target's samples.
 *
 * Draft sources share one interface and can be mixed (the first that proposes something is used): prompt lookup /
 * n-grams from the context (no model), a separate draft model with the target's vocabulary, and self-speculation by
 * a copy of a LLaMA target from the same weights: its first k layers and its head, its int4 / int8 quantization, or both.
 */
import { KilnError } from '../../ir/errors.js';
import type { Tensor } from '../../ir/tensor.js';
import type { LlamaConfig, WeightSource } from '../models/config.js';
import { buildLlama } from '../models/llama.js';
import { quantizeRtn } from '../../passes/quant/rtn.js';
import type { CompileOptions } from '../session.js';
import type { GenerateOptions, GenerationStats } from './lm.js';
import { PagedLanguageModel, type PagedSequence } from './paged.js';
import { argmax, candidates, rng, type SamplingOptions } from './sampling.js';
import { sampleAccept, TokenTree, TREE_MAX_NODES } from './tree.js';

/** What a draft source proposes: up to k tokens, with the distribution each was drawn from when it was sampled. */
export interface Draft {
  tokens: number[];
  /**
   * q for each drafted token (over the vocabulary). Absent: the tokens were chosen deterministically (q is one-hot),
   * as n-gram drafts and greedy model drafts are.
   */
  probs?: Float64Array[];
}

/** A source of draft tokens. */
export interface DraftSource {
  readonly name: string;
  /**
   * Propose at most `k` tokens to follow `context` (the prompt and every token generated so far). `sampling` and
   * `rand` are the run's: a sampling source draws with them and returns its distributions.
   */
  propose(context: readonly number[], k: number, sampling: SamplingOptions, rand: () => number): Promise<Draft>;
  /**
   * A source drafting from the target's hidden state (Medusa heads): the decoder reads the target's `hidden` output
   * (the target must be created with `hidden: true`) and gives it the row of the position that predicted the current
   * token before each `propose`.
   */
  readonly wantsHidden?: boolean;
  /**
   * Propose a token tree (node 0: the context's last token) of at most `nodes` nodes; sources without it propose a
   * chain that the tree merge adds. Medusa heads propose their top-k candidates this way.
   */
  proposeTree?(
    context: readonly number[],
    nodes: number,
    sampling: SamplingOptions,
    rand: () => number,
  ): Promise<TokenTree>;
  /** Receives the target's hidden-state row (length `dim`) before each `propose`; only called when `wantsHidden`. */
  observe?(hidden: Float32Array): void;
  /** Forget per-generation state (called when a generation ends). */
  reset?(): void;
  /** Frees what the source holds on the device (a draft model's sequence, or the model itself when owned). */
  dispose?(): void;
}

/**
 * The distribution `sample` draws from (temperature > 0): candidates sorted by logit (lower index first on ties), cut
 * to the top k, softmax at the temperature, cut to the smallest set reaching top-p, renormalized. Temperature 0 gives
 * the one-hot of the argmax.
 */
export function samplingDistribution(logits: ArrayLike<number>, opts: SamplingOptions): Float64Array {
  const V = logits.length;
  const out = new Float64Array(V);
  const temp = opts.temperature ?? 0;
  if (!(temp > 0)) {
    out[argmax(logits)] = 1;
    return out;
  }
  const { idx, p, total } = candidates(logits, temp, opts);
  idx.forEach((i, j) => (out[i] = p[j]! / total));
  return out;
}

/** A draw from a distribution (its entries sum to 1, or to `total`). */
function draw(p: ArrayLike<number>, rand: () => number, total = 1): number {
  let r = rand() * total;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i]! > 0) {
      last = i;
      r -= p[i]!;
      if (r < 0) return i;
    }
  }
  return last;
}

/**
 * Prompt lookup: find the most recent earlier occurrence of the context's last n tokens (n from `maxNgram` down to
 * `minNgram`) and propose the tokens that followed it. No model runs.
 */
export class NgramDraft implements DraftSource {
  readonly name = 'ngram';
  readonly maxNgram: number;
  readonly minNgram: number;
  /**
   * @param opts.maxNgram longest suffix to look up (default 3); `opts.minNgram` shortest (default 1).
   * @throws KilnError (code `limit`) unless 1 ≤ minNgram ≤ maxNgram (integers).
   */
  constructor(opts: { maxNgram?: number; minNgram?: number } = {}) {
    this.maxNgram = opts.maxNgram ?? 3;
    this.minNgram = opts.minNgram ?? 1;
    if (!(Number.isInteger(this.minNgram) && this.minNgram >= 1 && this.maxNgram >= this.minNgram)) {
      throw new KilnError(
        'limit',
        `n-gram sizes must satisfy 1 ≤ minNgram ≤ maxNgram, got ${this.minNgram}…${this.maxNgram}`,
        {
          limit: 'ngram',
        },
      );
    }
  }

  propose(context: readonly number[], k: number): Promise<Draft> {
    const L = context.length;
    for (let n = Math.min(this.maxNgram, L - 1); n >= this.minNgram; n--) {
      // the latest start s < L − n whose n tokens equal the suffix
      for (let s = L - n - 1; s >= 0; s--) {
        let same = true;
        for (let j = 0; j < n && same; j++) same = context[s + j] === context[L - n + j];
        if (same) return Promise.resolve({ tokens: context.slice(s + n, Math.min(L, s + n + k)) });
      }
    }
    return Promise.resolve({ tokens: [] });
  }
}

/**
 * A draft model (any paged kiln LM over the target's vocabulary): it keeps its own cache of the context, synced by
 * rolling back to the longest prefix it shares with the new context, and drafts one token per run (the argmax, or a
 * draw from its processed distribution when sampling).
 */
export class ModelDraft implements DraftSource {
  private seq: PagedSequence | undefined;
  /** A draft source over `model` (named `name` in stats; `owned`: `dispose` also disposes the model). */
  constructor(
    readonly model: PagedLanguageModel,
    readonly name = 'draft',
    /** The model is this source's own: `dispose` disposes it. */
    private readonly owned = false,
  ) {}

  /**
   * Self-speculation: the first `layers` layers of a LLaMA target and its head, built from the target's weights (a
   * paged model of its own, disposed with the source; block size 16, enough blocks for one `maxSeq` by default).
   *
   * @throws KilnError (code `limit`) unless 1 ≤ `layers` ≤ `config.layers`; build and compile errors as
   * {@link buildLlama} and {@link PagedLanguageModel.create}.
   */
  static async layerSkip(
    config: LlamaConfig,
    weights: WeightSource,
    layers: number,
    opts: CompileOptions & { blockSize?: number; numBlocks?: number } = {},
  ): Promise<ModelDraft> {
    return ModelDraft.self(config, weights, { layers }, opts);
  }

  /**
   * Self-speculation from the target's own weights: its first `layers` layers (default all) and its head, with the
   * projections round-to-nearest quantized to `bits` (4 or 8; group `group`, default 32; the embedding and head stay
   * float) when `bits` is given — so `{ bits: 4 }` is the target's int4 copy, `{ layers: 2, bits: 4 }` both at once.
   * A paged model of its own (block size 16, enough blocks for one `maxSeq` by default), disposed with the source.
   *
   * @throws KilnError (code `limit`) unless 1 ≤ `layers` ≤ `config.layers`; (code `attribute`) for bits other than 4
   * / 8 or a bad group; build and compile errors as {@link buildLlama} and {@link PagedLanguageModel.create}.
   */
  static async self(
    config: LlamaConfig,
    weights: WeightSource,
    draft: { layers?: number; bits?: 4 | 8; group?: number },
    opts: CompileOptions & { blockSize?: number; numBlocks?: number } = {},
  ): Promise<ModelDraft> {
    const layers = draft.layers ?? config.layers;
    if (!(Number.isInteger(layers) && layers >= 1 && layers <= config.layers)) {
      throw new KilnError('limit', `self-speculation keeps 1…${config.layers} layers, got ${layers}`, {
        limit: 'layers',
      });
    }
    const { blockSize = 16, numBlocks, ...compileOpts } = opts;
    const cfg: LlamaConfig = { ...config, layers };
    const graph = buildLlama(cfg, weights, { paged: { blockSize } });
    if (draft.bits !== undefined) quantizeRtn(graph, { bits: draft.bits, group: draft.group ?? 32 });
    const model = await PagedLanguageModel.create(
      { graph, config: cfg },
      { ...compileOpts, numBlocks: numBlocks ?? Math.ceil(config.maxSeq / blockSize) + 1 },
    );
    const name = `self${layers < config.layers ? `:${layers}` : ''}${draft.bits ? `:int${draft.bits}` : ''}`;
    return new ModelDraft(model, name, true);
  }

  async propose(context: readonly number[], k: number, sampling: SamplingOptions, rand: () => number): Promise<Draft> {
    if (k <= 0 || context.length === 0) return { tokens: [] };
    const m = this.model;
    const maxSeq = m.config?.maxSeq ?? Infinity;
    k = Math.min(k, maxSeq - context.length);
    if (k <= 0) return { tokens: [] };
    this.seq ??= m.newSequence();
    const seq = this.seq;
    let common = 0;
    while (common < seq.length && common < context.length && seq.tokens[common] === context[common]) common++;
    // keep at least the last context token to run: its logits propose the first draft token
    common = Math.min(common, context.length - 1);
    if (common < seq.length) await m.rollback(seq, common);
    let run = context.slice(common);
    // Catching up on a context the draft has not seen (after a pause, or the prompt) runs in power-of-two chunks: a
    // handful of run lengths whose kernels are built once, instead of a new shape (and new kernels) per catch-up.
    while (run.length & (run.length - 1)) {
      const n = 2 ** Math.floor(Math.log2(run.length));
      await m.append([seq], [run.slice(0, n)]);
      run = run.slice(n);
    }
    const tokens: number[] = [];
    const probs: Float64Array[] = [];
    const sampled = (sampling.temperature ?? 0) > 0;
    for (let i = 0; i < k; i++) {
      let t: number;
      if (sampled) {
        const { logits } = await m.append([seq], [run], { logits: true });
        const n = logits!.shape.at(-1)!;
        const q = samplingDistribution(logits!.data.subarray((run.length - 1) * n, run.length * n), sampling);
        t = draw(q, rand);
        probs.push(q);
      } else {
        // greedy: the device's argmax of the last position, one id read back
        t = (await m.append([seq], [run])).next[0]!;
      }
      tokens.push(t);
      run = [t];
    }
    return sampled ? { tokens, probs } : { tokens };
  }

  reset(): void {
    if (this.seq) this.model.release(this.seq);
    this.seq = undefined;
  }

  /** Releases the draft sequence's blocks, and disposes the model when this source owns it. */
  dispose(): void {
    this.reset();
    if (this.owned) this.model.dispose();
  }
}

/** Several sources tried in order: the first that proposes a token drafts this step (e.g. n-grams, else a model). */
export class MixedDraft implements DraftSource {
  readonly name: string;
  readonly wantsHidden: boolean;
  /** Tries `sources` in this order; it wants the hidden state when any of them does. */
  constructor(readonly sources: readonly DraftSource[]) {
    this.name = sources.map((s) => s.name).join('+');
    this.wantsHidden = sources.some((s) => s.wantsHidden);
  }
  /** Passes the hidden-state row on to every source that observes it. */
  observe(hidden: Float32Array): void {
    for (const s of this.sources) s.observe?.(hidden);
  }
  async propose(context: readonly number[], k: number, sampling: SamplingOptions, rand: () => number): Promise<Draft> {
    for (const s of this.sources) {
      const d = await s.propose(context, k, sampling, rand);
      if (d.tokens.length) return d;
    }
    return { tokens: [] };
  }
  reset(): void {
    for (const s of this.sources) s.reset?.();
  }
  /** Disposes every source. */
  dispose(): void {
    for (const s of this.sources) s.dispose?.();
  }
}

/** The result of checking a draft against the target. */
export interface Verdict {
  /** Draft tokens kept (a prefix of the draft). */
  accepted: number;
  /** The target's token after them: its correction on a rejection, or the bonus token when all were accepted. */
  next: number;
  /** With `hidden`: the target's hidden state at the position that predicted `next`. */
  hidden?: Float32Array;
}

/** Row `i` of a [1, T, D] hidden-state tensor. */
function hiddenRow(t: Tensor, i: number): Float32Array {
  const D = t.shape.at(-1)!;
  return Float32Array.from((t.data as Float32Array).subarray(i * D, (i + 1) * D));
}

/**
 * Run `[cur, ...draft]` through the target in one pass (appended to `seq`, whose cache holds everything before
 * `cur`), decide which draft tokens to keep, and roll the cache back to `cur` + the kept tokens.
 */
export async function verifyDraft(
  target: PagedLanguageModel,
  seq: PagedSequence,
  cur: number,
  draft: Draft,
  sampling: SamplingOptions,
  rand: () => number,
  withHidden = false,
): Promise<Verdict> {
  const base = seq.length;
  const sampled = (sampling.temperature ?? 0) > 0;
  if (!draft.tokens.length && !sampled) {
    // nothing to check: a plain greedy step, reading back one id instead of the logits
    const { next, hidden } = await target.append([seq], [[cur]], { hidden: withHidden });
    return { accepted: 0, next: next[0]!, ...(hidden ? { hidden: hiddenRow(hidden, 0) } : {}) };
  }
  const run = [cur, ...draft.tokens];
  const { logits, hidden } = await target.append([seq], [run], { logits: true, hidden: withHidden });
  const V = logits!.shape.at(-1)!;
  const row = (i: number) => logits!.data.subarray(i * V, (i + 1) * V);
  let accepted = 0;
  let next = -1;
  for (; accepted < draft.tokens.length; accepted++) {
    const d = draft.tokens[accepted]!;
    if (!sampled) {
      const a = argmax(row(accepted));
      if (a === d) continue;
      next = a;
      break;
    }
    const p = samplingDistribution(row(accepted), sampling);
    const q = draft.probs?.[accepted];
    const qd = q ? q[d]! : 1;
    if (qd > 0 && rand() < Math.min(1, p[d]! / qd)) continue;
    // rejected: draw from normalize(max(0, p − q))
    const resid = new Float64Array(V);
    let total = 0;
    for (let v = 0; v < V; v++) {
      const r = Math.max(0, p[v]! - (q ? q[v]! : v === d ? 1 : 0));
      resid[v] = r;
      total += r;
    }
    next = total > 0 ? draw(resid, rand, total) : draw(p, rand);
    break;
  }
  if (next < 0) {
    const last = row(draft.tokens.length);
    next = sampled ? draw(samplingDistribution(last, sampling), rand) : argmax(last);
  }
  await target.rollback(seq, base + 1 + accepted);
  return { accepted, next, ...(hidden ? { hidden: hiddenRow(hidden, accepted) } : {}) };
}

/** The result of checking a token tree against the target. */
export interface TreeVerdictResult extends Verdict {
  /** The accepted nodes below the root, in order (`accepted` of them). */
  path: number[];
  /** Their tokens. */
  tokens: number[];
}

/**
 * Run a token tree (root: the current token, not yet in `seq`'s cache) through a target made with `tree: true` in one
 * pass, accept its longest agreeing root path (greedy: the target's argmax at each node; sampling: SpecInfer's
 * multi-step acceptance, `sampleAccept`) and keep that path in the cache (`commitTree`: the path's slots move to
 * consecutive positions at the next run, the rest are given back).
 */
export async function verifyTree(
  target: PagedLanguageModel,
  seq: PagedSequence,
  tree: TokenTree,
  sampling: SamplingOptions,
  rand: () => number,
  withHidden = false,
): Promise<TreeVerdictResult> {
  const base = seq.length;
  const sampled = (sampling.temperature ?? 0) > 0;
  if (tree.size === 1 && !sampled) {
    const { next, hidden } = await target.append([seq], [tree.tokens], { hidden: withHidden });
    return { accepted: 0, next: next[0]!, path: [], tokens: [], ...(hidden ? { hidden: hiddenRow(hidden, 0) } : {}) };
  }
  // greedy: the walk runs on the device (tree_accept), T + 1 integers come back; sampling reads the logits
  const { logits, hidden, accepted } = await target.append([seq], [tree.tokens], {
    logits: sampled,
    accept: !sampled,
    hidden: withHidden,
    tree: [tree.parents],
  });
  let v: { path: number[]; next: number };
  if (sampled) {
    const V = logits!.shape.at(-1)!;
    const row = (i: number) => logits!.data.subarray(i * V, (i + 1) * V);
    v = sampleAccept(tree, (u) => samplingDistribution(row(u), sampling), rand);
  } else {
    const y = Array.from(accepted!.data, Number);
    const n = y[0]!;
    v = { path: y.slice(1, n + 1), next: y[n + 1]! };
  }
  target.commitTree(seq, base, v.path);
  const last = v.path.at(-1) ?? 0;
  return {
    accepted: v.path.length,
    next: v.next,
    path: v.path,
    tokens: v.path.map((u) => tree.tokens[u]!),
    ...(hidden ? { hidden: hiddenRow(hidden, last) } : {}),
  };
}

/**
 * SpecInfer's merge: one token tree rooted at the context's last token from every source's proposal (a source's
 * `proposeTree`, else its chain of up to `depth` tokens), in source order, as a trie (deterministic proposals that
 * share a prefix share its nodes; sampled ones get branches of their own), at most `nodes` nodes.
 */
export async function mergeProposals(
  sources: readonly DraftSource[],
  context: readonly number[],
  nodes: number,
  depth: number,
  sampling: SamplingOptions,
  rand: () => number,
): Promise<TokenTree> {
  const tree = new TokenTree(context[context.length - 1]!, Math.min(nodes, TREE_MAX_NODES));
  for (const [i, s] of sources.entries()) {
    if (tree.size >= tree.maxNodes) break;
    if (s.proposeTree) {
      tree.addTree(await s.proposeTree(context, tree.maxNodes - tree.size + 1, sampling, rand), 0, i);
    } else {
      const d = await s.propose(context, Math.min(depth, tree.maxNodes - 1), sampling, rand);
      tree.addChain(d.tokens, d.probs, 0, i);
    }
  }
  return tree;
}

/** Token-tree speculation: the sources' proposals merged into one tree per step, sized by measured speed. */
export interface TreeOptions {
  /** Most nodes per tree, root included (default 16, at most 32). */
  maxNodes?: number;
  /** Nodes to start with (default 2 when dynamic, else 8). */
  nodes?: number;
  /** Longest chain a chain source proposes (default 6). */
  depth?: number;
  /**
   * Choose the tree size per step from measured acceptance and measured draft + verify time (tokens per ms of
   * each size, hill-climbing over 1, 2, 4 … maxNodes from `nodes`; size 1 is a plain step) (default true).
   */
  dynamic?: boolean;
}

export interface SpeculativeOptions {
  /** Where drafts come from (an array: tried in order, the first proposing anything drafts; with `tree`: merged). */
  draft: DraftSource | readonly DraftSource[];
  /**
   * Verify token trees (the target made with `tree: true`): every source proposes and the proposals are merged into
   * one tree (`mergeProposals`) checked in one pass. `true` takes the defaults.
   */
  tree?: boolean | TreeOptions;
  /** Draft tokens per pass to start with (default 4). */
  draftLen?: number;
  /** Most draft tokens per pass (default 2 × draftLen, at least 1). */
  maxDraftLen?: number;
  /**
   * Grow the draft length after a fully accepted pass and shrink it after a rejection; at length 1, a rejected token
   * pauses drafting for 1, 2, 4 … 32 passes (reset by an accepted token); and drafting pauses for 4, 8 … 64 passes
   * whenever the measured tokens per ms of drafting passes (draft + verify time) falls below that of plain passes, so
   * a source that does not pay costs only its occasional probe (default true).
   */
  adaptive?: boolean;
}

export interface SpeculativeStats extends GenerationStats {
  /** Target runs after the prefill (each checks one draft). */
  targetPasses: number;
  draftedTokens: number;
  acceptedTokens: number;
  /** Accepted draft tokens per target pass. */
  acceptedPerPass: number;
  /** Target passes per generated token (1 for plain decoding). */
  passesPerToken: number;
  /** Accepted / drafted. */
  acceptanceRate: number;
  /** Tree mode: mean nodes below the root per target pass. */
  meanTreeNodes?: number;
}

/**
 * Paired measurements: each sample is a pass of the option tried and the latest pass of the baseline before it, so a
 * drift in what a pass costs (longer context, new shapes, the machine's load) hits both sides alike. `ratio` is the
 * median over the last 5 pairs of the option's tokens per ms over the baseline's: one pass slowed by the machine (a
 * scheduler hiccup, a garbage collection) cannot flip a decision on its own.
 */
export class Pairs {
  private readonly ratios: number[] = [];
  n = 0;
  add(tokens: number, ms: number, baseTokens: number, baseMs: number): void {
    const r = (tokens / Math.max(ms, 1e-3)) * (Math.max(baseMs, 1e-3) / Math.max(baseTokens, 1e-3));
    this.ratios.push(r);
    if (this.ratios.length > 5) this.ratios.shift();
    this.n++;
  }
  get ratio(): number {
    const s = [...this.ratios].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length === 0 ? 1 : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  }
}

/**
 * Whether a chain pass drafts, from measured speed: each drafting pass (draft + verify + hand-over time, accepted + 1
 * tokens) is paired with the latest plain pass. A decoder's first 3 passes are plain; a plain pass also comes every
 * 16 drafting passes to keep the baseline fresh. Once 3 pairs are in, drafting slower than plain pauses it for 4,
 * 8 … 128 passes (the pause doubles each time the probe after it is slower too; a faster probe resets it). Kept across
 * `generate` calls of one decoder.
 */
class SpeedGate {
  private readonly pairs = new Pairs();
  private lastPlain: { tokens: number; ms: number } | undefined;
  private pause = 3;
  private backoff = 4;
  private sincePlain = 0;
  /** Whether this pass may draft. */
  drafting(): boolean {
    if (this.pause > 0) {
      this.pause--;
      return false;
    }
    if (++this.sincePlain > 16) {
      this.sincePlain = 0;
      return false;
    }
    return true;
  }
  /**
   * Whether the next pass may draft (asked after this pass's `drafting`; a `record` in between can only pause it):
   * while paused, a source's hidden state need not be read back.
   */
  mayDraftNext(): boolean {
    return this.pause <= 0;
  }
  record(drafted: boolean, tokens: number, ms: number): void {
    if (!drafted) {
      this.lastPlain = { tokens, ms };
      this.sincePlain = 0;
      return;
    }
    if (!this.lastPlain) return;
    this.pairs.add(tokens, ms, this.lastPlain.tokens, this.lastPlain.ms);
    if (this.pairs.n < 3) return;
    if (this.pairs.ratio < 1) {
      this.pause = this.backoff;
      this.backoff = Math.min(2 * this.backoff, 128);
    } else {
      this.backoff = 4;
    }
  }
}

/**
 * Picks the tree size per step: a current size (1, 2, 4 … max; 1 is a plain step) and, every `interval` passes, a
 * probe of a neighbouring size (alternately down and up). A probe is paired with the pass before it at the current
 * size (`Pairs`: tokens produced, accepted + 1, per ms of draft + verify + hand-over); after 3 probes of a neighbour
 * the decoder moves to it when it was 5% faster, and otherwise probes half as often (every 4, 8 … 64 passes). The
 * first pass of each node count (its kernels being built) is not measured. A source that does not pay therefore
 * leaves the decoder at size 1 (plain decoding) with a probe every 64 passes.
 */
class TreeSizer {
  private readonly sizes: number[];
  private pairs: Pairs[];
  private at: number;
  private trying: number | undefined;
  private last: { tokens: number; ms: number } | undefined;
  private pass = 0;
  private interval = 4;
  private readonly warm = new Set<number>();
  /** The last probe went up; the first probe goes down (towards plain decoding, the cheaper side). */
  private flip = true;
  constructor(
    start: number,
    max: number,
    readonly dynamic: boolean,
  ) {
    this.sizes = [1];
    for (let n = 2; n < max; n *= 2) this.sizes.push(n);
    if (max > 1) this.sizes.push(max);
    this.pairs = this.sizes.map(() => new Pairs());
    let best = 0;
    this.sizes.forEach((n, i) => (Math.abs(n - start) < Math.abs(this.sizes[best]! - start) ? (best = i) : 0));
    this.at = best;
  }
  /** The size of the next tree. */
  next(): number {
    if (!this.dynamic) return this.sizes[this.at]!;
    this.pass++;
    this.trying = undefined;
    if (this.pass % this.interval === 0 && this.last) {
      this.flip = !this.flip;
      const j = this.flip ? this.at + 1 : this.at - 1;
      if (j >= 0 && j < this.sizes.length) this.trying = j;
    }
    return this.sizes[this.trying ?? this.at]!;
  }
  /**
   * Whether the next tree may have more than the root (asked after `next`): the current size is above 1, this pass
   * is a probe (its record may move the size), or the next pass probes. Otherwise the hidden state is not read back.
   */
  mayGrowNext(): boolean {
    return (
      !this.dynamic || this.sizes[this.at]! > 1 || this.trying !== undefined || (this.pass + 1) % this.interval === 0
    );
  }
  /** Report a pass: the nodes its tree had (root included), the tokens it produced (accepted + 1) and its time. */
  record(nodes: number, tokens: number, ms: number): void {
    if (!this.dynamic) return;
    const probe = this.trying;
    // a tree of a node count not run before built its kernels during the pass (merged proposals give any count up
    // to the size asked): that pass is not a measurement
    if (!this.warm.has(nodes)) {
      this.warm.add(nodes);
      return;
    }
    if (probe === undefined) {
      this.last = { tokens, ms };
      return;
    }
    if (!this.last) return;
    const p = this.pairs[probe]!;
    p.add(tokens, ms, this.last.tokens, this.last.ms);
    if (p.n < 3) return;
    if (p.ratio > 1.05) {
      this.at = probe;
      this.pairs = this.sizes.map(() => new Pairs());
      this.last = undefined;
      this.interval = 4;
    } else {
      this.interval = Math.min(2 * this.interval, 64);
    }
  }
}

/**
 * Generate from `target` (a paged LM) with speculative decoding; the tokens equal plain decoding's (greedy) or are
 * distributed as its samples (temperature / top-k / top-p; a repetition penalty is not supported). Stats in `stats`.
 */
export class SpeculativeDecoder {
  stats: SpeculativeStats | undefined;
  /** Chain mode's measured speed of drafting vs plain passes (adaptive), kept across `generate` calls. */
  private gate: SpeedGate | undefined;
  /** Tree mode's per-size measurements, kept across `generate` calls. */
  private sizer: TreeSizer | undefined;
  readonly source: DraftSource;
  /**
   * A decoder for `target` (create it with `hidden: true` when a source wants the hidden state) drafting from
   * `opts.draft` (an array becomes a {@link MixedDraft}).
   *
   * @throws KilnError (code `limit`) when `opts.draftLen` is not a positive integer.
   */
  constructor(
    readonly target: PagedLanguageModel,
    readonly opts: SpeculativeOptions,
  ) {
    const d = opts.draft;
    this.source = Array.isArray(d) ? new MixedDraft(d as readonly DraftSource[]) : (d as DraftSource);
    const len = opts.draftLen ?? 4;
    if (!(Number.isInteger(len) && len >= 1)) {
      throw new KilnError('limit', `draftLen must be a positive integer, got ${len}`, { limit: 'draftLen' });
    }
  }

  /**
   * Yields the generated token ids after `prompt` (ids), up to `opts.maxTokens` (default 128), a stop id or the
   * model's `maxSeq`; greedy unless `opts.temperature` > 0 (then seeded by `opts.seed`, default 0). Stats of the run
   * in `stats` when it ends.
   *
   * @throws KilnError (code `runtime`) for an empty prompt, or when a source wants the hidden state and the target
   * has no `hidden` output; (code `limit`) for a repetition penalty other than 1, or when the KV cache is full.
   */
  async *generate(prompt: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<number> {
    if (prompt.length === 0) throw new KilnError('runtime', 'the prompt is empty');
    if ((opts.repetitionPenalty ?? 1) !== 1) {
      throw new KilnError('limit', 'speculative decoding does not support a repetition penalty', {
        limit: 'repetitionPenalty',
      });
    }
    const target = this.target;
    const maxTokens = opts.maxTokens ?? 128;
    const maxSeq = target.config?.maxSeq ?? Infinity;
    const stop = new Set(opts.stop ?? []);
    const sampled = (opts.temperature ?? 0) > 0;
    const rand = rng(opts.seed ?? 0);
    const treeOpts: TreeOptions | undefined =
      this.opts.tree === true ? {} : this.opts.tree === false ? undefined : this.opts.tree;
    const maxNodes = Math.min(TREE_MAX_NODES, treeOpts?.maxNodes ?? 16);
    const dynamic = treeOpts?.dynamic ?? true;
    // dynamic sizing starts small: a larger tree must prove itself faster first
    // measurements carry over from one generate call to the next
    const sizer = treeOpts
      ? (this.sizer ??= new TreeSizer(treeOpts.nodes ?? (dynamic ? 2 : 8), maxNodes, dynamic))
      : undefined;
    const sources = this.source instanceof MixedDraft ? this.source.sources : [this.source];
    let treeNodes = 0;
    const startLen = this.opts.draftLen ?? 4;
    const maxLen = Math.max(1, this.opts.maxDraftLen ?? 2 * startLen);
    const adaptive = this.opts.adaptive ?? true;
    let k = Math.min(startLen, maxLen);
    /** Passes left without drafting, and the next such pause (adaptive mode). */
    let pause = 0;
    let backoff = 1;
    const gate = (this.gate ??= new SpeedGate());
    const seq = target.newSequence();
    let passes = 0;
    let drafted = 0;
    let acceptedTotal = 0;
    let made = 0;
    const t0 = performance.now();
    let tFirst = t0;
    try {
      const wantsHidden = this.source.wantsHidden === true;
      const { logits, hidden } = await target.append([seq], [prompt], { logits: true, hidden: wantsHidden });
      if (hidden) this.source.observe?.(hiddenRow(hidden, prompt.length - 1));
      const V = logits!.shape.at(-1)!;
      const lastRow = logits!.data.subarray((prompt.length - 1) * V, prompt.length * V);
      let cur = sampled ? draw(samplingDistribution(lastRow, opts), rand) : argmax(lastRow);
      tFirst = performance.now();
      // A pass is timed from its start to the next pass's start: its draft, its verification, the hidden state's
      // hand-over and the consumer taking its tokens — what decoding that way costs.
      let pending: { start: number; record: (ms: number) => void } | undefined;
      const startPass = (record: (ms: number) => void) => {
        const now = performance.now();
        pending?.record(now - pending.start);
        pending = { start: now, record };
      };
      for (;;) {
        if (opts.signal?.aborted || stop.has(cur)) break;
        yield cur;
        if (++made >= maxTokens || seq.length >= maxSeq) break;
        const context = [...seq.tokens, cur];
        if (sizer) {
          // tree mode: every source proposes, one merged tree, one target pass
          const left = Math.min(maxTokens - made - 1, maxSeq - seq.length - 1);
          // the previous pass is recorded before the sizer picks (and may probe) this one's size
          let record = (_ms: number) => {};
          startPass((ms) => record(ms));
          const size = left > 0 ? sizer.next() : 1;
          const tree =
            size > 1
              ? await mergeProposals(sources, context, size, Math.min(treeOpts!.depth ?? 6, left), opts, rand)
              : new TokenTree(cur, 1);
          // depth past what is still wanted is cut by keeping only nodes within `left` of the root
          // the hidden state comes back only when the next pass may draft from it (one readback less per plain pass)
          const v = await verifyTree(
            target,
            seq,
            tree.size > 1 ? cutDepth(tree, left) : tree,
            opts,
            rand,
            wantsHidden && sizer.mayGrowNext(),
          );
          record = (ms) => sizer.record(tree.size, v.accepted + 1, ms);
          if (v.hidden) this.source.observe?.(v.hidden);
          passes++;
          treeNodes += tree.size - 1;
          drafted += tree.size - 1;
          acceptedTotal += v.accepted;
          let stopped = false;
          for (const t of v.tokens) {
            if (opts.signal?.aborted || stop.has(t)) {
              stopped = true;
              break;
            }
            yield t;
            if (++made >= maxTokens) {
              stopped = true;
              break;
            }
          }
          if (stopped) break;
          cur = v.next;
          continue;
        }
        // no more drafts than tokens still wanted or positions left
        const room = Math.min(k, maxTokens - made - 1, maxSeq - seq.length - 1);
        let record = (_ms: number) => {};
        startPass((ms) => record(ms));
        const allowed = !adaptive || gate.drafting();
        const draft: Draft =
          room > 0 && pause === 0 && allowed ? await this.source.propose(context, room, opts, rand) : { tokens: [] };
        if (pause > 0 && allowed) pause--;
        if (draft.tokens.length > room) {
          draft.tokens.length = room;
          if (draft.probs) draft.probs.length = room;
        }
        const mayDraft = !adaptive || (pause === 0 && gate.mayDraftNext());
        const v = await verifyDraft(target, seq, cur, draft, opts, rand, wantsHidden && mayDraft);
        if (adaptive) record = (ms) => gate.record(draft.tokens.length > 0, v.accepted + 1, ms);
        if (v.hidden) this.source.observe?.(v.hidden);
        passes++;
        drafted += draft.tokens.length;
        acceptedTotal += v.accepted;
        if (adaptive && draft.tokens.length) {
          if (v.accepted === draft.tokens.length) k = Math.min(maxLen, k + 1);
          else if (k > 1) k--;
          else if (v.accepted === 0) {
            // even one draft token fails: stop drafting for a while (longer each time), so a source that keeps
            // missing costs little more than plain decoding
            pause = backoff;
            backoff = Math.min(2 * backoff, 32);
          }
          if (v.accepted > 0) backoff = 1;
        }
        let stopped = false;
        for (const t of draft.tokens.slice(0, v.accepted)) {
          if (opts.signal?.aborted || stop.has(t)) {
            stopped = true;
            break;
          }
          yield t;
          if (++made >= maxTokens) {
            stopped = true;
            break;
          }
        }
        if (stopped) break;
        cur = v.next;
      }
    } finally {
      target.release(seq);
      this.source.reset?.();
      const t1 = performance.now();
      this.stats = {
        promptTokens: prompt.length,
        generatedTokens: made,
        timeToFirstTokenMs: tFirst - t0,
        prefillTokPerS: (prompt.length / Math.max(tFirst - t0, 1e-3)) * 1000,
        decodeTokPerS: ((made - 1) / Math.max(t1 - tFirst, 1e-3)) * 1000,
        targetPasses: passes,
        draftedTokens: drafted,
        acceptedTokens: acceptedTotal,
        acceptedPerPass: passes ? acceptedTotal / passes : 0,
        passesPerToken: made ? passes / made : 0,
        acceptanceRate: drafted ? acceptedTotal / drafted : 0,
        ...(sizer ? { meanTreeNodes: passes ? treeNodes / passes : 0 } : {}),
      };
    }
  }
}

/** The tree without its nodes deeper than `depth` (a tree's nodes come after their parents, so a prefix filter). */
function cutDepth(tree: TokenTree, depth: number): TokenTree {
  if (tree.depths.every((d) => d <= depth)) return tree;
  const keep = tree.depths.map((d) => d <= depth);
  const index = new Map<number, number>();
  const t = new TokenTree(tree.tokens[0]!, tree.maxNodes);
  index.set(0, 0);
  for (let i = 1; i < tree.size; i++) {
    if (!keep[i]) continue;
    const node = t.addChild(index.get(tree.parents[i]!)!, tree.tokens[i]!, tree.probs[i], tree.sources[i]!);
    index.set(i, node);
  }
  return t;
}

/**
 * One-call form: `generate(target, prompt, { speculative: { draft }, maxTokens, ... })`, all tokens at once.
 *
 * @throws KilnError as the {@link SpeculativeDecoder} constructor and {@link SpeculativeDecoder.generate}.
 */
export async function generate(
  target: PagedLanguageModel,
  prompt: readonly number[],
  opts: GenerateOptions & { speculative: SpeculativeOptions },
): Promise<{ tokens: number[]; stats: SpeculativeStats }> {
  const dec = new SpeculativeDecoder(target, opts.speculative);
  const tokens: number[] = [];
  for await (const t of dec.generate(prompt, opts)) tokens.push(t);
  return { tokens, stats: dec.stats! };
}
