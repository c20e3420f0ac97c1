/**
 * Random well-typed graphs for property tests: elementwise and broadcast chains, reductions over random axes,
 * matmul, softmax, layer / RMS norm, gather, transpose / reshape, with random shapes including 1 and odd sizes.
 * Shared by the IR properties and the backend equivalence properties (WebGPU, cuda-emu, CUDA, the browser).
 *
 * About 40% of graphs are *large*: a long last axis (33 … 520, beyond the 256-thread workgroup) and matmuls with
 * outputs past the skinny threshold, so the lowerings' fast paths run — the tiled matmul (M, N > 4 and M·N > 1024 in
 * codegen/lower/matmul.ts), workgroup tree reductions over rows longer than the workgroup, warp shuffles on CUDA —
 * while every tensor stays under LARGE_NUMEL elements. `focus` makes the first step one of those paths.
 */
import fc from 'fast-check';
import { GraphBuilder } from '../../ir/builder.js';
import type { Graph, Value } from '../../ir/graph.js';
import '../../ir/ops/index.js';
import { makeTensor, type Tensor } from '../../ir/tensor.js';

export interface RandomGraph {
  graph: Graph;
  feeds: Record<string, Tensor>;
  seed: number;
}

/** Small deterministic PRNG so a fast-check seed fixes the whole graph. */
function prng(seed: number) {
  let a = seed >>> 0 || 1;
  const next = () => {
    a ^= a << 13;
    a >>>= 0;
    a ^= a >>> 17;
    a ^= a << 5;
    a >>>= 0;
    return a / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    normal: () => Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next()),
  };
}

const UNARY = ['neg', 'abs', 'exp', 'tanh', 'sigmoid', 'relu', 'gelu', 'silu', 'erf', 'sqrt_abs'] as const;
const BINARY = ['add', 'sub', 'mul', 'max', 'min'] as const;

/** Largest tensor a large graph makes (elements). */
export const LARGE_NUMEL = 24_576;

/** A first step that takes a fast path: a tiled matmul, or a reduction / softmax / norm over rows longer than 256. */
export type GraphFocus = 'matmul' | 'rows';

