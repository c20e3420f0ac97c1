/**
 * The row-reduction kernel template. An input tensor is viewed as `rows` × `len`: the reduced axes (any set, not
 * necessarily contiguous) index the elements of a row, the kept axes index the rows. Adjacent axes of the same kind
 * are merged and size-1 axes dropped, so the index math is specialized by the merged rank only; sizes and strides
 * travel as uniforms.
 *
 * Two schedules:
 * - `group`: one workgroup of T threads (a power of two ≤ 256, fewer for short rows) per row (or per packed output
 *   word: `per` consecutive rows). Each thread strides over the row (j = lid, lid + T, ...) accumulating in
 *   registers, then a tree reduction in workgroup memory (log2 T steps with barriers) gives every thread the result.
 * - `serial`: one thread per row, looping over the row (short rows, or column reductions where neighbouring threads
 *   read neighbouring addresses).
 *
 * Kernels that need several passes over a row (softmax, layer / RMS norm, log-sum-exp) are written against
 * RowKernel directly: `accumulate` (loop + all-reduce), `forEach` (loop writing outputs). Single-output reductions
 * use `rowReduce` with a prologue on each loaded element and an epilogue on the reduced value, which is where a
 * fusion pass attaches elementwise producers and consumers.
 */
import { KilnError } from '../../ir/errors.js';
import { stridesOf } from '../../ir/shape.js';
import {
  PACK,
  add,
  assign,
  barrier,
  bin,
  c,
  div,
  eq,
  for_,
  if_,
  isnan,
  load,
  loadType,
  lt,
  mod,
  mul,
  or,
  select,
  shuffleXor,
  sload,
  sstore,
  sub,
  var_,
  type Expr,
  type KType,
  type Stmt,
} from '../kir.js';
import { grid1d, KernelBuilder, type LowerCtx, type LoweredStep, type TensorInfo } from './kernel-builder.js';
import { checkIndexRange, fromCompute, toCompute } from './pointwise.js';
import { storageOf } from './storage.js';

// ---- geometry ----

export interface RowDim {
  readonly size: number;
  readonly stride: number;
}

export interface RowGeometry {
  /** Number of rows (product of the kept dims). */
  readonly rows: number;
  /** Elements per row (product of the reduced dims). */
  readonly len: number;
  /** Merged kept dims, outermost first. */
  readonly kept: readonly RowDim[];
  /** Merged reduced dims, outermost first. */
  readonly red: readonly RowDim[];
  /** The innermost (non-1) input dim is kept: neighbouring rows are neighbouring addresses. */
  readonly innerKept: boolean;
}

/** View `shape` as rows × len with `axes` reduced (axes normalized, any order). */
export function rowGeometry(shape: readonly number[], axes: readonly number[]): RowGeometry {
  const st = stridesOf(shape);
  const groups: { size: number; stride: number; red: boolean }[] = [];
  shape.forEach((d, i) => {
    if (d === 1) return;
    const red = axes.includes(i);
    const last = groups[groups.length - 1];
    if (last && last.red === red) {
      last.size *= d;
      last.stride = st[i]!;
    } else groups.push({ size: d, stride: st[i]!, red });
  });
  const kept = groups.filter((g) => !g.red).map(({ size, stride }) => ({ size, stride }));
  const red = groups.filter((g) => g.red).map(({ size, stride }) => ({ size, stride }));
  let rows = 1;
  let len = 1;
  shape.forEach((d, i) => {
    if (axes.includes(i)) len *= d;
    else rows *= d;
  });
  const last = groups[groups.length - 1];
  return { rows, len, kept, red, innerKept: last !== undefined && !last.red };
}

export type RowMode = 'group' | 'serial';

/** Rows at most this long run one thread per row. */
export const SERIAL_MAX_LEN = 32;
/** Column reductions with at least this many rows run one thread per row (coalesced loads). */
export const SERIAL_MIN_ROWS_COLUMNS = 8192;
const MAX_THREADS = 256;
const SERIAL_WORKGROUP = 256;

