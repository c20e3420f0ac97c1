/**
 * Lowering of movement / injective ops: each output element is one load at a computed input offset (or a value made
 * from uniforms), so everything goes through the pointwise template: one thread per output element (per packed word
 * for sub-32-bit outputs), 256 threads per workgroup, writes coalesced along the output's flat index.
 *
 * - reshape / flatten / squeeze / unsqueeze: flat copy.
 * - transpose / slice / expand / split: a strided view, `base + Σ coord[d]·stride[d]`, after dropping size-1 output
 *   axes and merging axes that stay contiguous (so a transpose of [B, S, H, D] → [B, H, S, D] indexes in rank 4 at
 *   most, a contiguous slice in rank 1). Base and strides are uniforms.
 * - concat: one kernel reading every input, an if-chain on the concatenated column; more inputs than the device's
 *   storage-buffer limit: several kernels, each writing its inputs' columns.
 * - gather / gather_elements / gather_nd: indices loaded from the device; negative indices wrap, and an index still
 *   out of range is clamped to the axis (the reference raises an error; a kernel cannot, and must not read out of
 *   bounds).
 * - tile, trilu, range, constant_of_shape, constant, pad: index arithmetic and uniforms.
 * Shape-like inputs (reshape's shape, slice's starts/ends/axes/steps, tile's repeats, pad's pads...) are host data:
 * they are read from `ctx.inputs[i].data` and never bound as buffers.
 */
import type { DType } from '../../ir/dtype.js';
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import { padAxes, padAxis, type PadMode } from '../../ir/ops/pad.js';
import { contiguousLayout, simplifyLayout, type StridedLayout } from '../../ir/layout.js';
import { getOp } from '../../ir/registry.js';
import { numel, stridesOf } from '../../ir/shape.js';
import type { Tensor } from '../../ir/tensor.js';
import {
  PACK,
  add,
  and,
  assign,
  bin,
  c,
  cast,
  eq,
  ge,
  if_,
  le,
  load,
  lt,
  max,
  min,
  mod,
  mul,
  ne,
  or,
  select,
  sub,
  v,
  var_,
  type Expr,
  type KType,
  type Stmt,
} from '../kir.js';
import { roundBf16 } from './elementwise.js';
import { KernelBuilder, grid1d, type LowerCtx, type LoweredStep, type TensorInfo } from './kernel-builder.js';
import { WORKGROUP, checkIndexRange, fromCompute, pointwise, Pointwise, type PointwiseSpec } from './pointwise.js';
import { registerLowering } from './registry.js';
import { computeType, storageOf } from './storage.js';

/** Clamp an i32 into [lo, hi] (hi ≥ lo). */
const clampI = (x: Expr, lo: Expr, hi: Expr) => max(min(x, hi), lo);

function unsupported(ctx: LowerCtx, message: string): never {
  throw new UnsupportedError(message, { node: ctx.node, op: ctx.op });
}

/** Host data of input i (shape-like inputs); absent → located error. */
function hostData(ctx: LowerCtx, i: number, what: string): Tensor {
  const d = ctx.inputs[i]?.data;
  if (!d) unsupported(ctx, `${what} (input ${i}) must be known on the host: it is computed on the device`);
  return d;
}

/** A ctx whose input / output shapes are replaced by views with the same element counts (row-major order kept). */
function view(
  ctx: LowerCtx,
  inputs: Readonly<Record<number, readonly number[]>>,
  outputs: Readonly<Record<number, readonly number[]>>,
): LowerCtx {
  const re = (t: TensorInfo | undefined, s: readonly number[] | undefined): TensorInfo | undefined =>
    t && s ? { dtype: t.dtype, shape: s, data: t.data } : t;
  return {
    ...ctx,
    inputs: ctx.inputs.map((t, i) => re(t, inputs[i])),
    outputs: ctx.outputs.map((t, i) => re(t, outputs[i])!),
  };
}

/** The pointwise template, with an empty grid when the output is empty (the executor then skips the step). */
function pw(ctx: LowerCtx, spec: PointwiseSpec): LoweredStep {
  const step = pointwise(ctx, spec);
  return numel(ctx.outputs[spec.output ?? 0]!.shape) === 0 ? { ...step, grid: [0, 1, 1] } : step;
}

