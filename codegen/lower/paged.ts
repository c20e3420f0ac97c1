/**
 * Lowering of the paged KV cache ops (ir/ops/paged.ts).
 *
 * kv_cache_write: one thread per element of `new` [batch, kv_heads, seq, head_dim] reads its token's position and
 * block-table entry and stores the element in its cache slot. In place (`LowerCtx.inplace`: output 0 is the cache's
 * buffer) that scatter is the whole node; otherwise a pointwise copy cache → output runs first. A position past the
 * block table or a table entry outside the pool raises the node's error flag and the element is not written.
 *
 * paged_attention: one workgroup of CHUNK threads per (batch, head, query) row and slice of the head dims (head dims
 * past CHUNK · MAX_ACC take more workgroups per row). The row's key count p + 1 is read from `positions` (the same
 * for the whole workgroup, so the barriers stay in uniform control flow); the keys are walked in chunks of CHUNK,
 * one key per thread: the thread looks up the key's block, computes the scaled dot product and leaves the score and
 * the key's cache row in workgroup memory. Every thread then reads the chunk back (running max and rescaled sum agree
 * across threads without reductions — the same online softmax as codegen/lower/attention.ts) and accumulates P·V for
 * the head dims it owns, in f32, reading V rows through the recorded offsets. Padding rows (p < 0) give zeros. With a
 * tree mask a lane whose key is one of the run's tokens (slot ≥ p − t) and whose bit in the query's mask word is clear
 * leaves score −inf and no row: the same path as a key it skips.
 *
 * kv_cache_move: one thread per (sequence, kv head, head dim) walks the sequence's moves in order (each move a read
 * and a store of one element), so a compaction whose destinations never pass its sources needs no barrier.
 */
import { KilnError } from '../../ir/errors.js';
import { TREE_MAX_NODES } from '../../ir/ops/paged.js';
import { numel } from '../../ir/shape.js';
import {
  add,
  and,
  assign,
  barrier,
  bin,
  c,
  cast,
  div,
  eq,
  for_,
  ge,
  if_,
  load,
  loadType,
  lt,
  mod,
  mul,
  ne,
  not,
  or,
  select,
  sload,
  sstore,
  sub,
  un,
  v,
  var_,
  type Expr,
} from '../kir.js';
import { nanMax } from './elementwise.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { checkIndexRange, fromCompute, pointwise, WORKGROUP } from './pointwise.js';
import { registerLowering } from './registry.js';
import { storageOf } from './storage.js';

const f = c.f32;
const i32 = c.i32;
const NEG_INF = f(-Infinity);

/** Keys per chunk = threads per workgroup of paged_attention. */
const CHUNK = 64;
/** Head dims one thread accumulates in registers. */
const MAX_ACC = 4;

/** Node input `i` at `index` as it is loaded from its storage, then as i32 (indices) or f32 (values). */
function loadI32(kb: KernelBuilder, ctx: LowerCtx, buf: string, i: number, index: Expr): Expr {
  return cast('i32', load(buf, index, loadType(storageOf(ctx.inputs[i]!.dtype, kb.caps))));
}
function loadF32(kb: KernelBuilder, ctx: LowerCtx, buf: string, i: number, index: Expr): Expr {
  return cast('f32', load(buf, index, loadType(storageOf(ctx.inputs[i]!.dtype, kb.caps))));
}

function checkSizes(ctx: LowerCtx): void {
  ctx.inputs.forEach((t, i) => checkIndexRange(ctx, numel(t!.shape), `input ${i}`));
  checkIndexRange(ctx, numel(ctx.outputs[0]!.shape), 'output 0');
}

