/**
 * A paged KV cache (vLLM-style): keys and values live in a pool of fixed-size blocks
 * [num_blocks, kv_heads, block_size, head_dim]; each sequence owns a list of blocks (its row of `block_table`
 * [batch, max_blocks]), so token position p of sequence b sits in block `block_table[b, p / block_size]` at offset
 * `p mod block_size`. `kv_cache_write` stores new keys / values at their positions (in place where the executor can),
 * `paged_attention` attends each query to the keys at positions 0..its own through the table. A negative position is
 * padding: nothing is written, the query's output is zeros. Both are opaque to fusion: codegen lowers them with
 * dedicated templates (codegen/lower/paged.ts).
 *
 * Token trees (speculative decoding, SpecInfer): `paged_attention` takes an optional `tree_mask` [batch, seq]
 * integer. The run's tokens sit in consecutive slots, query t at slot p = positions[b, t], so the run started at slot
 * p − t; a key at slot j ≥ p − t is the run's token i = j − (p − t) and is seen only when bit i of tree_mask[b, t] is
 * set (bits 0…31: a tree has at most {@link TREE_MAX_NODES} nodes; run tokens past the 32nd are always seen, so −1
 * everywhere is plain causal attention). The keys before the run are always seen. `kv_cache_move` copies slots of a
 * sequence to other slots in order (the accepted path of a tree compacted to consecutive positions).
 */
import { dimAdd } from '../dim-expr.js';
import { isFloat, isInteger } from '../dtype.js';
import { registerOp, type InferContext, type RefContext } from '../registry.js';
import type { Dim } from '../shape.js';
import { scratchTensor, type Tensor } from '../tensor.js';
import { tensorType, type TensorType } from '../types.js';
import { req } from './util.js';

/** The most nodes a token tree verified in one `paged_attention` run can have (one bit per node in `tree_mask`). */
export const TREE_MAX_NODES = 32;

/** Whether the run's token i (0-based) is visible under the tree-mask word `m` (i ≥ 32: always). */
export function treeBit(m: number, i: number): boolean {
  return i >= TREE_MAX_NODES || ((m >>> i) & 1) === 1;
}

/** Two dims that are not provably different (symbols may bind to anything). */
const compatible = (a: Dim, b: Dim): boolean => typeof a !== 'number' || typeof b !== 'number' || a === b;

function rank(ctx: InferContext, i: number, r: number, what: string): TensorType {
  const t = req(ctx, i);
  if (t.shape.length !== r) ctx.fail(`${what} must be ${r}-D, got rank ${t.shape.length} [${t.shape.join(',')}]`);
  return t;
}

function floatInput(ctx: InferContext, i: number, what: string): TensorType {
  const t = req(ctx, i);
  if (!isFloat(t.dtype)) ctx.fail(`${what} must be a float tensor, got ${t.dtype}`);
  return t;
}

/**
 * Checks block_table [batch, max_blocks] and positions [batch, seq] (integer, 2-D) against the batch and sequence
 * dims of the token tensor.
 */
function checkIndexInputs(ctx: InferContext, bt: number, pos: number, batch: Dim, seq: Dim, tokens: string): void {
  const t = rank(ctx, bt, 2, 'block_table [batch, max_blocks]');
  const p = rank(ctx, pos, 2, 'positions [batch, seq]');
  if (!isInteger(t.dtype)) ctx.fail(`block_table must be integer, got ${t.dtype}`);
  if (!isInteger(p.dtype)) ctx.fail(`positions must be integer, got ${p.dtype}`);
  if (!compatible(t.shape[0]!, batch)) ctx.fail(`block_table batch ${t.shape[0]} differs from ${tokens}'s ${batch}`);
  if (!compatible(p.shape[0]!, batch)) ctx.fail(`positions batch ${p.shape[0]} differs from ${tokens}'s ${batch}`);
  if (!compatible(p.shape[1]!, seq)) ctx.fail(`positions length ${p.shape[1]} differs from ${tokens}'s seq ${seq}`);
}

/**
 * The cache row (offset of element 0 of [block, kvHead, slot, :]) of position `p` of sequence `b`, failing (located,
 * naming the value) when the position is past the block table or the table entry is outside the pool.
 */
function cacheRow(
  cache: readonly number[],
  table: Tensor,
  b: number,
  p: number,
  kvHead: number,
  fail: RefContext['fail'],
): number {
  const [N, Hkv, bs, D] = cache as [number, number, number, number];
  const maxBlocks = table.shape[1]!;
  const bi = Math.floor(p / bs);
  if (bi >= maxBlocks) {
    fail(`position ${p} of sequence ${b} is in block ${bi}, past the ${maxBlocks} blocks of its block_table row`);
  }
  const blk = table.data[b * maxBlocks + bi]!;
  if (!(blk >= 0 && blk < N)) {
    fail(`block_table[${b}, ${bi}] = ${blk} (position ${p}) is outside the cache's ${N} blocks`);
  }
  return ((blk * Hkv + kvHead) * bs + (p % bs)) * D;
}