export function randomGraph(seed: number, steps = 6, dtype: 'f32' | 'f16' = 'f32', focus?: GraphFocus): RandomGraph {
  const r = prng(seed);
  const b = new GraphBuilder('rand');
  const feeds: Record<string, Tensor> = {};
  const large = focus !== undefined || r.next() < 0.4;
  const numel = (shape: readonly number[]) => shape.reduce((a, c) => a * c, 1);
  // a new dim that keeps the tensor `rest` of it multiplies under the size cap
  const dim = (rest = 1) => {
    if (!large) return r.pick([1, 1, 2, 3, 4, 5, 7]);
    const ok = [1, 2, 3, 5, 7, 9, 16, 33, 64, 80, 130].filter((d) => d * rest <= LARGE_NUMEL);
    // past the cap only 1 keeps the size (an empty list would give an undefined dim: a malformed shape)
    return ok.length ? r.pick(ok) : 1;
  };
  const newInput = (shape: number[]): Value => {
    const name = `x${Object.keys(feeds).length}`;
    const n = shape.reduce((a, c) => a * c, 1);
    feeds[name] = makeTensor(
      dtype,
      shape,
      Array.from({ length: n }, () => r.normal()),
    );
    return b.input(name, dtype, shape);
  };
  const constOf = (shape: number[], scale = 0.5) =>
    b.weight(
      b.unique('w'),
      makeTensor(
        dtype,
        shape,
        Array.from({ length: shape.reduce((a, c) => a * c, 1) }, () => r.normal() * scale),
      ),
    );
  let shape0: number[];
  if (!large) shape0 = Array.from({ length: r.int(1, 4) }, () => dim());
  else {
    // rows × a long last axis; a tiled matmul needs more than 4 rows
    const last =
      focus === 'rows'
        ? r.pick([257, 300, 520])
        : r.pick(focus === 'matmul' ? [33, 64, 100, 129, 257, 300] : [33, 40, 64, 100, 129, 257, 300, 520]);
    // focus 'matmul': M rows right before K, with room for N = 33 under the cap
    const lead: number[] = focus === 'matmul' ? [r.pick([33, 40, 64].filter((m) => m * last <= LARGE_NUMEL))] : [];
    for (let i = r.int(lead.length, 2); i > 0; i--) lead.unshift(dim(Math.max(last, 33) * numel(lead)));
    shape0 = [...lead, last];
  }
  let cur = newInput(shape0);
  const shapeOf = (v: Value) => v.type.shape as number[];
  for (let s = 0; s < steps; s++) {
    const shape = shapeOf(cur);
    const rank = shape.length;
    const forced: string | undefined =
      s > 0 || !focus ? undefined : focus === 'matmul' ? 'matmul' : r.pick(['reduce', 'softmax', 'norm']);
    const kind =
      forced ??
      r.pick(['unary', 'binary', 'binary', 'reduce', 'softmax', 'matmul', 'norm', 'transpose', 'reshape', 'gather']);
    if (kind === 'unary') {
      const op = r.pick(UNARY);
      // sqrt(|x| + 1/2): sqrt's slope is unbounded at 0, where it would turn the legitimate rounding of a long sum
      // that cancels to ~0 into errors beyond any fixed tolerance (sqrt at 0 is tested with special values instead)
      const half = () => b.weight(b.unique('c'), makeTensor(dtype, [1], [0.5]));
      cur = op === 'sqrt_abs' ? b.op('sqrt', [b.op('add', [b.op('abs', [cur]), half()])]) : b.op(op, [cur]);
    } else if (kind === 'binary') {
      // the other operand broadcasts: a suffix of the shape with some dims set to 1, or a bigger rank
      const k = r.int(0, rank);
      const other = shape.slice(rank - k).map((d) => (r.next() < 0.3 ? 1 : d));
      const extra = k === rank && rank < 4 && r.next() < 0.2 ? [dim(numel(shape))] : [];
      const o = r.next() < 0.5 ? newInput([...extra, ...other]) : constOf([...extra, ...other]);
      cur = r.next() < 0.5 ? b.op(r.pick(BINARY), [cur, o]) : b.op(r.pick(BINARY), [o, cur]);
    } else if (kind === 'reduce' && rank > 0 && forced) {
      cur = b.op(r.pick(['reduce_sum', 'reduce_mean', 'reduce_max']), [cur], { axes: [-1], keepdims: r.next() < 0.5 });
    } else if (kind === 'reduce' && rank > 0) {
      const axes = [...new Set(Array.from({ length: r.int(1, rank) }, () => r.int(-rank, rank - 1)))].filter(
        (a, _i, all) => !all.some((x) => x !== a && (x + rank) % rank === (a + rank) % rank),
      );
      cur = b.op(r.pick(['reduce_sum', 'reduce_mean', 'reduce_max']), [cur], { axes, keepdims: r.next() < 0.5 });
    } else if (kind === 'softmax' && rank > 0) {
      cur = b.op(r.pick(['softmax', 'log_softmax']), [cur], { axis: forced ? -1 : r.int(-rank, rank - 1) });
    } else if (kind === 'matmul' && rank > 0) {
      const k = shape[rank - 1]!;
      const rows = numel(shape) / k;
      // forced: N past the skinny threshold (M·N > 1024); weights scaled by 1/√K keep values O(1) along a chain
      const n = forced ? r.pick([33, 64, 130].filter((d) => d * rows <= LARGE_NUMEL)) : dim(rows);
      cur = b.matmul(cur, constOf([k, n], 1 / Math.sqrt(k)));
    } else if (kind === 'norm' && rank > 0 && shape[rank - 1]! > 1) {
      // (a norm over one element is degenerate: it amplifies the rounding of its input without bound)
      const last = shape[rank - 1]!;
      cur =
        r.next() < 0.5
          ? b.layerNorm(cur, constOf([last]), constOf([last]), 1e-5, -1)
          : b.rmsNorm(cur, constOf([last]), 1e-6, -1);
    } else if (kind === 'transpose' && rank > 1) {
      const perm = Array.from({ length: rank }, (_, i) => i);
      for (let i = rank - 1; i > 0; i--) {
        const j = r.int(0, i);
        [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      }
      cur = b.transpose(cur, perm);
    } else if (kind === 'reshape' && rank > 0) {
      const n = shape.reduce((a, c) => a * c, 1);
      cur = r.next() < 0.5 ? b.reshape(cur, [n]) : b.reshape(cur, [1, -1]);
    } else if (kind === 'gather' && rank > 0) {
      const len = shape[0]!;
      const idx = b.const('i64', [0, len - 1, Math.floor(len / 2)], [3]);
      cur = b.gather(cur, idx, 0);
    }
  }
  b.output(cur, 'out');
  return { graph: b.build(), feeds, seed };
}

export const arbGraphSeed = fc.integer({ min: 1, max: 0x7fffffff });

/** A focus for a property's case: mostly none (any graph), sometimes a fast path first. */
export const arbFocus: fc.Arbitrary<GraphFocus | undefined> = fc.constantFrom(undefined, undefined, 'matmul', 'rows');

/**
 * The same graph with symbolic input dims: every input dim of size d > 1 becomes the symbol `n${d}` (equal sizes share a
 * symbol, so broadcasting stays legal) and every node's types are re-inferred through the builder.
 */
export function symbolize(graph: Graph): Graph {
  const b = new GraphBuilder(`${graph.name}_sym`);
  const map = new Map<Value, Value>();
  for (const v of graph.inputs) {
    map.set(
      v,
      b.input(
        v.name,
        v.type.dtype,
        v.type.shape.map((d) => (typeof d === 'number' && d > 1 ? `n${d}` : d)),
      ),
    );
  }
  for (const c of graph.constants) map.set(c, b.weight(c.name, c.data!));
  for (const n of graph.nodes) {
    const outs = b.opN(
      n.op,
      n.inputs.map((x) => (x ? map.get(x)! : null)),
      n.attrs,
      n.outputs.length,
      n.outputs.map((o) => o.name),
    );
    n.outputs.forEach((o, i) => map.set(o, outs[i]!));
  }
  for (const o of graph.outputs) b.output(map.get(o)!);
  return b.build();
}

/** Evaluate a dim under bindings (the IR's own dim-expression evaluator). */
export { evalDim } from '../../ir/dim-expr.js';

/**
 * The f32 twin of an f16 graph: the same structure with f32 values (every f16 input and constant converted exactly).
 * Its reference is what an f32-fallback device computes for the f16 graph: f32 arithmetic on f16 data.
 */
export function f32Twin(graph: Graph, feeds: Record<string, Tensor>): { graph: Graph; feeds: Record<string, Tensor> } {
  const b = new GraphBuilder(`${graph.name}_f32`);
  const to32 = (t: Tensor) => (t.dtype === 'f16' ? makeTensor('f32', t.shape, t.data) : t);
  const map = new Map<Value, Value>();
  for (const v of graph.inputs) {
    map.set(v, b.input(v.name, v.type.dtype === 'f16' ? 'f32' : v.type.dtype, v.type.shape));
  }
  for (const c of graph.constants) map.set(c, b.weight(c.name, to32(c.data!)));
  for (const n of graph.nodes) {
    const outs = b.opN(
      n.op,
      n.inputs.map((x) => (x ? map.get(x)! : null)),
      n.attrs,
      n.outputs.length,
      n.outputs.map((o) => o.name),
    );
    n.outputs.forEach((o, i) => map.set(o, outs[i]!));
  }
  for (const o of graph.outputs) b.output(map.get(o)!);
  return { graph: b.build(), feeds: Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, to32(t)])) };
}