/** Zero of a compute type. */
function zeroOf(t: KType): Expr {
  return t === 'bool' ? c.bool(false) : c.of(t, 0);
}

/** A host scalar as a uniform in `dtype`'s compute type (integers must fit 32 bits). */
function scalarUniform(ctx: LowerCtx, kb: KernelBuilder, dtype: DType, value: number, hint: string): Expr {
  const ct = computeType(dtype);
  if (ct === 'f32') return kb.uniform(hint, value, 'f32');
  if (ct === 'bool') return ne(kb.uniform(hint, value !== 0 ? 1 : 0, 'i32'), c.i32(0));
  const [lo, hi] = ct === 'u32' ? [0, 2 ** 32 - 1] : [-(2 ** 31), 2 ** 31 - 1];
  if (!(value >= lo && value <= hi)) {
    throw new KilnError('limit', `value ${value} of ${dtype} does not fit the device's 32-bit ${ct}`, {
      node: ctx.node,
      op: ctx.op,
      limit: `${ct} range`,
    });
  }
  return kb.uniform(hint, value, ct === 'u32' ? 'u32' : 'i32');
}

/** A scalar input: a uniform when host-known, else element 0 loaded from its buffer (listed in `reads`). */
function scalarInput(ctx: LowerCtx, p: Pointwise, i: number, hint: string): Expr {
  const t = ctx.inputs[i]!;
  if (t.data) return scalarUniform(ctx, p.kb, t.dtype, t.data.data[0]!, hint);
  return p.loadAt(i, c.i32(0));
}

// ---- flat copies ---------------------------------------------------------------------------------------------

/** reshape / flatten / squeeze / unsqueeze: same elements in the same order. */
function flatCopy(op: string) {
  registerLowering(op, (ctx) => {
    const n = numel(ctx.outputs[0]!.shape);
    const vctx = view(ctx, { 0: [n] }, { 0: [n] });
    return [pw(vctx, { label: op, reads: [0], value: (p) => p.loadAt(0, p.flat) })];
  });
}
for (const op of ['reshape', 'flatten', 'squeeze', 'unsqueeze']) flatCopy(op);

// ---- strided views: transpose, slice, expand, split ----------------------------------------------------------

/** Drop size-1 axes and merge an axis into its outer neighbour where the strides stay contiguous (ir/layout.ts). */
export function simplifyStrided(shape: readonly number[], strides: readonly number[]): [number[], number[]] {
  if (numel(shape) === 0) return [[0], [0]];
  const l = simplifyLayout({ offset: 0, shape, strides });
  return [[...l.shape], [...l.strides]];
}

/**
 * The op's own strided layouts of its outputs over its row-major input (`OpDef.layout`, the one place a movement op
 * says where its elements come from): what its copy kernels read, and what the executor binds as views instead.
 */
function layoutsOf(ctx: LowerCtx): StridedLayout[] {
  const def = getOp(ctx.op);
  let outs: readonly (StridedLayout | undefined)[] | undefined;
  try {
    outs = def.layout?.(contiguousLayout(ctx.inputs[0]!.shape), {
      attrs: ctx.attrs,
      hostInputs: def.inputs.map((_, i) => (i === 0 ? undefined : ctx.inputs[i] ? ctx.inputs[i]!.data : null)),
      outShapes: ctx.outputs.map((o) => o.shape),
    });
  } catch (e) {
    unsupported(ctx, (e as Error).message);
  }
  if (!outs || outs.some((l) => !l)) unsupported(ctx, `${ctx.op} has no strided layout for these inputs`);
  return outs as StridedLayout[];
}

/**
 * Output `oi` = input `src` read at `base + Σ coord[d]·strides[d]` over `outShape` (strides in input elements, may
 * be 0 or negative). `base` undefined: structurally 0 (no uniform).
 */