registerLowering('kv_cache_write', (ctx) => {
  checkSizes(ctx);
  const [N, Hkv, bs, D] = ctx.inputs[0]!.shape as [number, number, number, number];
  const [B, , S] = ctx.inputs[1]!.shape as [number, number, number, number];
  const MB = ctx.inputs[2]!.shape[1]!;
  const steps: LoweredStep[] = [];
  // Not in place: the output starts as a copy of the cache (same dtype, so the copy is exact).
  if (ctx.inplace !== true) {
    steps.push(pointwise(ctx, { label: 'kv_cache_copy', reads: [0], value: (p) => p.loadAt(0, p.flat) }));
  }
  // a tree path compacted first (no moves: no launch)
  if (ctx.inputs[4] && ctx.inputs[5]) steps.push(moveStep(ctx, 2, 4, 5));

  const kb = new KernelBuilder('kv_cache_write', ctx.caps);
  const u = (hint: string, x: number) => (x === 0 || x === 1 ? i32(x) : kb.uniform(hint, x));
  // in place the output is the cache's buffer: input 0 is never bound (one buffer bound twice is invalid in WebGPU)
  const outB = kb.output(ctx, 0);
  const newB = kb.input(ctx, 1);
  const btB = kb.input(ctx, 2);
  const posB = kb.input(ctx, 3);
  const st = storageOf(ctx.outputs[0]!.dtype, ctx.caps);
  const n = B * Hkv * S * D;
  const t = kb.let('t', add(mul(kb.groupIndex(), i32(WORKGROUP)), kb.localIndex()));
  const [body] = kb.collect(() => {
    const DU = u('D', D);
    const SU = u('S', S);
    const HU = u('hkv', Hkv);
    const d = kb.let('d', mod(t, DU));
    const r1 = kb.let('r', div(t, DU));
    const tok = kb.let('tok', mod(r1, SU));
    const r2 = kb.let('r', div(r1, SU));
    const h = kb.let('h', mod(r2, HU));
    const b = kb.let('bi', div(r2, HU));
    const p = kb.let('p', loadI32(kb, ctx, posB, 3, add(mul(b, SU), tok)));
    const [write] = kb.collect(() => {
      const bsU = u('bs', bs);
      const MBU = u('mb', MB);
      const bi = kb.let('blki', div(p, bsU));
      const inTable = kb.let('intab', lt(bi, MBU));
      kb.raiseIf(not(inTable), 1);
      // clamped so a bad position never reads outside the table
      const blk = kb.let('blk', loadI32(kb, ctx, btB, 2, add(mul(b, MBU), select(inTable, bi, i32(0)))));
      const inPool = kb.let('inpool', and(ge(blk, i32(0)), lt(blk, u('nb', N))));
      kb.raiseIf(and(inTable, not(inPool)), 1);
      const slot = add(mul(add(mul(add(mul(blk, HU), h), bsU), mod(p, bsU)), DU), d);
      kb.emit(if_(and(inTable, inPool), [{ k: 'store', buf: outB, index: slot, value: load(newB, t, loadType(st)) }]));
    });
    kb.emit(if_(ge(p, i32(0)), write)); // negative positions are padding
  });
  kb.emit(if_(lt(t, kb.uniform('n', n)), body));
  steps.push(kb.build([WORKGROUP, 1, 1], grid1d(Math.ceil(n / WORKGROUP), ctx.caps)));
  if (n === 0) steps[steps.length - 1]!.grid = [0, 1, 1];
  return steps;
});