/** block_table [batch, max_blocks] and the move lists src / dst [batch, moves] (integer) of a slot move. */
function checkMoves(ctx: InferContext, bt: number, si: number, di: number): void {
  const t = rank(ctx, bt, 2, 'block_table [batch, max_blocks]');
  const s = rank(ctx, si, 2, 'move src [batch, moves]');
  const d = rank(ctx, di, 2, 'move dst [batch, moves]');
  for (const [x, w] of [
    [t, 'block_table'],
    [s, 'move src'],
    [d, 'move dst'],
  ] as const) {
    if (!isInteger(x.dtype)) ctx.fail(`${w} must be integer, got ${x.dtype}`);
  }
  if (!compatible(s.shape[0]!, t.shape[0]!) || !compatible(d.shape[0]!, t.shape[0]!)) {
    ctx.fail(`move src / dst batch (${s.shape[0]}, ${d.shape[0]}) differ from block_table's ${t.shape[0]}`);
  }
  if (!compatible(s.shape[1]!, d.shape[1]!)) ctx.fail(`move src has ${s.shape[1]} moves, dst ${d.shape[1]}`);
}

/** The slot moves src[b, i] → dst[b, i] done in order in `y` (a cache), skipping negative entries. */
function moveSlots(y: Tensor, table: Tensor, src: Tensor, dst: Tensor, fail: RefContext['fail']): void {
  const [, Hkv, , D] = y.shape as [number, number, number, number];
  const [B, n] = src.shape as [number, number];
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < n; i++) {
      const from = src.data[b * n + i]!;
      const to = dst.data[b * n + i]!;
      if (from < 0 || to < 0) continue;
      for (let h = 0; h < Hkv; h++) {
        const r = cacheRow(y.shape, table, b, from, h, fail);
        const w = cacheRow(y.shape, table, b, to, h, fail);
        for (let d = 0; d < D; d++) y.data[w + d] = y.data[r + d]!;
      }
    }
  }
}

registerOp({
  name: 'kv_cache_write',
  doc:
    'a copy of cache [num_blocks, kv_heads, block_size, head_dim] with new [batch, kv_heads, seq, head_dim] stored at ' +
    'the tokens positions: y[block_table[b, p / block_size], h, p mod block_size, :] = new[b, h, t, :] for ' +
    'p = positions[b, t] >= 0 (negative: padding, not written). block_table [batch, max_blocks] and positions ' +
    '[batch, seq] are integer. Runs in place in the cache buffer where the executor can. Two tokens writing the same ' +
    'slot: the last (b, t) in row-major order wins in the reference; devices give either. Optional move_src / ' +
    'move_dst [batch, moves]: before the writes, the slot moves of kv_cache_move are done in order (a tree path ' +
    'compacted in the same in-place update).',
  inputs: [
    { name: 'cache' },
    { name: 'new' },
    { name: 'block_table' },
    { name: 'positions' },
    { name: 'move_src', optional: true },
    { name: 'move_dst', optional: true },
  ],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'opaque',
  inplace: 0,
  infer(ctx) {
    const cache = floatInput(ctx, 0, 'cache');
    rank(ctx, 0, 4, 'cache [num_blocks, kv_heads, block_size, head_dim]');
    const nw = rank(ctx, 1, 4, 'new [batch, kv_heads, seq, head_dim]');
    if (nw.dtype !== cache.dtype) ctx.fail(`new has dtype ${nw.dtype}, the cache has ${cache.dtype}`);
    const [, hkv, bs, d] = cache.shape;
    if (typeof bs === 'number' && bs <= 0) ctx.fail(`block_size must be positive, got ${bs}`);
    if (!compatible(nw.shape[1]!, hkv!)) ctx.fail(`new has ${nw.shape[1]} kv heads, the cache ${hkv}`);
    if (!compatible(nw.shape[3]!, d!)) ctx.fail(`new has head_dim ${nw.shape[3]}, the cache ${d}`);
    checkIndexInputs(ctx, 2, 3, nw.shape[0]!, nw.shape[2]!, 'new');
    if (!ctx.inputs[4] !== !ctx.inputs[5]) ctx.fail('move_src and move_dst come together');
    if (ctx.inputs[4]) checkMoves(ctx, 2, 4, 5);
    return [tensorType(cache.dtype, cache.shape)];
  },
  reference([cache, nw, table, pos, src, dst], _a, ctx) {
    const y = scratchTensor(cache!.dtype, cache!.shape, cache!.data);
    if (src && dst) moveSlots(y, table!, src, dst, ctx.fail);
    const [B, Hkv, S, D] = nw!.shape as [number, number, number, number];
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < S; t++) {
        const p = pos!.data[b * S + t]!;
        if (p < 0) continue;
        for (let h = 0; h < Hkv; h++) {
          const dst = cacheRow(cache!.shape, table!, b, p, h, ctx.fail);
          const src = ((b * Hkv + h) * S + t) * D;
          for (let d = 0; d < D; d++) y.data[dst + d] = nw!.data[src + d]!;
        }
      }
    }
    return [y];
  },
});

