/**
 * Structured pruning: whole attention heads, MLP hidden channels and decoder layers are removed and the graph
 * rewritten so the matmuls really shrink (weights sliced, head counts in the attention / rotary attributes and the
 * KV-cache inputs updated, every type re-inferred; the result verifies).
 *
 * - Heads. For an `attention` node in the 3-D form (q [b, s, H·d], k / v [b, s, Hkv·d], heads as attributes) whose
 *   q / k / v come from matmuls by constant weights (through rotary embeddings) and whose output feeds one matmul by a
 *   constant output projection Wo. Query head h reads KV head ⌊h / G⌋, G = H / Hkv. A head's score is the energy of
 *   its share of the output projection over the calibration rows, Σ_n Wo_hᵀ (X_hᵀX_h) Wo_h (from Σxxᵀ of Wo's input).
 *   Mode `kv` removes whole KV groups (a KV head and its G query heads; group score = the sum of its heads'), keeping
 *   the GQA layout; mode `query` removes the same number of query heads from every group.
 * - Channels. A matmul by a constant W_down [F, D] whose input is an elementwise function of matmuls by constant
 *   [D, F] weights (SwiGLU: silu(x·W1) ⊙ (x·W3); or act(x·W1 + b)): channel c scores Σ_rows h_c² · ‖W_down[c, :]‖²
 *   (the energy of its contribution); the lowest go from W1 / W3 columns, biases and W_down rows together.
 * - Layers. A decoder layer (x → x + attn(x) → … + mlp(…)) becomes the identity on the residual stream; its KV-cache
 *   inputs and outputs go. Layers are scored by block influence (Men et al., 2024, "ShortGPT"): 1 − the mean cosine
 *   similarity of the residual stream before and after the layer over the calibration tokens.
 */
import { KilnError } from '../../ir/errors.js';
import type { Graph, Node, Value } from '../../ir/graph.js';
import { inferNodeFull } from '../../ir/infer.js';
import { interpret } from '../../ir/interpret.js';
import { getOp } from '../../ir/registry.js';
import { fromValues } from '../../ir/tensor.js';
import { tensorType } from '../../ir/types.js';
import { verify } from '../../ir/verify.js';
import { calibrationFeeds, type CalibrationStats } from '../quant/calibrate.js';

/** One structural change. */
export interface StructuredRow {
  /** The attention node, the down-projection matmul, or the layer's residual add. */
  node: string;
  what: 'heads' | 'kv heads' | 'channels' | 'layer';
  /** Indices removed (heads, channels, or the layer index). */
  removed: number[];
  /** Count before / after (heads or channels; 1 → 0 for a layer). */
  before: number;
  after: number;
  /** Weight bytes before / after (a layer: the bytes of the weights it removed, and 0). */
  bytesBefore: number;
  bytesAfter: number;
}

export interface StructuredReport {
  rows: StructuredRow[];
}

const bytesOf = (v: Value) => (v.data!.data as ArrayBufferView).byteLength;

/** Re-infer every node's output types in graph order (after weights or attributes changed), then verify. */
export function reinferTypes(graph: Graph): void {
  for (const n of graph.nodes) {
    const { types, symbolic } = inferNodeFull(n);
    n.outputs.forEach((o, i) => {
      o.type = types[i]!;
      o.symbolic = symbolic[i];
    });
  }
  verify(graph);
}

/** Replace a constant [R, C] weight by the rows `rows` and columns `cols` it keeps. */
function slice2d(w: Value, rows: readonly number[] | undefined, cols: readonly number[] | undefined): void {
  const [R, C] = w.type.shape as [number, number];
  const rs = rows ?? Array.from({ length: R }, (_, i) => i);
  const cs = cols ?? Array.from({ length: C }, (_, i) => i);
  const d = w.data!.data as ArrayLike<number>;
  const out = new Float64Array(rs.length * cs.length);
  rs.forEach((r, i) => cs.forEach((c, j) => (out[i * cs.length + j] = Number(d[r * C + c]!))));
  w.data = fromValues(w.type.dtype, [rs.length, cs.length], out);
  w.type = tensorType(w.type.dtype, [rs.length, cs.length], w.type.layout);
}