registerLowering('paged_attention', (ctx) => {
  checkSizes(ctx);
  const [B, H, S, D] = ctx.inputs[0]!.shape as [number, number, number, number];
  const [N, Hkv, bs] = ctx.inputs[1]!.shape as [number, number, number, number];
  const MB = ctx.inputs[3]!.shape[1]!;
  const scale = (ctx.attrs['scale'] as number) || (D > 0 ? 1 / Math.sqrt(D) : 1);
  if (MB * bs > 2 ** 31 - 1) {
    throw new KilnError('limit', `block_table covers ${MB * bs} keys per sequence`, {
      node: ctx.node,
      op: ctx.op,
      limit: 'i32 index',
    });
  }

  const kb = new KernelBuilder('paged_attention', ctx.caps);
  const u = (hint: string, x: number) => (x === 0 || x === 1 ? i32(x) : kb.uniform(hint, x));
  const qB = kb.input(ctx, 0);
  const kB = kb.input(ctx, 1);
  const vB = kb.input(ctx, 2);
  const btB = kb.input(ctx, 3);
  const posB = kb.input(ctx, 4);
  const maskB = ctx.inputs[5] ? kb.input(ctx, 5) : undefined;
  const yB = kb.output(ctx, 0);

  const nAcc = Math.min(MAX_ACC, Math.max(1, Math.ceil(D / CHUNK)));
  const perGroup = CHUNK * nAcc;
  const nDv = Math.max(1, Math.ceil(D / perGroup));
  const groups = B * H * S * nDv;

  const sc = kb.sharedArray('sc', 'f32', CHUNK);
  const rb = kb.sharedArray('rb', 'i32', CHUNK);
  const gi = kb.groupIndex();
  const l = kb.localIndex();
  const [body] = kb.collect(() => {
    const nDvU = u('ndv', nDv);
    const SU = u('S', S);
    const HU = u('H', H);
    const DU = u('D', D);
    const bsU = u('bs', bs);
    const MBU = u('mb', MB);
    const HkvU = u('hkv', Hkv);
    const dvc = kb.let('dvc', mod(gi, nDvU));
    const r1 = kb.let('r', div(gi, nDvU));
    const qi = kb.let('qi', mod(r1, SU));
    const r2 = kb.let('r', div(r1, SU));
    const h = kb.let('h', mod(r2, HU));
    const b = kb.let('bi', div(r2, HU));
    const kvh = kb.let('kvh', div(h, u('grp', H / Hkv)));
    const qBase = kb.let('qb', mul(add(mul(add(mul(b, HU), h), SU), qi), DU));
    const p = kb.let('p', loadI32(kb, ctx, posB, 4, add(mul(b, SU), qi)));
    // keys 0..p; a position past the block table raises, and the row attends to the keys the table covers
    const cap = kb.let('cap', mul(MBU, bsU));
    kb.raiseIf(ge(p, cap), 1);
    const len = kb.let('len', select(lt(p, i32(0)), i32(0), add(bin('min', p, sub(cap, i32(1))), i32(1))));
    const scaleU = kb.uniform('scale', scale, 'f32');
    // tree mask: the query's word and the slot its run started at
    const word = maskB ? kb.let('mword', loadI32(kb, ctx, maskB, 5, add(mul(b, SU), qi))) : undefined;
    const runStart = maskB ? kb.let('rstart', sub(p, qi)) : undefined;

    kb.emit(
      var_('m', 'f32', NEG_INF),
      var_('lsum', 'f32', f(0)),
      ...Array.from({ length: nAcc }, (_, a) => var_(`acc${a}`, 'f32', f(0))),
    );
    const m = v('m', 'f32');
    const dims = Array.from({ length: nAcc }, (_, a) =>
      kb.let('dim', add(mul(dvc, i32(perGroup)), add(l, i32(a * CHUNK)))),
    );
    const j0 = v('j0', 'i32');
    const jj = v('jj', 'i32');
    const [chunk] = kb.collect(() => {
      const j = kb.let('j', add(j0, l));
      kb.emit(var_('s', 'f32', NEG_INF), var_('row', 'i32', i32(-1)));
      const [lane] = kb.collect(() => {
        // j < len <= cap, so the block index is inside the table
        const blk = kb.let('blk', loadI32(kb, ctx, btB, 3, add(mul(b, MBU), div(j, bsU))));
        const ok = kb.let('ok', and(ge(blk, i32(0)), lt(blk, u('nb', N))));
        kb.raiseIf(not(ok), 1);
        const [dot] = kb.collect(() => {
          const row = kb.let('krow', mul(add(mul(add(mul(blk, HkvU), kvh), bsU), mod(j, bsU)), DU));
          const d = kb.fresh('d');
          const dv = v(d, 'i32');
          kb.emit(var_('dot', 'f32', f(0)));
          const prod = mul(loadF32(kb, ctx, qB, 0, add(qBase, dv)), loadF32(kb, ctx, kB, 1, add(row, dv)));
          kb.emit(for_(d, i32(0), DU, [assign('dot', add(v('dot', 'f32'), prod))]));
          kb.emit(assign('s', mul(scaleU, v('dot', 'f32'))), assign('row', row));
        });
        kb.emit(if_(ok, dot)); // a bad block is skipped (score -inf, no row)
      });
      let live = lt(j, len);
      if (word && runStart) {
        const rel = kb.let('rel', sub(j, runStart));
        const bit = ne(bin('bitand', bin('shr', word, select(lt(rel, i32(0)), i32(0), rel)), i32(1)), i32(0));
        live = and(live, or(or(lt(rel, i32(0)), ge(rel, i32(TREE_MAX_NODES))), bit));
      }
      kb.emit(if_(live, lane));
      kb.emit(sstore(sc, l, v('s', 'f32')), sstore(rb, l, v('row', 'i32')), barrier);
      const cnt = kb.let('cnt', bin('min', i32(CHUNK), sub(len, j0)));
      kb.emit(var_('mc', 'f32', m));
      kb.emit(for_('jj', i32(0), cnt, [assign('mc', nanMax(v('mc', 'f32'), sload(sc, jj, 'f32'), true))]));
      const mNew = v('mc', 'f32');
      const alpha = kb.let('alpha', select(eq(m, NEG_INF), f(0), un('exp', sub(m, mNew))));
      kb.emit(assign('lsum', mul(v('lsum', 'f32'), alpha)));
      for (let a = 0; a < nAcc; a++) kb.emit(assign(`acc${a}`, mul(v(`acc${a}`, 'f32'), alpha)));
      const [accum] = kb.collect(() => {
        const sj = kb.let('sj', sload(sc, jj, 'f32'));
        const pj = kb.let('pj', select(eq(sj, NEG_INF), f(0), un('exp', sub(sj, mNew))));
        kb.emit(assign('lsum', add(v('lsum', 'f32'), pj)));
        const rj = kb.let('rj', sload(rb, jj, 'i32'));
        const upd = dims.map((dim, a) =>
          if_(lt(dim, DU), [
            assign(`acc${a}`, add(v(`acc${a}`, 'f32'), mul(pj, loadF32(kb, ctx, vB, 2, add(rj, dim))))),
          ]),
        );
        // a zero weight adds nothing (as in the reference's sum); a skipped key has no row to read
        kb.emit(if_(and(ne(pj, f(0)), ge(rj, i32(0))), upd));
      });
      kb.emit(for_('jj', i32(0), cnt, accum), assign('m', mNew), barrier);
    });
    kb.emit(for_('j0', i32(0), len, chunk, i32(CHUNK)));

    const outSt = storageOf(ctx.outputs[0]!.dtype, ctx.caps) === 'f16' ? 'f16' : 'f32';
    dims.forEach((dim, a) => {
      const val = select(lt(i32(0), len), div(v(`acc${a}`, 'f32'), v('lsum', 'f32')), f(0));
      kb.emit(if_(lt(dim, DU), [{ k: 'store', buf: yB, index: add(qBase, dim), value: fromCompute(val, outSt) }]));
    });
  });
  // grid1d may launch a few groups past the rows (2-D grids); the condition is uniform per workgroup
  kb.emit(if_(lt(gi, kb.uniform('groups', groups)), body));
  const step = kb.build([CHUNK, 1, 1], grid1d(groups, ctx.caps));
  if (groups === 0) step.grid = [0, 1, 1];
  return [step];
});

