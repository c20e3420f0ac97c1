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
  | { readonly k: 'shuffle_xor'; readonly type: KType; readonly a: Expr; readonly mask: number }
  /**
   * The dot product of the four bytes of u32 words `a` and `b` (byte j = bits 8j..8j+7), read as signed (i8) or
   * unsigned (u8) on both sides, as an exact i32: Σ_j a_j · b_j (|result| ≤ 4·255² fits). WGSL `dot4I8Packed` /
   * `dot4U8Packed`, CUDA `__dp4a`; only where `DeviceCaps.dot4` holds (else build {@link dot4Scalar}).
   */
  | { readonly k: 'dot4'; readonly type: 'i32'; readonly signed: boolean; readonly a: Expr; readonly b: Expr };

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

/** Literals by type (`c.i32(0)`, `c.f32(1.5)`; `c.of(type, v)` for a type known at run time). */
export const c = {
  /** An f32 literal. */
  f32: (v: number): Expr => ({ k: 'const', type: 'f32', value: v }),
  /** An f16 literal. */
  f16: (v: number): Expr => ({ k: 'const', type: 'f16', value: v }),
  /** An i32 literal. */
  i32: (v: number): Expr => ({ k: 'const', type: 'i32', value: v }),
  /** A u32 literal. */
  u32: (v: number): Expr => ({ k: 'const', type: 'u32', value: v }),
  /** A bool literal. */
  bool: (v: boolean): Expr => ({ k: 'const', type: 'bool', value: v ? 1 : 0 }),
  /** A literal of `type`. */
  of: (type: KType, v: number): Expr => ({ k: 'const', type, value: v }),
};

/** A reference to a local (declared by `let_`, `var_` or a `for_` loop) of the given type. */
export const v = (name: string, type: KType): Expr => ({ k: 'var', name, type });
/** A scalar uniform (declared with `KernelBuilder.uniform`); i32 by default. */
export const uni = (name: string, type: KType = 'i32'): Expr => ({ k: 'uniform', name, type });
/** A u32 builtin: the thread's index in its workgroup, the workgroup's index, or the number of workgroups, on `dim`. */
export const builtin = (which: Builtin, dim: 0 | 1 | 2 = 0): Expr => ({ k: 'builtin', type: 'u32', which, dim });
/** Element `index` of buffer `buf` as `type` (packed storage is unpacked by legalization / the renderer). */
export const load = (buf: string, index: Expr, type: KType): Expr => ({ k: 'load', buf, index, type });
/** Element `index` of shared (workgroup) array `arr`. */
export const sload = (arr: string, index: Expr, type: KType): Expr => ({ k: 'shared_load', arr, index, type });

const CMP: ReadonlySet<BinOp> = new Set(['lt', 'le', 'gt', 'ge', 'eq', 'ne']);
const isConst = (e: Expr, value?: number): e is Extract<Expr, { k: 'const' }> =>
  e.k === 'const' && (value === undefined || e.value === value);

/**
 * `a op b`; comparisons give bool, everything else `a`'s type. Integer arithmetic on literals is folded (when the
 * result fits the type), and `x + 0`, `x · 1`, `x · 0`, `x / 1`, `x mod 1` simplify, so index math stays readable.
 */
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

/** `a + b` (folded for integer literals; see {@link bin}). */
export const add = (a: Expr, b: Expr) => bin('add', a, b);
/** `a − b`. */
export const sub = (a: Expr, b: Expr) => bin('sub', a, b);
/** `a · b`. */
export const mul = (a: Expr, b: Expr) => bin('mul', a, b);
/** `a / b` (integers: truncating, as in WGSL and C). */
export const div = (a: Expr, b: Expr) => bin('div', a, b);
/** `a % b` (integers: the sign of `a`, as in WGSL and C). */
export const mod = (a: Expr, b: Expr) => bin('mod', a, b);
/** `a < b` (bool). */
export const lt = (a: Expr, b: Expr) => bin('lt', a, b);
/** `a <= b` (bool). */
export const le = (a: Expr, b: Expr) => bin('le', a, b);
/** `a > b` (bool). */
export const gt = (a: Expr, b: Expr) => bin('gt', a, b);
/** `a >= b` (bool). */
export const ge = (a: Expr, b: Expr) => bin('ge', a, b);
/** `a == b` (bool). */
export const eq = (a: Expr, b: Expr) => bin('eq', a, b);
/** `a != b` (bool). */
export const ne = (a: Expr, b: Expr) => bin('ne', a, b);
/** Logical and of two bools (bitwise and is `bin('bitand', …)`). */
export const and = (a: Expr, b: Expr) => bin('and', a, b);
/** Logical or of two bools (bitwise or is `bin('bitor', …)`). */
export const or = (a: Expr, b: Expr) => bin('or', a, b);
/** The smaller of `a` and `b`. */
export const min = (a: Expr, b: Expr) => bin('min', a, b);
/** The larger of `a` and `b`. */
export const max = (a: Expr, b: Expr) => bin('max', a, b);
/** A unary op on `a`; `not`, `isnan` and `isinf` give bool, the others `a`'s type. */
export const un = (op: UnOp, a: Expr): Expr => ({
  k: 'un',
  op,
  a,
  type: op === 'isnan' || op === 'isinf' || op === 'not' ? 'bool' : a.type,
});
/** Logical not of a bool. */
export const not = (a: Expr) => un('not', a);
/** Whether a float is NaN (bool). */
export const isnan = (a: Expr) => un('isnan', a);
/** Whether a float is ±infinity (bool). */
export const isinf = (a: Expr) => un('isinf', a);
/** `cond ? a : b` (both evaluated; no branch). */
export const select = (cond: Expr, a: Expr, b: Expr): Expr => ({ k: 'select', type: a.type, cond, a, b });
/**
 * A value conversion of `a` to `type` (no node when the types already agree; literals converted in place when exact:
 * non-negative integers between i32 / u32, numbers to f32 / f16).
 */
