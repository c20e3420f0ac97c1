/**
 * Scatter lowerings (ir/ops/scatter.ts): two steps, a copy of data into the output (skipped when the executor runs
 * the node in place in data's buffer), then one scatter kernel whose threads never write the same element, so any
 * reduction is race-free and the order of duplicates is the reference's:
 *
 * - scatter_nd: one thread per element of the slice data.shape[k:]; each thread walks the index rows in order
 *   (row-major), so two rows hitting one position are applied by the same thread, in row order. Cost: `rows` serial
 *   steps per thread and `slice` threads (a KV-cache update of [B, H, S_new, D] rows into [B, H, S_max, D] with
 *   k = 3 runs D threads of B·H·S_new steps each); parallel only across the slice. Where the indices are host data
 *   (constants, or computed on the host from shapes) with no two rows alike, one thread per update element instead.
 * - scatter_elements: one thread per position of updates off the axis; each walks the axis in order. Updates collide
 *   only when they agree off the axis, i.e. within one thread. Cost: numel(updates) / updates.shape[axis] threads of
 *   updates.shape[axis] steps each.
 *
 * An index outside [-n, n-1] raises the node's error flag (code 1) and that update is skipped; the executor reports
 * a typed error naming the node. Integer data held as 64-bit in the graph raises code 3 when add / mul leaves the
 * 32-bit words the device holds it in. Data of a packed sub-32-bit dtype (i8, u8, i16, u16, bool, i4, u4) goes
 * through a gather form instead: one thread per output element (of its packed word) looping over every update to
 * find those that hit it — correct for any dtype, O(numel(data) · numel(updates)) work.
 */
import { numel, stridesOf } from '../../ir/shape.js';
import type { Tensor } from '../../ir/tensor.js';
import type { ScatterReduction } from '../../ir/ops/scatter.js';
import {
  PACK,
  add,
  and,
  assign,
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
  not,
  select,
  v,
  var_,
  type Expr,
  type KType,
} from '../kir.js';
import { checked64, nanMax } from './elementwise.js';
import { KernelBuilder, grid1d, type LowerCtx, type LoweredStep } from './kernel-builder.js';
import { WORKGROUP, checkIndexRange, fromCompute, pointwise, toCompute } from './pointwise.js';
import { registerLowering } from './registry.js';
import { computeType, storageOf } from './storage.js';

/** `old` combined with `upd` by the reduction, in the compute type (64-bit integer overflow raises code 3). */
function combine(kb: KernelBuilder, ctx: LowerCtx, red: ScatterReduction, old: Expr, upd: Expr): Expr {
  const dt = ctx.outputs[0]!.dtype;
  switch (red) {
    case 'none':
      return upd;
    case 'add':
      return checked64(kb, 'add', old, upd, add(old, upd), dt);
    case 'mul':
      return checked64(kb, 'mul', old, upd, mul(old, upd), dt);
    case 'max':
      return nanMax(old, upd, true);
    case 'min':
      return nanMax(old, upd, false);
  }
}

/** A dim or stride as an i32 expression: literals for 0 and 1, else a uniform (deduplicated by key). */
function dimU(kb: KernelBuilder, hint: string, value: number, key: string): Expr {
  return value === 0 || value === 1 ? c.i32(value) : kb.uniform(hint, value, 'i32', key);
}

/**
 * Wrap a raw index by `len`; out of [-len, len) raises the error flag. Returns [wrapped index, in range] — the
 * caller skips the update when not in range (never reads or writes out of bounds).
 */
function wrapIndex(kb: KernelBuilder, raw: Expr, len: Expr): [Expr, Expr] {
  const r = kb.let('ir', raw);
  const w = kb.let('iw', select(lt(r, c.i32(0)), add(r, len), r));
  const ok = kb.let('iok', and(ge(w, c.i32(0)), lt(w, len)));
  kb.raiseIf(not(ok), 1);
  return [w, ok];
}

/** The output starts as a copy of data, unless it already is data's buffer (in place). */
function copyStep(ctx: LowerCtx): LoweredStep[] {
  if (ctx.inplace === true) return [];
  const step = pointwise(ctx, { label: `${ctx.op}_copy`, reads: [0], value: (p) => p.loadAt(0, p.flat) });
  return [numel(ctx.outputs[0]!.shape) === 0 ? { ...step, grid: [0, 1, 1] } : step];
}