registerLowering('kv_cache_move', (ctx) => {
  checkSizes(ctx);
  const steps: LoweredStep[] = [];
  if (ctx.inplace !== true) {
    steps.push(pointwise(ctx, { label: 'kv_cache_copy', reads: [0], value: (p) => p.loadAt(0, p.flat) }));
  }
  steps.push(moveStep(ctx, 1, 2, 3));
  return steps;
});

/**
 * The slot moves of `kv_cache_move` (or of `kv_cache_write`'s optional move inputs) on output 0, whose buffer already
 * holds the cache: one thread per (sequence, kv head, head dim) walks the moves in order. No moves: no launch.
 */
function moveStep(ctx: LowerCtx, bt: number, si: number, di: number): LoweredStep {
  const [N, Hkv, bs, D] = ctx.outputs[0]!.shape as [number, number, number, number];
  const MB = ctx.inputs[bt]!.shape[1]!;
  const [B, n] = ctx.inputs[si]!.shape as [number, number];
  const kb = new KernelBuilder('kv_cache_move', ctx.caps);
  const u = (hint: string, x: number) => (x === 0 || x === 1 ? i32(x) : kb.uniform(hint, x));
  const outB = kb.output(ctx, 0);
  const btB = kb.input(ctx, bt);
  const srcB = kb.input(ctx, si);
  const dstB = kb.input(ctx, di);
  const st = storageOf(ctx.outputs[0]!.dtype, ctx.caps);
  const threads = B * Hkv * D;
  const t = kb.let('t', add(mul(kb.groupIndex(), i32(WORKGROUP)), kb.localIndex()));
  const [body] = kb.collect(() => {
    const DU = u('D', D);
    const HU = u('hkv', Hkv);
    const bsU = u('bs', bs);
    const MBU = u('mb', MB);
    const nU = u('n', n);
    const d = kb.let('d', mod(t, DU));
    const r = kb.let('r', div(t, DU));
    const h = kb.let('h', mod(r, HU));
    const b = kb.let('bi', div(r, HU));
    /** The element's offset in the pool for position `p` of sequence b, and whether the table covers it. */
    const slot = (p: Expr, what: string): [Expr, Expr] => {
      const bi = kb.let(`${what}b`, div(p, bsU));
      const inTable = kb.let(`${what}t`, lt(bi, MBU));
      const blk = kb.let(`${what}k`, loadI32(kb, ctx, btB, bt, add(mul(b, MBU), select(inTable, bi, i32(0)))));
      const ok = kb.let(`${what}ok`, and(inTable, and(ge(blk, i32(0)), lt(blk, u('nb', N)))));
      return [add(mul(add(mul(add(mul(blk, HU), h), bsU), mod(p, bsU)), DU), d), ok];
    };
    const i = v('i', 'i32');
    const [move] = kb.collect(() => {
      const from = kb.let('from', loadI32(kb, ctx, srcB, si, add(mul(b, nU), i)));
      const to = kb.let('to', loadI32(kb, ctx, dstB, di, add(mul(b, nU), i)));
      const [copy] = kb.collect(() => {
        const [rs, rok] = slot(from, 'src');
        const [ws, wok] = slot(to, 'dst');
        kb.raiseIf(not(and(rok, wok)), 1);
        kb.emit(if_(and(rok, wok), [{ k: 'store', buf: outB, index: ws, value: load(outB, rs, loadType(st)) }]));
      });
      kb.emit(if_(and(ge(from, i32(0)), ge(to, i32(0))), copy)); // negative: no move
    });
    kb.emit(for_('i', i32(0), nU, move));
  });
  kb.emit(if_(lt(t, kb.uniform('threads', threads)), body));
  const step = kb.build([WORKGROUP, 1, 1], grid1d(Math.ceil(threads / WORKGROUP), ctx.caps));
  if (threads === 0 || n === 0) step.grid = [0, 1, 1];
  return step;
}