export function cast(type: KType, a: Expr): Expr {
  if (a.type === type) return a;
  if (isConst(a) && (type === 'i32' || type === 'u32') && (a.type === 'i32' || a.type === 'u32') && a.value >= 0) {
    return c.of(type, a.value);
  }
  if (isConst(a) && (type === 'f32' || type === 'f16') && a.type !== 'bool') return c.of(type, a.value);
  return { k: 'cast', type, a };
}
/** The bits of a 32-bit value reinterpreted as another 32-bit type. */
export const bitcast = (type: KType, a: Expr): Expr => ({ k: 'bitcast', type, a });
/** `a` as held by the lane whose index is this lane's XOR `mask` (warp / subgroup butterfly; needs subgroup support). */
export const shuffleXor = (a: Expr, mask: number): Expr => ({ k: 'shuffle_xor', type: a.type, a, mask });

/** The 4-lane packed byte dot product of u32 words `a`, `b` (i32; see the `dot4` expression). */
export const dot4 = (a: Expr, b: Expr, signed: boolean): Expr => ({
  k: 'dot4',
  type: 'i32',
  signed,
  a: cast('u32', a),
  b: cast('u32', b),
});

/** Byte `j` of u32 word `w` as an i32, sign-extended when `signed`. */
export function byteOf(w: Expr, j: number, signed: boolean): Expr {
  if (w.k === 'const') {
    // folded here: WGSL rejects constant shifts that overflow (`0x01010101u << 24u`)
    const b = Math.floor(w.value / 2 ** (8 * j)) & 255;
    return c.i32(signed && b > 127 ? b - 256 : b);
  }
  if (signed) return bin('shr', bitcast('i32', bin('shl', w, c.u32(24 - 8 * j))), c.u32(24));
  return cast('i32', bin('bitand', bin('shr', w, c.u32(8 * j)), c.u32(255)));
}

/** The same value as {@link dot4} from shifts, masks and multiplies (devices without a packed dot product). */
export function dot4Scalar(a: Expr, b: Expr, signed: boolean): Expr {
  const au = cast('u32', a);
  const bu = cast('u32', b);
  let s: Expr | undefined;
  for (let j = 0; j < 4; j++) {
    const p = bin('mul', byteOf(au, j, signed), byteOf(bu, j, signed));
    s = s ? bin('add', s, p) : p;
  }
  return s!;
}

/** {@link dot4} where the device has it (`native`), else {@link dot4Scalar}. */
export const dot4Of = (a: Expr, b: Expr, signed: boolean, native: boolean): Expr =>
  native ? dot4(a, b, signed) : dot4Scalar(a, b, signed);

// statements
/** An immutable local `name` = `value` (read it with `v(name, value.type)`). */
export const let_ = (name: string, value: Expr): Stmt => ({ k: 'let', name, value });
/** A mutable local of `type` initialized to `init`. */
export const var_ = (name: string, type: KType, init: Expr): Stmt => ({ k: 'var', name, type, init });
/** `name = value` for a local declared by `var_`. */
export const assign = (name: string, value: Expr): Stmt => ({ k: 'assign', name, value });
/** Element `index` of buffer `buf` = `value` (packed storage handled by legalization). */
export const store = (buf: string, index: Expr, value: Expr): Stmt => ({ k: 'store', buf, index, value });
/** Element `index` of shared array `arr` = `value`. */
export const sstore = (arr: string, index: Expr, value: Expr): Stmt => ({ k: 'shared_store', arr, index, value });
/** `for (name = start; name < end; name += step) body` (the variable has `start`'s type); step i32 1 by default. */
export const for_ = (name: string, start: Expr, end: Expr, body: readonly Stmt[], step: Expr = c.i32(1)): Stmt => ({
  k: 'for',
  v: name,
  start,
  end,
  step,
  body,
});
/** `if (cond) then else else_` (no else branch when `else_` is absent). */
export const if_ = (cond: Expr, then: readonly Stmt[], else_?: readonly Stmt[]): Stmt =>
  else_ ? { k: 'if', cond, then, else: else_ } : { k: 'if', cond, then };
export const barrier: Stmt = { k: 'barrier' };
export const ret: Stmt = { k: 'return' };