export function chooseMode(geom: RowGeometry): RowMode {
  if (geom.len <= SERIAL_MAX_LEN) return 'serial';
  if (geom.innerKept && geom.rows >= SERIAL_MIN_ROWS_COLUMNS) return 'serial';
  return 'group';
}

export function floorPow2(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/** Threads per row in the group schedule: the next power of two ≥ len, within the device limit and 256. */
export function threadsFor(len: number, maxWorkgroup: number): number {
  const cap = floorPow2(Math.min(MAX_THREADS, maxWorkgroup));
  let t = 1;
  while (t < len && t < cap) t *= 2;
  return t;
}

// ---- monoids (what a reduction combines) ----

/** An associative, commutative combination of tuples of accumulators (argmax is a (value, index) pair). */
export interface Monoid {
  readonly types: readonly KType[];
  readonly identity: readonly Expr[];
  /** Combine two tuples; may emit `let`s through kb (inside loops and tree steps). */
  combine(a: readonly Expr[], b: readonly Expr[], kb: KernelBuilder): Expr[];
}

export const isFloatType = (t: KType): boolean => t === 'f32' || t === 'f16';

/** max / min that propagate NaN (WGSL and CUDA min/max may drop NaN operands). */
export function nanMaxMin(a: Expr, b: Expr, isMax: boolean): Expr {
  if (!isFloatType(a.type)) return bin(isMax ? 'max' : 'min', a, b);
  return select(or(bin(isMax ? 'gt' : 'lt', b, a), isnan(b)), b, a);
}

export const sumMonoid = (t: KType): Monoid => ({
  types: [t],
  identity: [c.of(t, 0)],
  combine: ([a], [b]) => [add(a!, b!)],
});
export const prodMonoid = (t: KType): Monoid => ({
  types: [t],
  identity: [c.of(t, 1)],
  combine: ([a], [b]) => [mul(a!, b!)],
});
export const maxMonoid = (t: KType, identity: number, isMax: boolean): Monoid => ({
  types: [t],
  identity: [c.of(t, identity)],
  combine: ([a], [b]) => [nanMaxMin(a!, b!, isMax)],
});

// ---- the kernel ----

/** A node tensor's element at a flat index, converted to its compute type. */
export function loadCompute(kb: KernelBuilder, buf: string, info: TensorInfo, index: Expr): Expr {
  const st = storageOf(info.dtype, kb.caps);
  return toCompute(load(buf, index, loadType(st)), info.dtype);
}

/** Offset of a flat index over merged dims (last fastest) with uniform sizes / strides. */
interface DimUniforms {
  /** Size (absent for the outermost dim, which is never needed to decompose an index). */
  size?: Expr;
  stride: Expr;
}

export class RowKernel {
  /** Threads cooperating on one row (1 in the serial schedule). */
  readonly T: number;
  /** This thread's position within the row's threads (0 in the serial schedule). */
  lid: Expr = c.i32(0);
  /** Row length as a uniform (literal 1 when nothing is reduced). */
  readonly len: Expr;
  /** Number of rows as a uniform. */
  readonly rows: Expr;
  private readonly keptU: DimUniforms[];
  private readonly redU: DimUniforms[];
  private readonly sharedPool = new Map<KType, string[]>();
  private sharedBytes = 0;

  constructor(
    readonly kb: KernelBuilder,
    readonly ctx: LowerCtx,
    readonly geom: RowGeometry,
    readonly mode: RowMode,
  ) {
    this.T = mode === 'serial' ? 1 : threadsFor(geom.len, ctx.caps.maxWorkgroupSize);
    const uniforms = (dims: readonly RowDim[], hint: string): DimUniforms[] =>
      dims.map((d, i) => ({
        size: i === 0 ? undefined : kb.uniform(`${hint}d`, d.size),
        stride: d.stride === 1 ? c.i32(1) : kb.uniform(`${hint}s`, d.stride),
      }));
    this.keptU = uniforms(geom.kept, 'k');
    this.redU = uniforms(geom.red, 'r');
    this.len = geom.red.length === 0 ? c.i32(1) : kb.uniform('len', geom.len);
    this.rows = kb.uniform('rows', geom.rows);
  }

  private offset(index: Expr, dims: DimUniforms[]): Expr {
    if (dims.length === 0) return c.i32(0);
    const kb = this.kb;
    let rest = index;
    let off: Expr = c.i32(0);
    for (let d = dims.length - 1; d >= 0; d--) {
      const u = dims[d]!;
      let coord: Expr;
      if (d === 0) coord = rest;
      else {
        coord = kb.let('c', mod(rest, u.size!));
        rest = kb.let('q', div(rest, u.size!));
      }
      off = add(off, mul(coord, u.stride));
    }
    return kb.let('off', off);
  }

  /** Input offset of the first element of a row. */
  rowBase(row: Expr): Expr {
    return this.offset(row, this.keptU);
  }

  /** Offset within a row (relative to rowBase) of the row's element j. */
  elemOffset(j: Expr): Expr {
    return this.offset(j, this.redU);
  }

  /** Loop over this thread's share of a row: body(j, offset of element j relative to the row base). */
  forEach(body: (j: Expr, off: Expr) => void): void {
    const kb = this.kb;
    const j = kb.fresh('j');
    const jv: Expr = { k: 'var', name: j, type: 'i32' };
    const [stmts] = kb.collect(() => body(jv, this.elemOffset(jv)));
    if (this.geom.red.length === 0 && this.mode === 'serial') {
      // exactly one element: no loop
      kb.emit(var_(j, 'i32', c.i32(0)), ...stmts);
      return;
    }
    kb.emit(for_(j, this.lid, this.len, stmts, c.i32(this.T)));
  }

  private sharedArrays(types: readonly KType[]): string[] {
    const used = new Map<KType, number>();
    return types.map((t) => {
      const st: KType = t === 'bool' ? 'i32' : t;
      const k = used.get(st) ?? 0;
      used.set(st, k + 1);
      let pool = this.sharedPool.get(st);
      if (!pool) this.sharedPool.set(st, (pool = []));
      while (pool.length <= k) {
        this.sharedBytes += this.T * 4;
        if (this.sharedBytes > this.kb.caps.maxSharedBytes) {
          throw new KilnError(
            'limit',
            `row reduction needs ${this.sharedBytes} bytes of workgroup memory, the device offers ${this.kb.caps.maxSharedBytes}`,
            { node: this.ctx.node, op: this.ctx.op, limit: 'maxComputeWorkgroupStorageSize' },
          );
        }
        pool.push(this.kb.sharedArray('sh', st, this.T));
      }
      return pool[k]!;
    });
  }

  /**
   * Combine every thread's tuple of the row: a tree reduction in workgroup memory (group schedule; every thread gets
   * the result) or nothing (serial schedule). Must be called in workgroup-uniform control flow.
   */
  allReduce(vals: readonly Expr[], m: Monoid): Expr[] {
    const kb = this.kb;
    if (this.mode === 'serial' || this.T === 1) return vals.map((x) => kb.let('a', x));
    const arrs = this.sharedArrays(m.types);
    const lid = this.lid;
    arrs.forEach((a, i) => kb.emit(sstore(a, lid, vals[i]!)));
    kb.emit(barrier);
    // Where subgroups are 32-lane warps of consecutive threads (CUDA), the last five tree steps are warp shuffles in
    // warp 0 instead of shared-memory rounds with a barrier each.
    const warp = kb.caps.subgroups && kb.caps.subgroupSize === 32 && this.T >= 32;
    const stop = warp ? 32 : 1;
    for (let s = this.T / 2; s >= stop; s /= 2) {
      const [body] = kb.collect(() => {
        const mine = arrs.map((a, i) => kb.let('x', sload(a, lid, m.types[i]!)));
        const other = arrs.map((a, i) => kb.let('y', sload(a, add(lid, c.i32(s)), m.types[i]!)));
        const r = m.combine(mine, other, kb).map((e) => kb.let('z', e));
        arrs.forEach((a, i) => kb.emit(sstore(a, lid, r[i]!)));
      });
      kb.emit(if_(lt(lid, c.i32(s)), body), barrier);
    }
    if (warp) {
      const [body] = kb.collect(() => {
        let x = arrs.map((a, i) => kb.let('x', sload(a, lid, m.types[i]!)));
        for (let s = 16; s >= 1; s /= 2) {
          const y = x.map((e) => kb.let('y', shuffleXor(e, s)));
          x = m.combine(x, y, kb).map((e) => kb.let('z', e));
        }
        const done = x;
        kb.emit(
          if_(
            eq(lid, c.i32(0)),
            arrs.map((a, i) => sstore(a, c.i32(0), done[i]!)),
          ),
        );
      });
      // all 32 lanes of warp 0 run the shuffles together (converged), the other warps wait at the barrier
      kb.emit(if_(lt(lid, c.i32(32)), body), barrier);
    }
    const res = arrs.map((a, i) => kb.let('red', sload(a, c.i32(0), m.types[i]!)));
    kb.emit(barrier); // the arrays may be reused by the next reduction
    return res;
  }

  /** Accumulate `element(j, off)` over this thread's share of the row, then all-reduce. */
  accumulate(m: Monoid, element: (j: Expr, off: Expr) => readonly Expr[]): Expr[] {
    const kb = this.kb;
    const names = m.types.map((t, i) => {
      const n = kb.fresh('acc');
      kb.emit(var_(n, t, m.identity[i]!));
      return n;
    });
    const accs: Expr[] = names.map((n, i) => ({ k: 'var', name: n, type: m.types[i]! }));
    this.forEach((j, off) => {
      const e = element(j, off).map((x) => kb.let('e', x));
      const next = m.combine(accs, e, kb).map((x) => kb.let('n', x));
      names.forEach((n, i) => kb.emit(assign(n, next[i]!)));
    });
    return this.allReduce(accs, m);
  }

  /** Statements that only one thread of the row runs (the first). */
  single(stmts: Stmt[]): Stmt[] {
    return this.mode === 'serial' || this.T === 1 ? stmts : [if_(eq(this.lid, c.i32(0)), stmts)];
  }
}

export interface RowKernelSpec {
  label: string;
  geom: RowGeometry;
  /** Consecutive rows one unit (workgroup or thread) handles: the packing of a one-value-per-row output. */
  per?: number;
  mode?: RowMode;
}

/**
 * Build a row kernel: `body(rk, unit)` emits the work of unit `unit` (rows unit*per ... unit*per+per-1) and runs
 * in uniform control flow of its workgroup (units past the end are skipped as a whole).
 */
export function rowKernel(ctx: LowerCtx, spec: RowKernelSpec, body: (rk: RowKernel, unit: Expr) => void): LoweredStep {
  const per = spec.per ?? 1;
  const mode = spec.mode ?? chooseMode(spec.geom);
  const kb = new KernelBuilder(spec.label, ctx.caps);
  checkIndexRange(ctx, spec.geom.rows * Math.max(spec.geom.len, 1), `${spec.label} rows × len`);
  const rk = new RowKernel(kb, ctx, spec.geom, mode);
  const units = Math.ceil(spec.geom.rows / per);
  const unitsU = kb.uniform('units', units);
  const g = kb.groupIndex();
  const l = kb.localIndex();
  let workgroup: number;
  let unit: Expr;
  if (mode === 'group') {
    rk.lid = l;
    unit = g;
    workgroup = rk.T;
  } else {
    workgroup = floorPow2(Math.min(SERIAL_WORKGROUP, ctx.caps.maxWorkgroupSize));
    unit = kb.let('u', add(mul(g, c.i32(workgroup)), l));
  }
  const [stmts] = kb.collect(() => body(rk, unit));
  kb.emit(if_(lt(unit, unitsU), stmts));
  const groups = mode === 'group' ? units : Math.ceil(units / workgroup);
  return kb.build([workgroup, 1, 1], groups === 0 ? [0, 1, 1] : grid1d(groups, ctx.caps));
}

/** The row `unit*per + s`, clamped to the last row (the padding elements of a packed word). */
export function subRow(rk: RowKernel, unit: Expr, per: number, s: number): Expr {
  if (per === 1) return unit;
  const r = rk.kb.let('row', add(mul(unit, c.i32(per)), c.i32(s)));
  return rk.kb.let('rowc', select(lt(r, rk.rows), r, sub(rk.rows, c.i32(1))));
}

/** Store one value per row for the rows of `unit` into output `oi` (packed words: one unit owns a word). */
export function storeRowValues(rk: RowKernel, ob: string, oi: number, unit: Expr, vals: readonly Expr[]): void {
  const st = storageOf(rk.ctx.outputs[oi]!.dtype, rk.kb.caps);
  if (PACK[st] === 1) {
    const target: KType = st === 'f16' ? 'f16' : st === 'f32' ? 'f32' : st === 'u32' ? 'u32' : 'i32';
    rk.kb.emit(...rk.single([{ k: 'store', buf: ob, index: unit, value: fromCompute(vals[0]!, target) }]));
  } else {
    const words = vals.map((v) => fromCompute(v, 'i32'));
    rk.kb.emit(...rk.single([{ k: 'store_packed', buf: ob, word: unit, values: words }]));
  }
}

export interface RowValuesSpec {
  label: string;
  /** Node input whose rows are reduced. */
  input: number;
  /** Reduced axes of that input (normalized). */
  axes: readonly number[];
  /** Node output written (one value per row, in row order). */
  output?: number;
}

/**
 * One value per row: `value(rk, base, xb)` emits the work of one row (base: the input offset of its first element,
 * xb: the input buffer) and returns the row's value in the output dtype's compute type. Packed outputs: each unit
 * computes `per` rows and one thread stores the word.
 */
export function rowValues(
  ctx: LowerCtx,
  spec: RowValuesSpec,
  value: (rk: RowKernel, base: Expr, xb: string, row: Expr) => Expr,
): LoweredStep {
  const info = ctx.inputs[spec.input]!;
  const oi = spec.output ?? 0;
  const geom = rowGeometry(info.shape, spec.axes);
  const outInfo = ctx.outputs[oi]!;
  if (outInfo.shape.reduce((a, b) => a * b, 1) !== geom.rows) {
    throw new KilnError('shape', `${spec.label}: output has ${outInfo.shape} elements, expected ${geom.rows} rows`, {
      node: ctx.node,
      op: ctx.op,
    });
  }
  const per = PACK[storageOf(outInfo.dtype, ctx.caps)];
  return rowKernel(ctx, { label: spec.label, geom, per }, (rk, unit) => {
    const kb = rk.kb;
    const xb = kb.input(ctx, spec.input);
    const ob = kb.output(ctx, oi);
    const vals: Expr[] = [];
    for (let s = 0; s < per; s++) {
      const row = subRow(rk, unit, per, s);
      vals.push(kb.let('v', value(rk, rk.rowBase(row), xb, row)));
    }
    storeRowValues(rk, ob, oi, unit, vals);
  });
}

export interface RowReduceSpec extends RowValuesSpec {
  monoid: Monoid;
  /**
   * Prologue: the tuple to accumulate for one element. `x` is the element in its compute type, `j` its index in
   * the row, `at` its flat offset in the input (other inputs of the same shape can be read there).
   */
  element: (x: Expr, j: Expr, at: Expr, rk: RowKernel) => readonly Expr[];
  /**
   * Epilogue: the output value (output dtype's compute type) from the reduced tuple and the row length; `row` is the
   * row's index (= its output element's flat index), where a fused epilogue reads its other inputs.
   */
  finish: (acc: readonly Expr[], len: Expr, rk: RowKernel, row: Expr) => Expr;
}

/** A single-output reduction as one row kernel: accumulate the prologue's tuples, apply the epilogue. */
export function rowReduce(ctx: LowerCtx, spec: RowReduceSpec): LoweredStep {
  const info = ctx.inputs[spec.input]!;
  return rowValues(ctx, spec, (rk, base, xb, row) => {
    const kb = rk.kb;
    const acc = rk.accumulate(spec.monoid, (j, off) => {
      const at = kb.let('at', add(base, off));
      return spec.element(kb.let('x', loadCompute(kb, xb, info, at)), j, at, rk);
    });
    return spec.finish(acc, rk.len, rk, row);
  });
}