function checkSizes(ctx: LowerCtx): void {
  ctx.inputs.forEach((t, i) => checkIndexRange(ctx, numel(t!.shape), `input ${i}`));
}

const isPacked = (ctx: LowerCtx) => PACK[storageOf(ctx.outputs[0]!.dtype, ctx.caps)] > 1;

/** Loads of node input `i` at `index` in its compute type. */
function loadIn(kb: KernelBuilder, ctx: LowerCtx, buf: string, i: number, index: Expr): Expr {
  const info = ctx.inputs[i]!;
  return toCompute(load(buf, index, loadType(storageOf(info.dtype, kb.caps))), info.dtype);
}

interface ScatterPlan {
  /** Threads of the scatter kernel. */
  threads: number;
  /** Serial steps per thread (the loop). */
  steps: number;
  /**
   * Per thread `t`, before the loop: set up what every step needs; returns, for step `j`, the flat index of its
   * update element, and its output offset with an in-range flag (`index(e)` loads element e of indices as i32).
   */
  build(kb: KernelBuilder, t: Expr): { update(j: Expr): Expr; target(j: Expr, index: (e: Expr) => Expr): [Expr, Expr] };
}

/** The scatter kernel: per thread, loop over its updates in order and combine each into the output. */
function scatterKernel(ctx: LowerCtx, plan: ScatterPlan): LoweredStep {
  const red = ctx.attrs['reduction'] as ScatterReduction;
  const kb = new KernelBuilder(ctx.op, ctx.caps);
  // in place the output is data's buffer: input 0 is never bound (one buffer bound twice is invalid in WebGPU)
  const outB = kb.output(ctx, 0);
  const idxB = kb.input(ctx, 1);
  const updB = kb.input(ctx, 2);
  const outType = loadType(storageOf(ctx.outputs[0]!.dtype, ctx.caps));
  const t = kb.let('t', add(mul(kb.groupIndex(), c.i32(WORKGROUP)), kb.localIndex()));
  const [body] = kb.collect(() => {
    const p = plan.build(kb, t);
    const j = kb.fresh('j');
    const jv = v(j, 'i32');
    const [loop] = kb.collect(() => {
      const [off, ok] = p.target(jv, (e) => cast('i32', load(idxB, e, 'i32')));
      const [write] = kb.collect(() => {
        const o = kb.let('o', off);
        const upd = kb.let('u', loadIn(kb, ctx, updB, 2, p.update(jv)));
        const old = red === 'none' ? upd : kb.let('old', toCompute(load(outB, o, outType), ctx.outputs[0]!.dtype));
        const val = combine(kb, ctx, red, old, upd);
        kb.emit({ k: 'store', buf: outB, index: o, value: fromCompute(val, outType) });
      });
      kb.emit(if_(ok, write));
    });
    kb.emit(for_(j, c.i32(0), dimU(kb, 'steps', plan.steps, 'steps'), loop));
  });
  kb.emit(if_(lt(t, kb.uniform('n', plan.threads)), body));
  const step = kb.build([WORKGROUP, 1, 1], grid1d(Math.ceil(plan.threads / WORKGROUP), ctx.caps));
  return plan.threads === 0 || plan.steps === 0 ? { ...step, grid: [0, 1, 1] } : step;
}

/**
 * Packed data: one thread per packed output word, which computes each of its elements by walking every update in
 * order and combining those that land on it, then stores the whole word (no two threads touch one word).
 */