function slice1d(w: Value, keep: readonly number[]): void {
  const d = w.data!.data as ArrayLike<number>;
  w.data = fromValues(
    w.type.dtype,
    [keep.length],
    keep.map((i) => Number(d[i]!)),
  );
  w.type = tensorType(w.type.dtype, [keep.length], w.type.layout);
}

const spans = (units: readonly number[], size: number) =>
  units.flatMap((u) => Array.from({ length: size }, (_, i) => u * size + i));
const constMatmulWeight = (n: Node | undefined): Value | undefined => {
  if (!n || n.op !== 'matmul') return undefined;
  const w = n.inputs[1];
  return w && w.isConst && w.type.shape.length === 2 ? w : undefined;
};

// ---- heads ----

interface Projection {
  matmul: Node;
  weight: Value;
  rotaries: Node[];
}

/** The attention's pieces the head rewrite touches. */
interface AttentionBlock {
  node: Node;
  H: number;
  Hkv: number;
  q: Projection;
  k: Projection;
  v: Projection;
  out: Node;
  wo: Value;
  pasts: Value[];
}

function projection(graph: Graph, a: Node, v: Value | null, what: string): Projection {
  const fail = (m: string): never => {
    throw new KilnError('unsupported', `head pruning: the attention's ${what} ${m}`, { node: a.name, op: a.op });
  };
  if (!v) return fail('is absent');
  const rotaries: Node[] = [];
  let x = v;
  for (;;) {
    if (graph.users(x).length !== 1) fail(`(${x.name}) has other readers`);
    const p = x.producer;
    if (p?.op === 'rotary_embedding') {
      rotaries.push(p);
      x = p.inputs[0]!;
      continue;
    }
    const w = constMatmulWeight(p);
    if (!w) return fail(`(${x.name}) is not a matmul by a constant weight through rotary embeddings`);
    if (graph.users(w).length !== 1) fail(`weight ${w.name} is shared`);
    return { matmul: p!, weight: w, rotaries };
  }
}

function attentionBlock(graph: Graph, a: Node): AttentionBlock {
  const fail = (m: string): never => {
    throw new KilnError('unsupported', `head pruning: ${m}`, { node: a.name, op: a.op });
  };
  const H = a.attrs['q_num_heads'];
  const Hkv = a.attrs['kv_num_heads'];
  if (typeof H !== 'number' || typeof Hkv !== 'number')
    fail('the attention is not in the 3-D form (q_num_heads / kv_num_heads)');
  const mask = a.inputs[3];
  if (mask && mask.type.shape.length >= 3 && mask.type.shape[mask.type.shape.length - 3] !== 1)
    fail('the attention mask has a head dimension');
  if (a.inputs.length > 6 && a.inputs.slice(6).some((x) => x)) fail('the attention has inputs past the KV cache');
  const pasts = [a.inputs[4], a.inputs[5]].filter((x): x is Value => !!x);
  for (const p of pasts) if (!graph.inputs.includes(p)) fail(`the cache ${p.name} is not a graph input`);
  const users = graph.users(a.outputs[0]!);
  const wo = constMatmulWeight(users[0]);
  if (users.length !== 1 || !wo || users[0]!.inputs[0] !== a.outputs[0])
    fail('the attention output does not feed one matmul by a constant weight');
  return {
    node: a,
    H: H as number,
    Hkv: Hkv as number,
    q: projection(graph, a, a.inputs[0]!, 'query'),
    k: projection(graph, a, a.inputs[1]!, 'key'),
    v: projection(graph, a, a.inputs[2]!, 'value'),
    out: users[0]!,
    wo: wo!,
    pasts,
  };
}

