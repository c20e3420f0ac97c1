/**
 * Medusa heads (Cai et al. 2024, "Medusa-1": frozen backbone): K extra heads on the target's final hidden state h,
 * head j proposing the token j + 1 places after the one the model itself predicts from h:
 *
 *   logits_j = (h + SiLU(W_j · h + U_j · e(x_prev) + b_j)) · W_lm    (W_lm: the model's own LM head, frozen)
 *
 * where e(x_prev) is the model's embedding of the token just before the one head j proposes — the token the target
 * chose (head 1) or the previous head's proposal — as Hydra heads do (Ankner et al. 2024: sequentially dependent
 * draft heads); `sequential: false` fits plain Medusa heads (U_j = 0). On stories260K plain heads barely learn
 * (dim 64: h says little about the token after next), sequential ones do (docs/speculative.md). With W_j, U_j = 0,
 * b_j = 0 a head predicts what the LM head does; fitting moves it to its offset. `fitMedusa` runs the
 * model over text (its `hidden` output, paged.ts `exposeHidden`), then trains each head's W_j, b_j by Adam on the
 * cross-entropy of the token at its offset, in float64 JS — seconds for a model of stories260K's size. `MedusaDraft`
 * is a draft source (speculative.ts): after each target pass it gets the hidden state of the position that predicted
 * the current token and proposes each head's choice (argmax, or a draw with its distribution when sampling) as one
 * chain, which the target verifies like any draft — the output stays exactly the target's.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph } from '../../ir/graph.js';
import { makeTensor } from '../../ir/tensor.js';
import type { Tokenizer } from '../tokenizers/types.js';
import { compile, type CompileOptions } from '../session.js';
import { exposeHidden } from './paged.js';
import { argmax, rng, type SamplingOptions } from './sampling.js';
import { samplingDistribution, type Draft, type DraftSource } from './speculative.js';
import { TokenTree } from './tree.js';

/**
 * A static Medusa candidate tree (like Medusa's sparse trees): the rank paths (rank r at depth j: head j's r-th most
 * likely token) with the highest estimated acceptance Π_j acc[j][r_j], at most `nodes` − 1 of them, every path's
 * prefix before it. `acc[j][r]`: how often head j's rank-r token is the right one (measured, or a prior).
 */
export function medusaTreeShape(acc: readonly (readonly number[])[], nodes: number): number[][] {
  const all: { path: number[]; p: number }[] = [];
  const grow = (path: number[], p: number) => {
    if (path.length) all.push({ path, p });
    const j = path.length;
    if (j >= acc.length) return;
    acc[j]!.forEach((a, r) => grow([...path, r], p * a));
  };
  grow([], 1);
  // a prefix is at least as likely as its extensions; ties: shorter, then lower ranks first
  all.sort((x, y) => y.p - x.p || x.path.length - y.path.length || x.path.join().localeCompare(y.path.join()));
  const chosen = new Set<string>();
  const out: number[][] = [];
  for (const { path } of all) {
    if (out.length >= nodes - 1) break;
    if (path.length > 1 && !chosen.has(path.slice(0, -1).join())) continue;
    chosen.add(path.join());
    out.push(path);
  }
  return out;
}

/** Trained heads: K × (W [D, D] row-major, U [D, D] or none, b [D]), the shared LM head [D, V] and embedding [V, D]. */
export class MedusaHeads {
  /** Heads from their weights: per head W_j [D, D] and b_j [D], and the model's LM head [D, V]; validates shapes. */
  constructor(
    readonly dim: number,
    readonly vocab: number,
    readonly w: Float32Array[],
    readonly b: Float32Array[],
    readonly lmHead: Float32Array,
    /** Sequential heads: U_j per head, with the model's embedding table [V, D]; absent for plain Medusa heads. */
    readonly u?: { readonly u: Float32Array[]; readonly embedding: Float32Array },
  ) {
    if (w.length !== b.length || !w.length) throw new KilnError('attribute', 'Medusa needs at least one head');
    for (let j = 0; j < w.length; j++) {
      if (w[j]!.length !== dim * dim || b[j]!.length !== dim)
        throw new KilnError(
          'shape',
          `Medusa head ${j + 1} does not have a [${dim}, ${dim}] weight and a [${dim}] bias`,
        );
    }
    if (lmHead.length !== dim * vocab) throw new KilnError('shape', `the LM head is not [${dim}, ${vocab}]`);
    if (u && (u.u.length !== w.length || u.u.some((x) => x.length !== dim * dim) || u.embedding.length !== vocab * dim))
      throw new KilnError(
        'shape',
        `sequential heads need a [${dim}, ${dim}] U per head and a [${vocab}, ${dim}] embedding`,
      );
  }

