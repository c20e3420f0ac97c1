/**
 * The pointwise kernel template: one thread per output element (or per packed output word), the output flat index
 * decomposed into coordinates through uniform dims, and inputs read at any index expression. Elementwise,
 * broadcast and injective ops (movement, gather, where, cast...) lower by giving only the value expression;
 * the template handles threads, bounds, packing and shapes-as-uniforms. Fusion composes these expressions.
 */
import { KilnError, UnsupportedError } from '../../ir/errors.js';
import { stridesOf } from '../../ir/shape.js';
import {
  PACK,
  add,
  c,
  cast,
  div,
  if_,
  load,
  lt,
  mod,
  mul,
  select,
  type Expr,
  type KType,
  type Storage,
} from '../kir.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep, type TensorInfo } from './kernel-builder.js';
import { computeType, storageOf } from './storage.js';

export const WORKGROUP = 256;
const MAX_I32 = 2 ** 31 - 1;

/**
 * Checks that a tensor of `n` elements (`what` names it) can be indexed with i32.
 *
 * @throws KilnError (code `limit`, limit `i32 index`) naming the node when `n` > 2³¹ − 1.
 */
export function checkIndexRange(ctx: LowerCtx, n: number, what: string): void {
  if (n > MAX_I32) {
    throw new KilnError('limit', `${what} has ${n} elements; kernels index with 32-bit integers (max 2^31-1)`, {
      node: ctx.node,
      op: ctx.op,
      limit: 'i32 index',
    });
  }
}

/** Convert a loaded value (storage's load type) to the compute type of `dtype`. */
export function toCompute(e: Expr, dtype: TensorInfo['dtype']): Expr {
  const ct = computeType(dtype);
  if (ct === 'bool') return e.type === 'bool' ? e : { k: 'bin', type: 'bool', op: 'ne', a: e, b: c.of(e.type, 0) };
  return cast(ct, e);
}

/** Convert a compute value to what the output storage holds. */
export function fromCompute(e: Expr, target: KType): Expr {
  if (e.type === 'bool') return select(e, c.of(target, 1), c.of(target, 0));
  return cast(target, e);
}

/**
 * What a `pointwise` template's value function sees for the output element being computed: its coordinates and
 * loads of the node's inputs (at a flat index, broadcast to the output, or at given coordinates), converted to their
 * compute types.
 */
export class Pointwise {
  /** Output coordinates (i32), computed once. */
  readonly coords: Expr[];
  private readonly strideCache = new Map<string, Expr[]>();
  /** Made by the template (`pointwiseSteps`) for each output element; the coordinates are emitted into `kb` here. */
  constructor(
    readonly kb: KernelBuilder,
    readonly ctx: LowerCtx,
    readonly outShape: readonly number[],
    /** Output flat index of the element being computed. */
    readonly flat: Expr,
    private readonly inputBufs: Map<number, string>,
    /** Element offsets of inputs gathered into one scratch buffer (see pointwiseSteps). */
    private readonly bases: ReadonlyMap<number, number> = new Map(),
  ) {
    const r = outShape.length;
    const coords: Expr[] = new Array(r);
    let rest = flat;
    for (let d = r - 1; d >= 0; d--) {
      if (d === 0) {
        coords[d] = rest;
        break;
      }
      const dim = outShape[d] === 1 ? c.i32(1) : kb.uniform('od', outShape[d]!, 'i32', `out.dim.${d}`);
      coords[d] = outShape[d] === 1 ? c.i32(0) : kb.let('o', mod(rest, dim));
      rest = outShape[d] === 1 ? rest : kb.let('q', div(rest, dim));
    }
    this.coords = coords;
  }

  private buf(i: number): string {
    const b = this.inputBufs.get(i);
    if (b === undefined) throw new Error(`input ${i} not bound in pointwise kernel`);
    return b;
  }

  /** Input i at flat index `index`, converted to its compute type. */
  loadAt(i: number, index: Expr): Expr {
    const info = this.ctx.inputs[i]!;
    const st = storageOf(info.dtype, this.kb.caps);
    const base = this.bases.get(i);
    const raw = load(
      this.buf(i),
      base ? add(index, this.kb.uniform('base', base, 'i32', `in${i}.base`)) : index,
      st === 'f16' ? 'f16' : st === 'f32' ? 'f32' : st === 'u32' || st.startsWith('u') ? 'u32' : 'i32',
    );
    return toCompute(raw, info.dtype);
  }