function stridedStep(
  ctx: LowerCtx,
  label: string,
  src: number,
  oi: number,
  strides: readonly number[],
  base?: number,
): LoweredStep {
  const [dims, st] = simplifyStrided(ctx.outputs[oi]!.shape, strides);
  const vctx = view(ctx, {}, { [oi]: dims });
  return pw(vctx, {
    label,
    output: oi,
    reads: [src],
    value: (p) => {
      if (dims.length === 1 && st[0] === 1 && base === undefined) return p.loadAt(src, p.flat);
      let off: Expr = base === undefined ? c.i32(0) : p.kb.uniform('base', base);
      p.coords.forEach((x, d) => {
        const s = st[d]!;
        off = add(off, mul(x, s === 0 || s === 1 ? c.i32(s) : p.kb.uniform('st', s)));
      });
      return p.loadAt(src, p.kb.let('a', off));
    },
  });
}

registerLowering('transpose', (ctx) => {
  const { strides } = layoutsOf(ctx)[0]!;
  const tiled = tiledTranspose(ctx, strides);
  return [tiled ?? stridedStep(ctx, 'transpose', 0, 0, strides)];
});

const TILE = 16;

/**
 * A (batched) swap of the last two axes — what remains of a transpose after merging axes is [B?, P, Q] with input
 * strides [P·Q, 1, P] — through workgroup memory: a 16×16 tile is read along P (the input's contiguous axis) and
 * written along Q (the output's), so both sides coalesce. One workgroup of 256 threads per tile; the shared tile
 * has a padded row (17) against bank conflicts. Packed dtypes and small or other transposes: undefined (the strided
 * pointwise kernel).
 */
function tiledTranspose(ctx: LowerCtx, strides: readonly number[]): LoweredStep | undefined {
  const [dims, st] = simplifyStrided(ctx.outputs[0]!.shape, strides);
  const r = dims.length;
  if (r < 2 || r > 3) return undefined;
  const [P, Q] = [dims[r - 2]!, dims[r - 1]!];
  const B = r === 3 ? dims[0]! : 1;
  if (st[r - 2] !== 1 || st[r - 1] !== P || (r === 3 && st[0] !== P * Q)) return undefined;
  if (P < TILE / 2 || Q < TILE / 2 || ctx.caps.maxWorkgroupSize < TILE * TILE) return undefined;
  const dtype = ctx.inputs[0]!.dtype;
  const storage = storageOf(dtype, ctx.caps);
  if (PACK[storage] !== 1) return undefined;
  const lty: KType = storage === 'f16' ? 'f16' : storage === 'f32' ? 'f32' : storage === 'u32' ? 'u32' : 'i32';
  if ((TILE + 1) * TILE * (lty === 'f16' ? 2 : 4) > ctx.caps.maxSharedBytes) return undefined;
  const n = B * P * Q;
  checkIndexRange(ctx, n, 'output 0');
  const kb = new KernelBuilder('transpose_tiled', ctx.caps);
  const ib = kb.input(ctx, 0);
  const ob = kb.output(ctx, 0);
  const tile = kb.sharedArray('tile', lty, TILE * (TILE + 1));
  const tilesP = Math.ceil(P / TILE);
  const tilesQ = Math.ceil(Q / TILE);
  const pU = kb.uniform('p', P);
  const qU = kb.uniform('q', Q);
  const tpU = kb.uniform('tp', tilesP);
  const perB = kb.uniform('tb', tilesP * tilesQ);
  const pqU = kb.uniform('pq', P * Q);
  const g = kb.groupIndex();
  const l = kb.localIndex();
  const lx = kb.let('lx', mod(l, c.i32(TILE)));
  const ly = kb.let('ly', bin('div', l, c.i32(TILE)));
  const b = kb.let('b', bin('div', g, perB));
  const rem = kb.let('rm', mod(g, perB));
  const p0 = kb.let('p0', mul(mod(rem, tpU), c.i32(TILE)));
  const q0 = kb.let('q0', mul(bin('div', rem, tpU), c.i32(TILE)));
  const base = kb.let('bo', mul(b, pqU));
  // read: input row q0 + ly, column p0 + lx (contiguous along lx)
  const qi = kb.let('qi', add(q0, ly));
  const pi = kb.let('pi', add(p0, lx));
  kb.emit(
    if_(and(lt(qi, qU), lt(pi, pU)), [
      {
        k: 'shared_store',
        arr: tile,
        index: add(mul(ly, c.i32(TILE + 1)), lx),
        value: load(ib, add(base, add(mul(qi, pU), pi)), lty),
      },
    ]),
    { k: 'barrier' },
  );
  // write: output row p0 + ly, column q0 + lx (contiguous along lx)
  const po = kb.let('po', add(p0, ly));
  const qo = kb.let('qo', add(q0, lx));
  kb.emit(
    if_(and(lt(po, pU), lt(qo, qU)), [
      {
        k: 'store',
        buf: ob,
        index: add(base, add(mul(po, qU), qo)),
        value: { k: 'shared_load', type: lty, arr: tile, index: add(mul(lx, c.i32(TILE + 1)), ly) },
      },
    ]),
  );
  return kb.build([TILE * TILE, 1, 1], grid1d(B * tilesP * tilesQ, ctx.caps));
}