registerOp({
  name: 'paged_attention',
  doc:
    'causal attention through a paged KV cache: for q [batch, heads, seq, head_dim] row (b, h, t) with ' +
    'p = positions[b, t] >= 0, softmax(scale * q . k_j) over the keys j = 0..p of sequence b, read from ' +
    'key_cache / value_cache [num_blocks, kv_heads, block_size, head_dim] at block block_table[b, j / block_size], ' +
    'kv head h / (heads / kv_heads), slot j mod block_size; output sum_j softmax_j v_j. p < 0 (padding): zeros. ' +
    'scale 0 means 1 / sqrt(head_dim). Optional tree_mask [batch, seq] (integer): the keys at slots j >= p - t (this ' +
    "run's tokens i = j - (p - t)) are seen only where bit i of tree_mask[b, t] is set (i < 32; later ones always).",
  inputs: [
    { name: 'q' },
    { name: 'key_cache' },
    { name: 'value_cache' },
    { name: 'block_table' },
    { name: 'positions' },
    { name: 'tree_mask', optional: true },
  ],
  outputs: [{ name: 'y' }],
  attrs: { scale: { kind: 'float', default: 0 } },
  fusion: 'opaque',
  infer(ctx) {
    const q = floatInput(ctx, 0, 'q');
    rank(ctx, 0, 4, 'q [batch, heads, seq, head_dim]');
    const kc = rank(ctx, 1, 4, 'key_cache [num_blocks, kv_heads, block_size, head_dim]');
    const vc = rank(ctx, 2, 4, 'value_cache [num_blocks, kv_heads, block_size, head_dim]');
    if (kc.dtype !== q.dtype) ctx.fail(`key_cache has dtype ${kc.dtype}, q has ${q.dtype}`);
    if (vc.dtype !== q.dtype) ctx.fail(`value_cache has dtype ${vc.dtype}, q has ${q.dtype}`);
    if (!kc.shape.every((d, i) => compatible(d, vc.shape[i]!))) {
      ctx.fail(`key_cache [${kc.shape.join(',')}] and value_cache [${vc.shape.join(',')}] differ`);
    }
    const [, heads, , d] = q.shape;
    const [, hkv, bs, kd] = kc.shape;
    if (typeof bs === 'number' && bs <= 0) ctx.fail(`block_size must be positive, got ${bs}`);
    if (!compatible(d!, kd!)) ctx.fail(`q head_dim ${d} differs from the cache's ${kd}`);
    if (typeof heads === 'number' && typeof hkv === 'number' && (hkv === 0 || heads % hkv !== 0)) {
      ctx.fail(`heads (${heads}) must be a multiple of kv heads (${hkv})`);
    }
    checkIndexInputs(ctx, 3, 4, q.shape[0]!, q.shape[2]!, 'q');
    if (ctx.inputs[5]) {
      const m = rank(ctx, 5, 2, 'tree_mask [batch, seq]');
      if (!isInteger(m.dtype)) ctx.fail(`tree_mask must be integer, got ${m.dtype}`);
      if (!compatible(m.shape[0]!, q.shape[0]!)) ctx.fail(`tree_mask batch ${m.shape[0]} differs from q's`);
      if (!compatible(m.shape[1]!, q.shape[2]!)) ctx.fail(`tree_mask length ${m.shape[1]} differs from q's seq`);
    }
    return [tensorType(q.dtype, q.shape)];
  },
  reference([q, kc, vc, table, pos, mask], a, ctx) {
    const [B, H, S, D] = q!.shape as [number, number, number, number];
    const Hkv = kc!.shape[1]!;
    const group = H / Hkv;
    const scale = (a['scale'] as number) || (D > 0 ? 1 / Math.sqrt(D) : 1);
    const y = scratchTensor(q!.dtype, q!.shape);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < S; t++) {
        const p = pos!.data[b * S + t]!;
        if (p < 0) continue; // padding: zeros
        for (let h = 0; h < H; h++) {
          const kvh = Math.floor(h / group);
          const qBase = ((b * H + h) * S + t) * D;
          const m = mask ? mask.data[b * S + t]! : -1;
          const keys = Array.from({ length: p + 1 }, (_, j) => j).filter((j) => j < p - t || treeBit(m, j - (p - t)));
          const rows = keys.map((j) => cacheRow(kc!.shape, table!, b, j, kvh, ctx.fail));
          const logits = rows.map((r) => {
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q!.data[qBase + d]! * kc!.data[r + d]!;
            return scale * dot;
          });
          // subtract the max so exp never overflows (NaN propagates as in the attention reference)
          let max = -Infinity;
          for (const l of logits) max = Number.isNaN(l) || l > max ? l : max;
          const w = logits.map((l) => Math.exp(l - max));
          const sum = w.reduce((s, x) => s + x, 0);
          rows.forEach((r, j) => {
            const pj = w[j]! / sum;
            for (let d = 0; d < D; d++) y.data[qBase + d] += pj * vc!.data[r + d]!;
          });
        }
      }
    }
    return [y];
  },
});

