/** Elementwise unary / binary / ternary ops with numpy broadcasting, comparisons, logic, cast, clip, where. */
import { dimAdd, dimDiv, dimMul, dimSub, isSymbol } from '../dim-expr.js';
import { dtypeInfo, isDType, isFloat, isInteger, type DType } from '../dtype.js';
import { registerOp, type AttrSpec, type Attrs, type InferContext, type OpDef } from '../registry.js';
import type { Dim } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { tensorType } from '../types.js';
import { erf, geluErf, geluTanh, roundEven, sigmoid } from './math.js';
import { broadcastInfer, broadcastMap, req, requireSameDtype } from './util.js';

const FLOATS: readonly DType[] = ['f64', 'f32', 'f16', 'bf16'];
const NUMERIC: readonly DType[] = ['f64', 'f32', 'f16', 'bf16', 'i64', 'i32', 'i16', 'i8', 'u64', 'u32', 'u16', 'u8'];

function checkDtype(ctx: InferContext, i: number, allowed: readonly DType[]): DType {
  const dt = req(ctx, i).dtype;
  if (!allowed.includes(dt)) ctx.fail(`op ${ctx.op} does not accept dtype ${dt}`);
  return dt;
}

function unary(
  name: string,
  doc: string,
  fn: (x: number, a: Attrs) => number,
  allowed: readonly DType[] = FLOATS,
  attrs: Record<string, AttrSpec> = {},
  view = false,
): void {
  registerOp({
    name,
    doc,
    view,
    inputs: [{ name: 'x' }],
    outputs: [{ name: 'y' }],
    attrs,
    fusion: 'elementwise',
    infer(ctx) {
      const t = req(ctx, 0);
      checkDtype(ctx, 0, allowed);
      return [tensorType(t.dtype, t.shape)];
    },
    ...(view ? { symbolic: (ctx: InferContext) => [ctx.symbolicValue(0)] } : {}),
    reference([x], a) {
      return [broadcastMap(x!.dtype, [x!], (v) => fn(v, a))];
    },
  });
}

unary('neg', 'y = -x', (x) => -x, NUMERIC);
unary('abs', 'y = |x|', (x) => Math.abs(x), NUMERIC);
unary('exp', 'y = e^x', Math.exp);
unary('log', 'y = ln x', Math.log);
unary('sqrt', 'y = sqrt(x)', Math.sqrt);
unary('reciprocal', 'y = 1/x', (x) => 1 / x);
unary('tanh', 'y = tanh x', Math.tanh);
unary('erf', 'Gauss error function', erf);
unary('sigmoid', 'y = 1/(1+e^-x)', sigmoid);
unary('relu', 'y = max(x, 0)', (x) => (x > 0 ? x : x === 0 || x < 0 ? 0 : x), NUMERIC);
unary(
  'gelu',
  'GELU; approximate="none" uses erf, "tanh" the tanh form',
  (x, a) => (a['approximate'] === 'tanh' ? geluTanh(x) : geluErf(x)),
  FLOATS,
  { approximate: { kind: 'string', default: 'none', oneOf: ['none', 'tanh'] } },
);
unary('silu', 'y = x * sigmoid(x) (swish)', (x) => x * sigmoid(x));
unary('floor', 'y = floor(x)', Math.floor);
unary('ceil', 'y = ceil(x)', Math.ceil);
unary('round', 'round half to even', roundEven);
unary('sign', 'y = sign(x)', (x) => (Number.isNaN(x) ? NaN : Math.sign(x)), NUMERIC);
unary('sin', 'y = sin x', Math.sin);
unary('cos', 'y = cos x', Math.cos);
unary('tan', 'y = tan x', Math.tan);
unary('asin', 'y = arcsin x (NaN outside [-1, 1])', Math.asin);
unary('acos', 'y = arccos x (NaN outside [-1, 1])', Math.acos);
unary('atan', 'y = arctan x', Math.atan);
unary('softplus', 'y = ln(1 + e^x)', (x) => (x > 30 ? x : Math.log1p(Math.exp(x))));
unary(
  'hard_sigmoid',
  'y = max(0, min(1, alpha*x + beta))',
  (x, a) => Math.max(0, Math.min(1, (a['alpha'] as number) * x + (a['beta'] as number))),
  FLOATS,
  { alpha: { kind: 'float', default: 0.2 }, beta: { kind: 'float', default: 0.5 } },
);
unary('hard_swish', 'y = x * max(0, min(1, x/6 + 1/2))', (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)));
unary('leaky_relu', 'y = x >= 0 ? x : alpha*x', (x, a) => (x >= 0 ? x : (a['alpha'] as number) * x), FLOATS, {
  alpha: { kind: 'float', default: 0.01 },
});
unary('identity', 'y = x', (x) => x, [...NUMERIC, 'bool', 'i4', 'u4'], {}, true);