registerLowering('expand', (ctx) => [stridedStep(ctx, 'expand', 0, 0, layoutsOf(ctx)[0]!.strides)]);

registerLowering('split', (ctx) => layoutsOf(ctx).map((l, j) => stridedStep(ctx, 'split', 0, j, l.strides, l.offset)));

registerLowering('slice', (ctx) => {
  // the bounds must be host data (a located error says which one is not)
  hostData(ctx, 1, 'starts');
  hostData(ctx, 2, 'ends');
  if (ctx.inputs[3]) hostData(ctx, 3, 'axes');
  if (ctx.inputs[4]) hostData(ctx, 4, 'steps');
  const l = layoutsOf(ctx)[0]!;
  return [stridedStep(ctx, 'slice', 0, 0, l.strides, l.offset)];
});

// ---- concat ----------------------------------------------------------------------------------------------------

/**
 * The value of output column `col` (row `row`) of a concat from the sources `group` (node input indices) whose
 * columns are [begin[j], begin[j] + width[j]): an if-chain, so only the owning input is read.
 */
function concatValue(
  p: Pointwise,
  dtype: DType,
  group: readonly number[],
  begin: readonly number[],
  width: readonly number[],
  row: Expr,
  col: Expr,
): Expr {
  const kb = p.kb;
  const ct = computeType(dtype);
  const name = kb.fresh('cv');
  const read = (j: number): Stmt => {
    const local = j === 0 && begin[0] === 0 ? col : sub(col, kb.uniform('cb', begin[j]!));
    return assign(name, p.loadAt(group[j]!, add(mul(row, kb.uniform('cw', width[j]!)), local)));
  };
  let chain: Stmt = read(group.length - 1);
  for (let j = group.length - 2; j >= 0; j--) {
    chain = if_(lt(col, kb.uniform('ce', begin[j]! + width[j]!)), [read(j)], [chain]);
  }
  kb.emit(var_(name, ct, zeroOf(ct)), chain);
  return v(name, ct);
}

registerLowering('concat', (ctx) => {
  const out = ctx.outputs[0]!;
  const rank = out.shape.length;
  const a = ctx.attrs['axis'] as number;
  const axis = a < 0 ? a + rank : a;
  const outer = numel(out.shape.slice(0, axis));
  const inner = numel(out.shape.slice(axis + 1));
  const total = out.shape[axis]! * inner;
  // sources with elements, as [outer, width] views; begin = first output column
  const srcs: { i: number; begin: number; width: number }[] = [];
  let col = 0;
  ctx.inputs.forEach((t, i) => {
    const w = t!.shape[axis]! * inner;
    if (w > 0) srcs.push({ i, begin: col, width: w });
    col += w;
  });
  if (outer * total === 0) return [];
  const inViews: Record<number, number[]> = {};
  for (const s of srcs) inViews[s.i] = [outer, s.width];
  const vctx = view(ctx, inViews, { 0: [outer, total] });
  const maxIn = ctx.caps.maxBuffersPerKernel - 1;
  if (srcs.length <= maxIn) {
    return [
      pw(vctx, {
        label: 'concat',
        reads: srcs.map((s) => s.i),
        value: (p) =>
          concatValue(
            p,
            out.dtype,
            srcs.map((s) => s.i),
            srcs.map((s) => s.begin),
            srcs.map((s) => s.width),
            p.coords[0]!,
            p.coords[1]!,
          ),
      }),
    ];
  }
  if (maxIn < 1) unsupported(ctx, `the device allows ${ctx.caps.maxBuffersPerKernel} storage buffers per kernel`);
  const steps: LoweredStep[] = [];
  for (let g = 0; g < srcs.length; g += maxIn) steps.push(concatGroup(vctx, srcs.slice(g, g + maxIn), total));
  return steps;
});