  /** Uniform strides of input i (0 on broadcast dims) aligned to the output rank. */
  broadcastStrides(i: number): Expr[] {
    const key = `b${i}`;
    const hit = this.strideCache.get(key);
    if (hit) return hit;
    const shape = this.ctx.inputs[i]!.shape;
    const r = this.outShape.length;
    const st = stridesOf(shape);
    const out: Expr[] = [];
    for (let d = 0; d < r; d++) {
      const j = d - (r - shape.length);
      const s = j < 0 || shape[j] === 1 ? 0 : st[j]!;
      out.push(s === 0 ? c.i32(0) : s === 1 ? c.i32(1) : this.kb.uniform('s', s, 'i32', `in${i}.bstride.${d}`));
    }
    this.strideCache.set(key, out);
    return out;
  }

  /** Input i at the output element's broadcast position. */
  loadBroadcast(i: number): Expr {
    const shape = this.ctx.inputs[i]!.shape;
    if (shape.length === this.outShape.length && shape.every((d, k) => d === this.outShape[k])) {
      return this.loadAt(i, this.flat);
    }
    const st = this.broadcastStrides(i);
    let off: Expr = c.i32(0);
    st.forEach((s, d) => (off = add(off, mul(this.coords[d]!, s))));
    return this.loadAt(i, this.kb.let('a', off));
  }

  /** Flat offset into input i (its own row-major strides as uniforms) of the given coordinates. */
  offset(i: number, coords: readonly Expr[]): Expr {
    const st = stridesOf(this.ctx.inputs[i]!.shape);
    let off: Expr = c.i32(0);
    coords.forEach(
      (x, d) =>
        (off = add(off, mul(x, st[d] === 1 ? c.i32(1) : this.kb.uniform('s', st[d]!, 'i32', `in${i}.stride.${d}`)))),
    );
    return off;
  }

  /** A dimension of input i as a uniform (static 1 stays a literal). */
  dim(i: number, axis: number): Expr {
    const d = this.ctx.inputs[i]!.shape[axis]!;
    return d === 1 ? c.i32(1) : this.kb.uniform('d', d, 'i32', `in${i}.dim.${axis}`);
  }
}

export interface PointwiseSpec {
  /** Kernel label (op name). */
  label: string;
  /** Which output of the node this kernel writes. */
  output?: number;
  /** Node inputs the kernel reads (bound in this order). */
  reads: readonly number[];
  /** The value of the output element (in the output dtype's compute type or convertible to it). */
  value: (p: Pointwise) => Expr;
  /** Read every input from one scratch buffer where they were gathered at these element offsets. */
  gathered?: { id: string; bytes: number; storage: Storage; bases: ReadonlyMap<number, number> };
}

/**
 * Build one pointwise kernel for output `spec.output` (default 0) of the node: a thread per output element (per packed
 * word for sub-32-bit outputs), 256 threads per workgroup.
 *
 * @throws KilnError (code `limit`, limit `i32 index`) naming the node when an output or input has more than 2³¹ − 1
 * elements.
 */
export function pointwise(ctx: LowerCtx, spec: PointwiseSpec): LoweredStep {
  const oi = spec.output ?? 0;
  const out = ctx.outputs[oi]!;
  const n = out.shape.reduce((a, b) => a * b, 1);
  checkIndexRange(ctx, n, `output ${oi}`);
  for (const i of spec.reads)
    checkIndexRange(
      ctx,
      ctx.inputs[i]!.shape.reduce((a, b) => a * b, 1),
      `input ${i}`,
    );
  const kb = new KernelBuilder(spec.label, ctx.caps);
  const bufs = new Map<number, string>();
  const g = spec.gathered;
  if (g) {
    const name = kb.buffer({ kind: 'tmp', id: g.id, bytes: g.bytes }, g.storage, 'read');
    for (const i of spec.reads) bufs.set(i, name);
  } else for (const i of spec.reads) bufs.set(i, kb.input(ctx, i));
  const ob = kb.output(ctx, oi);
  const st = storageOf(out.dtype, ctx.caps);
  const per = PACK[st];
  const target: KType = st === 'f32' || st === 'f16' || st === 'i32' || st === 'u32' ? st : 'i32';
  const nU = kb.uniform('n', n);
  const gi = kb.groupIndex();
  const li = kb.localIndex();
  const t = kb.let('t', add(mul(gi, c.i32(WORKGROUP)), li));
  if (per === 1) {
    const [body, val] = kb.collect(() =>
      fromCompute(spec.value(new Pointwise(kb, ctx, out.shape, t, bufs, g?.bases)), target),
    );
    kb.emit(if_(lt(t, nU), [...body, { k: 'store', buf: ob, index: t, value: val }]));
  } else {
    // one thread owns one packed word: compute its `per` elements (clamped past the end) and store the word
    const words = kb.uniform('w', Math.ceil(n / per));
    const [body, vals] = kb.collect(() => {
      const vs: Expr[] = [];
      for (let j = 0; j < per; j++) {
        const e = kb.let('e', add(mul(t, c.i32(per)), c.i32(j)));
        const clamped = kb.let('ec', select(lt(e, nU), e, c.i32(0)));
        vs.push(
          kb.let('v', fromCompute(spec.value(new Pointwise(kb, ctx, out.shape, clamped, bufs, g?.bases)), 'i32')),
        );
      }
      return vs;
    });
    kb.emit(if_(lt(t, words), [...body, { k: 'store_packed', buf: ob, word: t, values: vals }]));
  }
  const threads = per === 1 ? n : Math.ceil(n / per);
  return kb.build([WORKGROUP, 1, 1], grid1d(Math.ceil(threads / WORKGROUP), ctx.caps));
}