function predicate(name: string, doc: string, fn: (x: number) => boolean): void {
  registerOp({
    name,
    doc,
    inputs: [{ name: 'x' }],
    outputs: [{ name: 'y' }],
    attrs: {},
    fusion: 'elementwise',
    infer(ctx) {
      checkDtype(ctx, 0, name === 'not' ? ['bool'] : FLOATS);
      return [tensorType('bool', req(ctx, 0).shape)];
    },
    reference([x]) {
      return [broadcastMap('bool', [x!], (v) => (fn(v) ? 1 : 0))];
    },
  });
}
predicate('not', 'logical not', (x) => x === 0);
predicate('isnan', 'y = x is NaN', Number.isNaN);
predicate('isinf', 'y = x is ±inf', (x) => x === Infinity || x === -Infinity);

/** Integer division truncates toward zero, as C and ONNX do; division by zero yields 0 rather than UB. */
function divide(x: number, y: number, dt: DType): number {
  if (!isInteger(dt)) return x / y;
  return y === 0 ? 0 : Math.trunc(x / y);
}

/**
 * Symbolic hook of an elementwise op on shape values: dim by dim, a one-element operand broadcast (`seq + 1`,
 * `[batch, seq] * 2`); unknown when any element has no dim value (`seq / 2` is not exact). Float operands never
 * carry symbolic values, so this only ever sees integer (and bool) tensors.
 */
function dimMap(f: (...xs: Dim[]) => Dim | undefined): OpDef['symbolic'] {
  return (ctx) => {
    const vs = ctx.inputs.map((_, i) => ctx.symbolicValue(i));
    if (!vs.every((v) => v !== undefined)) return undefined;
    const n = Math.max(...vs.map((v) => v.length));
    if (!vs.every((v) => v.length === n || v.length === 1)) return undefined;
    const out = Array.from({ length: n }, (_, k) => f(...vs.map((v) => v[v.length === 1 ? 0 : k]!)));
    return out.every((d) => d !== undefined) ? [out as Dim[]] : undefined;
  };
}
const dimBinary = (f: (a: Dim, b: Dim) => Dim | undefined) => dimMap(f as (...xs: Dim[]) => Dim | undefined);

/** a == b on dims: equal text is equal; an input dim (a plain symbol, never negative) is not a negative number. */
function dimEqual(a: Dim, b: Dim): Dim | undefined {
  if (a === b) return 1;
  if (typeof a === 'number' && typeof b === 'number') return 0;
  const [n, d] = typeof a === 'number' ? [a, b] : [b, a];
  return typeof n === 'number' && n < 0 && isSymbol(d) ? 0 : undefined;
}

function binary(
  name: string,
  doc: string,
  fn: (x: number, y: number, dt: DType, a: Attrs) => number,
  allowed: readonly DType[] = NUMERIC,
  attrs: Record<string, AttrSpec> = {},
  symbolic?: OpDef['symbolic'],
): void {
  registerOp({
    name,
    doc,
    inputs: [{ name: 'a' }, { name: 'b' }],
    outputs: [{ name: 'y' }],
    attrs,
    fusion: 'broadcast',
    infer(ctx) {
      const dt = requireSameDtype(ctx, [0, 1]);
      checkDtype(ctx, 0, allowed);
      return [tensorType(dt, broadcastInfer(ctx, [0, 1]))];
    },
    ...(symbolic ? { symbolic } : {}),
    reference([a, b], at) {
      const dt = a!.dtype;
      return [broadcastMap(dt, [a!, b!], (x, y) => fn(x, y, dt, at))];
    },
  });
}