/**
 * One step of a concat with more inputs than a kernel may bind: writes only the columns of `group`, leaving the
 * rest of the output as it is. Unpacked outputs: one thread per element of the group's columns. Packed outputs
 * (bool, 8/16-bit): one thread per output word, merging the group's elements into the word it reads back.
 */
function concatGroup(
  ctx: LowerCtx,
  group: readonly { i: number; begin: number; width: number }[],
  total: number,
): LoweredStep {
  const out = ctx.outputs[0]!;
  const [outer] = out.shape as [number, number];
  const kb = new KernelBuilder('concat_part', ctx.caps);
  const bufs = new Map<number, string>();
  for (const s of group) bufs.set(s.i, kb.input(ctx, s.i));
  const ob = kb.output(ctx, 0);
  const st = storageOf(out.dtype, ctx.caps);
  const per = PACK[st];
  const g0 = group[0]!.begin;
  const gw = group[group.length - 1]!.begin + group[group.length - 1]!.width - g0;
  const gi = kb.groupIndex();
  const li = kb.localIndex();
  const t = kb.let('t', add(mul(gi, c.i32(WORKGROUP)), li));
  const ids = group.map((s) => s.i);
  const begins = group.map((s) => s.begin);
  const widths = group.map((s) => s.width);
  let threads: number;
  if (per === 1) {
    // t over [outer, gw]: row = t / gw, column g0 + t % gw
    threads = outer * gw;
    checkIndexRange(ctx, threads, 'concat part');
    const nU = kb.uniform('n', threads);
    const [body] = kb.collect(() => {
      const gwU = kb.uniform('gw', gw);
      const row = kb.let('r', bin('div', t, gwU));
      const colU = kb.let('col', add(mod(t, gwU), kb.uniform('g0', g0)));
      const p = new Pointwise(kb, ctx, [threads], t, bufs);
      const val = concatValue(p, out.dtype, ids, begins, widths, row, colU);
      const target: KType = st === 'f16' ? 'f16' : st === 'f32' ? 'f32' : st === 'u32' ? 'u32' : 'i32';
      kb.emit({
        k: 'store',
        buf: ob,
        index: add(mul(row, kb.uniform('tw', total)), colU),
        value: fromCompute(val, target),
      });
    });
    kb.emit(if_(lt(t, nU), body));
  } else {
    const n = outer * total;
    threads = Math.ceil(n / per);
    const words = kb.uniform('w', threads);
    const nU = kb.uniform('n', n);
    const [body, vals] = kb.collect(() => {
      const totalU = kb.uniform('tw', total);
      const lo = kb.uniform('g0', g0);
      const hi = kb.uniform('g1', g0 + gw);
      const vs: Expr[] = [];
      for (let j = 0; j < per; j++) {
        const e = kb.let('e', add(mul(t, c.i32(per)), c.i32(j)));
        const ec = kb.let('ec', select(lt(e, nU), e, c.i32(0)));
        const row = kb.let('r', bin('div', ec, totalU));
        const col = kb.let('col', mod(ec, totalU));
        const old = cast('i32', load(ob, ec, st.startsWith('u') ? 'u32' : 'i32'));
        const name = kb.fresh('pv');
        kb.emit(var_(name, 'i32', old));
        const p = new Pointwise(kb, ctx, [n], ec, bufs);
        const [inner, val] = kb.collect(() =>
          fromCompute(concatValue(p, out.dtype, ids, begins, widths, row, col), 'i32'),
        );
        kb.emit(if_(and(lt(e, nU), and(ge(col, lo), lt(col, hi))), [...inner, assign(name, val)]));
        vs.push(v(name, 'i32'));
      }
      return vs;
    });
    kb.emit(if_(lt(t, words), [...body, { k: 'store_packed', buf: ob, word: t, values: vals }]));
  }
  return kb.build([WORKGROUP, 1, 1], threads === 0 ? [0, 1, 1] : grid1d(Math.ceil(threads / WORKGROUP), ctx.caps));
}