  get heads(): number {
    return this.w.length;
  }

  /**
   * Head j's logits (0-based: offset j + 2 from the token h was computed at) for hidden state h, `prev` the token
   * before the one it proposes (sequential heads).
   */
  logits(j: number, h: ArrayLike<number>, prev = 0): Float64Array {
    const D = this.dim;
    const V = this.vocab;
    const s = new Float64Array(D);
    const W = this.w[j]!;
    const U = this.u?.u[j];
    const e = this.u?.embedding.subarray(prev * D, (prev + 1) * D);
    const bias = this.b[j]!;
    for (let r = 0; r < D; r++) {
      let z = bias[r]!;
      for (let c = 0; c < D; c++) z += W[r * D + c]! * h[c]!;
      if (U) for (let c = 0; c < D; c++) z += U[r * D + c]! * e![c]!;
      s[r] = h[r]! + z / (1 + Math.exp(-z));
    }
    const out = new Float64Array(V);
    for (let d = 0; d < D; d++) {
      const sd = s[d]!;
      if (sd === 0) continue;
      const row = d * V;
      for (let v = 0; v < V; v++) out[v] += sd * this.lmHead[row + v]!;
    }
    return out;
  }

  /** The heads as JSON (the LM head is not stored: it is the model's, given again at load). */
  toJSON(): {
    format: 'kiln-medusa';
    dim: number;
    vocab: number;
    sequential: boolean;
    heads: { w: number[]; u?: number[]; b: number[] }[];
  } {
    return {
      format: 'kiln-medusa',
      dim: this.dim,
      vocab: this.vocab,
      sequential: this.u !== undefined,
      heads: this.w.map((w, j) => ({
        w: Array.from(w),
        ...(this.u ? { u: Array.from(this.u.u[j]!) } : {}),
        b: Array.from(this.b[j]!),
      })),
    };
  }

  /** Heads saved with `toJSON`, over the model's LM head and embedding (`lmHeadOf(graph)`). */
  static fromJSON(
    json: unknown,
    lmHead: { dim: number; vocab: number; weight: Float32Array; embedding?: Float32Array },
  ): MedusaHeads {
    const j = json as ReturnType<MedusaHeads['toJSON']>;
    if (!j || j.format !== 'kiln-medusa' || !Array.isArray(j.heads)) {
      throw new KilnError('parse', 'not a kiln Medusa heads file (format field)');
    }
    if (j.dim !== lmHead.dim || j.vocab !== lmHead.vocab) {
      throw new KilnError(
        'shape',
        `the heads are for dim ${j.dim}, vocab ${j.vocab}; the model has ${lmHead.dim}, ${lmHead.vocab}`,
      );
    }
    if (j.sequential && !lmHead.embedding) throw new KilnError('verify', 'sequential heads need the model embedding');
    return new MedusaHeads(
      j.dim,
      j.vocab,
      j.heads.map((h) => Float32Array.from(h.w)),
      j.heads.map((h) => Float32Array.from(h.b)),
      lmHead.weight,
      j.sequential ? { u: j.heads.map((h) => Float32Array.from(h.u ?? [])), embedding: lmHead.embedding! } : undefined,
    );
  }
}

/** The token embedding table [V, D]: the constant a gather by `input_ids` reads. */
function embeddingOf(graph: Graph): Float32Array | undefined {
  const ids = graph.inputs.find((v) => v.name === 'input_ids');
  const g = ids && graph.users(ids).find((n) => n.op === 'gather' && n.inputs[1] === ids && n.inputs[0]?.isConst);
  return g ? Float32Array.from(g.inputs[0]!.data!.data as ArrayLike<number>, Number) : undefined;
}