/**
 * A pointwise kernel that may read more inputs than the device binds per kernel (`caps.maxBuffersPerKernel`, e.g. 8
 * storage buffers per stage on many WebGPU adapters): then the inputs are first copied, one small kernel each, into
 * one scratch buffer at word-aligned offsets, and the main kernel reads them all from there.
 *
 * @throws UnsupportedError naming the node (limit `maxStorageBuffersPerShaderStage`) when the inputs are too many and
 * do not share one storage format; otherwise as {@link pointwise}.
 */
export function pointwiseSteps(ctx: LowerCtx, spec: PointwiseSpec): LoweredStep[] {
  if (spec.reads.length + 1 <= ctx.caps.maxBuffersPerKernel) return [pointwise(ctx, spec)];
  const storages = new Set(spec.reads.map((i) => storageOf(ctx.inputs[i]!.dtype, ctx.caps)));
  if (storages.size !== 1 || ctx.caps.maxBuffersPerKernel < 2) {
    throw new UnsupportedError(
      `${spec.reads.length} inputs exceed the device's ${ctx.caps.maxBuffersPerKernel} storage buffers per kernel`,
      { node: ctx.node, op: ctx.op, limit: 'maxStorageBuffersPerShaderStage' },
    );
  }
  const st = [...storages][0]!;
  const per = PACK[st];
  const bases = new Map<number, number>();
  let total = 0;
  for (const i of spec.reads) {
    bases.set(i, total);
    const n = ctx.inputs[i]!.shape.reduce((a, b) => a * b, 1);
    total += Math.ceil(n / per) * per; // word-aligned, so packed words copy whole
  }
  checkIndexRange(ctx, total, 'gathered inputs');
  const bytes = Math.max(4, st === 'f16' ? Math.ceil((total * 2) / 4) * 4 : (total / per) * 4);
  const id = `gather_${spec.label}`;
  // Copies move raw elements (or raw 32-bit words of packed storage): no conversion, so any dtype works.
  const raw: Storage = per > 1 ? 'u32' : st;
  const rawType: KType = raw === 'f16' ? 'f16' : raw === 'f32' ? 'f32' : raw === 'i32' ? 'i32' : 'u32';
  const copies = spec.reads.map((i) => {
    const kb = new KernelBuilder(`${spec.label}_gather`, ctx.caps);
    const src = kb.buffer({ kind: 'in', index: i }, raw, 'read');
    const dst = kb.buffer({ kind: 'tmp', id, bytes }, raw, 'read_write');
    const count = Math.ceil(ctx.inputs[i]!.shape.reduce((a, b) => a * b, 1) / per);
    const nU = kb.uniform('n', count);
    const base = kb.uniform('base', bases.get(i)! / per);
    const t = kb.let('t', add(mul(kb.groupIndex(), c.i32(WORKGROUP)), kb.localIndex()));
    kb.emit(if_(lt(t, nU), [{ k: 'store', buf: dst, index: add(t, base), value: load(src, t, rawType) }]));
    return kb.build([WORKGROUP, 1, 1], grid1d(Math.ceil(count / WORKGROUP), ctx.caps));
  });
  return [...copies, pointwise(ctx, { ...spec, gathered: { id, bytes, storage: st, bases } })];
}
