/** Softmax, normalizations, and the contractions: matmul, gemm, matmul_integer, einsum. */
import type { DType } from '../dtype.js';
import { registerOp, type Attrs, type InferContext } from '../registry.js';
import { broadcastShapes, shapeToString } from '../shape.js';
import { scratchTensor, type Tensor } from '../tensor.js';
import { tensorType } from '../types.js';
import {
  axisSplit,
  broadcastMap,
  broadcastStrides,
  numel,
  req,
  requireSameDtype,
  stridesOf,
  type Dim,
  odometerStep,
} from './util.js';

const FLOATS: readonly DType[] = ['f64', 'f32', 'f16', 'bf16'];
const NUMERIC: readonly DType[] = ['f64', 'f32', 'f16', 'bf16', 'i64', 'i32', 'i16', 'i8', 'u64', 'u32', 'u16', 'u8'];

function checkDtype(ctx: InferContext, i: number, allowed: readonly DType[]): DType {
  const dt = req(ctx, i).dtype;
  if (!allowed.includes(dt)) ctx.fail(`op ${ctx.op} does not accept dtype ${dt} (input ${i})`);
  return dt;
}

function axisOf(a: Attrs, rank: number, fail: (m: string) => never): number {
  const axis = a['axis'] as number;
  if (axis < -rank || axis >= rank) fail(`axis ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Two dims that must be equal: a static mismatch is an error; a symbol is only checked at run time. */
function sameDim(a: Dim, b: Dim): boolean {
  return typeof a !== 'number' || typeof b !== 'number' || a === b;
}

// ---- softmax / log_softmax ----

/*
 * Fusion kind 'reduce': a softmax row is two reductions (max, sum of exp) plus elementwise work on the same row, which
 * the reduction template lowers as one kernel per row; elementwise producers (scale, mask) fuse into its input.
 */
function softmaxLike(name: string, doc: string, log: boolean): void {
  registerOp({
    name,
    doc,
    inputs: [{ name: 'x' }],
    outputs: [{ name: 'y' }],
    attrs: { axis: { kind: 'int', default: -1 } },
    fusion: 'reduce',
    infer(ctx) {
      const t = req(ctx, 0);
      checkDtype(ctx, 0, FLOATS);
      axisOf(ctx.attrs, t.shape.length, ctx.fail);
      return [tensorType(t.dtype, t.shape)];
    },
    reference([x], a, ctx) {
      const { outer, len, inner } = axisSplit(x!.shape, axisOf(a, x!.shape.length, ctx.fail));
      const out = scratchTensor(x!.dtype, x!.shape);
      const d = x!.data;
      for (let o = 0; o < outer; o++) {
        for (let i = 0; i < inner; i++) {
          const base = o * len * inner + i;
          let m = -Infinity;
          for (let k = 0; k < len; k++) {
            const v = d[base + k * inner]!;
            m = Number.isNaN(v) || v > m ? v : m;
          }
          let s = 0;
          for (let k = 0; k < len; k++) s += Math.exp(d[base + k * inner]! - m);
          const ls = Math.log(s);
          for (let k = 0; k < len; k++) {
            const z = d[base + k * inner]! - m;
            out.data[base + k * inner] = log ? z - ls : Math.exp(z) / s;
          }
        }
      }
      return [out];
    },
  });
}
softmaxLike('softmax', 'exp(x) / sum(exp(x)) along axis, with the max subtracted first', false);
softmaxLike('log_softmax', 'x - log(sum(exp(x))) along axis, with the max subtracted first', true);

// ---- layer_norm / rms_norm ----

/** Check that `p` (scale / bias) broadcasts unidirectionally to the normalized dims `norm`. */
function checkNormParam(ctx: InferContext, i: number, norm: readonly Dim[], what: string): void {
  const p = req(ctx, i);
  const bad = () =>
    ctx.fail(
      `${what} shape ${shapeToString(p.shape)} does not broadcast to the normalized shape ${shapeToString(norm)}`,
    );
  if (p.shape.length > norm.length) bad();
  p.shape.forEach((d, j) => {
    const n = norm[j + norm.length - p.shape.length]!;
    if (d !== 1 && !sameDim(d, n)) bad();
  });
}

/** `p` broadcast to the normalized shape, flattened (the per-row parameter vector). */
function expandParam(p: Tensor, norm: readonly number[], fail: (m: string) => never): Float64Array {
  try {
    const s = broadcastShapes([p.shape, norm]);
    if (s.length !== norm.length || s.some((d, j) => d !== norm[j])) throw new Error('too large');
  } catch {
    fail(`parameter shape [${p.shape}] does not broadcast to the normalized shape [${norm}]`);
  }
  return broadcastMap(p.dtype, [p], (v) => v, norm).data;
}

function inferNorm(ctx: InferContext, params: readonly number[]): { axis: number; dt: DType } {
  const x = req(ctx, 0);
  const dt = checkDtype(ctx, 0, FLOATS);
  const axis = axisOf(ctx.attrs, x.shape.length, ctx.fail);
  const norm = x.shape.slice(axis);
  for (const i of params) {
    if (!ctx.inputs[i]) continue;
    if (req(ctx, i).dtype !== dt) ctx.fail(`input ${i} has dtype ${req(ctx, i).dtype}, expected ${dt}`);
    checkNormParam(ctx, i, norm, i === 1 ? 'scale' : 'bias');
  }
  return { axis, dt };
}

registerOp({
  name: 'layer_norm',
  doc:
    'y = (x - mean) / sqrt(var + epsilon) * scale + bias over dims axis..rank-1; optional outputs mean and ' +
    'inv_std_dev keep the normalized dims as 1 and have dtype stash_type (ONNX LayerNormalization)',
  inputs: [{ name: 'x' }, { name: 'scale' }, { name: 'bias', optional: true }],
  outputs: [{ name: 'y' }, { name: 'mean', optional: true }, { name: 'inv_std_dev', optional: true }],
  attrs: {
    axis: { kind: 'int', default: -1 },
    epsilon: { kind: 'float', default: 1e-5 },
    stash_type: { kind: 'dtype', default: 'f32' },
  },
  fusion: 'reduce',
  infer(ctx) {
    const x = req(ctx, 0);
    const { axis, dt } = inferNorm(ctx, [1, 2]);
    const stash = ctx.attrs['stash_type'] as DType;
    if (!FLOATS.includes(stash)) ctx.fail(`stash_type must be a float dtype, got ${stash}`);
    const stat = [...x.shape.slice(0, axis), ...x.shape.slice(axis).map(() => 1)];
    return [tensorType(dt, x.shape), tensorType(stash, stat), tensorType(stash, stat)];
  },
  reference([x, scale, bias], a, ctx) {
    const r = x!.shape.length;
    const axis = axisOf(a, r, ctx.fail);
    const norm = x!.shape.slice(axis);
    const sc = expandParam(scale!, norm, ctx.fail);
    const bi = bias ? expandParam(bias, norm, ctx.fail) : undefined;
    const eps = a['epsilon'] as number;
    const n = numel(norm);
    const rows = n === 0 ? numel(x!.shape.slice(0, axis)) : x!.data.length / n;
    const y = scratchTensor(x!.dtype, x!.shape);
    const statShape = [...x!.shape.slice(0, axis), ...norm.map(() => 1)];
    const stash = a['stash_type'] as DType;
    const mean = scratchTensor(stash, statShape);
    const inv = scratchTensor(stash, statShape);
    for (let row = 0; row < rows; row++) {
      const off = row * n;
      let s = 0;
      for (let j = 0; j < n; j++) s += x!.data[off + j]!;
      const mu = s / n;
      let v = 0;
      for (let j = 0; j < n; j++) v += (x!.data[off + j]! - mu) ** 2;
      const is = 1 / Math.sqrt(v / n + eps);
      for (let j = 0; j < n; j++) y.data[off + j] = (x!.data[off + j]! - mu) * is * sc[j]! + (bi ? bi[j]! : 0);
      mean.data[row] = mu;
      inv.data[row] = is;
    }
    return [y, mean, inv];
  },
});

registerOp({
  name: 'rms_norm',
  doc: 'y = x / sqrt(mean(x^2) + epsilon) * scale over dims axis..rank-1 (ONNX RMSNormalization)',
  inputs: [{ name: 'x' }, { name: 'scale' }],
  outputs: [{ name: 'y' }],
  attrs: { axis: { kind: 'int', default: -1 }, epsilon: { kind: 'float', default: 1e-5 } },
  fusion: 'reduce',
  infer(ctx) {
    const { dt } = inferNorm(ctx, [1]);
    return [tensorType(dt, req(ctx, 0).shape)];
  },
  reference([x, scale], a, ctx) {
    const axis = axisOf(a, x!.shape.length, ctx.fail);
    const norm = x!.shape.slice(axis);
    const sc = expandParam(scale!, norm, ctx.fail);
    const eps = a['epsilon'] as number;
    const n = numel(norm);
    const y = scratchTensor(x!.dtype, x!.shape);
    for (let off = 0; off < x!.data.length; off += n) {
      let s = 0;
      for (let j = 0; j < n; j++) s += x!.data[off + j]! ** 2;
      const is = 1 / Math.sqrt(s / n + eps);
      for (let j = 0; j < n; j++) y.data[off + j] = x!.data[off + j]! * is * sc[j]!;
    }
    return [y];
  },
});

// ---- matmul ----

/** numpy matmul shapes: 1-D operands promoted ([K] → [1,K] / [K,1]) and the promoted dim dropped again. */
function matmulShape<D extends Dim>(
  a: readonly D[],
  b: readonly D[],
  fail: (m: string) => never,
): { batch: Dim[]; m: D; k: D; n: D; out: Dim[] } {
  if (a.length === 0 || b.length === 0) fail('matmul operands must have rank >= 1, got a scalar');
  const a2 = a.length === 1 ? [1 as D, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1 as D] : b;
  const k = a2[a2.length - 1]!;
  const kb = b2[b2.length - 2]!;
  if (!sameDim(k, kb)) {
    fail(`matmul inner dims differ: a ${shapeToString(a)} has K=${k}, b ${shapeToString(b)} has K=${kb}`);
  }
  let batch: Dim[];
  try {
    batch = broadcastShapes([a2.slice(0, -2), b2.slice(0, -2)]);
  } catch (e) {
    return fail(`matmul batch dims: ${(e as Error).message}`);
  }
  const m = a2[a2.length - 2]!;
  const n = b2[b2.length - 1]!;
  const out: Dim[] = [...batch, ...(a.length > 1 ? [m] : []), ...(b.length > 1 ? [n] : [])];
  return { batch, m, k, n, out };
}

/** Batched matmul of the raw data of a [..., M, K] and b [..., K, N] (1-D promoted), accumulating in float64. */
function matmulRef(a: Tensor, b: Tensor, dtype: DType, fail: (m: string) => never): Tensor {
  const { batch, m, k, n, out } = matmulShape(a.shape, b.shape, fail) as {
    batch: number[];
    m: number;
    k: number;
    n: number;
    out: number[];
  };
  const aB = a.shape.length > 2 ? a.shape.slice(0, -2) : [];
  const bB = b.shape.length > 2 ? b.shape.slice(0, -2) : [];
  const sa = broadcastStrides(aB, batch);
  const sb = broadcastStrides(bB, batch);
  const y = scratchTensor(dtype, out);
  const nb = numel(batch);
  const bst = stridesOf(batch);
  for (let t = 0; t < nb; t++) {
    let oa = 0;
    let ob = 0;
    for (let d = 0; d < batch.length; d++) {
      const i = Math.floor(t / bst[d]!) % batch[d]!;
      oa += i * sa[d]!;
      ob += i * sb[d]!;
    }
    oa *= m * k;
    ob *= k * n;
    const oy = t * m * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a.data[oa + i * k + p]! * b.data[ob + p * n + j]!;
        y.data[oy + i * n + j] = s;
      }
    }
  }
  return y;
}

registerOp({
  name: 'matmul',
  doc: 'numpy matmul: batch dims broadcast, 1-D operands promoted to a row / column and squeezed out again',
  inputs: [{ name: 'a' }, { name: 'b' }],
  outputs: [{ name: 'y' }],
  attrs: {},
  fusion: 'opaque',
  infer(ctx) {
    const dt = requireSameDtype(ctx, [0, 1]);
    checkDtype(ctx, 0, NUMERIC);
    return [tensorType(dt, matmulShape(req(ctx, 0).shape, req(ctx, 1).shape, ctx.fail).out)];
  },
  reference([a, b], _a, ctx) {
    return [matmulRef(a!, b!, a!.dtype, ctx.fail)];
  },
});

// ---- gemm ----

registerOp({
  name: 'gemm',
  doc: 'y = alpha * op(a) @ op(b) + beta * c, op = transpose when transA / transB; c broadcasts to [M, N]',
  inputs: [{ name: 'a' }, { name: 'b' }, { name: 'c', optional: true }],
  outputs: [{ name: 'y' }],
  attrs: {
    alpha: { kind: 'float', default: 1 },
    beta: { kind: 'float', default: 1 },
    transA: { kind: 'bool', default: false },
    transB: { kind: 'bool', default: false },
  },
  fusion: 'opaque',
  infer(ctx) {
    const ports = ctx.inputs[2] ? [0, 1, 2] : [0, 1];
    const dt = requireSameDtype(ctx, ports);
    checkDtype(ctx, 0, NUMERIC);
    const a = req(ctx, 0).shape;
    const b = req(ctx, 1).shape;
    if (a.length !== 2 || b.length !== 2) {
      ctx.fail(`gemm needs 2-D a and b, got ${shapeToString(a)} and ${shapeToString(b)}`);
    }
    const [m, k] = ctx.attrs['transA'] ? [a[1]!, a[0]!] : [a[0]!, a[1]!];
    const [kb, n] = ctx.attrs['transB'] ? [b[1]!, b[0]!] : [b[0]!, b[1]!];
    if (!sameDim(k, kb)) ctx.fail(`gemm inner dims differ: K=${k} vs ${kb}`);
    const c = ctx.inputs[2];
    if (c) {
      const mn = [m, n];
      const ok = c.shape.length <= 2 && c.shape.every((d, j) => d === 1 || sameDim(d, mn[j + 2 - c.shape.length]!));
      if (!ok) ctx.fail(`gemm c shape ${shapeToString(c.shape)} does not broadcast to [${m}, ${n}]`);
    }
    return [tensorType(dt, [m, n])];
  },
  reference([a, b, c], at, ctx) {
    const alpha = at['alpha'] as number;
    const beta = at['beta'] as number;
    const [m, k] = at['transA'] ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
    const [kb, n] = at['transB'] ? [b!.shape[1]!, b!.shape[0]!] : [b!.shape[0]!, b!.shape[1]!];
    if (k !== kb) ctx.fail(`gemm inner dims differ: K=${k} vs ${kb}`);
    // Strides of op(a) and op(b) as [row, col] views of the stored data.
    const [ar, ac] = at['transA'] ? [1, m] : [k, 1];
    const [br, bc] = at['transB'] ? [1, k] : [n, 1];
    const cs = c ? broadcastStrides(c.shape, [m, n]) : [0, 0];
    if (c && (c.shape.length > 2 || c.shape.some((d, j) => d !== 1 && d !== [m, n][j + 2 - c.shape.length]))) {
      ctx.fail(`gemm c shape [${c.shape}] does not broadcast to [${m}, ${n}]`);
    }
    const y = scratchTensor(a!.dtype, [m, n]);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a!.data[i * ar + p * ac]! * b!.data[p * br + j * bc]!;
        y.data[i * n + j] = alpha * s + (c ? beta * c.data[i * cs[0]! + j * cs[1]!]! : 0);
      }
    }
    return [y];
  },
});

// ---- matmul_integer ----

/** `x` with its last two dims swapped (rank >= 2). */
function swapLastTwo(x: Tensor): Tensor {
  const r = x.shape.length;
  const [p, q] = [x.shape[r - 2]!, x.shape[r - 1]!];
  const y = scratchTensor(x.dtype, [...x.shape.slice(0, -2), q, p]);
  for (let base = 0; base < x.data.length; base += p * q) {
    for (let i = 0; i < p; i++) for (let j = 0; j < q; j++) y.data[base + j * p + i] = x.data[base + i * q + j]!;
  }
  return y;
}

registerOp({
  name: 'matmul_integer',
  doc:
    '(a - a_zero_point) @ (b - b_zero_point) in i32 with numpy matmul shapes; a_zero_point is a scalar or per row ' +
    '([M], or [..., M, 1]), b_zero_point a scalar or per column ([N], or [..., 1, N]) (ONNX MatMulInteger). ' +
    'trans_b (kiln): b is given as [..., N, K] (its last two dims swapped; zero points as without it) — the layout ' +
    'whose packed words run along K, for the packed int8 dot product',
  inputs: [
    { name: 'a' },
    { name: 'b' },
    { name: 'a_zero_point', optional: true },
    { name: 'b_zero_point', optional: true },
  ],
  outputs: [{ name: 'y' }],
  attrs: { trans_b: { kind: 'bool', default: false } },
  fusion: 'opaque',
  infer(ctx) {
    for (const i of [0, 1]) {
      checkDtype(ctx, i, ['u8', 'i8']);
      const z = ctx.inputs[i + 2];
      if (z && z.dtype !== req(ctx, i).dtype)
        ctx.fail(`zero point ${i + 2} has dtype ${z.dtype}, expected ${req(ctx, i).dtype}`);
    }
    const a = req(ctx, 0).shape;
    let b = req(ctx, 1).shape;
    if (ctx.attrs['trans_b']) {
      if (b.length < 2) ctx.fail(`trans_b needs b of rank >= 2, got ${shapeToString(b)}`);
      b = [...b.slice(0, -2), b[b.length - 1]!, b[b.length - 2]!];
    }
    const { m, n, out } = matmulShape(a, b, ctx.fail);
    const az = ctx.inputs[2];
    if (az && az.shape.length === 1 && az.shape[0] !== 1 && !sameDim(az.shape[0]!, m)) {
      ctx.fail(`a_zero_point of shape ${shapeToString(az.shape)} is neither a scalar nor per row (M=${m})`);
    }
    const bz = ctx.inputs[3];
    if (bz && bz.shape.length === 1 && bz.shape[0] !== 1 && !sameDim(bz.shape[0]!, n)) {
      ctx.fail(`b_zero_point of shape ${shapeToString(bz.shape)} is neither a scalar nor per column (N=${n})`);
    }
    return [tensorType('i32', out)];
  },
  reference([a, b0, az, bz], at, ctx) {
    const b = at['trans_b'] ? swapLastTwo(b0!) : b0;
    const shift = (x: Tensor, z: Tensor | undefined, perRow: boolean): Tensor => {
      if (!z) return x;
      // A 1-D per-row zero point indexes the rows: view it as a column [M, 1].
      const zv = perRow && z.shape.length === 1 && x.shape.length > 1 ? { ...z, shape: [z.shape[0]!, 1] } : z;
      let s: number[];
      try {
        s = broadcastShapes([x.shape, zv.shape]) as number[];
      } catch {
        s = [];
      }
      if (s.length !== x.shape.length || s.some((d, i) => d !== x.shape[i])) {
        ctx.fail(`zero point shape [${z.shape}] does not broadcast to its operand [${x.shape}]`);
      }
      return broadcastMap(x.dtype, [x, zv], (v, zp) => v - zp, x.shape);
    };
    return [matmulRef(shift(a!, az, true), shift(b!, bz, false), 'i32', ctx.fail)];
  },
});

// ---- einsum ----

export interface EinsumPlan {
  /** Label ids of each operand's dims (ellipsis dims expanded to ids 0..E-1, right-aligned). */
  readonly terms: number[][];
  /** Label ids of the output dims. */
  readonly out: number[];
  /** Number of label ids (ellipsis ids first, then letters). */
  readonly count: number;
}

/**
 * Parse an einsum equation against operand ranks. Letters are labels; `...` stands for broadcast batch dims.
 * Without `->` the output is the ellipsis dims, then the letters used exactly once in ASCII order (numpy).
 */
export function planEinsum(eq: string, ranks: readonly number[], fail: (m: string) => never): EinsumPlan {
  const s = eq.replace(/\s+/g, '');
  const arrow = s.indexOf('->');
  const lhs = arrow < 0 ? s : s.slice(0, arrow);
  const rhs = arrow < 0 ? undefined : s.slice(arrow + 2);
  const tokenize = (t: string): (string | null)[] => {
    const toks: (string | null)[] = [];
    for (let i = 0; i < t.length;) {
      if (t.startsWith('...', i)) {
        if (toks.includes(null)) fail(`einsum equation '${eq}': more than one ellipsis in '${t}'`);
        toks.push(null);
        i += 3;
      } else if (/[A-Za-z]/.test(t[i]!)) toks.push(t[i++]!);
      else fail(`einsum equation '${eq}': unexpected character '${t[i]}'`);
    }
    return toks;
  };
  const terms = lhs.split(',').map(tokenize);
  if (terms.length !== ranks.length) {
    fail(`einsum equation '${eq}' has ${terms.length} operands, got ${ranks.length} inputs`);
  }
  const ell = terms.map((t, i) => {
    const letters = t.filter((x) => x !== null).length;
    const e = ranks[i]! - letters;
    if (t.includes(null) ? e < 0 : e !== 0) {
      fail(`einsum operand ${i} has rank ${ranks[i]} but subscripts '${t.map((x) => x ?? '...').join('')}'`);
    }
    return e;
  });
  const E = Math.max(0, ...ell);
  const letterId = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const t of terms) {
    for (const c of t) {
      if (c === null) continue;
      if (!letterId.has(c)) letterId.set(c, E + letterId.size);
      counts.set(c, (counts.get(c) ?? 0) + 1);
    }
  }
  const ellIds = (e: number) => Array.from({ length: e }, (_, j) => E - e + j);
  const ids = terms.map((t, i) => t.flatMap((c) => (c === null ? ellIds(ell[i]!) : [letterId.get(c)!])));
  let out: number[];
  if (rhs === undefined) {
    const once = [...counts].filter(([, n]) => n === 1).map(([c]) => c);
    once.sort((x, y) => x.charCodeAt(0) - y.charCodeAt(0));
    out = [...ellIds(E), ...once.map((c) => letterId.get(c)!)];
  } else {
    const toks = tokenize(rhs);
    if (E > 0 && !toks.includes(null)) fail(`einsum equation '${eq}': the output needs '...' for the broadcast dims`);
    const seen = new Set<string>();
    out = toks.flatMap((c) => {
      if (c === null) return ellIds(E);
      if (!letterId.has(c)) fail(`einsum equation '${eq}': output label '${c}' does not occur in the inputs`);
      if (seen.has(c)) fail(`einsum equation '${eq}': output label '${c}' repeated`);
      seen.add(c);
      return [letterId.get(c)!];
    });
  }
  return { terms: ids, out, count: E + letterId.size };
}

/** The size of each label: equal dims agree, a 1 broadcasts (numpy); static conflicts fail. */
export function labelDims<D extends Dim>(
  plan: EinsumPlan,
  shapes: readonly (readonly D[])[],
  fail: (m: string) => never,
): D[] {
  const dims = new Array<D | undefined>(plan.count);
  plan.terms.forEach((t, i) => {
    t.forEach((id, p) => {
      const d = shapes[i]![p]!;
      // A label repeated within one operand (a diagonal) must have the same size at each place.
      const q = t.indexOf(id);
      if (q !== p && !sameDim(shapes[i]![q]!, d))
        fail(`einsum operand ${i}: repeated label has sizes ${shapes[i]![q]} and ${d}`);
      const cur = dims[id];
      if (cur === undefined || cur === 1) dims[id] = d;
      else if (d !== 1 && !sameDim(cur, d)) fail(`einsum: a label has sizes ${cur} and ${d} in different operands`);
      else if (typeof cur !== 'number' && typeof d === 'number' && d !== 1) dims[id] = d;
    });
  });
  return dims.map((d) => d ?? (1 as D));
}

registerOp({
  name: 'einsum',
  doc: "Einstein summation (numpy semantics): 'ij,jk->ik'; repeated labels take a diagonal, '...' broadcasts",
  inputs: [{ name: 'x', variadic: true }],
  outputs: [{ name: 'y' }],
  attrs: { equation: { kind: 'string' } },
  fusion: 'opaque',
  infer(ctx) {
    const idx = ctx.inputs.map((_, i) => i);
    const dt = requireSameDtype(ctx, idx);
    checkDtype(ctx, 0, NUMERIC);
    const shapes = idx.map((i) => req(ctx, i).shape);
    const plan = planEinsum(
      ctx.attrs['equation'] as string,
      shapes.map((s) => s.length),
      ctx.fail,
    );
    const dims = labelDims(plan, shapes, ctx.fail);
    return [
      tensorType(
        dt,
        plan.out.map((id) => dims[id]!),
      ),
    ];
  },
  reference(inputs, a, ctx) {
    const xs = inputs as Tensor[];
    const plan = planEinsum(
      a['equation'] as string,
      xs.map((x) => x.shape.length),
      ctx.fail,
    );
    const dims = labelDims(
      plan,
      xs.map((x) => x.shape),
      ctx.fail,
    );
    const summed = dims.map((_, id) => id).filter((id) => !plan.out.includes(id));
    const order = [...plan.out, ...summed];
    // Each operand's stride per label: summed over repeated places (a diagonal), 0 where a 1 broadcasts.
    const strides = xs.map((x, i) => {
      const st = new Array<number>(plan.count).fill(0);
      const xs_ = stridesOf(x.shape);
      plan.terms[i]!.forEach((id, p) => {
        if (x.shape[p] !== 1 || dims[id] === 1) st[id]! += xs_[p]!;
      });
      return order.map((id) => st[id]!);
    });
    const sizes = order.map((id) => dims[id]!);
    const outShape = plan.out.map((id) => dims[id]!);
    const y = scratchTensor(xs[0]!.dtype, outShape);
    const nOut = numel(outShape);
    const nSum = numel(summed.map((id) => dims[id]!));
    const r = order.length;
    const nOutDims = plan.out.length;
    const idx = new Array<number>(r).fill(0);
    const offs = new Array<number>(xs.length).fill(0);
    for (let o = 0; o < nOut; o++) {
      let acc = 0;
      for (let q = 0; q < nSum; q++) {
        let prod = 1;
        for (let j = 0; j < xs.length; j++) prod *= xs[j]!.data[offs[j]!]!;
        acc += prod;
        odometerStep(idx, offs, strides, sizes, nOutDims, r); // the summed labels: the innermost dims of `order`
      }
      y.data[o] = acc;
      odometerStep(idx, offs, strides, sizes, 0, nOutDims);
    }
    return [y];
  },
});
