/**
 * Kernel IR: the level below the graph, shared by every backend. A kernel is a list of statements over typed
 * expressions — index math, loads/stores, ALU ops, loops, workgroup (shared) arrays, barriers — plus its parameters:
 * storage buffers and scalar uniforms (shapes and strides travel as uniforms, so one kernel serves a class of shapes).
 * Renderers (./render) print it as WGSL or CUDA C; nothing here knows either syntax.
 */
import { fnv1a64 } from '../ir/text.js';

/** Types of values inside a kernel. */
export type KType = 'f32' | 'f16' | 'i32' | 'u32' | 'bool';

/**
 * How a buffer stores elements. Sub-32-bit integer types are packed into u32 words (WGSL has no 8-bit types):
 * `u8x4` holds four bytes per word, low byte first; `i4x8` eight signed nibbles, low nibble first.
 */
export type Storage = 'f32' | 'f16' | 'i32' | 'u32' | 'u8x4' | 'i8x4' | 'u16x2' | 'i16x2' | 'u4x8' | 'i4x8';

export const PACK: Readonly<Record<Storage, number>> = {
  f32: 1,
  f16: 1,
  i32: 1,
  u32: 1,
  u8x4: 4,
  i8x4: 4,
  u16x2: 2,
  i16x2: 2,
  u4x8: 8,
  i4x8: 8,
};

/** The kernel-side type a storage element loads as. */
export function loadType(s: Storage): KType {
  switch (s) {
    case 'f32':
      return 'f32';
    case 'f16':
      return 'f16';
    case 'u32':
    case 'u8x4':
    case 'u16x2':
    case 'u4x8':
      return 'u32';
    default:
      return 'i32';
  }
}

export interface BufferParam {
  readonly name: string;
  readonly storage: Storage;
  readonly access: 'read' | 'read_write';
}

export interface UniformParam {
  readonly name: string;
  readonly type: 'i32' | 'u32' | 'f32';
}

export interface SharedArray {
  readonly name: string;
  readonly type: KType;
  readonly size: number;
}

export type Builtin = 'local_id' | 'group_id' | 'num_groups';

export type BinOp =
  | 'add'
  | 'sub'
  | 'mul'
  | 'div'
  | 'mod'
  | 'min'
  | 'max'
  | 'pow'
  | 'lt'
  | 'le'
  | 'gt'
  | 'ge'
  | 'eq'
  | 'ne'
  | 'and'
  | 'or'
  | 'bitand'
  | 'bitor'
  | 'bitxor'
  | 'shl'
  | 'shr';

export type UnOp =
  | 'neg'
  | 'not'
  | 'abs'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'tanh'
  | 'sin'
  | 'cos'
  | 'tan'
  | 'asin'
  | 'acos'
  | 'atan'
  | 'floor'
  | 'ceil'
  | 'round_even'
  | 'trunc'
  | 'erf'
  | 'erfc'
  | 'isnan'
  | 'isinf'
  | 'sign';

export type Expr =
  | { readonly k: 'const'; readonly type: KType; readonly value: number }
  | { readonly k: 'var'; readonly type: KType; readonly name: string }
  | { readonly k: 'builtin'; readonly type: 'u32'; readonly which: Builtin; readonly dim: 0 | 1 | 2 }
  | { readonly k: 'uniform'; readonly type: KType; readonly name: string }
  /** Element `index` of a buffer (packed storage unpacked by the renderer). */
  | { readonly k: 'load'; readonly type: KType; readonly buf: string; readonly index: Expr }
  | { readonly k: 'shared_load'; readonly type: KType; readonly arr: string; readonly index: Expr }
  | { readonly k: 'bin'; readonly type: KType; readonly op: BinOp; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'un'; readonly type: KType; readonly op: UnOp; readonly a: Expr }
  | { readonly k: 'select'; readonly type: KType; readonly cond: Expr; readonly a: Expr; readonly b: Expr }
  | { readonly k: 'cast'; readonly type: KType; readonly a: Expr }
  /** Reinterpret the bits of a 32-bit value as another 32-bit type. */
  | { readonly k: 'bitcast'; readonly type: KType; readonly a: Expr }
  /**
   * The value of `a` held by the lane whose index is this lane's XOR `mask` (a butterfly step of a warp reduction).
   * Only where the device's subgroups are 32 consecutive threads (CUDA warps), with all 32 lanes converged.
   */
  | { readonly k: 'shuffle_xor'; readonly type: KType; readonly a: Expr; readonly mask: number };