function gatherForm(
  ctx: LowerCtx,
  updates: number,
  target: (kb: KernelBuilder, index: (e: Expr) => Expr, e: Expr) => [Expr, Expr],
): LoweredStep[] {
  const red = ctx.attrs['reduction'] as ScatterReduction;
  const dt = ctx.outputs[0]!.dtype;
  const ct: KType = computeType(dt);
  const n = numel(ctx.outputs[0]!.shape);
  const per = PACK[storageOf(dt, ctx.caps)];
  const kb = new KernelBuilder(`${ctx.op}_packed`, ctx.caps);
  const outB = kb.output(ctx, 0);
  // in place, the old elements are read from the output (data's own buffer, bound once): each thread reads the
  // elements of its own word before it stores the word
  const dataB = ctx.inplace === true ? outB : kb.input(ctx, 0);
  const idxB = kb.input(ctx, 1);
  const updB = kb.input(ctx, 2);
  const t = kb.let('t', add(mul(kb.groupIndex(), c.i32(WORKGROUP)), kb.localIndex()));
  const nU = kb.uniform('n', n);
  const [body] = kb.collect(() => {
    const vals: Expr[] = [];
    for (let q = 0; q < per; q++) {
      const el = kb.let('el', add(mul(t, c.i32(per)), c.i32(q)));
      const flat = kb.let('ec', select(lt(el, nU), el, c.i32(0)));
      const acc = kb.fresh('acc');
      const e = kb.fresh('e');
      const ev = v(e, 'i32');
      const [loop] = kb.collect(() => {
        const [off, ok] = target(kb, (x) => cast('i32', load(idxB, x, 'i32')), ev);
        const hit = kb.let('hit', and(ok, eq(off, flat)));
        const [upd] = kb.collect(() => {
          const u = kb.let('u', loadIn(kb, ctx, updB, 2, ev));
          kb.emit(assign(acc, combine(kb, ctx, red, v(acc, ct), u)));
        });
        kb.emit(if_(hit, upd));
      });
      kb.emit(var_(acc, ct, loadIn(kb, ctx, dataB, 0, flat)), for_(e, c.i32(0), dimU(kb, 'nu', updates, 'nu'), loop));
      vals.push(kb.let('v', fromCompute(v(acc, ct), 'i32')));
    }
    kb.emit({ k: 'store_packed', buf: outB, word: t, values: vals });
  });
  const words = Math.ceil(n / per);
  kb.emit(if_(lt(t, kb.uniform('w', words)), body));
  const step = kb.build([WORKGROUP, 1, 1], grid1d(Math.ceil(words / WORKGROUP), ctx.caps));
  return [n === 0 ? { ...step, grid: [0, 1, 1] } : step];
}

/**
 * True when `indices` are host data (a constant, or computed on the host from shapes) whose index tuples, wrapped,
 * are all in range and pairwise different: then the rows can be scattered in parallel with no write twice.
 */
function distinctRows(indices: Tensor | undefined, data: readonly number[], k: number): boolean {
  if (!indices) return false;
  const seen = new Set<number>();
  const st = stridesOf(data);
  for (let j = 0; j < indices.data.length; j += k) {
    let off = 0;
    for (let m = 0; m < k; m++) {
      const i = indices.data[j + m]!;
      const w = i < 0 ? i + data[m]! : i;
      if (!(w >= 0 && w < data[m]!)) return false; // the serial kernel reports it
      off += w * st[m]!;
    }
    if (seen.has(off)) return false;
    seen.add(off);
  }
  return true;
}

registerLowering('scatter_nd', (ctx) => {
  checkSizes(ctx);
  const data = ctx.inputs[0]!.shape;
  const ix = ctx.inputs[1]!.shape;
  const q = ix.length;
  const k = ix[q - 1]!;
  const rows = numel(ix.slice(0, q - 1));
  const slice = numel(data.slice(k));
  const st = stridesOf(data);
  /** Output offset of the tuple starting at index element `first`, and whether every entry is in range. */
  const tuple = (kb: KernelBuilder, index: (e: Expr) => Expr, row: Expr): [Expr, Expr] => {
    let off: Expr = c.i32(0);
    let ok: Expr = c.bool(true);
    for (let m = 0; m < k; m++) {
      const [w, okm] = wrapIndex(kb, index(add(mul(row, c.i32(k)), c.i32(m))), dimU(kb, 'd', data[m]!, `dim.${m}`));
      off = add(off, mul(select(okm, w, c.i32(0)), dimU(kb, 's', st[m]!, `stride.${m}`)));
      ok = m === 0 ? okm : and(ok, okm);
    }
    return [kb.let('off', off), kb.let('ok', ok)];
  };
  if (isPacked(ctx)) {
    // element e of updates belongs to row e / slice, at slice position e mod slice
    return gatherForm(ctx, rows * slice, (kb, index, e) => {
      const sl = dimU(kb, 'sl', slice, 'slice');
      const row = kb.let('row', div(e, sl));
      const [off, ok] = tuple(kb, index, row);
      return [add(off, mod(e, sl)), ok];
    });
  }
  if (rows > 1 && distinctRows(ctx.inputs[1]!.data, data, k)) {
    // indices known on the host and no two rows alike: no element is written twice, one thread per element
    const scatter = scatterKernel(ctx, {
      threads: rows * slice,
      steps: 1,
      build: (kb, t) => {
        const sl = dimU(kb, 'sl', slice, 'slice');
        const row = kb.let('row', div(t, sl));
        return {
          update: () => t,
          target: (_j, index) => {
            const [off, ok] = tuple(kb, index, row);
            return [add(off, mod(t, sl)), ok];
          },
        };
      },
    });
    return [...copyStep(ctx), scatter];
  }
  const scatter = scatterKernel(ctx, {
    threads: slice,
    steps: rows,
    build: (kb, t) => ({
      update: (j) => add(mul(j, dimU(kb, 'sl', slice, 'slice')), t),
      target: (j, index) => {
        const [off, ok] = tuple(kb, index, j);
        return [add(off, t), ok];
      },
    }),
  });
  return [...copyStep(ctx), scatter];
});