registerOp({
  name: 'kv_cache_move',
  doc:
    'a copy of cache [num_blocks, kv_heads, block_size, head_dim] in which, for each sequence b and i = 0, 1, … in ' +
    'order, the slot at position dst[b, i] receives the slot at position src[b, i] (both through block_table ' +
    '[batch, max_blocks]; a negative src or dst: nothing moves). In order, so dst[b, i] <= src[b, i] with both ' +
    'increasing (a tree path compacted to consecutive positions) reads no slot an earlier move overwrote. Runs in ' +
    'place in the cache buffer where the executor can.',
  inputs: [{ name: 'cache' }, { name: 'block_table' }, { name: 'src' }, { name: 'dst' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'opaque',
  inplace: 0,
  infer(ctx) {
    const cache = floatInput(ctx, 0, 'cache');
    rank(ctx, 0, 4, 'cache [num_blocks, kv_heads, block_size, head_dim]');
    checkMoves(ctx, 1, 2, 3);
    return [tensorType(cache.dtype, cache.shape)];
  },
  reference([cache, table, src, dst], _a, ctx) {
    const y = scratchTensor(cache!.dtype, cache!.shape, cache!.data);
    moveSlots(y, table!, src!, dst!, ctx.fail);
    return [y];
  },
});

registerOp({
  name: 'tree_accept',
  doc:
    'greedy acceptance of token trees: for each sequence b, ids [batch, seq] are the target argmax after each node, ' +
    'tokens [batch, seq] the nodes tokens and parents [batch, seq] their parents (node 0 the root, parent < node; ' +
    'a chain is -1, 0, 1, ...). From the root, the walk follows the first child whose token is the argmax at the ' +
    'node. y [batch, seq + 1]: y[b, 0] = n, the nodes accepted below the root; y[b, 1..n] those nodes; y[b, n + 1] ' +
    'the argmax after the last of them (the next token); the rest -1.',
  inputs: [{ name: 'ids' }, { name: 'tokens' }, { name: 'parents' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'opaque',
  infer(ctx) {
    const ids = rank(ctx, 0, 2, 'ids [batch, seq]');
    const tokens = rank(ctx, 1, 2, 'tokens [batch, seq]');
    const parents = rank(ctx, 2, 2, 'parents [batch, seq]');
    for (const [t, w] of [
      [ids, 'ids'],
      [tokens, 'tokens'],
      [parents, 'parents'],
    ] as const) {
      if (!isInteger(t.dtype)) ctx.fail(`${w} must be integer, got ${t.dtype}`);
      if (!t.shape.every((d, i) => compatible(d, ids.shape[i]!))) {
        ctx.fail(`${w} [${t.shape.join(',')}] differs from ids [${ids.shape.join(',')}]`);
      }
    }
    const [B, T] = ids.shape;
    const T1 = dimAdd(T!, 1);
    if (T1 === undefined) ctx.fail(`seq ${T} is not a dim expression`);
    return [tensorType('i64', [B!, T1!])];
  },
  reference([ids, tokens, parents]) {
    const [B, T] = ids!.shape as [number, number];
    const y = scratchTensor('i64', [B, T + 1]);
    y.data.fill(-1);
    for (let b = 0; b < B; b++) {
      let u = 0;
      let n = 0;
      for (;;) {
        const a = ids!.data[b * T + u]!;
        let c = -1;
        for (let i = u + 1; i < T && c < 0; i++) {
          if (parents!.data[b * T + i] === u && tokens!.data[b * T + i] === a) c = i;
        }
        if (c < 0) {
          y.data[b * (T + 1) + n + 1] = a;
          break;
        }
        y.data[b * (T + 1) + ++n] = c;
        u = c;
      }
      y.data[b * (T + 1)] = n;
    }
    return [y];
  },
});
