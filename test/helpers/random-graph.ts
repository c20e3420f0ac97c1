/**
 * Random well-typed graphs for property tests: elementwise and broadcast chains, reductions over random axes,
 * matmul, softmax, layer / RMS norm, gather, transpose / reshape, with random shapes including 1 and odd sizes.
 * Shared by the IR properties and, later, by the backend equivalence properties.
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

export function randomGraph(seed: number, steps = 6, dtype: 'f32' | 'f16' = 'f32'): RandomGraph {
  const r = prng(seed);
  const b = new GraphBuilder('rand');
  const feeds: Record<string, Tensor> = {};
  const dim = () => r.pick([1, 1, 2, 3, 4, 5, 7]);
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
  const constOf = (shape: number[]) =>
    b.weight(
      b.unique('w'),
      makeTensor(
        dtype,
        shape,
        Array.from({ length: shape.reduce((a, c) => a * c, 1) }, () => r.normal() * 0.5),
      ),
    );
  const rank0 = r.int(1, 4);
  let cur = newInput(Array.from({ length: rank0 }, dim));
  const shapeOf = (v: Value) => v.type.shape as number[];
  for (let s = 0; s < steps; s++) {
    const shape = shapeOf(cur);
    const rank = shape.length;
    const kind = r.pick([
      'unary',
      'binary',
      'binary',
      'reduce',
      'softmax',
      'matmul',
      'norm',
      'transpose',
      'reshape',
      'gather',
    ]);
    if (kind === 'unary') {
      const op = r.pick(UNARY);
      cur = op === 'sqrt_abs' ? b.op('sqrt', [b.op('abs', [cur])]) : b.op(op, [cur]);
    } else if (kind === 'binary') {
      // the other operand broadcasts: a suffix of the shape with some dims set to 1, or a bigger rank
      const k = r.int(0, rank);
      const other = shape.slice(rank - k).map((d) => (r.next() < 0.3 ? 1 : d));
      const extra = k === rank && rank < 4 && r.next() < 0.2 ? [dim()] : [];
      const o = r.next() < 0.5 ? newInput([...extra, ...other]) : constOf([...extra, ...other]);
      cur = r.next() < 0.5 ? b.op(r.pick(BINARY), [cur, o]) : b.op(r.pick(BINARY), [o, cur]);
    } else if (kind === 'reduce' && rank > 0) {
      const axes = [...new Set(Array.from({ length: r.int(1, rank) }, () => r.int(-rank, rank - 1)))].filter(
        (a, _i, all) => !all.some((x) => x !== a && (x + rank) % rank === (a + rank) % rank),
      );
      cur = b.op(r.pick(['reduce_sum', 'reduce_mean', 'reduce_max']), [cur], { axes, keepdims: r.next() < 0.5 });
    } else if (kind === 'softmax' && rank > 0) {
      cur = b.op(r.pick(['softmax', 'log_softmax']), [cur], { axis: r.int(-rank, rank - 1) });
    } else if (kind === 'matmul' && rank > 0) {
      cur = b.matmul(cur, constOf([shape[rank - 1]!, dim()]));
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

/** Evaluate a dim (number, symbol, or an expression of symbols with + - * / and parentheses) under bindings. */
export function evalDim(d: number | string, env: Readonly<Record<string, number>>): number {
  if (typeof d === 'number') return d;
  const toks = d.match(/[A-Za-z_][A-Za-z0-9_]*|\d+|[-+*/()]/g) ?? [];
  let i = 0;
  const atom = (): number => {
    const t = toks[i++]!;
    if (t === '(') {
      const v = sum();
      i++; // ')'
      return v;
    }
    if (/^\d+$/.test(t)) return Number(t);
    const v = env[t];
    if (v === undefined) throw new Error(`unbound symbol ${t} in ${d}`);
    return v;
  };
  const prod = (): number => {
    let v = atom();
    while (toks[i] === '*' || toks[i] === '/') v = toks[i++] === '*' ? v * atom() : v / atom();
    return v;
  };
  const sum = (): number => {
    let v = prod();
    while (toks[i] === '+' || toks[i] === '-') v = toks[i++] === '+' ? v + prod() : v - prod();
    return v;
  };
  return sum();
}

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