registerLowering('scatter_elements', (ctx) => {
  checkSizes(ctx);
  const data = ctx.inputs[0]!.shape;
  const U = ctx.inputs[2]!.shape;
  const r = data.length;
  const a0 = ctx.attrs['axis'] as number;
  const axis = a0 < 0 ? a0 + r : a0;
  const dst = stridesOf(data);
  const ust = stridesOf(U);
  const len = U[axis]!;
  const cols = len === 0 ? 0 : numel(U) / len;
  if (isPacked(ctx)) {
    return gatherForm(ctx, numel(U), (kb, index, e) => {
      // coordinates of update element e, mapped to data's strides with the axis coordinate from the index
      let rest = e;
      let off: Expr = c.i32(0);
      for (let d = r - 1; d >= 0; d--) {
        const ud = dimU(kb, 'ud', U[d]!, `udim.${d}`);
        const x = d === 0 ? rest : kb.let('x', mod(rest, ud));
        if (d > 0) rest = kb.let('q', div(rest, ud));
        if (d !== axis) off = add(off, mul(x, dimU(kb, 'ds', dst[d]!, `dstride.${d}`)));
      }
      const [w, ok] = wrapIndex(kb, index(e), dimU(kb, 'da', data[axis]!, 'daxis'));
      return [kb.let('off', add(off, mul(select(ok, w, c.i32(0)), dimU(kb, 'ds', dst[axis]!, 'dstride.axis')))), ok];
    });
  }
  const scatter = scatterKernel(ctx, {
    threads: cols,
    steps: len,
    build: (kb, t) => {
      // t → coordinates of updates off the axis; their offsets in data and in updates
      let rest = t;
      let base: Expr = c.i32(0);
      let ubase: Expr = c.i32(0);
      const dims = [...Array(r).keys()].filter((d) => d !== axis);
      for (let i = dims.length - 1; i >= 0; i--) {
        const d = dims[i]!;
        const ud = dimU(kb, 'ud', U[d]!, `udim.${d}`);
        const x = i === 0 ? rest : kb.let('x', mod(rest, ud));
        if (i > 0) rest = kb.let('q', div(rest, ud));
        base = add(base, mul(x, dimU(kb, 'ds', dst[d]!, `dstride.${d}`)));
        ubase = add(ubase, mul(x, dimU(kb, 'us', ust[d]!, `ustride.${d}`)));
      }
      const b = kb.let('base', base);
      const ub = kb.let('ubase', ubase);
      const uAxis = dimU(kb, 'us', ust[axis]!, 'ustride.axis');
      const update = (j: Expr) => add(ub, mul(j, uAxis));
      return {
        update,
        target: (j, index) => {
          const [w, ok] = wrapIndex(kb, index(update(j)), dimU(kb, 'da', data[axis]!, 'daxis'));
          return [kb.let('off', add(b, mul(select(ok, w, c.i32(0)), dimU(kb, 'ds', dst[axis]!, 'dstride.axis')))), ok];
        },
      };
    },
  });
  return [...copyStep(ctx), scatter];
});