/**
 * The model's LM head as [D, V] (a matmul's constant weight, or a tied einsum's [V, D] embedding, transposed), and
 * its token embedding table when it has one.
 */
export function lmHeadOf(graph: Graph): { dim: number; vocab: number; weight: Float32Array; embedding?: Float32Array } {
  const e = embeddingOf(graph);
  const withEmb = <T extends object>(x: T) => (e ? { ...x, embedding: e } : x);
  let p = graph.outputs.find((o) => o.name === 'logits')?.producer;
  if (p?.op === 'cast') p = p.inputs[0]?.producer;
  const w = p?.inputs[1];
  if (!p || !w?.isConst || w.type.shape.length !== 2) {
    throw new KilnError('verify', 'the logits do not come from a contraction with a constant 2-D weight');
  }
  const [r, c] = w.type.shape as [number, number];
  const d = w.data!.data as ArrayLike<number>;
  if (p.op === 'matmul') return withEmb({ dim: r, vocab: c, weight: Float32Array.from(d, Number) });
  if (p.op === 'einsum' && /^\w*d,vd->\w*v$/.test(String(p.attrs['equation']).replace(/[^a-z,>-]/g, ''))) {
    const out = new Float32Array(r * c);
    for (let v = 0; v < r; v++) for (let k = 0; k < c; k++) out[k * r + v] = Number(d[v * c + k]);
    return withEmb({ dim: c, vocab: r, weight: out });
  }
  throw new KilnError('verify', `the LM head is a ${p.op} kiln does not read as [dim, vocab]`, { node: p.name });
}

export interface FitOptions extends Pick<CompileOptions, 'backend'> {
  /** Heads (default 3). */
  heads?: number;
  /** Sequential (Hydra-style) heads that also read the previous token's embedding (default true). */
  sequential?: boolean;
  /** Passes over the training tokens (default 3). */
  epochs?: number;
  /** Adam step size (default 3e-3). */
  lr?: number;
  /** Tokens per window the model runs (default 256). */
  window?: number;
  /** Most training tokens (default all of the text but the held-out tenth). */
  maxTokens?: number;
  seed?: number;
}

export interface FitReport {
  heads: MedusaHeads;
  trainTokens: number;
  heldOutTokens: number;
  /** Per head: top-1 accuracy at its offset on the held-out tokens, before (the LM head alone) and after fitting. */
  accuracy: { before: number; after: number }[];
  seconds: number;
}

/** The model's hidden states over the text's windows (run once): rows of [D] with the window's token ids. */
async function hiddenStates(
  graph: Graph,
  ids: readonly number[],
  window: number,
  opts: FitOptions,
): Promise<{ h: Float32Array[]; ids: number[][] }> {
  if (!exposeHidden(graph)) throw new KilnError('verify', "the model's logits do not come from a hidden state");
  const session = await compile(graph, { backend: opts.backend ?? 'auto' });
  const hs: Float32Array[] = [];
  const windows: number[][] = [];
  try {
    for (let at = 0; at + 2 < ids.length; at += window) {
      const w = ids.slice(at, at + window);
      const feeds: Record<string, ReturnType<typeof makeTensor>> = {};
      for (const v of graph.inputs) {
        if (v.name === 'input_ids') feeds[v.name] = makeTensor(v.type.dtype, [1, w.length], w);
        else if (v.name === 'position_ids')
          feeds[v.name] = makeTensor(
            v.type.dtype,
            [1, w.length],
            w.map((_, i) => i),
          );
        else if (v.name.startsWith('past_')) {
          feeds[v.name] = makeTensor(
            v.type.dtype,
            v.type.shape.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : 0)),
          );
        } else
          throw new KilnError('runtime', 'fitting Medusa heads does not know this model input', { tensor: v.name });
      }
      const out = await session.run(feeds);
      hs.push(Float32Array.from(out['hidden']!.data as Float32Array));
      windows.push(w);
    }
  } finally {
    session.dispose();
  }
  return { h: hs, ids: windows };
}