/** Σ_n w_uᵀ (XᵀX)_uu w_u over the units' row spans of a [K, N] weight (the energy of each unit's contribution). */
function unitEnergy(w: Value, xtx: Float64Array, unit: number, size: number): number {
  const [K, N] = w.type.shape as [number, number];
  const d = w.data!.data as ArrayLike<number>;
  let e = 0;
  for (let n = 0; n < N; n++)
    for (let i = unit * size; i < (unit + 1) * size; i++) {
      let s = 0;
      for (let j = unit * size; j < (unit + 1) * size; j++) s += xtx[i * K + j]! * Number(d[j * N + n]!);
      e += Number(d[i * N + n]!) * s;
    }
  return e;
}

/** The `count` lowest-scoring of `units` (ties: the lower index first). */
const lowest = (units: readonly number[], score: (u: number) => number, count: number) =>
  [...units]
    .sort((a, b) => score(a) - score(b) || a - b)
    .slice(0, count)
    .sort((a, b) => a - b);

export interface HeadPruneOptions {
  /** Query heads to remove per attention. */
  heads: number;
  /** 'kv': whole KV groups (heads a multiple of the group size); 'query': heads / Hkv from every group. Default:
   * 'kv' when the group size divides `heads`, else 'query'. */
  mode?: 'kv' | 'query';
  /** Only these attention nodes. */
  only?: readonly string[];
}

/** Remove `heads` query heads from every attention (with the statistics of the output projections' inputs). */
export function pruneHeads(graph: Graph, stats: CalibrationStats, opts: HeadPruneOptions): StructuredReport {
  const rows: StructuredRow[] = [];
  for (const a of graph.nodes.filter((n) => n.op === 'attention' && (!opts.only || opts.only.includes(n.name)))) {
    const b = attentionBlock(graph, a);
    const { H, Hkv } = b;
    const G = H / Hkv;
    const fail = (m: string): never => {
      throw new KilnError('attribute', `head pruning: ${m}`, { node: a.name, op: a.op });
    };
    if (!(Number.isInteger(opts.heads) && opts.heads >= 1))
      fail(`--heads must be a positive integer, got ${opts.heads}`);
    const mode = opts.mode ?? (opts.heads % G === 0 ? 'kv' : 'query');
    const y = a.outputs[0]!;
    const st = stats.get(y.name);
    if (!st)
      throw new KilnError('runtime', 'no calibration statistics for the attention output', {
        node: a.name,
        tensor: y.name,
      });
    const [HD] = b.wo.type.shape as [number];
    const dv = HD / H;
    const dq = (b.q.weight.type.shape[1] as number) / H;
    const dk = (b.k.weight.type.shape[1] as number) / Hkv;
    const dvk = (b.v.weight.type.shape[1] as number) / Hkv;
    if (![dv, dq, dk, dvk].every(Number.isInteger) || dvk !== dv)
      fail('projection widths do not split into the attention heads');
    const headScore = Array.from({ length: H }, (_, h) => unitEnergy(b.wo, st.xtx, h, dv));
    const bytesBefore = [b.q.weight, b.k.weight, b.v.weight, b.wo].reduce((s, w) => s + bytesOf(w), 0);
    let keptQ: number[];
    let keptKv: number[];
    let removed: number[];
    if (mode === 'kv') {
      if (opts.heads % G !== 0) fail(`${opts.heads} heads are not whole KV groups of ${G} query heads`);
      const r = opts.heads / G;
      if (r >= Hkv) fail(`cannot remove ${r} of ${Hkv} KV groups`);
      const groups = Array.from({ length: Hkv }, (_, g) => g);
      const gs = (g: number) => headScore.slice(g * G, (g + 1) * G).reduce((s, x) => s + x, 0);
      removed = lowest(groups, gs, r);
      keptKv = groups.filter((g) => !removed.includes(g));
      keptQ = keptKv.flatMap((g) => Array.from({ length: G }, (_, i) => g * G + i));
    } else {
      if (opts.heads % Hkv !== 0) fail(`${opts.heads} heads do not spread evenly over ${Hkv} KV groups`);
      const c = opts.heads / Hkv;
      if (c >= G) fail(`cannot remove ${c} of the ${G} query heads of each group`);
      removed = [];
      for (let g = 0; g < Hkv; g++) {
        const members = Array.from({ length: G }, (_, i) => g * G + i);
        removed.push(...lowest(members, (h) => headScore[h]!, c));
      }
      keptQ = Array.from({ length: H }, (_, h) => h).filter((h) => !removed.includes(h));
      keptKv = Array.from({ length: Hkv }, (_, g) => g);
    }
    slice2d(b.q.weight, undefined, spans(keptQ, dq));
    slice2d(b.k.weight, undefined, spans(keptKv, dk));
    slice2d(b.v.weight, undefined, spans(keptKv, dv));
    slice2d(b.wo, spans(keptQ, dv), undefined);
    a.attrs = { ...a.attrs, q_num_heads: keptQ.length, kv_num_heads: keptKv.length };
    for (const r of b.q.rotaries) r.attrs = { ...r.attrs, num_heads: keptQ.length };
    for (const r of b.k.rotaries) r.attrs = { ...r.attrs, num_heads: keptKv.length };
    for (const p of b.pasts) {
      const s = [...p.type.shape];
      s[1] = keptKv.length;
      p.type = tensorType(p.type.dtype, s, p.type.layout);
    }
    rows.push({
      node: a.name,
      what: mode === 'kv' ? 'kv heads' : 'heads',
      removed,
      before: mode === 'kv' ? Hkv : H,
      after: mode === 'kv' ? keptKv.length : keptQ.length,
      bytesBefore,
      bytesAfter: [b.q.weight, b.k.weight, b.v.weight, b.wo].reduce((s, w) => s + bytesOf(w), 0),
    });
  }
  reinferTypes(graph);
  return { rows };
}