export type Stmt =
  | { readonly k: 'let'; readonly name: string; readonly value: Expr }
  | { readonly k: 'var'; readonly name: string; readonly type: KType; readonly init: Expr }
  | { readonly k: 'assign'; readonly name: string; readonly value: Expr }
  | { readonly k: 'store'; readonly buf: string; readonly index: Expr; readonly value: Expr }
  /** Store a whole packed word built from PACK[storage] element values (one thread owns the word). */
  | { readonly k: 'store_packed'; readonly buf: string; readonly word: Expr; readonly values: readonly Expr[] }
  | { readonly k: 'shared_store'; readonly arr: string; readonly index: Expr; readonly value: Expr }
  | {
      readonly k: 'for';
      readonly v: string;
      readonly start: Expr;
      readonly end: Expr;
      readonly step: Expr;
      readonly body: readonly Stmt[];
    }
  | { readonly k: 'if'; readonly cond: Expr; readonly then: readonly Stmt[]; readonly else?: readonly Stmt[] }
  | { readonly k: 'barrier' }
  | { readonly k: 'return' }
  | { readonly k: 'comment'; readonly text: string };

export interface Kernel {
  readonly name: string;
  readonly buffers: readonly BufferParam[];
  readonly uniforms: readonly UniformParam[];
  readonly shared: readonly SharedArray[];
  readonly workgroup: readonly [number, number, number];
  readonly body: readonly Stmt[];
}

/** Canonical text of a kernel (also a readable dump); the structural hash hashes it without the name. */
export function kernelText(k: Kernel, withName = true): string {
  return JSON.stringify(withName ? k : { ...k, name: '' });
}

/** Structural hash: cache key of compiled pipelines / modules (with the device capabilities). */
export function kernelHash(k: Kernel): string {
  return fnv1a64(kernelText(k, false));
}

// ---- constructors: typed, with constant folding of index arithmetic so generated code stays readable ----

export const c = {
  f32: (v: number): Expr => ({ k: 'const', type: 'f32', value: v }),
  f16: (v: number): Expr => ({ k: 'const', type: 'f16', value: v }),
  i32: (v: number): Expr => ({ k: 'const', type: 'i32', value: v }),
  u32: (v: number): Expr => ({ k: 'const', type: 'u32', value: v }),
  bool: (v: boolean): Expr => ({ k: 'const', type: 'bool', value: v ? 1 : 0 }),
  of: (type: KType, v: number): Expr => ({ k: 'const', type, value: v }),
};

export const v = (name: string, type: KType): Expr => ({ k: 'var', name, type });
export const uni = (name: string, type: KType = 'i32'): Expr => ({ k: 'uniform', name, type });
export const builtin = (which: Builtin, dim: 0 | 1 | 2 = 0): Expr => ({ k: 'builtin', type: 'u32', which, dim });
export const load = (buf: string, index: Expr, type: KType): Expr => ({ k: 'load', buf, index, type });
export const sload = (arr: string, index: Expr, type: KType): Expr => ({ k: 'shared_load', arr, index, type });

const CMP: ReadonlySet<BinOp> = new Set(['lt', 'le', 'gt', 'ge', 'eq', 'ne']);
const isConst = (e: Expr, value?: number): e is Extract<Expr, { k: 'const' }> =>
  e.k === 'const' && (value === undefined || e.value === value);