// ---- tile ------------------------------------------------------------------------------------------------------

registerLowering('tile', (ctx) => {
  const inShape = ctx.inputs[0]!.shape;
  const st = stridesOf(inShape);
  return [
    pw(ctx, {
      label: 'tile',
      reads: [0],
      value: (p) => {
        let off: Expr = c.i32(0);
        inShape.forEach((d, k) => {
          if (d === 1) return;
          const x = mod(p.coords[k]!, p.dim(0, k));
          off = add(off, mul(x, st[k] === 1 ? c.i32(1) : p.kb.uniform('st', st[k]!)));
        });
        return p.loadAt(0, p.kb.let('a', off));
      },
    }),
  ];
});

// ---- gathers ---------------------------------------------------------------------------------------------------

/**
 * Wrap a negative index by `len`; an index outside [-len, len) raises the node's error flag (the reference raises
 * too) and is clamped into [0, len-1] (len ≥ 1), so it never reads out of bounds.
 */
function wrapClamp(kb: KernelBuilder, raw: Expr, len: Expr): Expr {
  const idx = kb.let('ir', raw);
  const w = kb.let('iw', select(lt(idx, c.i32(0)), add(idx, len), idx));
  kb.raiseIf(or(lt(w, c.i32(0)), ge(w, len)), 1);
  return clampI(w, c.i32(0), sub(len, c.i32(1)));
}

/** Index values as i32 (index dtypes are i64 / i32, both held as i32). */
const asIndex = (e: Expr): Expr => cast('i32', e);

function emptyAxis(ctx: LowerCtx, len: number): void {
  if (len === 0 && numel(ctx.outputs[0]!.shape) > 0) {
    unsupported(ctx, 'gather from an axis of size 0: every index is out of range');
  }
}

registerLowering('gather', (ctx) => {
  const data = ctx.inputs[0]!.shape;
  const a = ctx.attrs['axis'] as number;
  const axis = a < 0 ? a + data.length : a;
  const outer = numel(data.slice(0, axis));
  const len = data[axis]!;
  const inner = numel(data.slice(axis + 1));
  const nIdx = numel(ctx.inputs[1]!.shape);
  emptyAxis(ctx, len);
  const vctx = view(ctx, { 0: [outer, len, inner], 1: [nIdx] }, { 0: [outer, nIdx, inner] });
  return [
    pw(vctx, {
      label: 'gather',
      reads: [0, 1],
      value: (p) => {
        const [o, j, i] = p.coords as [Expr, Expr, Expr];
        const lenU = p.dim(0, 1);
        const idx = p.kb.let('ix', wrapClamp(p.kb, asIndex(p.loadAt(1, j)), lenU));
        const innerU = inner === 1 ? c.i32(1) : p.kb.uniform('in', inner);
        return p.loadAt(0, p.kb.let('a', add(mul(add(mul(o, lenU), idx), innerU), i)));
      },
    }),
  ];
});

registerLowering('gather_elements', (ctx) => {
  const data = ctx.inputs[0]!.shape;
  const r = data.length;
  const a = ctx.attrs['axis'] as number;
  const axis = a < 0 ? a + r : a;
  emptyAxis(ctx, data[axis]!);
  const st = stridesOf(data);
  return [
    pw(ctx, {
      label: 'gather_elements',
      reads: [0, 1],
      value: (p) => {
        const idx = p.kb.let('ix', wrapClamp(p.kb, asIndex(p.loadAt(1, p.flat)), p.dim(0, axis)));
        let off: Expr = c.i32(0);
        for (let d = 0; d < r; d++) {
          const x = d === axis ? idx : p.coords[d]!;
          off = add(off, mul(x, st[d] === 1 ? c.i32(1) : p.kb.uniform('st', st[d]!)));
        }
        return p.loadAt(0, p.kb.let('a', off));
      },
    }),
  ];
});