binary('add', 'y = a + b', (x, y) => x + y, NUMERIC, {}, dimBinary(dimAdd));
binary('sub', 'y = a - b', (x, y) => x - y, NUMERIC, {}, dimBinary(dimSub));
binary(
  'mul',
  'y = a * b',
  (x, y, dt) => (dt === 'i64' || dt === 'u64' ? mul64(x, y) : x * y),
  NUMERIC,
  {},
  dimBinary(dimMul),
);
binary('div', 'y = a / b (integers: truncate toward zero)', divide, NUMERIC, {}, dimBinary(dimDiv));
binary(
  'mod',
  'remainder; fmod=1: sign of a (C fmod), fmod=0: sign of b (Python %)',
  (x, y, _dt, a) => {
    if (a['fmod'] || !Number.isFinite(x)) return x % y;
    if (y === 0) return isFloat(_dt) ? NaN : 0;
    const r = x % y;
    return r !== 0 && r < 0 !== y < 0 ? r + y : r;
  },
  NUMERIC,
  { fmod: { kind: 'bool', default: false } },
);

/** Exact product of two integers whose product may exceed 2^53 is not representable anyway; keep float64 product. */
function mul64(x: number, y: number): number {
  return x * y;
}

// pow allows a different exponent dtype (ONNX Pow: T, T1); the result has the base's dtype.
registerOp({
  name: 'pow',
  doc: 'y = a ^ b; the exponent may have another dtype, the result takes the base dtype',
  inputs: [{ name: 'a' }, { name: 'b' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'broadcast',
  infer(ctx) {
    checkDtype(ctx, 0, NUMERIC);
    checkDtype(ctx, 1, NUMERIC);
    return [tensorType(req(ctx, 0).dtype, broadcastInfer(ctx, [0, 1]))];
  },
  reference([a, b]) {
    return [broadcastMap(a!.dtype, [a!, b!], (x, y) => Math.pow(x, y))];
  },
});

function variadic(name: string, doc: string, fn: (x: number, y: number) => number): void {
  registerOp({
    name,
    doc,
    inputs: [{ name: 'x', variadic: true }],
    outputs: [{ name: 'y' }],
    attrs: {},
    fusion: 'broadcast',
    infer(ctx) {
      if (ctx.inputs.length < 1) ctx.fail(`${name} needs at least one input`);
      const idx = ctx.inputs.map((_, i) => i);
      const dt = requireSameDtype(ctx, idx);
      checkDtype(ctx, 0, NUMERIC);
      return [tensorType(dt, broadcastInfer(ctx, idx))];
    },
    reference(xs) {
      const ts = xs as Tensor[];
      return [broadcastMap(ts[0]!.dtype, ts, (...v) => v.reduce(fn))];
    },
  });
}
// NaN propagates, as in IEEE fmax is *not* used by ONNX Max/Min.
variadic('max', 'elementwise maximum (NaN propagates)', (x, y) =>
  Number.isNaN(x) || Number.isNaN(y) ? NaN : x > y ? x : y,
);
variadic('min', 'elementwise minimum (NaN propagates)', (x, y) =>
  Number.isNaN(x) || Number.isNaN(y) ? NaN : x < y ? x : y,
);
variadic('sum', 'elementwise sum of any number of inputs', (x, y) => x + y);

function compare(name: string, doc: string, fn: (x: number, y: number) => boolean, symbolic?: OpDef['symbolic']): void {
  registerOp({
    name,
    doc,
    inputs: [{ name: 'a' }, { name: 'b' }],
    outputs: [{ name: 'y' }],
    attrs: {},
    fusion: 'broadcast',
    infer(ctx) {
      requireSameDtype(ctx, [0, 1]);
      return [tensorType('bool', broadcastInfer(ctx, [0, 1]))];
    },
    ...(symbolic ? { symbolic } : {}),
    reference([a, b]) {
      return [broadcastMap('bool', [a!, b!], (x, y) => (fn(x, y) ? 1 : 0))];
    },
  });
}
// Exporters test shape vectors against -1 (Equal → Where around Expand / Reshape).
compare('equal', 'a == b', (x, y) => x === y, dimBinary(dimEqual));
compare('less', 'a < b', (x, y) => x < y);
compare('greater', 'a > b', (x, y) => x > y);
compare('less_equal', 'a <= b', (x, y) => x <= y);
compare('greater_equal', 'a >= b', (x, y) => x >= y);

function logic(name: string, fn: (x: boolean, y: boolean) => boolean): void {
  registerOp({
    name,
    doc: `logical ${name}`,
    inputs: [{ name: 'a' }, { name: 'b' }],
    outputs: [{ name: 'y' }],
    attrs: {},
    fusion: 'broadcast',
    infer(ctx) {
      checkDtype(ctx, 0, ['bool']);
      checkDtype(ctx, 1, ['bool']);
      return [tensorType('bool', broadcastInfer(ctx, [0, 1]))];
    },
    reference([a, b]) {
      return [broadcastMap('bool', [a!, b!], (x, y) => (fn(x !== 0, y !== 0) ? 1 : 0))];
    },
  });
}
logic('and', (x, y) => x && y);
logic('or', (x, y) => x || y);
logic('xor', (x, y) => x !== y);

registerOp({
  name: 'cast',
  doc: 'convert to dtype `to`: floats round to nearest even, float→int truncates toward zero, →bool is x != 0',
  inputs: [{ name: 'x' }],
  outputs: [{ name: 'y' }],
  attrs: { to: { kind: 'dtype' } },
  fusion: 'elementwise',
  infer(ctx) {
    const to = ctx.attrs['to'] as string;
    if (!isDType(to)) return ctx.fail(`unknown dtype '${to}'`);
    return [tensorType(to, req(ctx, 0).shape)];
  },
  // Integer → integer keeps a shape value (the exporters' Cast(i64) around shape arithmetic); a dim never overflows.
  symbolic: (ctx) => [isInteger(req(ctx, 0).dtype) ? ctx.symbolicValue(0) : undefined],
  reference([x], a) {
    const to = a['to'] as DType;
    // NaN/inf → integer is undefined behaviour in C; define it as 0 / saturation so results are reproducible.
    const conv = isInteger(to)
      ? (v: number) => (Number.isNaN(v) ? 0 : Number.isFinite(v) ? v : v > 0 ? dtypeInfo(to).max : dtypeInfo(to).min)
      : (v: number) => v;
    return [broadcastMap(to, [x!], conv)];
  },
});

registerOp({
  name: 'clip',
  doc: 'y = min(max(x, lo), hi); absent bounds are ±inf (the dtype range for integers)',
  inputs: [{ name: 'x' }, { name: 'lo', optional: true }, { name: 'hi', optional: true }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'elementwise',
  infer(ctx) {
    const t = req(ctx, 0);
    for (const i of [1, 2]) {
      const b = ctx.inputs[i];
      if (b && b.dtype !== t.dtype) ctx.fail(`bound ${i} has dtype ${b.dtype}, expected ${t.dtype}`);
      if (b && b.shape.length > 1) ctx.fail(`bound ${i} must be a scalar`);
    }
    return [tensorType(t.dtype, t.shape)];
  },
  reference([x, lo, hi]) {
    const l = lo && lo.data.length ? lo.data[0]! : -Infinity;
    const h = hi && hi.data.length ? hi.data[0]! : Infinity;
    return [broadcastMap(x!.dtype, [x!], (v) => (Number.isNaN(v) ? v : Math.min(Math.max(v, l), h)))];
  },
});

registerOp({
  name: 'where',
  doc: 'y = cond ? a : b, broadcasting all three',
  inputs: [{ name: 'cond' }, { name: 'a' }, { name: 'b' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'broadcast',
  infer(ctx) {
    checkDtype(ctx, 0, ['bool']);
    const dt = requireSameDtype(ctx, [1, 2]);
    return [tensorType(dt, broadcastInfer(ctx, [0, 1, 2]))];
  },
  symbolic: dimMap((c, a, b) => (c === 1 ? a : c === 0 ? b : undefined)),
  reference([c, a, b]) {
    return [broadcastMap(a!.dtype, [c!, a!, b!], (cv, x, y) => (cv !== 0 ? x : y))];
  },
});