// ---- MLP channels ----

/** An MLP hidden layer of width F: the [*, F] matmuls producing it, [F] biases, and the down projection. */
interface Mlp {
  down: Node;
  wDown: Value;
  ups: Value[];
  biases: Value[];
}

function mlpOf(graph: Graph, down: Node): Mlp | undefined {
  const wDown = constMatmulWeight(down);
  const a = down.inputs[0];
  if (!wDown || !a || graph.users(wDown).length !== 1) return undefined;
  const F = wDown.type.shape[0] as number;
  const ups: Value[] = [];
  const biases: Value[] = [];
  let nonlinear = 0;
  const walk = (v: Value): boolean => {
    if (graph.users(v).length !== 1 || graph.outputs.includes(v)) return false;
    const s = v.type.shape;
    if (s[s.length - 1] !== F) return false;
    const p = v.producer;
    if (!p) return false;
    const w = constMatmulWeight(p);
    if (w) {
      if (w.type.shape[1] !== F || graph.users(w).length !== 1) return false;
      ups.push(w);
      return true;
    }
    const fusion = getOp(p.op).fusion;
    if (fusion !== 'elementwise' && fusion !== 'broadcast') return false;
    if (p.outputs.length !== 1) return false;
    const vars = p.inputs.filter((x): x is Value => !!x && !x.isConst);
    const consts = p.inputs.filter((x): x is Value => !!x && x.isConst);
    for (const c of consts) {
      // a bias / scale along the channels ([F]) is sliced with them; a scalar stays
      const n = c.type.shape.reduce<number>((t, d) => t * (d as number), 1);
      if (n === 1) continue;
      if (p.op !== 'add' || c.type.shape.length !== 1 || c.type.shape[0] !== F || graph.users(c).length !== 1)
        return false;
      biases.push(c);
    }
    if (vars.length === 0) return false;
    nonlinear++;
    return vars.every(walk);
  };
  if (!walk(a) || ups.length === 0 || nonlinear === 0) return undefined;
  return { down, wDown, ups, biases };
}

export interface ChannelPruneOptions {
  /** Hidden channels to remove per MLP. */
  channels: number;
  only?: readonly string[];
}