/**
 * Fit K Medusa heads for a model (its graph is changed: `hidden` becomes an output) on text: the last tenth of the
 * tokens is held out to report each head's top-1 accuracy before and after.
 */
export async function fitMedusa(
  graph: Graph,
  tokenizer: Tokenizer,
  text: string,
  opts: FitOptions = {},
): Promise<FitReport> {
  const t0 = performance.now();
  const K = opts.heads ?? 3;
  if (!(Number.isInteger(K) && K >= 1 && K <= 16))
    throw new KilnError('limit', `heads must be 1…16, got ${K}`, { limit: 'heads' });
  const lm = lmHeadOf(graph);
  const { dim: D, vocab: V } = lm;
  const sequential = opts.sequential ?? true;
  const emb = lm.embedding;
  if (sequential && !emb)
    throw new KilnError('verify', 'sequential heads need the model embedding (a gather by input_ids)');
  const all = tokenizer.encode(text, { bos: tokenizer.bos !== undefined });
  const window = opts.window ?? 256;
  const { h: hs, ids: wins } = await hiddenStates(graph, all, window, opts);
  // samples (window, position) whose offsets stay inside the window; the last tenth of the windows is held out
  const cut = Math.max(1, Math.floor(wins.length * 0.9));
  const samples = (from: number, to: number, j: number) => {
    const out: [number, number][] = [];
    for (let w = from; w < to; w++) for (let t = 0; t + j + 2 < wins[w]!.length; t++) out.push([w, t]);
    return out;
  };
  const heads = new MedusaHeads(
    D,
    V,
    Array.from({ length: K }, () => new Float32Array(D * D)),
    Array.from({ length: K }, () => new Float32Array(D)),
    lm.weight,
    sequential ? { u: Array.from({ length: K }, () => new Float32Array(D * D)), embedding: emb! } : undefined,
  );
  const accuracy = (j: number): number => {
    const test = samples(cut < wins.length ? cut : 0, wins.length, j);
    let hit = 0;
    for (const [w, t] of test) {
      const h = hs[w]!.subarray(t * D, (t + 1) * D);
      if (argmax(heads.logits(j, h, wins[w]![t + j + 1])) === wins[w]![t + j + 2]) hit++;
    }
    return test.length ? hit / test.length : 0;
  };
  const before = Array.from({ length: K }, (_, j) => accuracy(j));
  const lr = opts.lr ?? 3e-3;
  const epochs = opts.epochs ?? 3;
  const rand = rng(opts.seed ?? 1);
  let trainTokens = 0;
  for (let j = 0; j < K; j++) {
    let train = samples(0, cut, j);
    if (opts.maxTokens !== undefined) train = train.slice(0, opts.maxTokens);
    trainTokens = Math.max(trainTokens, train.length);
    // Adam over θ = (W, U, b) laid out [W | U | b], one step per batch of 32 samples
    const P = D * D;
    const W = new Float64Array(P);
    const U = new Float64Array(P);
    const b = new Float64Array(D);
    const m = new Float64Array(2 * P + D);
    const v = new Float64Array(2 * P + D);
    const g = new Float64Array(2 * P + D);
    let step = 0;
    const z = new Float64Array(D);
    const s = new Float64Array(D);
    const logits = new Float64Array(V);
    const ds = new Float64Array(D);
    for (let e = 0; e < epochs; e++) {
      // shuffle (Fisher–Yates with the fit's own generator)
      for (let i = train.length - 1; i > 0; i--) {
        const r = Math.floor(rand() * (i + 1));
        [train[i], train[r]] = [train[r]!, train[i]!];
      }
      for (let i0 = 0; i0 < train.length; i0 += 32) {
        g.fill(0);
        const batch = train.slice(i0, i0 + 32);
        for (const [w, t] of batch) {
          const h = hs[w]!.subarray(t * D, (t + 1) * D);
          const y = wins[w]![t + j + 2]!;
          const e = sequential ? emb!.subarray(wins[w]![t + j + 1]! * D, (wins[w]![t + j + 1]! + 1) * D) : undefined;
          for (let r = 0; r < D; r++) {
            let a = b[r]!;
            for (let c = 0; c < D; c++) a += W[r * D + c]! * h[c]!;
            if (e) for (let c = 0; c < D; c++) a += U[r * D + c]! * e[c]!;
            z[r] = a;
            s[r] = h[r]! + a / (1 + Math.exp(-a));
          }
          logits.fill(0);
          for (let d = 0; d < D; d++) {
            const sd = s[d]!;
            const row = d * V;
            for (let u = 0; u < V; u++) logits[u] += sd * lm.weight[row + u]!;
          }
          let mx = -Infinity;
          for (let u = 0; u < V; u++) mx = Math.max(mx, logits[u]!);
          let sum = 0;
          for (let u = 0; u < V; u++) sum += logits[u] = Math.exp(logits[u]! - mx);
          // dL/dlogits = softmax − onehot(y); ds = W_lm · dlogits; dz = ds · silu'(z)
          for (let d = 0; d < D; d++) {
            const row = d * V;
            let acc = -lm.weight[row + y]!;
            for (let u = 0; u < V; u++) acc += (logits[u]! / sum) * lm.weight[row + u]!;
            ds[d] = acc;
          }
          for (let r = 0; r < D; r++) {
            const sg = 1 / (1 + Math.exp(-z[r]!));
            const dz = ds[r]! * (sg * (1 + z[r]! * (1 - sg)));
            for (let c = 0; c < D; c++) g[r * D + c] += dz * h[c]!;
            if (e) for (let c = 0; c < D; c++) g[P + r * D + c] += dz * e[c]!;
            g[2 * P + r] += dz;
          }
        }
        step++;
        const b1 = 0.9;
        const b2 = 0.999;
        const c1 = 1 - b1 ** step;
        const c2 = 1 - b2 ** step;
        for (let i = 0; i < g.length; i++) {
          const gi = g[i]! / batch.length;
          m[i] = b1 * m[i]! + (1 - b1) * gi;
          v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
          const d = (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + 1e-8);
          if (i < P) W[i] -= d;
          else if (i < 2 * P) U[i - P] -= d;
          else b[i - 2 * P] -= d;
        }
      }
    }
    heads.w[j]!.set(W);
    heads.u?.u[j]!.set(U);
    heads.b[j]!.set(b);
  }
  const after = Array.from({ length: K }, (_, j) => accuracy(j));
  return {
    heads,
    trainTokens,
    heldOutTokens: samples(cut, wins.length, 0).length,
    accuracy: before.map((x, j) => ({ before: x, after: after[j]! })),
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * A draft source proposing the Medusa heads' tokens from the target's last hidden state: one chain (`propose`), or
 * in tree mode a top-k candidate tree (`proposeTree`) whose shape follows the measured rank accuracy of each head
 * (`medusaTreeShape`; counted against the tokens the target then produced, re-chosen every 16 trees).
 */
export class MedusaDraft implements DraftSource {
  readonly name = 'medusa';
  readonly wantsHidden = true;
  private hidden: Float32Array | undefined;
  /** Candidates per head in a tree. */
  readonly topK: number;
  /** hits[j][r]: how often head j's rank-r candidate was the target's token; seen[j]: how often it was checked. */
  private readonly hits: number[][];
  private readonly seen: number[];
  private shape: number[][] | undefined;
  private shapeNodes = 0;
  private trees = 0;
  /** The last tree: its context length and, per node, the ranked candidates of its children. */
  private last: { at: number; tree: TokenTree; ranked: Map<number, number[]> } | undefined;
  /**
   * A source over `heads`; `opts.topK` candidates per head in trees (default 3); `opts.accuracy[j][r]` a prior for
   * the rank accuracies (default 0.6 · 0.7^j · 0.4^r).
   */
  constructor(
    readonly heads: MedusaHeads,
    opts: { topK?: number; accuracy?: readonly (readonly number[])[] } = {},
  ) {
    this.topK = opts.topK ?? 3;
    const K = heads.heads;
    // the prior counts as 8 observations
    const prior = Array.from({ length: K }, (_, j) =>
      Array.from({ length: this.topK }, (_, r) => opts.accuracy?.[j]?.[r] ?? 0.6 * 0.7 ** j * 0.4 ** r),
    );
    this.hits = prior.map((row) => row.map((a) => 8 * a));
    this.seen = prior.map(() => 8);
  }

  /** Measured rank accuracies (prior included): acc[j][r]. */
  accuracy(): number[][] {
    return this.hits.map((row, j) => row.map((h) => h / this.seen[j]!));
  }

  /**
   * A top-k candidate tree of at most `nodes` nodes rooted at the context's last token: the current shape's rank
   * paths, each node's candidates the top-k of its head given its parent's token. Counts first how the previous
   * tree's candidates ranked the tokens the target then produced. Empty (the root alone) before any hidden state.
   */
  async proposeTree(context: readonly number[], nodes: number): Promise<TokenTree> {
    this.learn(context);
    const tree = new TokenTree(context[context.length - 1]!, nodes);
    const h = this.hidden;
    if (!h || nodes <= 1) return tree;
    if (!this.shape || this.shapeNodes !== nodes || this.trees % 16 === 0) {
      this.shape = medusaTreeShape(this.accuracy(), nodes);
      this.shapeNodes = nodes;
    }
    this.trees++;
    const byPath = new Map<string, number>([['', 0]]);
    const ranked = new Map<number, number[]>();
    for (const path of this.shape) {
      const parent = byPath.get(path.slice(0, -1).join());
      if (parent === undefined) continue;
      let cands = ranked.get(parent);
      if (!cands) {
        const logits = this.heads.logits(path.length - 1, h, tree.tokens[parent]!);
        cands = topIndices(logits, this.topK);
        ranked.set(parent, cands);
      }
      const tok = cands[path.at(-1)!];
      if (tok === undefined || tree.size >= tree.maxNodes) continue;
      byPath.set(path.join(), tree.addChild(parent, tok));
    }
    this.last = { at: context.length, tree, ranked };
    return tree;
  }

  /** Count the ranks the target's tokens had in the previous tree (along the path it took). */
  private learn(context: readonly number[]): void {
    const l = this.last;
    this.last = undefined;
    if (!l || context.length <= l.at) return;
    let u = 0;
    for (let j = 0; j < this.heads.heads && l.at + j < context.length; j++) {
      const cands = l.ranked.get(u);
      if (!cands) break;
      const truth = context[l.at + j]!;
      this.seen[j]!++;
      const r = cands.indexOf(truth);
      if (r < 0) break;
      this.hits[j]![r]!++;
      const next = l.tree.children(u).find((c) => l.tree.tokens[c] === truth);
      if (next === undefined) break;
      u = next;
    }
  }
  observe(hidden: Float32Array): void {
    if (hidden.length !== this.heads.dim) {
      throw new KilnError('shape', `hidden state of ${hidden.length} values for heads of dim ${this.heads.dim}`);
    }
    this.hidden = hidden;
  }
  async propose(context: readonly number[], k: number, sampling: SamplingOptions, rand: () => number): Promise<Draft> {
    const h = this.hidden;
    if (!h || !context.length) return { tokens: [] };
    const n = Math.min(k, this.heads.heads);
    const sampled = (sampling.temperature ?? 0) > 0;
    const tokens: number[] = [];
    const probs: Float64Array[] = [];
    for (let j = 0; j < n; j++) {
      // a sequential head reads the token before its own: the current one, then the previous head's proposal
      const logits = this.heads.logits(j, h, j === 0 ? context[context.length - 1]! : tokens[j - 1]!);
      if (!sampled) tokens.push(argmax(logits));
      else {
        const q = samplingDistribution(logits, sampling);
        let r = rand();
        let t = 0;
        for (let i = 0; i < q.length; i++) {
          if (q[i]! > 0) {
            t = i;
            r -= q[i]!;
            if (r < 0) break;
          }
        }
        tokens.push(t);
        probs.push(q);
      }
    }
    return sampled ? { tokens, probs } : { tokens };
  }
  reset(): void {
    this.hidden = undefined;
    this.last = undefined;
  }
}

/** The indices of the k largest values (ties: lower index first). */
function topIndices(x: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: x.length }, (_, i) => i)
    .sort((a, b) => x[b]! - x[a]! || a - b)
    .slice(0, k);
}