export function bin(op: BinOp, a: Expr, b: Expr): Expr {
  const type: KType = CMP.has(op) ? 'bool' : a.type;
  const intLike = a.type === 'i32' || a.type === 'u32';
  if (intLike && isConst(a) && isConst(b)) {
    const x = a.value;
    const y = b.value;
    const fold: Partial<Record<BinOp, number>> = {
      add: x + y,
      sub: x - y,
      mul: x * y,
      div: y !== 0 ? Math.trunc(x / y) : undefined,
      mod: y !== 0 ? x % y : undefined,
      min: Math.min(x, y),
      max: Math.max(x, y),
    };
    const r = fold[op];
    if (
      r !== undefined &&
      Number.isSafeInteger(r) &&
      (a.type === 'i32' ? Math.abs(r) < 2 ** 31 : r >= 0 && r < 2 ** 32)
    ) {
      return c.of(a.type, r);
    }
  }
  if (intLike) {
    if ((op === 'add' || op === 'sub') && isConst(b, 0)) return a;
    if (op === 'add' && isConst(a, 0)) return b;
    if (op === 'mul' && (isConst(a, 0) || isConst(b, 0))) return c.of(a.type, 0);
    if ((op === 'mul' || op === 'div') && isConst(b, 1)) return a;
    if (op === 'mul' && isConst(a, 1)) return b;
    if (op === 'mod' && isConst(b, 1)) return c.of(a.type, 0);
  }
  return { k: 'bin', type, op, a, b };
}

export const add = (a: Expr, b: Expr) => bin('add', a, b);
export const sub = (a: Expr, b: Expr) => bin('sub', a, b);
export const mul = (a: Expr, b: Expr) => bin('mul', a, b);
export const div = (a: Expr, b: Expr) => bin('div', a, b);
export const mod = (a: Expr, b: Expr) => bin('mod', a, b);
export const lt = (a: Expr, b: Expr) => bin('lt', a, b);
export const le = (a: Expr, b: Expr) => bin('le', a, b);
export const gt = (a: Expr, b: Expr) => bin('gt', a, b);
export const ge = (a: Expr, b: Expr) => bin('ge', a, b);
export const eq = (a: Expr, b: Expr) => bin('eq', a, b);
export const ne = (a: Expr, b: Expr) => bin('ne', a, b);
export const and = (a: Expr, b: Expr) => bin('and', a, b);
export const or = (a: Expr, b: Expr) => bin('or', a, b);
export const min = (a: Expr, b: Expr) => bin('min', a, b);
export const max = (a: Expr, b: Expr) => bin('max', a, b);
export const un = (op: UnOp, a: Expr): Expr => ({
  k: 'un',
  op,
  a,
  type: op === 'isnan' || op === 'isinf' || op === 'not' ? 'bool' : a.type,
});
export const not = (a: Expr) => un('not', a);
export const isnan = (a: Expr) => un('isnan', a);
export const isinf = (a: Expr) => un('isinf', a);
export const select = (cond: Expr, a: Expr, b: Expr): Expr => ({ k: 'select', type: a.type, cond, a, b });
export function cast(type: KType, a: Expr): Expr {
  if (a.type === type) return a;
  if (isConst(a) && (type === 'i32' || type === 'u32') && (a.type === 'i32' || a.type === 'u32') && a.value >= 0) {
    return c.of(type, a.value);
  }
  if (isConst(a) && (type === 'f32' || type === 'f16') && a.type !== 'bool') return c.of(type, a.value);
  return { k: 'cast', type, a };
}
export const bitcast = (type: KType, a: Expr): Expr => ({ k: 'bitcast', type, a });
export const shuffleXor = (a: Expr, mask: number): Expr => ({ k: 'shuffle_xor', type: a.type, a, mask });

// statements
export const let_ = (name: string, value: Expr): Stmt => ({ k: 'let', name, value });
export const var_ = (name: string, type: KType, init: Expr): Stmt => ({ k: 'var', name, type, init });
export const assign = (name: string, value: Expr): Stmt => ({ k: 'assign', name, value });
export const store = (buf: string, index: Expr, value: Expr): Stmt => ({ k: 'store', buf, index, value });
export const sstore = (arr: string, index: Expr, value: Expr): Stmt => ({ k: 'shared_store', arr, index, value });
export const for_ = (name: string, start: Expr, end: Expr, body: readonly Stmt[], step: Expr = c.i32(1)): Stmt => ({
  k: 'for',
  v: name,
  start,
  end,
  step,
  body,
});
export const if_ = (cond: Expr, then: readonly Stmt[], else_?: readonly Stmt[]): Stmt =>
  else_ ? { k: 'if', cond, then, else: else_ } : { k: 'if', cond, then };
export const barrier: Stmt = { k: 'barrier' };
export const ret: Stmt = { k: 'return' };