/**
 * tree_accept: one thread per sequence walks its tree (at most a few dozen nodes) — at each node the first child
 * holding the node's argmax — and writes the accepted count, the path and the next token; the rest of the row is −1.
 * The whole verdict of a greedy tree pass is then T + 1 integers read back instead of T rows of logits.
 */
registerLowering('tree_accept', (ctx) => {
  checkSizes(ctx);
  const [B, T] = ctx.inputs[0]!.shape as [number, number];
  const kb = new KernelBuilder('tree_accept', ctx.caps);
  const u = (hint: string, x: number) => (x === 0 || x === 1 ? i32(x) : kb.uniform(hint, x));
  const idsB = kb.input(ctx, 0);
  const tokB = kb.input(ctx, 1);
  const parB = kb.input(ctx, 2);
  const yB = kb.output(ctx, 0);
  const t = kb.let('t', add(mul(kb.groupIndex(), i32(WORKGROUP)), kb.localIndex()));
  const [body] = kb.collect(() => {
    const TU = u('T', T);
    const T1 = kb.let('T1', add(TU, i32(1)));
    const row = kb.let('row', mul(t, TU));
    const out = kb.let('orow', mul(t, T1));
    const st = (index: Expr, value: Expr) => ({ k: 'store' as const, buf: yB, index, value });
    kb.emit(for_('k', i32(0), T1, [st(add(out, v('k', 'i32')), i32(-1))]));
    kb.emit(var_('node', 'i32', i32(0)), var_('n', 'i32', i32(0)), var_('go', 'bool', c.bool(true)));
    const node = v('node', 'i32');
    const n = v('n', 'i32');
    // at most T steps: each moves to a later node
    const [step] = kb.collect(() => {
      const a = kb.let('a', loadI32(kb, ctx, idsB, 0, add(row, node)));
      kb.emit(var_('child', 'i32', i32(-1)));
      const i = v('i', 'i32');
      const hit = and(
        lt(v('child', 'i32'), i32(0)),
        and(eq(loadI32(kb, ctx, parB, 2, add(row, i)), node), eq(loadI32(kb, ctx, tokB, 1, add(row, i)), a)),
      );
      kb.emit(for_('i', add(node, i32(1)), TU, [if_(hit, [assign('child', i)])]));
      const child = v('child', 'i32');
      kb.emit(
        if_(
          lt(child, i32(0)),
          [st(add(out, add(n, i32(1))), a), assign('go', c.bool(false))],
          [assign('n', add(n, i32(1))), st(add(out, n), child), assign('node', child)],
        ),
      );
    });
    kb.emit(for_('s', i32(0), TU, [if_(v('go', 'bool'), step)]));
    kb.emit(st(out, n));
  });
  kb.emit(if_(lt(t, u('B', B)), body));
  const step = kb.build([WORKGROUP, 1, 1], grid1d(Math.ceil(B / WORKGROUP), ctx.caps));
  if (B === 0) step.grid = [0, 1, 1];
  return [step];
});