registerLowering('gather_nd', (ctx) => {
  const data = ctx.inputs[0]!.shape;
  const ix = ctx.inputs[1]!.shape;
  const b = ctx.attrs['batch_dims'] as number;
  const q = ix.length;
  const m = ix[q - 1]!;
  const batch = numel(data.slice(0, b));
  const perBatch = numel(ix.slice(b, q - 1));
  const slice = numel(data.slice(b + m));
  const st = stridesOf(data);
  for (let k = 0; k < m; k++) emptyAxis(ctx, data[b + k]!);
  const vctx = view(ctx, { 1: [batch * perBatch * m] }, { 0: [batch, perBatch, slice] });
  return [
    pw(vctx, {
      label: 'gather_nd',
      reads: [0, 1],
      value: (p) => {
        const kb = p.kb;
        const [bi, j, s] = p.coords as [Expr, Expr, Expr];
        const tuple = kb.let('tp', mul(add(mul(bi, kb.uniform('pb', perBatch)), j), c.i32(m)));
        let off: Expr = b === 0 ? c.i32(0) : mul(bi, kb.uniform('bs', numel(data.slice(b))));
        for (let k = 0; k < m; k++) {
          const dimU = data[b + k] === 1 ? c.i32(1) : kb.uniform('d', data[b + k]!);
          const idx = kb.let('ix', wrapClamp(kb, asIndex(p.loadAt(1, add(tuple, c.i32(k)))), dimU));
          off = add(off, mul(idx, st[b + k] === 1 ? c.i32(1) : kb.uniform('st', st[b + k]!)));
        }
        return p.loadAt(0, kb.let('a', add(off, s)));
      },
    }),
  ];
});

// ---- generators --------------------------------------------------------------------------------------------------

registerLowering('range', (ctx) => {
  const dt = ctx.outputs[0]!.dtype;
  const ct = computeType(dt);
  return [
    pw(ctx, {
      label: 'range',
      // the limit only sets the length; start / delta are uniforms when host-known (always, in practice)
      reads: [0, 2].filter((i) => !ctx.inputs[i]!.data),
      value: (p) => {
        const start = scalarInput(ctx, p, 0, 'rs');
        const delta = scalarInput(ctx, p, 2, 'rd');
        const y = add(start, mul(cast(ct, p.coords[0]!), delta));
        return dt === 'bf16' ? roundBf16(y) : y;
      },
    }),
  ];
});

registerLowering('trilu', (ctx) => {
  const shape = ctx.inputs[0]!.shape;
  const r = shape.length;
  const rows = shape[r - 2]!;
  const cols = shape[r - 1]!;
  const upper = ctx.attrs['upper'] as boolean;
  const kIn = ctx.inputs[1];
  const reads = kIn && !kIn.data ? [0, 1] : [0];
  const vctx = view(ctx, { 0: [numel(shape)] }, { 0: [numel(shape.slice(0, r - 2)), rows, cols] });
  return [
    pw(vctx, {
      label: 'trilu',
      reads,
      value: (p) => {
        let k: Expr;
        if (!kIn) k = c.i32(0);
        else if (kIn.data) {
          // any |k| beyond the matrix acts like ±(rows + cols): keep it inside i32
          const bound = rows + cols + 1;
          k = p.kb.uniform('k', Math.min(Math.max(kIn.data.data[0]!, -bound), bound));
        } else k = asIndex(p.loadAt(1, c.i32(0)));
        const x = p.loadAt(0, p.flat);
        const dj = sub(p.coords[2]!, p.coords[1]!);
        const keep = upper ? ge(dj, k) : le(dj, k);
        return select(keep, x, zeroOf(x.type));
      },
    }),
  ];
});

registerLowering('constant_of_shape', (ctx) => {
  const value = ctx.attrs['value'] as Tensor | undefined;
  const out = ctx.outputs[0]!;
  const n = numel(out.shape);
  const vctx = view(ctx, {}, { 0: [n] });
  return [
    pw(vctx, {
      label: 'constant_of_shape',
      reads: [],
      value: (p) => scalarUniform(ctx, p.kb, out.dtype, value?.data[0] ?? 0, 'cv'),
    }),
  ];
});