/** Remove `channels` hidden channels from every MLP (statistics of the down projections' inputs). */
export function pruneChannels(graph: Graph, stats: CalibrationStats, opts: ChannelPruneOptions): StructuredReport {
  const rows: StructuredRow[] = [];
  const mlps = graph.nodes
    .filter((n) => n.op === 'matmul' && (!opts.only || opts.only.includes(n.name)))
    .map((n) => mlpOf(graph, n))
    .filter((m): m is Mlp => !!m);
  for (const m of mlps) {
    const [F, D] = m.wDown.type.shape as [number, number];
    const fail = (msg: string): never => {
      throw new KilnError('attribute', `channel pruning: ${msg}`, { node: m.down.name, op: 'matmul' });
    };
    if (!(Number.isInteger(opts.channels) && opts.channels >= 1 && opts.channels < F))
      fail(`--channels must be an integer from 1 to ${F - 1}, got ${opts.channels}`);
    const a = m.down.inputs[0]!;
    const st = stats.get(a.name);
    if (!st)
      throw new KilnError('runtime', 'no calibration statistics for the MLP hidden activation', {
        node: m.down.name,
        tensor: a.name,
      });
    const d = m.wDown.data!.data as ArrayLike<number>;
    const score = (c: number) => {
      let w2 = 0;
      for (let n = 0; n < D; n++) w2 += Number(d[c * D + n]!) ** 2;
      return st.xtx[c * F + c]! * w2;
    };
    const all = Array.from({ length: F }, (_, c) => c);
    const removed = lowest(all, score, opts.channels);
    const keep = all.filter((c) => !removed.includes(c));
    const weights = [m.wDown, ...m.ups, ...m.biases];
    const bytesBefore = weights.reduce((s, w) => s + bytesOf(w), 0);
    for (const w of m.ups) slice2d(w, undefined, keep);
    for (const b of m.biases) slice1d(b, keep);
    slice2d(m.wDown, keep, undefined);
    rows.push({
      node: m.down.name,
      what: 'channels',
      removed,
      before: F,
      after: keep.length,
      bytesBefore,
      bytesAfter: weights.reduce((s, w) => s + bytesOf(w), 0),
    });
  }
  reinferTypes(graph);
  return { rows };
}

// ---- whole layers ----

/** A decoder layer on the residual stream: input → (attention block) → mid → (MLP block) → output. */
export interface DecoderLayer {
  index: number;
  attention: Node;
  input: Value;
  output: Value;
}

/** The decoder layers, in graph order: each attention whose output projection is added to the residual stream. */
export function decoderLayers(graph: Graph): DecoderLayer[] {
  const layers: DecoderLayer[] = [];
  const fail = (n: Node, m: string): never => {
    throw new KilnError('unsupported', `layer pruning: ${m}`, { node: n.name, op: n.op });
  };
  for (const a of graph.nodes.filter((n) => n.op === 'attention')) {
    const users = graph.users(a.outputs[0]!);
    if (users.length !== 1 || !constMatmulWeight(users[0])) fail(a, 'the attention output does not feed a projection');
    const proj = users[0]!.outputs[0]!;
    const add1 = graph.users(proj).find((n) => n.op === 'add');
    if (!add1) return fail(a, 'no residual add after the attention projection');
    const input = add1.inputs.find((x) => x !== proj)!;
    const mid = add1.outputs[0]!;
    const add2 = graph.users(mid).find((n) => n.op === 'add');
    if (!add2) return fail(add1, 'no residual add after the MLP');
    layers.push({ index: layers.length, attention: a, input, output: add2.outputs[0]! });
  }
  for (let i = 1; i < layers.length; i++)
    if (layers[i]!.input !== layers[i - 1]!.output)
      fail(layers[i]!.attention, 'the decoder layers do not form one residual chain');
  return layers;
}

/**
 * Block influence of each decoder layer: 1 − mean over the calibration tokens of cos(residual before, residual after),
 * run on the reference interpreter over `windows` (token ids from position 0).
 */