/** Constants are folded on the host by the executor; on the device only splats and tiny tensors (≤ 16 values). */
const MAX_CONSTANT_UNIFORMS = 16;
registerLowering('constant', (ctx) => {
  const value = ctx.attrs['value'] as Tensor;
  const out = ctx.outputs[0]!;
  const n = numel(out.shape);
  const vals = Array.from(value.data);
  const splat = vals.every((x) => Object.is(x, vals[0]));
  if (!splat && n > MAX_CONSTANT_UNIFORMS) {
    unsupported(ctx, `constant of ${n} distinct values: constants are computed on the host`);
  }
  const vctx = view(ctx, {}, { 0: [n] });
  return [
    pw(vctx, {
      label: 'constant',
      reads: [],
      value: (p) => {
        if (splat) return scalarUniform(ctx, p.kb, out.dtype, vals[0] ?? 0, 'cv');
        let y = scalarUniform(ctx, p.kb, out.dtype, vals[n - 1]!, 'cv');
        for (let i = n - 2; i >= 0; i--) {
          y = select(eq(p.flat, c.i32(i)), scalarUniform(ctx, p.kb, out.dtype, vals[i]!, 'cv'), y);
        }
        return y;
      },
    }),
  ];
});

// ---- pad ---------------------------------------------------------------------------------------------------------

registerLowering('pad', (ctx) => {
  const x = ctx.inputs[0]!;
  const rank = x.shape.length;
  const mode = ctx.attrs['mode'] as PadMode;
  const fail = (m: string): never => unsupported(ctx, m);
  const pads = Array.from(hostData(ctx, 1, 'pads').data);
  const axes = ctx.inputs[3] ? Array.from(hostData(ctx, 3, 'axes').data) : undefined;
  const { begin, end } = padAxes(rank, pads, axes, fail);
  const ax = x.shape.map((d, k) => padAxis(d, begin[k]!, end[k]!, fail));
  const kept = numel(ax.map((a) => a.kept));
  const out = ctx.outputs[0]!;
  if (mode !== 'constant' && kept === 0 && numel(out.shape) > 0) fail(`mode ${mode} cannot pad an empty tensor`);
  const cv = ctx.inputs[2];
  const reads = [...(kept > 0 ? [0] : []), ...(mode === 'constant' && cv && !cv.data ? [2] : [])];
  const st = stridesOf(x.shape);
  return [
    pw(ctx, {
      label: `pad_${mode}`,
      reads,
      value: (p) => {
        const kb = p.kb;
        const constant = (): Expr => {
          if (!cv) return zeroOf(computeType(out.dtype));
          return scalarInput(ctx, p, 2, 'cv');
        };
        if (kept === 0) return constant();
        let inside: Expr | undefined;
        const base = ax.reduce((s, a, d) => s + a.cropBegin * st[d]!, 0);
        let off: Expr = base === 0 ? c.i32(0) : kb.uniform('base', base);
        ax.forEach((a, d) => {
          let j = p.coords[d]!;
          if (a.padBegin + a.padEnd > 0) {
            j = a.padBegin === 0 ? j : kb.let('j', sub(j, kb.uniform('pb', a.padBegin)));
            const keptU = a.kept === 1 ? c.i32(1) : kb.uniform('kd', a.kept);
            switch (mode) {
              case 'constant': {
                const ok = and(ge(j, c.i32(0)), lt(j, keptU));
                inside = inside ? and(inside, ok) : ok;
                j = clampI(j, c.i32(0), sub(keptU, c.i32(1)));
                break;
              }
              case 'edge':
                j = clampI(j, c.i32(0), sub(keptU, c.i32(1)));
                break;
              case 'wrap':
                j = mod(add(mod(j, keptU), keptU), keptU);
                break;
              case 'reflect': {
                const period = kb.uniform('pp', Math.max(2 * (a.kept - 1), 1));
                const t = kb.let('rt', mod(add(mod(j, period), period), period));
                j = select(lt(t, keptU), t, sub(period, t));
                break;
              }
            }
            j = kb.let('j', j);
          }
          off = add(off, mul(j, st[d] === 1 ? c.i32(1) : kb.uniform('st', st[d]!)));
        });
        const val = p.loadAt(0, kb.let('a', off));
        return inside ? select(inside, val, constant()) : val;
      },
    }),
  ];
});