export function layerInfluence(graph: Graph, windows: readonly (readonly number[])[]): number[] {
  const layers = decoderLayers(graph);
  const sums = new Float64Array(layers.length);
  let rows = 0;
  const want = new Set<Value>(layers.flatMap((l) => [l.input, l.output]));
  const byName = new Map(graph.nodes.map((n) => [n.name, n]));
  for (const ids of windows) {
    if (ids.length === 0) continue;
    const feeds = calibrationFeeds(graph, ids);
    const seen = new Map<Value, ArrayLike<number>>();
    for (const v of graph.inputs) if (want.has(v)) seen.set(v, feeds[v.name]!.data as ArrayLike<number>);
    interpret(graph, feeds, {
      onNode(node, outputs) {
        byName.get(node.name)?.outputs.forEach((o, j) => {
          if (want.has(o)) seen.set(o, outputs[j]!.data as ArrayLike<number>);
        });
      },
    });
    layers.forEach((l, i) => {
      const x = seen.get(l.input);
      const y = seen.get(l.output);
      if (!x || !y)
        throw new KilnError('runtime', 'layer influence: the residual stream was not computed', {
          tensor: l.output.name,
        });
      const D = l.output.type.shape[l.output.type.shape.length - 1] as number;
      for (let r = 0; r * D < y.length; r++) {
        let xy = 0;
        let xx = 0;
        let yy = 0;
        for (let c = r * D; c < (r + 1) * D; c++) {
          xy += Number(x[c]!) * Number(y[c]!);
          xx += Number(x[c]!) ** 2;
          yy += Number(y[c]!) ** 2;
        }
        sums[i] += xx > 0 && yy > 0 ? 1 - xy / Math.sqrt(xx * yy) : 0;
        if (i === 0) rows++;
      }
    });
  }
  return Array.from(sums, (s) => s / Math.max(1, rows));
}

export interface LayerPruneOptions {
  /** Layers to remove: this many of the lowest scores, or these indices. */
  layers: number | readonly number[];
  /** Scores per layer (lower = removed first), e.g. `layerInfluence`; needed when `layers` is a count. */
  scores?: readonly number[];
}

/** Remove decoder layers: each becomes the identity on the residual stream; its caches leave the interface. */
export function pruneLayers(graph: Graph, opts: LayerPruneOptions): StructuredReport {
  const layers = decoderLayers(graph);
  let drop: number[];
  if (typeof opts.layers === 'number') {
    const count = opts.layers;
    if (!(Number.isInteger(count) && count >= 1 && count < layers.length))
      throw new KilnError('attribute', `--layers must be an integer from 1 to ${layers.length - 1}, got ${count}`);
    if (!opts.scores || opts.scores.length !== layers.length)
      throw new KilnError('attribute', `layer pruning needs a score per layer (${layers.length})`);
    drop = lowest(
      layers.map((l) => l.index),
      (i) => opts.scores![i]!,
      count,
    );
  } else {
    drop = [...new Set(opts.layers)].sort((a, b) => a - b);
    for (const i of drop)
      if (!(Number.isInteger(i) && i >= 0 && i < layers.length))
        throw new KilnError('attribute', `no decoder layer ${i} (the model has ${layers.length})`);
    if (drop.length >= layers.length) throw new KilnError('attribute', 'cannot remove every decoder layer');
  }
  const bytes = (cs: Iterable<Value>) => [...cs].reduce((s, c) => s + bytesOf(c), 0);
  const rows: StructuredRow[] = [];
  // last first: a later layer's input is the earlier one's output, so uses move down the chain correctly
  for (const i of [...drop].reverse()) {
    const l = layers[i]!;
    const caches = l.attention.outputs.slice(1);
    const pasts = [l.attention.inputs[4], l.attention.inputs[5]].filter((x): x is Value => !!x);
    const b0 = bytes(graph.constants);
    graph.replaceAllUses(l.output, l.input);
    graph.outputs = graph.outputs.filter((o) => !caches.includes(o));
    graph.removeDead();
    graph.inputs = graph.inputs.filter((v) => !pasts.includes(v) || graph.users(v).length > 0);
    rows.unshift({
      node: l.output.producer?.name ?? l.output.name,
      what: 'layer',
      removed: [i],
      before: 1,
      after: 0,
      bytesBefore: b0 - bytes(graph.constants),
      bytesAfter: 0,
    });
  }
  verify(graph);
  return { rows };
}
